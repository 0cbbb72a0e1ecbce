"""rgbd_saliency_ros: salient-object masks from RGB-D camera streams with SAM-DAQ.

Layers (imports go downward only): ``model`` (pure PyTorch) -> ``runtime`` (frames in,
masks out, no ROS) -> ``ros`` and ``evaluation``. ``training/`` (top level) imports ``model``,
``runtime`` (the same frame and depth preparation as inference) and ``evaluation.metrics``.
"""

__version__ = "0.1.0"
