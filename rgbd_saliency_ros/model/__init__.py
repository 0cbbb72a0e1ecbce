"""The networks in pure PyTorch, as plug-ins behind one contract: no ROS, no runtime concerns.

``base.SaliencyModel`` is the contract, ``contract`` its torch-free descriptions (preprocessing,
per-stream state), ``registry`` finds a plug-in by the name its weights carry. SAM-DAQ
(``samdaq``) and M4-SAM (``m4sam``, the folder ``m4sam/``) are the built-in saliency models;
Depth Anything V2 (``depth_anything_v2``) the built-in depth source (``base.DepthEstimator``);
EfficientViT-SAM (``efficientvit_sam_*``) a promptable one (``promptable.PromptableModel``). The
configurations (``SamDaqConfig``, ``M4SamConfig``, ``BACKBONE_CHANNELS``), the contract's
descriptions and the registry import without torch, so that the command line can offer its
choices to commands that need no model (``eval``, ``make-bag``); the torch parts load on first use
of their names.
"""

import importlib

from .config import BACKBONE_CHANNELS, SamDaqConfig
from .contract import (
    EstimatorPreprocessing,
    Preprocessing,
    StateHealth,
    StateSpec,
    StateTensor,
)
from .m4sam import M4SamConfig
from .registry import model_class, model_names, register_model

# name -> module of this package that defines it, imported on first access (PEP 562)
_LAZY = {
    "CheckpointError": "checkpoints",
    "load_sam2_checkpoint": "checkpoints",
    "load_samdaq_weights": "checkpoints",
    "load_weights": "checkpoints",
    "save_weights": "checkpoints",
    "weights_config": "checkpoints",
    "weights_model": "checkpoints",
    "SaliencyModel": "base",
    "DepthEstimator": "base",
    "DepthAnythingV2": "depth_anything_v2",
    "DepthAnythingV2Config": "depth_anything_v2",
    "load_depth_estimator": "checkpoints",
    "PromptableModel": "promptable",
    "EfficientViTSam": "efficientvit_sam",
    "Features": "samdaq",
    "M4Sam": "m4sam.network",
    "SamDaq": "samdaq",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKBONE_CHANNELS",
    "EstimatorPreprocessing",
    "M4SamConfig",
    "Preprocessing",
    "SamDaqConfig",
    "StateHealth",
    "StateSpec",
    "StateTensor",
    "model_class",
    "model_names",
    "register_model",
    *_LAZY,
]
