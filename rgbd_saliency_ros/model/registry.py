"""Models by name: the name a weights file stores picks the plug-in that loads it.

    cls = model_class("samdaq")                      # the plug-in class (SaliencyModel here)
    model = cls(cls.config_class.from_dict(values))

Built-in plug-ins are listed in ``BUILTIN`` as ``module:Class`` and imported on first use (so a
name lookup imports no torch); ``register_model`` adds one at run time (a test's, a user's).
Adding a model to the package: one module in ``model/`` and one line in ``BUILTIN``.
"""

from __future__ import annotations

import importlib

# The name weights files carry when they say none: the reference's checkpoints, older files.
DEFAULT_MODEL = "samdaq"

BUILTIN = {
    "samdaq": "rgbd_saliency_ros.model.samdaq:SamDaq",
    "m4sam": "rgbd_saliency_ros.model.m4sam.network:M4Sam",
    # a depth source (``base.DepthEstimator``), not a saliency model
    "depth_anything_v2": "rgbd_saliency_ros.model.depth_anything_v2:DepthAnythingV2",
    "efficientvit_sam_l0": "rgbd_saliency_ros.model.efficientvit_sam:EfficientViTSamL0",
    "efficientvit_sam_l1": "rgbd_saliency_ros.model.efficientvit_sam:EfficientViTSamL1",
    "efficientvit_sam_l2": "rgbd_saliency_ros.model.efficientvit_sam:EfficientViTSamL2",
    "efficientvit_sam_xl0": "rgbd_saliency_ros.model.efficientvit_sam:EfficientViTSamXL0",
    "efficientvit_sam_xl1": "rgbd_saliency_ros.model.efficientvit_sam:EfficientViTSamXL1",
}

_registered: dict[str, type] = {}


class UnknownModelError(ValueError):
    """A model name no plug-in is registered under."""


def register_model(cls: type) -> type:
    """Registers a ``SaliencyModel`` subclass under its ``name`` (usable as a class decorator)."""
    if not getattr(cls, "name", ""):
        raise ValueError(f"{cls.__name__} has no name to register under")
    _registered[cls.name] = cls
    return cls


def model_names() -> list[str]:
    """Every name a weights file may carry, sorted."""
    return sorted({*BUILTIN, *_registered})


def model_class(name: str, source: str = "") -> type:
    """The plug-in registered as ``name``; ``source`` (a file) prefixes the error message."""
    if name in _registered:
        return _registered[name]
    if name not in BUILTIN:
        where = f"{source}: " if source else ""
        raise UnknownModelError(
            f"{where}unknown model {name!r}; known models: {', '.join(model_names())}"
        )
    module, attr = BUILTIN[name].split(":")
    return getattr(importlib.import_module(module), attr)
