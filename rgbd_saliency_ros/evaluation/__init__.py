"""Evaluation layer: rosbags and folders through the model, metrics and reports (uses runtime/,
never ros/; the node is started as a process by its module name).

- ``bags``: rosbag2 reading and writing through rosbags (``mcap_files``: MCAP files rosbags
  refuses, read record by record; ``calibration``: CameraInfo intrinsics);
- ``make_bag``: image folders to a bag; ``replay``: a bag offline through a backend; ``live``: a
  bag played to a running node; ``node_process``: the node as a process (demo, tests);
- ``metrics``: saliency metrics; ``report``, ``report_plots``, ``report_markdown``: what a replay
  writes; ``demo``: the whole pipeline in one command.
"""
