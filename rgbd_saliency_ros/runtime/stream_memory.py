"""Per-stream memory: each camera stream's model state, and when to forget it.

The state is opaque here (a model's ``StateSpec`` says what it holds: SAM-DAQ's 8 x 64 video
queries, a memory bank that grows, ...). This store holds it with the stream's last stamp, and
resets it when time runs backward (a rosbag loop, a clock jump), when frames stop for longer than
``reset_timeout_s``, on request, or when the model's health check (``StateSpec.health``: wrong
shape, non-finite, beyond the model's own bound) says a state has gone bad. Streams idle for
``evict_after_s`` are forgotten, and at most ``max_streams`` are kept.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from ..model.contract import StateHealth


class ResetCause(str, Enum):
    """Why a stream started again from the initial state."""

    NEW_STREAM = "new_stream"
    BACKWARD_JUMP = "backward_jump"
    TIMEOUT = "timeout"
    REQUEST = "request"
    BAD_STATE = "bad_state"  # the state after the previous frame was non-finite or out of bounds


def _always_healthy(state) -> StateHealth:
    return StateHealth(True, float("nan"))


@dataclass
class _Entry:
    state: object | None  # None until the first step; the caller supplies the initial state
    last_stamp_s: float | None
    pending_reset: ResetCause | None = None
    state_norm: float = float("nan")  # the health check's norm of the last state committed


class StreamMemory:
    """States of many streams, keyed by stream id (a camera namespace, say). Thread-safe: a reset
    may be requested from a service thread while a worker steps the stream."""

    def __init__(
        self,
        reset_timeout_s: float = 1.0,
        evict_after_s: float = 60.0,
        max_streams: int = 16,
        health: Callable[[object], StateHealth] = _always_healthy,
    ) -> None:
        """``health``: the model's state check (``StateSpec.health``)."""
        if reset_timeout_s <= 0 or evict_after_s <= 0 or max_streams < 1:
            raise ValueError(
                "reset_timeout_s and evict_after_s must be positive, max_streams at least 1"
            )
        self.health = health
        self.reset_timeout_s = reset_timeout_s
        self.evict_after_s = evict_after_s
        self.max_streams = max_streams
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.resets: Counter[str] = Counter()  # by ResetCause value
        self.evictions = 0
        self._lock = threading.Lock()

    def begin(
        self, stream_id: str, stamp_s: float, slack_s: float = 0.0
    ) -> tuple[object | None, ResetCause | None]:
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
    ) -> tuple[object | None, ResetCause | None]:
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
        return copy.deepcopy(entry.state), None  # a copy: the caller cannot alter the stored one

    def peek(self, stream_id: str) -> object | None:
        """A copy of the state the stream's next frame continues from (None: the initial state),
        without consuming a pending reset (for calibration, which replays a stream's states)."""
        with self._lock:
            entry = self._entries.get(stream_id)
            if entry is None or entry.pending_reset is not None:
                return None
            return copy.deepcopy(entry.state)

    def commit(self, stream_id: str, stamp_s: float, state) -> StateHealth:
        """Stores the state after ``stream_id``'s frame at ``stamp_s``. A reset requested since
        ``begin`` stays pending for the next frame.

        Returns the health check's verdict; a state gone bad (see the module docstring) is not
        kept, and the stream's next frame restarts with ``ResetCause.BAD_STATE``.
        """
        health = self.health(state)
        healthy = health.ok
        with self._lock:
            old = self._entries.get(stream_id)
            pending = old.pending_reset if old is not None else None
            if not healthy:
                state, pending = (
                    None,
                    ResetCause.BAD_STATE,
                )  # over a requested reset: the telling cause
            else:
                state = copy.deepcopy(state)
            self._entries[stream_id] = _Entry(state, stamp_s, pending, health.norm)
            self._entries.move_to_end(stream_id)
            while len(self._entries) > self.max_streams:
                self._entries.popitem(last=False)
                self.evictions += 1
        return health

    def state_norm(self, stream_id: str) -> float | None:
        """The health norm of the stream's last committed state (NaN if it was not finite), None
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
