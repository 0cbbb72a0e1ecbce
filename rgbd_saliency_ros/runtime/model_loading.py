"""Building a model plug-in with its weights from file paths: what every command and the node
do. The plug-in is the one the weights file names (SAM-DAQ for files that name none)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..model import CheckpointError, load_weights, model_class, weights_model
from ..model.base import SaliencyModel
from ..model.config import BACKBONE_CHANNELS
from ..model.promptable import PromptableModel
from ..model.registry import DEFAULT_MODEL

DEFAULT_BACKBONE = "sam2.1_hiera_t"
DEFAULT_INPUT_SIZE = 1024


@dataclass
class LoadedModel:
    """A model ready to run, and what its weights file said about itself."""

    model: SaliencyModel
    # the project format's metadata (config, depth conversion, ...); {} for the reference's
    metadata: dict


def resolve_model(
    weights: str | os.PathLike | None, backbone: str | None, input_size: int | None
) -> tuple[type, object]:
    """(plug-in class, config): the weights file's own (project format) with the flags laid over
    it, in which case loading will refuse a mismatch; else SAM-DAQ from the flags or the
    defaults."""
    cls, stored = weights_model(weights) if weights else (None, None)
    if cls is not None and not issubclass(cls, SaliencyModel):
        raise CheckpointError(
            f"{weights}: weights of {cls.name!r}, a depth estimator, not a saliency model "
            "(estimate-depth runs it)"
        )
    if stored is not None:
        values = stored.to_dict()
        if backbone is not None:
            values["backbone"] = backbone
        if input_size is not None:
            values["input_size"] = input_size
        return cls, cls.config_class.from_dict(values)
    cls = model_class(DEFAULT_MODEL)
    return cls, cls.config_class(
        backbone=backbone or DEFAULT_BACKBONE, input_size=input_size or DEFAULT_INPUT_SIZE
    )


def check_model_files(
    sam2_checkpoint: str | os.PathLike | None, weights: str | os.PathLike | None
) -> None:
    """Raises ValueError unless the files suffice to run trained weights: ``weights``, and the
    backbone checkpoint when the model the weights name loads one (SAM-DAQ: SAM2.1)."""
    if not weights:
        raise ValueError("the torch backend needs --weights (a model's trained weights)")
    cls = resolve_model(weights, None, None)[0]
    if cls.backbone_checkpoint and not sam2_checkpoint:
        raise ValueError(f"model {cls.name} also needs {cls.backbone_checkpoint}")


def load_model(
    sam2_checkpoint: str | os.PathLike | None,
    weights: str | os.PathLike | None,
    backbone: str | None = None,
    input_size: int | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Builds the plug-in the weights name, loads its backbone checkpoint (Meta's SAM2.1 for
    SAM-DAQ), then the weights (project or reference format).

    Either path may be None only to run with random weights (tests, benchmarks). Raises
    ``CheckpointError`` (naming the file) for a file that cannot be loaded.
    """
    if backbone is not None and backbone not in BACKBONE_CHANNELS:
        raise ValueError(
            f"unknown model {backbone!r}; expected one of {sorted(BACKBONE_CHANNELS)}"
        )
    cls, config = resolve_model(weights, backbone, input_size)
    model = cls(config)
    if sam2_checkpoint:
        model.load_backbone(sam2_checkpoint)
    metadata = load_weights(model, weights) if weights else {}
    return LoadedModel(model.to(torch.device(device)).eval(), metadata)


def load_promptable_model(
    weights: str | os.PathLike, name: str | None = None, device: str = "cpu"
) -> LoadedModel:
    """Builds the promptable plug-in a weights file is for and loads it.

    A project weights file names its model (``name``, if given, must agree); an official
    checkpoint names none, so ``name`` (a registry name, e.g. ``efficientvit_sam_l0``) says
    which model it is. Raises ValueError for a model that is not promptable or a missing name,
    ``CheckpointError`` (naming the file) for a file that cannot be loaded.
    """
    cls, config = weights_model(weights)
    if cls is None:
        if name is None:
            raise ValueError(
                f"{weights}: an official checkpoint does not say which model it is: give the "
                "model's name (--model)"
            )
        cls = model_class(name)
        config = cls.config_class()
    elif name is not None and name != cls.name:
        raise ValueError(f"{weights}: weights of model {cls.name!r}, not {name!r}")
    if not issubclass(cls, PromptableModel):
        raise ValueError(
            f"model {cls.name} is not promptable (it has a saliency step: rgbd-saliency predict)"
        )
    model = cls(config)
    metadata = load_weights(model, weights)
    return LoadedModel(model.to(torch.device(device)).eval(), metadata)
