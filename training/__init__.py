"""Offline training of SAM-DAQ: data sets, training loop, checkpoints.

Imports rgbd_saliency_ros.model (the network), .runtime (the frame and depth preparation that
inference uses) and .evaluation.metrics (the held-out score); never .ros.
"""
