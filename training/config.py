"""The training configuration: one frozen dataclass, filled from a YAML file and ``--set``
overrides.

    from training.config import load_config
    cfg = load_config("training/configs/tiny_cpu.yaml", ["iterations=20", "data.root=/tmp/syn"])

Paths in the YAML file are taken as given (relative ones from the working directory). Unknown keys
raise, naming the valid ones: a typo must not silently train with a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from rgbd_saliency_ros.model import SamDaqConfig

from .datasets import DatasetSpec, reject_unknown_keys

PRECISIONS = ("float32", "bfloat16", "float16")
SCHEDULES = ("constant", "cosine", "poly")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved beside the weights and inside the resume
    state."""

    # --- model
    backbone: str = "sam2.1_hiera_l"
    input_size: int = 1024  # the weights are tied to it (the prompt Linear's width)
    # Meta's SAM2.1 checkpoint for the frozen backbone and the starting decoder / memory encoder.
    # null: a random backbone drawn from ``seed``, for smoke tests only; it is written beside the
    # weights (sam2_random_backbone.pt) so that predict and resume can load the same one.
    sam2_checkpoint: str | None = None
    init_weights: str | None = None  # SAM-DAQ weights to start from (fine-tuning), either format
    # Inference-time fall-back of SAM2's decoder to its multimask outputs (SamDaqConfig); stored in
    # the weights. Training trains the single mask only: false where those outputs are untrained.
    multimask_fallback: bool = True
    # The ablations of SamDaqConfig, trained by the same loop: adapter "parallel" (SAM-DAQ),
    # "serial" or "lora" (lora_rank); temporal "qtm" (SAM-DAQ), "static" or "memory_bank"
    # (memory_frames). Stored in the weights, so predict and the node build the same variant.
    adapter: str = "parallel"
    lora_rank: int = 8
    temporal: str = "qtm"
    memory_frames: int = 6

    # --- data
    data: DatasetSpec = field(default_factory=lambda: DatasetSpec(root="data/train"))
    eval_data: DatasetSpec | None = None  # held-out videos scored once at the end (eval.json)
    clip_frames: int = 10  # frames per clip, in time order, from one video
    # random_sorted: the reference's
    clip_sampling: Literal["random_sorted", "contiguous"] = "random_sorted"
    # probability of mirroring a whole clip; the reference does no augmentation
    hflip_prob: float = 0.0
    num_workers: int = 2  # data loader processes (0: load in the training process)

    # --- optimisation
    iterations: int = 2000  # optimizer steps
    batch_size: int = 1  # clips per forward, per process
    # forwards per optimizer step: effective batch = batch_size * grad_accum * processes
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.05
    # after warm-up; the reference: constant
    schedule: Literal["constant", "cosine", "poly"] = "constant"
    warmup_iterations: int = 0  # linear ramp from lr / warmup_iterations to lr
    min_lr: float = 0.0  # cosine floor
    poly_power: float = 0.9
    intermediate_weight: float = 0.5  # weight of the self-inference head's BCE
    # clip the gradient's global norm; null: no clipping (the reference)
    max_grad_norm: float | None = None
    precision: Literal["float32", "bfloat16", "float16"] = "float32"  # autocast dtype, CUDA only
    device: str = "auto"  # auto (cuda when available), cpu, cuda
    # torch CPU threads per process (0: torch's default, one per core). On a CPU that others share,
    # threads that wait for each other can run many times slower than one.
    threads: int = 0
    seed: int = 0

    # --- output
    out_dir: str = "runs/train"
    # iterations between resume states (train_state.pt); the last is always saved
    save_every: int = 250

    def __post_init__(self) -> None:
        self.model_config()  # validates the model keys (backbone, input_size, ablations)
        positive = {
            "clip_frames": self.clip_frames,
            "iterations": self.iterations,
            "batch_size": self.batch_size,
            "grad_accum": self.grad_accum,
            "save_every": self.save_every,
        }
        bad = {k: v for k, v in positive.items() if not (isinstance(v, int) and v >= 1)}
        if bad:
            raise ValueError(f"must be integers >= 1: {bad}")
        if self.clip_sampling not in ("random_sorted", "contiguous"):
            raise ValueError(
                "clip_sampling must be 'random_sorted' or 'contiguous', "
                f"got {self.clip_sampling!r}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not (
            self.lr > 0
            and self.weight_decay >= 0
            and self.min_lr >= 0
            and self.warmup_iterations >= 0
        ):
            raise ValueError("need lr > 0, weight_decay >= 0, min_lr >= 0, warmup_iterations >= 0")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be positive or null, got {self.max_grad_norm}")
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {self.hflip_prob}")
        if self.num_workers < 0 or self.threads < 0:
            raise ValueError(
                f"num_workers and threads must be >= 0, got {self.num_workers} and {self.threads}"
            )

    def model_config(self) -> SamDaqConfig:
        """The model this run trains (validated by SamDaqConfig)."""
        return SamDaqConfig(
            backbone=self.backbone,
            input_size=self.input_size,
            multimask_fallback=self.multimask_fallback,
            adapter=self.adapter,
            lora_rank=self.lora_rank,
            temporal=self.temporal,
            memory_frames=self.memory_frames,
        )

    def to_dict(self) -> dict:
        """Plain nested dict (YAML / JSON / weights_only-checkpoint safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """From a nested mapping; unknown keys raise."""
        values = dict(values)
        reject_unknown_keys(cls, values, "training config keys")
        if "data" in values:
            if not isinstance(values["data"], dict):
                raise ValueError("data must be a mapping (root, layout, split, depth_dir, depth)")
            values["data"] = DatasetSpec.from_dict(values["data"])
        if values.get("eval_data") is not None:
            values["eval_data"] = DatasetSpec.from_dict(values["eval_data"])
        return cls(**values)


def apply_override(values: dict, assignment: str) -> None:
    """Applies one ``key=value`` (dotted keys reach into mappings, the value is parsed as YAML) to
    ``values`` in place: ``iterations=50``, ``data.root=/data/x``, ``sam2_checkpoint=null``."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ValueError(f"override {assignment!r} is not key=value")
    parts = key.strip().split(".")
    target = values
    for part in parts[:-1]:
        if target.get(part) is None:
            target[part] = {}
        if not isinstance(target[part], dict):
            raise ValueError(f"override {assignment!r}: {part} is not a mapping")
        target = target[part]
    target[parts[-1]] = yaml.safe_load(raw)


def load_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainConfig:
    """A ``TrainConfig`` from a YAML file (or the defaults when ``path`` is None) and overrides."""
    values: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text())
        if loaded is not None and not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of training settings at the top level")
        values = loaded or {}
    for assignment in overrides:
        apply_override(values, assignment)
    try:
        return TrainConfig.from_dict(values)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path or 'defaults'}: {e}") from None
