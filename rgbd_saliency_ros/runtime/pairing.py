"""Pairs color and depth messages of one camera by header stamp; no ROS in it.

Written here rather than taken from ``message_filters``: its Python ``ApproximateTimeSynchronizer``
stops pairing after a rosbag loop (its queues keep the pre-loop stamps), and it is not installable
without a ROS install. This one clears itself on a backward time jump and goes on, keeps bounded
queues, and counts everything it drops.

    pairer = StampPairer(slop_s=0.02)
    pair = pairer.add_color(stamp_s, color_msg)  # a Pair when a depth frame within 20 ms waits
    pair = pairer.add_depth(stamp_s, depth_msg)  # ... or the other way round
    pairer.counters["unpaired_color"]

Both inputs are assumed to arrive in stamp order each (DDS keeps the order of one publisher); a
message older than the last one of its kind is either out of order (a small step back: dropped and
counted) or a clock jump (a big step back, or several small ones in a row: everything queued is
dropped and pairing starts again). A big step back is believed only when confirmed: by a frame of
the other kind stepping back to the same time (a rosbag loop moves both), or by the next frame of
the same kind going on from it. Otherwise it was one stray message: dropped and counted
(``stray_stamp``), and the stream goes on undisturbed.

``check_stamp`` finds the stamps no camera gives (zero, negative, nanoseconds >= 1e9, far from the
receiver's clock): those never reach the pairer.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

COLOR, DEPTH = "color", "depth"

# Counter names (StampPairer.counters)
PAIRS = "pairs"
UNPAIRED_COLOR = "unpaired_color"  # color frames dropped without a depth partner
UNPAIRED_DEPTH = "unpaired_depth"
DUPLICATE_STAMP = "duplicate_stamp"  # same stamp as the previous message of that kind: dropped
OUT_OF_ORDER = "out_of_order"  # a small step back in time: dropped
CLOCK_JUMPS = "clock_jumps"  # big steps back (rosbag loop, clock reset): queues cleared
STRAY_STAMP = "stray_stamp"  # a big step back that nothing confirmed: that frame dropped
# The frames the pairer drops as bad input (counted as bad_input.<kind> by the node and replays).
DROPPED_KINDS = (DUPLICATE_STAMP, OUT_OF_ORDER, STRAY_STAMP)

# Stamps no camera gives (check_stamp): each is bad input of its own kind.
STAMP_ZERO = "stamp_zero"  # 0 s: an unset header
STAMP_NEGATIVE = "stamp_negative"  # before 1970
STAMP_NANOSEC = "stamp_nanosec"  # nanosec >= 1e9: not a valid builtin_interfaces/Time
STAMP_FUTURE = "stamp_future"  # ahead of the receiver's clock by more than allowed
STAMP_PAST = "stamp_past"  # behind the receiver's clock by more than allowed
STAMP_KINDS = (STAMP_ZERO, STAMP_NEGATIVE, STAMP_NANOSEC, STAMP_FUTURE, STAMP_PAST)


def check_stamp(
    sec: int,
    nanosec: int,
    now_s: float | None = None,
    max_ahead_s: float = 0.0,
    max_behind_s: float = 0.0,
) -> str | None:
    """The kind of a header stamp no camera gives (one of ``STAMP_KINDS``), or None if usable.

    Args:
        sec, nanosec: the builtin_interfaces/Time fields.
        now_s: the receiver's clock, seconds; None or 0 (a simulated clock not started yet): only
            the checks that need no clock.
        max_ahead_s, max_behind_s: how far the stamp may be ahead of or behind ``now_s``, seconds;
            0: no bound.
    """
    if nanosec >= 1_000_000_000 or nanosec < 0:
        return STAMP_NANOSEC
    if sec < 0:
        return STAMP_NEGATIVE
    if sec == 0 and nanosec == 0:
        return STAMP_ZERO
    if not now_s:
        return None
    stamp_s = sec + nanosec * 1e-9
    if max_ahead_s and stamp_s - now_s > max_ahead_s:
        return STAMP_FUTURE
    if max_behind_s and now_s - stamp_s > max_behind_s:
        return STAMP_PAST
    return None


@dataclass
class Pair(Generic[T]):
    """A color frame and the depth frame closest to it in time (``ColorOnlyPairer``: no depth
    frame, None, and the color's stamp)."""

    stamp_s: float  # the color frame's stamp, seconds
    color: T
    depth: T | None
    depth_stamp_s: float


class StampPairer(Generic[T]):
    """Approximate-time pairing of two in-order streams, surviving backward time jumps.

    Args:
        slop_s: largest |color stamp - depth stamp| of a pair, seconds.
        queue_size: most frames of each kind kept while waiting for a partner; the oldest is
            dropped (and counted) beyond it.
        jump_back_s: a step back in time longer than this is a clock jump, seconds.
        max_out_of_order: this many consecutive steps back of one kind are a clock jump too (a
            short rosbag looping steps back by less than ``jump_back_s``).
    """

    def __init__(
        self,
        slop_s: float,
        queue_size: int = 5,
        jump_back_s: float = 0.5,
        max_out_of_order: int = 3,
    ) -> None:
        if slop_s < 0 or queue_size < 1 or jump_back_s <= 0 or max_out_of_order < 1:
            raise ValueError(
                "need slop_s >= 0, queue_size >= 1, jump_back_s > 0, max_out_of_order >= 1"
            )
        self.slop_s = slop_s
        self.queue_size = queue_size
        self.jump_back_s = jump_back_s
        self.max_out_of_order = max_out_of_order
        self.counters: Counter[str] = Counter()
        self._queues: dict[str, deque[tuple[float, Any]]] = {COLOR: deque(), DEPTH: deque()}
        self._last_s: dict[str, float | None] = {COLOR: None, DEPTH: None}
        self._previous_s: dict[str, float | None] = {COLOR: None, DEPTH: None}  # before the last
        self._steps_back: dict[str, int] = {COLOR: 0, DEPTH: 0}
        # A big step back waiting for confirmation: (stamp, item), per kind.
        self._held: dict[str, tuple[float, Any] | None] = {COLOR: None, DEPTH: None}

    def add_color(self, stamp_s: float, item: T) -> Pair[T] | None:
        """Offers a color frame stamped ``stamp_s`` (seconds); returns the pair it completes, if
        any."""
        return self._add(COLOR, stamp_s, item)

    def add_depth(self, stamp_s: float, item: T) -> Pair[T] | None:
        """Offers a depth frame stamped ``stamp_s`` (seconds); returns the pair it completes, if
        any."""
        return self._add(DEPTH, stamp_s, item)

    def clear(self) -> None:
        """Drops (and counts) everything queued or held and forgets the last stamps."""
        for kind, queue in self._queues.items():
            self.counters[_unpaired(kind)] += len(queue) + (self._held[kind] is not None)
            queue.clear()
            self._held[kind] = None
            self._last_s[kind] = self._previous_s[kind] = None
            self._steps_back[kind] = 0

    def queued(self, kind: str) -> int:
        """Frames of ``kind`` ("color" or "depth") waiting for a partner or for confirmation."""
        return len(self._queues[kind]) + (self._held[kind] is not None)

    def _add(self, kind: str, stamp_s: float, item: T) -> Pair[T] | None:
        step = self._step(kind, stamp_s)
        if step == "drop":
            return None
        if step == "jump":  # several small steps back in a row: a short loop, confirmed by them
            self._jump(())
            return self._pair(kind, stamp_s, item)
        if step == "after_stray":  # the last frame jumped ahead alone: it was the stray
            queue = self._queues[kind]
            if queue and queue[-1][0] == self._last_s[kind]:
                queue.pop()
            self.counters[STRAY_STAMP] += 1
            self._last_s[kind] = self._previous_s[kind]
            return self._pair(kind, stamp_s, item)
        if step == "forward":
            if self._held[kind] is not None:  # the held frame went nowhere: a stray
                self._held[kind] = None
                self.counters[STRAY_STAMP] += 1
            return self._pair(kind, stamp_s, item)
        return self._hold(kind, stamp_s, item)

    def _step(self, kind: str, stamp_s: float) -> str:
        """How ``stamp_s`` follows the last stamp of ``kind``: "forward", "drop" (duplicate or a
        small step back, counted), "jump" (the max_out_of_order-th small step back in a row),
        "after_stray" (a big step back, but after the stamp before the last: the last one jumped
        ahead alone) or "back" (a big step back)."""
        last = self._last_s[kind]
        if last is None or stamp_s > last:
            self._steps_back[kind] = 0
            return "forward"
        if stamp_s == last:
            self.counters[DUPLICATE_STAMP] += 1
            return "drop"
        if last - stamp_s > self.jump_back_s:
            previous = self._previous_s[kind]
            return "after_stray" if previous is not None and stamp_s > previous else "back"
        self._steps_back[kind] += 1
        if self._steps_back[kind] >= self.max_out_of_order:
            return "jump"
        self.counters[OUT_OF_ORDER] += 1
        return "drop"

    def _hold(self, kind: str, stamp_s: float, item: T) -> Pair[T] | None:
        """A big step back: believed when the other kind's held frame or this kind's held frame
        confirms it (same time within jump_back_s; for this kind, going on from it)."""
        other = DEPTH if kind == COLOR else COLOR
        theirs, mine = self._held[other], self._held[kind]
        if theirs is not None and abs(theirs[0] - stamp_s) <= self.jump_back_s:
            self._jump((other,))
            self._pair(other, *theirs)
            return self._pair(kind, stamp_s, item)
        if mine is not None and 0 < stamp_s - mine[0] <= self.jump_back_s:
            self._jump((kind,))
            self._pair(kind, *mine)
            return self._pair(kind, stamp_s, item)
        if mine is not None:
            self.counters[STRAY_STAMP] += 1  # replaced by a newer candidate: it confirmed nothing
        self._held[kind] = (stamp_s, item)
        return None

    def _jump(self, reoffered: tuple[str, ...]) -> None:
        """A confirmed clock jump: everything queued is dropped, pairing starts again; the held
        frames of the ``reoffered`` kinds are the caller's to offer again, other held ones were
        strays."""
        self.counters[CLOCK_JUMPS] += 1
        for kind in (COLOR, DEPTH):
            if self._held[kind] is not None and kind not in reoffered:
                self.counters[STRAY_STAMP] += 1
            self._held[kind] = None
        self.clear()

    def _pair(self, kind: str, stamp_s: float, item: T) -> Pair[T] | None:
        """Records ``stamp_s`` as the last of ``kind`` and pairs the frame, or queues it."""
        last = self._last_s[kind]
        self._previous_s[kind], self._last_s[kind] = last, stamp_s
        other = DEPTH if kind == COLOR else COLOR
        theirs = self._queues[other]
        # The other kind arrives in order: its frames older than this one by more than the slop
        # can no longer meet a partner. Not after a leap forward, which may be a stray.
        leap = last is not None and stamp_s - last > self.jump_back_s
        while theirs and theirs[0][0] < stamp_s - self.slop_s and not leap:
            theirs.popleft()
            self.counters[_unpaired(other)] += 1
        match = min(range(len(theirs)), key=lambda i: abs(theirs[i][0] - stamp_s), default=None)
        if match is not None and abs(theirs[match][0] - stamp_s) <= self.slop_s:
            for _ in range(match):  # older than the partner: skipped over
                theirs.popleft()
                self.counters[_unpaired(other)] += 1
            their_stamp, their_item = theirs.popleft()
            mine = self._queues[kind]
            self.counters[_unpaired(kind)] += len(mine)  # all older than this one, never paired
            mine.clear()
            self.counters[PAIRS] += 1
            if kind == COLOR:
                return Pair(stamp_s, item, their_item, their_stamp)
            return Pair(their_stamp, their_item, item, stamp_s)
        mine = self._queues[kind]
        mine.append((stamp_s, item))
        if len(mine) > self.queue_size:
            mine.popleft()
            self.counters[_unpaired(kind)] += 1
        return None


class ColorOnlyPairer(StampPairer[T]):
    """The "pairer" of a stream whose depth is estimated from color: each color frame is a pair
    at once (depth None), after the same checks of its stamp as ``StampPairer``'s (a duplicate or
    a small step back dropped and counted, a big step back believed when the next frame goes on
    from it), so that a consumer of pairs takes a color-only stream unchanged."""

    def __init__(self, jump_back_s: float = 0.5, max_out_of_order: int = 3) -> None:
        super().__init__(0.0, 1, jump_back_s, max_out_of_order)

    def add_depth(self, stamp_s: float, item: T) -> Pair[T] | None:
        raise ValueError("a color-only stream takes no depth frames")

    def _pair(self, kind: str, stamp_s: float, item: T) -> Pair[T]:
        self._previous_s[kind], self._last_s[kind] = self._last_s[kind], stamp_s
        self.counters[PAIRS] += 1
        return Pair(stamp_s, item, None, stamp_s)


def _unpaired(kind: str) -> str:
    return UNPAIRED_COLOR if kind == COLOR else UNPAIRED_DEPTH
