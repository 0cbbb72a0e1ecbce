"""Offline training of SAM-DAQ: data sets, training loop, checkpoints (imports rgbd_saliency_ros.model)."""
