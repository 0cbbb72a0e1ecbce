"""Frames in, masks out: what the node and the replay tools call, with no ROS in it.

    runtime = SaliencyRuntime(backend, SaliencyConfig(threshold=0.5))
    pair = FramePair("camera", stamp_s, rgb_uint8, depth_m, depth_is_metric=True)
    prepared = runtime.prepare(pair)
    [result] = runtime.run([prepared])        # result.mask: (H, W) uint8 0/255

``prepare`` does the per-frame checks and conversions (and raises on bad input, so a caller can
count it and go on); ``run`` steps prepared frames of distinct streams, each from its own memory:
in one batch where the model's ``StateSpec`` says their states stack (SAM-DAQ's fixed queries
always do), in batches of equal shapes otherwise (a memory bank that grows). Every caller that
turns frames into masks goes through here: the node, replay, ``predict``, calibration, training's
evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..model.contract import Preprocessing  # torch-free
from .backends.base import StepBackend  # torch-free: the model comes in through the backend
from .depth import DepthConversion, depth_to_model_input
from .frames import normalize_rgb, resize_probability, resize_square
from .stream_memory import ResetCause, StreamMemory


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
    rgb: np.ndarray  # (3, S, S) float32, normalised as the model's preprocessing says
    depth: np.ndarray  # (1, S, S) float32 in [0, 1] (zeros for a model that takes no depth)


@dataclass
class SaliencyResult:
    """The model's answer for one pair, at the color frame's size."""

    stream_id: str
    stamp_s: float
    probability: np.ndarray  # (H, W) float32 in [0, 1]
    mask: np.ndarray  # (H, W) uint8, 0 or 255
    reset: ResetCause | None  # why this frame started from the initial state, if it did
    model_time_s: float  # the batched step's wall time (shared by the pairs of one batch)
    state_norm: float = float("nan")  # the state's health norm after this frame (memory health)
    model_probability: np.ndarray | None = None  # (S, S) float32: the step's own output
    # Set once per stream, the first time its state goes bad (it restarts at the next frame).
    memory_warning: str | None = None


def model_inputs(
    rgb: np.ndarray, depth01: np.ndarray | None, preprocessing: Preprocessing
) -> tuple[np.ndarray, np.ndarray]:
    """One frame as a model's step takes it: (H, W, 3) uint8 RGB and (H, W) float32 depth in
    [0, 1] (None for a model that takes no depth) -> rgb (3, S, S) and depth (1, S, S) float32,
    resized to the square input and normalised as ``preprocessing`` says. The runtime, training's
    data sets and the parity tests all prepare frames with it."""
    s = preprocessing.input_size
    pre = preprocessing
    rgb_in = normalize_rgb(resize_square(rgb, s), pre.mean, pre.std, pre.rgb_minmax)
    if depth01 is None:
        return rgb_in, np.zeros((1, s, s), np.float32)
    return rgb_in, np.ascontiguousarray(resize_square(depth01, s), dtype=np.float32)[None]


class SaliencyRuntime:
    """Holds a backend and the per-stream memory; converts frames and runs batched steps."""

    def __init__(self, backend: StepBackend, config: SaliencyConfig | None = None) -> None:
        if backend.preprocessing.needs_prompts:
            raise ValueError(
                f"model {backend.name} is promptable: it segments what prompts point at and has "
                "no saliency step (rgbd-saliency segment runs it)"
            )
        self.backend = backend
        self.config = config or SaliencyConfig()
        stored = backend.metadata.get("depth_conversion")
        # Weights trained with a known depth convention use it: a mismatch would silently hurt.
        self.depth_conversion = (
            DepthConversion.from_dict(stored) if stored else self.config.depth_conversion
        )
        self.state_spec = backend.state_spec
        self.preprocessing = backend.preprocessing
        # The model's own bound on a healthy state (reported in diagnostics).
        self.state_norm_bound = self.state_spec.norm_bound
        self.memory = StreamMemory(
            self.config.reset_timeout_s,
            self.config.evict_after_s,
            self.config.max_streams,
            self.state_spec.health,
        )
        self._warned_bad_state: set[str] = set()
        self._last_step_s = 0.0

    @property
    def input_size(self) -> int:
        return self.preprocessing.input_size

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
        if not self.preprocessing.needs_depth:
            return PreparedPair(pair, *model_inputs(rgb, None, self.preprocessing))
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
        return PreparedPair(pair, *model_inputs(rgb, rel, self.preprocessing))

    def state_before(self, prepared: PreparedPair):
        """The state ``run`` would step this pair's stream from if nothing resets it (the initial
        state for a new stream): what int8 calibration feeds beside the frame."""
        state = self.memory.peek(prepared.pair.stream_id)
        return self._initial_state() if state is None else state

    def _initial_state(self):
        return self.state_spec.unstack(self.backend.initial_state(1))[0]

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
            states.append(self._initial_state() if state is None else state)
            causes.append(cause)
        results: list[SaliencyResult | None] = [None] * len(prepared)
        start = time.perf_counter()
        for group in self._stackable_groups(states):
            prob, new = self.backend.step(
                np.stack([prepared[i].rgb for i in group]),
                np.stack([prepared[i].depth for i in group]),
                self.state_spec.stack([states[i] for i in group]),
            )
            for k, (i, state) in enumerate(zip(group, self.state_spec.unstack(new))):
                results[i] = self._result(prepared[i], causes[i], prob[k, 0], state)
        elapsed = time.perf_counter() - start
        self._last_step_s = elapsed
        for r in results:
            r.model_time_s = elapsed
        return results

    def _stackable_groups(self, states: list) -> list[list[int]]:
        """Indices of states that one step can batch: all of them when the model's states stack,
        else by equal shapes (a growing memory: streams at different lengths)."""
        if self.state_spec.stackable(states):
            return [list(range(len(states)))]
        groups: dict[tuple, list[int]] = {}
        for i, state in enumerate(states):
            key = tuple(state[n].shape for n in self.state_spec.names)
            groups.setdefault(key, []).append(i)
        return list(groups.values())

    def _result(
        self, p: PreparedPair, cause: ResetCause | None, prob: np.ndarray, state
    ) -> SaliencyResult:
        """Commits a stream's new state and turns its probability (S, S) into the result."""
        sid = p.pair.stream_id
        health = self.memory.commit(sid, p.pair.stamp_s, state)
        full = resize_probability(prob, p.pair.rgb.shape[:2])
        mask = np.where(full >= self.config.threshold, np.uint8(255), np.uint8(0))
        warning = None if health.ok else self._bad_state_warning(sid, health.reason)
        return SaliencyResult(
            sid,
            p.pair.stamp_s,
            full,
            mask,
            cause,
            model_time_s=0.0,  # set by run, once the whole step is timed
            state_norm=health.norm,
            memory_warning=warning,
            model_probability=prob,
        )

    def _bad_state_warning(self, stream_id: str, reason: str) -> str | None:
        """The warning for a stream whose state went bad: once per stream, None afterwards."""
        if stream_id in self._warned_bad_state:
            return None
        self._warned_bad_state.add(stream_id)
        return (
            f"the model's memory went bad ({reason}): the stream restarts from the initial "
            f"state at its next frame; counted as reset.{ResetCause.BAD_STATE.value} (warned "
            "once per stream)"
        )

    def reset(self, stream_id: str | None = None) -> list[str]:
        """Restarts the memory of one stream (every stream when None) at its next frame."""
        return self.memory.request_reset(stream_id)
