"""Per-stream query memory: each camera stream's SAM-DAQ state, and when to forget it.

The model's only temporal state is a small array per stream (num_video_queries x query_dim).
This store holds it with the stream's last stamp, and resets it when time runs backward (a rosbag
loop, a clock jump), when frames stop for longer than ``reset_timeout_s``, on request, or when a
state has gone bad: non-finite, or a video query longer than ``state_norm_bound`` (the model's own
bound, ``SamDaq.state_norm_bound``: a state beyond it was not produced by the model). Streams idle
for ``evict_after_s`` are forgotten, and at most ``max_streams`` are kept.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from enum import Enum

import numpy as np


class ResetCause(str, Enum):
    """Why a stream started again from the initial state."""

    NEW_STREAM = "new_stream"
    BACKWARD_JUMP = "backward_jump"
    TIMEOUT = "timeout"
    REQUEST = "request"
    BAD_STATE = "bad_state"  # the state after the previous frame was non-finite or out of bounds


# Headroom over the model's bound for rounding (and reduced-precision backends).
BOUND_TOLERANCE = 1.01


def query_norm(state: np.ndarray) -> float:
    """The largest L2 norm among a state's video queries: (Q, D) -> float; NaN when any value is
    not finite. What a stream's memory health is judged and reported by."""
    state = np.asarray(state, dtype=np.float32)
    if not np.isfinite(state).all():
        return float("nan")
    return float(np.linalg.norm(state.reshape(-1, state.shape[-1]), axis=-1).max())


@dataclass
class _Entry:
    state: np.ndarray | None  # None until the first step; the caller supplies the initial state
    last_stamp_s: float | None
    pending_reset: ResetCause | None = None
    state_norm: float = float("nan")  # query_norm of the last state committed


class StreamMemory:
    """States of many streams, keyed by stream id (a camera namespace, say). Thread-safe: a reset
    may be requested from a service thread while a worker steps the stream."""

    def __init__(
        self,
        reset_timeout_s: float = 1.0,
        evict_after_s: float = 60.0,
        max_streams: int = 16,
        state_norm_bound: float = float("inf"),
    ) -> None:
        if (
            reset_timeout_s <= 0
            or evict_after_s <= 0
            or max_streams < 1
            or not state_norm_bound > 0
        ):
            raise ValueError(
                "reset_timeout_s, evict_after_s and state_norm_bound must be positive, "
                "max_streams at least 1"
            )
        self.state_norm_bound = state_norm_bound
        self.reset_timeout_s = reset_timeout_s
        self.evict_after_s = evict_after_s
        self.max_streams = max_streams
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.resets: Counter[str] = Counter()  # by ResetCause value
        self.evictions = 0
        self._lock = threading.Lock()

    def begin(
        self, stream_id: str, stamp_s: float, slack_s: float = 0.0
    ) -> tuple[np.ndarray | None, ResetCause | None]:
        """The state to step ``stream_id``'s frame at ``stamp_s`` from.

        ``slack_s`` widens the gap allowed before a timeout: a consumer that takes the latest frame
        while the model is busy sees stamp gaps of a step's duration without the stream stalling.
        Returns (state, cause): state None means "start from the initial state", with the cause
        (counted in ``resets``). A stamp equal to the last one is not a reset (same frame again).
        """
        with self._lock:
            return self._begin(stream_id, stamp_s, slack_s)

    def _begin(
        self, stream_id: str, stamp_s: float, slack_s: float
    ) -> tuple[np.ndarray | None, ResetCause | None]:
        self._evict_idle(stamp_s)
        entry = self._entries.get(stream_id)
        cause = None
        if entry is None:
            cause = ResetCause.NEW_STREAM
        elif entry.pending_reset is not None:
            cause = entry.pending_reset
        elif entry.last_stamp_s is not None and stamp_s < entry.last_stamp_s:
            cause = ResetCause.BACKWARD_JUMP
        elif (
            entry.last_stamp_s is not None
            and stamp_s - entry.last_stamp_s > self.reset_timeout_s + slack_s
        ):
            cause = ResetCause.TIMEOUT
        if cause is not None:
            self.resets[cause.value] += 1
            if entry is not None:
                entry.pending_reset = None
            return None, cause
        return entry.state.copy(), None  # a copy: the caller cannot alter the stored state

    def commit(self, stream_id: str, stamp_s: float, state: np.ndarray) -> bool:
        """Stores the state after ``stream_id``'s frame at ``stamp_s``. A reset requested since
        ``begin`` stays pending for the next frame.

        Returns False when the state has gone bad (see the module docstring): it is not kept, and
        the stream's next frame restarts with ``ResetCause.BAD_STATE``.
        """
        norm = query_norm(state)
        healthy = norm <= self.state_norm_bound * BOUND_TOLERANCE  # False for NaN
        with self._lock:
            old = self._entries.get(stream_id)
            pending = old.pending_reset if old is not None else None
            if not healthy:
                state, pending = (
                    None,
                    ResetCause.BAD_STATE,
                )  # over a requested reset: the telling cause
            else:
                state = np.array(state, dtype=np.float32, copy=True)
            self._entries[stream_id] = _Entry(state, stamp_s, pending, norm)
            self._entries.move_to_end(stream_id)
            while len(self._entries) > self.max_streams:
                self._entries.popitem(last=False)
                self.evictions += 1
        return healthy

    def state_norm(self, stream_id: str) -> float | None:
        """``query_norm`` of the stream's last committed state (NaN if it was not finite), None
        for an unknown stream."""
        with self._lock:
            entry = self._entries.get(stream_id)
            return None if entry is None else entry.state_norm

    def request_reset(self, stream_id: str | None = None) -> list[str]:
        """Makes the next frame of ``stream_id`` (of every stream when None) start afresh.

        Returns the ids affected; an unknown id affects nothing.
        """
        with self._lock:
            ids = (
                list(self._entries)
                if stream_id is None
                else [s for s in (stream_id,) if s in self._entries]
            )
            for sid in ids:
                self._entries[sid].pending_reset = ResetCause.REQUEST
            return ids

    def streams(self) -> list[str]:
        """Ids of the streams held, least recently updated first."""
        with self._lock:
            return list(self._entries)

    def _evict_idle(self, now_s: float) -> None:
        # Stamps are the only clock here: a stream is idle when others have moved on without it.
        for sid in [
            s
            for s, e in self._entries.items()
            if e.last_stamp_s is not None and now_s - e.last_stamp_s > self.evict_after_s
        ]:
            del self._entries[sid]
            self.evictions += 1
