"""Benchmarks: measurements run by a command (``rgbd-saliency bench-*``), never by the tests."""
