"""What every model plug-in declares about itself, in plain Python (no torch): the layers above
``model/`` read these and never look inside a model or its state.

- ``Preprocessing``: the input size, the colour normalisation, the depth convention it wants.
- ``EstimatorPreprocessing``: the same for a depth estimator (a depth source, no state), whose
  input follows the frame's aspect ratio.
- ``StateSpec``: the per-stream state as named float32 tensors (fixed or growing along one axis),
  how states of several streams stack into a batch, and what a healthy state is. It is also the
  export description: the state tensors are the exported step's extra inputs and outputs.

A stream's state is a ``dict[str, np.ndarray]`` (one entry per ``StateTensor``, no batch axis);
a batch of states is the same dict with a leading batch axis. Only the spec looks inside.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The training data sets' depth: relative, 8-bit, near bright, read as value / 255 in [0, 1].
DEPTH_RELATIVE = "relative"
DEPTH_CONVENTIONS = (DEPTH_RELATIVE, "none")


class DataclassConfig:
    """``to_dict`` / ``from_dict`` of a plug-in's configuration (a frozen dataclass that
    inherits this): what its weights files store and rebuild it from."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """Builds a config from a dict, refusing unknown fields (a typo must not pass
        silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class Preprocessing:
    """What a model needs of a frame before its step."""

    input_size: int  # square side in pixels the frames are resized to
    mean: tuple[float, float, float] = IMAGENET_MEAN  # applied to RGB / 255
    std: tuple[float, float, float] = IMAGENET_STD
    # Stretch RGB / 255 of each frame to [0, 1] (its min and max over all three channels) before
    # mean and std (M4-SAM's loader does, with mean 0 and std 1).
    rgb_minmax: bool = False
    depth: str = DEPTH_RELATIVE  # one of DEPTH_CONVENTIONS; "none": the model takes no depth
    needs_prompts: bool = False  # a promptable model is not a saliency step

    def __post_init__(self) -> None:
        if self.depth not in DEPTH_CONVENTIONS:
            raise ValueError(
                f"unknown depth convention {self.depth!r}; expected {DEPTH_CONVENTIONS}"
            )

    @property
    def needs_depth(self) -> bool:
        return self.depth != "none"

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        """From ``dataclasses.asdict`` output (JSON lists back to tuples)."""
        v = dict(values)
        for key in ("mean", "std"):
            if key in v:
                v[key] = tuple(float(x) for x in v[key])
        return cls(**v)


@dataclass(frozen=True)
class EstimatorPreprocessing:
    """What a depth estimator needs of a frame: an input whose size follows the frame's aspect
    ratio (Depth Anything V2's ``image2tensor``), unlike a saliency step's fixed square."""

    input_size: int  # pixels: the shorter side's target; neither side ends up below it
    multiple_of: int = 1  # both sides are rounded to a multiple of this (a ViT's patch size)
    mean: tuple[float, float, float] = IMAGENET_MEAN  # applied to RGB / 255
    std: tuple[float, float, float] = IMAGENET_STD
    keep_aspect_ratio: bool = True  # False: the frame is squashed to input_size x input_size

    def __post_init__(self) -> None:
        if self.multiple_of < 1 or self.input_size < self.multiple_of:
            raise ValueError(
                f"input_size {self.input_size} must be at least multiple_of {self.multiple_of} "
                "(itself at least 1)"
            )


@dataclass(frozen=True)
class StateTensor:
    """One named tensor of a stream's state, without the batch axis."""

    name: str
    shape: tuple[int, ...]  # the growing axis holds its largest length
    growing_axis: int | None = None  # None: fixed shape; else this axis grows up to shape[axis]

    def check(self, array: np.ndarray, batched: bool) -> None:
        """Raises ValueError unless ``array`` fits (with a leading batch axis if ``batched``)."""
        shape = tuple(array.shape[1:] if batched else array.shape)
        ok = len(shape) == len(self.shape) and all(
            n <= m if i == self.growing_axis else n == m
            for i, (n, m) in enumerate(zip(shape, self.shape))
        )
        if not ok:
            axis = "" if self.growing_axis is None else f", axis {self.growing_axis} up to"
            raise ValueError(f"state {self.name} has shape {shape}, expected {self.shape}{axis}")


@dataclass(frozen=True)
class StateHealth:
    """A state's check: ``ok`` False means the stream restarts from its initial state."""

    ok: bool
    norm: float  # the largest row norm (NaN when a value is not finite): reported as memory health
    reason: str = ""


@dataclass(frozen=True)
class StateSpec:
    """A model's per-stream state: its tensors, how they batch, and when a state is healthy.

    ``norm_bound``: the largest L2 norm (along the last axis) of any row a model can produce; a
    finite state beyond it did not come from the model (a corrupted state or backend). ``inf``
    when the model has no such bound.
    """

    tensors: tuple[StateTensor, ...] = ()
    norm_bound: float = math.inf
    names: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(t.name for t in self.tensors))

    @property
    def growing(self) -> bool:
        """True when some tensor grows with the stream (the state is not of one fixed shape)."""
        return any(t.growing_axis is not None for t in self.tensors)

    def check(self, state: dict[str, np.ndarray], batched: bool = False) -> None:
        """Raises ValueError unless ``state`` has exactly this spec's tensors, each of its
        shape."""
        if set(state) != set(self.names):
            raise ValueError(f"state has tensors {sorted(state)}, expected {sorted(self.names)}")
        for t in self.tensors:
            t.check(state[t.name], batched)

    def stackable(self, states: list[dict[str, np.ndarray]]) -> bool:
        """True when these streams' states have equal shapes, so that one step can batch them."""
        return all(all(s[n].shape == states[0][n].shape for n in self.names) for s in states[1:])

    def stack(self, states: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Per-stream states of equal shapes -> one batched state (float32, contiguous)."""
        return {
            n: np.ascontiguousarray(np.stack([s[n] for s in states]), np.float32)
            for n in self.names
        }

    def unstack(self, batch: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """A batched state -> one state per stream, as views into ``batch`` (no copy: whoever
        keeps one copies it, as ``StreamMemory.commit`` does)."""
        count = len(next(iter(batch.values()))) if batch else 0
        arrays = {n: np.asarray(batch[n], np.float32) for n in self.names}
        return [{n: arrays[n][i] for n in self.names} for i in range(count)]

    def health(self, state: dict[str, np.ndarray]) -> StateHealth:
        """Whether a stream's state may be carried on: right shapes, finite, within the bound."""
        try:
            self.check(state)
        except ValueError as e:
            return StateHealth(False, math.nan, str(e))
        norm = 0.0
        for n in self.names:
            values = np.asarray(state[n], np.float32)
            if not np.isfinite(values).all():
                return StateHealth(False, math.nan, f"state {n} has non-finite values")
            if values.size:
                rows = (
                    values.reshape(-1, values.shape[-1]) if values.ndim else values.reshape(1, 1)
                )
                norm = max(norm, float(np.linalg.norm(rows, axis=-1).max()))
        if norm > self.norm_bound * BOUND_TOLERANCE:
            return StateHealth(
                False,
                norm,
                f"largest row norm {norm:.4g} above the model's bound {self.norm_bound:.4g}",
            )
        return StateHealth(True, norm)

    def to_dict(self) -> dict:
        """JSON-ready description (what an exported file carries)."""
        return {
            "tensors": [
                {"name": t.name, "shape": list(t.shape), "growing_axis": t.growing_axis}
                for t in self.tensors
            ],
            "norm_bound": self.norm_bound if math.isfinite(self.norm_bound) else "inf",
        }

    @classmethod
    def from_dict(cls, values: dict) -> "StateSpec":
        """The inverse of ``to_dict``; raises ValueError on anything else."""
        try:
            tensors = tuple(
                StateTensor(
                    str(t["name"]), tuple(int(n) for n in t["shape"]), t.get("growing_axis")
                )
                for t in values["tensors"]
            )
            return cls(tensors, float(values.get("norm_bound", "inf")))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a state description: {e}") from None


# Headroom over a model's bound for rounding (and reduced-precision backends).
BOUND_TOLERANCE = 1.01
