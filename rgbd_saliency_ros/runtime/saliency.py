"""Frames in, masks out: what the node and the replay tools call, with no ROS in it.

    runtime = SaliencyRuntime(backend, SaliencyConfig(threshold=0.5))
    pair = FramePair("camera", stamp_s, rgb_uint8, depth_m, depth_is_metric=True)
    prepared = runtime.prepare(pair)
    [result] = runtime.run([prepared])        # result.mask: (H, W) uint8 0/255

``prepare`` does the per-frame checks and conversions (and raises on bad input, so a caller can
count it and go on); ``run`` steps a batch of prepared frames of distinct streams at once, each
from its own query memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .backends.base import StepBackend  # torch-free: the model comes in through the backend
from .depth import DepthConversion, depth_to_model_input
from .frames import normalize_rgb, resize_probability, resize_square
from .stream_memory import ResetCause, StreamMemory, query_norm


@dataclass(frozen=True)
class SaliencyConfig:
    """Runtime settings; the node's parameters of the same names fill it."""

    threshold: float = 0.5  # probability at or above which a pixel is in the mask
    reset_timeout_s: float = 1.0  # a stream's memory restarts after a stamp gap longer than this
    # A live consumer that takes the latest frame skips frames while the model runs: then allow
    # twice the last step's time on top of the timeout. Offline replay steps every frame: False.
    timeout_allows_step_time: bool = False
    evict_after_s: float = 60.0  # streams idle this long (in stamp time) are forgotten
    max_streams: int = 16
    # Used when the weights carry no depth convention of their own (the reference's checkpoints).
    depth_conversion: DepthConversion = field(default_factory=DepthConversion)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")


@dataclass
class FramePair:
    """One synchronised color + aligned depth frame of one stream."""

    stream_id: str
    stamp_s: float  # the color frame's stamp, seconds
    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    depth: (
        np.ndarray
    )  # (H, W) float32: metres with NaN invalid if depth_is_metric, else relative in [0, 1]
    depth_is_metric: bool = True


@dataclass
class PreparedPair:
    """A pair turned into model inputs."""

    pair: FramePair
    rgb: np.ndarray  # (3, S, S) float32, ImageNet-normalised
    depth: np.ndarray  # (1, S, S) float32 in [0, 1]


@dataclass
class SaliencyResult:
    """The model's answer for one pair, at the color frame's size."""

    stream_id: str
    stamp_s: float
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    mask: np.ndarray  # (H, W) uint8, 0 or 255
    reset: ResetCause | None  # why this frame started from the initial state, if it did
    model_time_s: float  # the batched step's wall time (shared by the pairs of one batch)
    state_norm: float = float("nan")  # query_norm of the state after this frame (memory health)
    # Set once per stream, the first time its state goes bad (it restarts at the next frame).
    memory_warning: str | None = None


class SaliencyRuntime:
    """Holds a backend and the per-stream query memory; converts frames and runs batched steps."""

    def __init__(self, backend: StepBackend, config: SaliencyConfig | None = None) -> None:
        self.backend = backend
        self.config = config or SaliencyConfig()
        stored = backend.metadata.get("depth_conversion")
        # Weights trained with a known depth convention use it: a mismatch would silently hurt.
        self.depth_conversion = (
            DepthConversion.from_dict(stored) if stored else self.config.depth_conversion
        )
        # The model's own bound on a healthy state (absent from older exported files: then only
        # non-finite states count as bad).
        self.state_norm_bound = float(backend.metadata.get("state_norm_bound", float("inf")))
        self.memory = StreamMemory(
            self.config.reset_timeout_s,
            self.config.evict_after_s,
            self.config.max_streams,
            self.state_norm_bound,
        )
        self._warned_bad_state: set[str] = set()
        self._last_step_s = 0.0

    @property
    def input_size(self) -> int:
        return self.backend.config.input_size

    def prepare(self, pair: FramePair) -> PreparedPair:
        """Checks and converts one pair. Raises ValueError (``InvalidDepthError`` for depth
        without a valid pixel) on input the model cannot use."""
        rgb, depth = pair.rgb, pair.depth
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"color must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        if depth.ndim != 2:
            raise ValueError(f"depth must be (H, W), got {depth.shape}")
        if rgb.shape[:2] != depth.shape:
            raise ValueError(
                f"color {rgb.shape[1]}x{rgb.shape[0]} and depth "
                f"{depth.shape[1]}x{depth.shape[0]} differ in size"
            )
        if min(depth.shape) == 0:
            raise ValueError("empty frame")
        if pair.depth_is_metric:
            rel = depth_to_model_input(depth, self.depth_conversion)
        else:
            rel = np.clip(
                np.nan_to_num(
                    depth.astype(np.float32, copy=False), nan=self.depth_conversion.invalid_value
                ),
                0.0,
                1.0,
            )
        s = self.input_size
        return PreparedPair(
            pair, normalize_rgb(resize_square(rgb, s)), resize_square(rel, s)[None]
        )

    def run(self, prepared: list[PreparedPair]) -> list[SaliencyResult]:
        """One batched step over pairs of distinct streams. Each stream continues from its memory
        (or restarts, see ``StreamMemory``); the memory is updated with the new states."""
        if not prepared:
            return []
        ids = [p.pair.stream_id for p in prepared]
        if len(set(ids)) != len(ids):
            raise ValueError(f"one step takes at most one frame per stream, got {ids}")
        states, causes = [], []
        # Frames skipped while the previous step ran are not a stalled stream: allow for them.
        slack_s = 2.0 * self._last_step_s if self.config.timeout_allows_step_time else 0.0
        for p in prepared:
            state, cause = self.memory.begin(p.pair.stream_id, p.pair.stamp_s, slack_s)
            states.append(self.backend.initial_state(1)[0] if state is None else state)
            causes.append(cause)
        start = time.perf_counter()
        prob, new_states = self.backend.step(
            np.stack([p.rgb for p in prepared]),
            np.stack([p.depth for p in prepared]),
            np.stack(states),
        )
        elapsed = time.perf_counter() - start
        self._last_step_s = elapsed
        results = []
        for i, p in enumerate(prepared):
            sid = p.pair.stream_id
            healthy = self.memory.commit(sid, p.pair.stamp_s, new_states[i])
            full = resize_probability(prob[i, 0], p.pair.rgb.shape[:2])
            mask = np.where(full >= self.config.threshold, np.uint8(255), np.uint8(0))
            norm = query_norm(new_states[i])
            results.append(
                SaliencyResult(
                    sid,
                    p.pair.stamp_s,
                    full,
                    mask,
                    causes[i],
                    elapsed,
                    norm,
                    None if healthy else self._bad_state_warning(sid, norm),
                )
            )
        return results

    def _bad_state_warning(self, stream_id: str, norm: float) -> str | None:
        """The warning for a stream whose state went bad: once per stream, None afterwards."""
        if stream_id in self._warned_bad_state:
            return None
        self._warned_bad_state.add(stream_id)
        return (
            f"query memory went bad (largest query norm {norm:.4g}, healthy at most "
            f"{self.state_norm_bound:.4g}): the stream restarts from the initial state at its "
            f"next frame; counted as reset.{ResetCause.BAD_STATE.value} (warned once per stream)"
        )

    def reset(self, stream_id: str | None = None) -> list[str]:
        """Restarts the memory of one stream (every stream when None) at its next frame."""
        return self.memory.request_reset(stream_id)
