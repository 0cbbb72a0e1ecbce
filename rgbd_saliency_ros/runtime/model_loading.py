"""Building a SAM-DAQ model with its weights from file paths: what every command and the node
do."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..model import SamDaq, SamDaqConfig, load_sam2_checkpoint, load_samdaq_weights, weights_config
from ..model.config import BACKBONE_CHANNELS

DEFAULT_BACKBONE = "sam2.1_hiera_t"
DEFAULT_INPUT_SIZE = 1024


@dataclass
class LoadedModel:
    """A model ready to run, and what its weights file said about itself."""

    model: SamDaq
    # the project format's metadata (config, depth conversion, ...); {} for the reference's
    metadata: dict


def resolve_config(
    weights: str | os.PathLike | None, backbone: str | None, input_size: int | None
) -> SamDaqConfig:
    """The model config: the weights file's own (project format) unless flags say otherwise,
    in which case loading will refuse a mismatch; else the flags or the defaults."""
    stored = weights_config(weights) if weights else None
    if stored is not None:
        values = stored.to_dict()
        if backbone is not None:
            values["backbone"] = backbone
        if input_size is not None:
            values["input_size"] = input_size
        return SamDaqConfig.from_dict(values)
    return SamDaqConfig(
        backbone=backbone or DEFAULT_BACKBONE, input_size=input_size or DEFAULT_INPUT_SIZE
    )


def load_model(
    sam2_checkpoint: str | os.PathLike | None,
    weights: str | os.PathLike | None,
    backbone: str | None = None,
    input_size: int | None = None,
    device: str = "cpu",
) -> LoadedModel:
    """Builds SAM-DAQ, loads Meta's SAM2.1 checkpoint, then SAM-DAQ weights (either format).

    Either path may be None only to run with random weights (tests, benchmarks). Raises
    ``CheckpointError`` (naming the file) for a file that cannot be loaded.
    """
    if backbone is not None and backbone not in BACKBONE_CHANNELS:
        raise ValueError(
            f"unknown model {backbone!r}; expected one of {sorted(BACKBONE_CHANNELS)}"
        )
    config = resolve_config(weights, backbone, input_size)
    model = SamDaq(config)
    if sam2_checkpoint:
        load_sam2_checkpoint(model, sam2_checkpoint)
    metadata = load_samdaq_weights(model, weights) if weights else {}
    return LoadedModel(model.to(torch.device(device)).eval(), metadata)
