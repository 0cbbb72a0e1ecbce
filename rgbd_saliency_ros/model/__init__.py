"""The SAM-DAQ network in pure PyTorch: no ROS, no runtime concerns.

The configuration (``SamDaqConfig``, ``BACKBONE_CHANNELS``) imports without torch, so that the
command line can offer its choices to commands that need no model (``eval``, ``make-bag``); the
torch parts load on first use of their names.
"""

import importlib

from .config import BACKBONE_CHANNELS, SamDaqConfig

# name -> module of this package that defines it, imported on first access (PEP 562)
_LAZY = {
    "CheckpointError": "checkpoints",
    "load_sam2_checkpoint": "checkpoints",
    "load_samdaq_weights": "checkpoints",
    "save_weights": "checkpoints",
    "weights_config": "checkpoints",
    "Features": "samdaq",
    "SamDaq": "samdaq",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BACKBONE_CHANNELS", "SamDaqConfig", *_LAZY]
