"""The SAM-DAQ network in pure PyTorch: no ROS, no runtime concerns."""

from .checkpoints import (
    CheckpointError,
    load_sam2_checkpoint,
    load_samdaq_weights,
    save_weights,
    weights_config,
)
from .config import BACKBONE_CHANNELS, SamDaqConfig
from .samdaq import Features, SamDaq

__all__ = [
    "BACKBONE_CHANNELS",
    "CheckpointError",
    "Features",
    "SamDaq",
    "SamDaqConfig",
    "load_sam2_checkpoint",
    "load_samdaq_weights",
    "save_weights",
    "weights_config",
]
