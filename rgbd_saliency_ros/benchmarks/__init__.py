"""Benchmarks: measurements run by a command (``rgbd-saliency bench-*``), never by the tests.

A top-level consumer, like ``cli.py``: it may import every layer (bench-node starts the node and
talks to it over ROS, so it imports ``ros``), and no layer imports it. Only bench-node needs ROS.
"""
