"""Pairs color and depth messages of one camera by header stamp; no ROS in it.

Written here rather than taken from ``message_filters``: its Python ``ApproximateTimeSynchronizer``
stops pairing after a rosbag loop (its queues keep the pre-loop stamps), and it is not installable
without a ROS install. This one clears itself on a backward time jump and goes on, keeps bounded
queues, and counts everything it drops.

    pairer = StampPairer(slop_s=0.02)
    pair = pairer.add_color(stamp_s, color_msg)   # a Pair when a depth frame within 20 ms is queued
    pair = pairer.add_depth(stamp_s, depth_msg)   # ... or the other way round
    pairer.counters["unpaired_color"]

Both inputs are assumed to arrive in stamp order each (DDS keeps the order of one publisher); a
message older than the last one of its kind is either out of order (a small step back: dropped and
counted) or a clock jump (a big step back, or several in a row: everything queued is dropped and
pairing starts again from that message).
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


@dataclass
class Pair(Generic[T]):
    """A color frame and the depth frame closest to it in time."""

    stamp_s: float  # the color frame's stamp, seconds
    color: T
    depth: T
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

    def __init__(self, slop_s: float, queue_size: int = 5, jump_back_s: float = 0.5, max_out_of_order: int = 3) -> None:
        if slop_s < 0 or queue_size < 1 or jump_back_s <= 0 or max_out_of_order < 1:
            raise ValueError("need slop_s >= 0, queue_size >= 1, jump_back_s > 0, max_out_of_order >= 1")
        self.slop_s = slop_s
        self.queue_size = queue_size
        self.jump_back_s = jump_back_s
        self.max_out_of_order = max_out_of_order
        self.counters: Counter[str] = Counter()
        self._queues: dict[str, deque[tuple[float, Any]]] = {COLOR: deque(), DEPTH: deque()}
        self._last_s: dict[str, float | None] = {COLOR: None, DEPTH: None}
        self._steps_back: dict[str, int] = {COLOR: 0, DEPTH: 0}

    def add_color(self, stamp_s: float, item: T) -> Pair[T] | None:
        """Offers a color frame stamped ``stamp_s`` (seconds); returns the pair it completes, if any."""
        return self._add(COLOR, stamp_s, item)

    def add_depth(self, stamp_s: float, item: T) -> Pair[T] | None:
        """Offers a depth frame stamped ``stamp_s`` (seconds); returns the pair it completes, if any."""
        return self._add(DEPTH, stamp_s, item)

    def clear(self) -> None:
        """Drops (and counts) everything queued and forgets the last stamps."""
        for kind, queue in self._queues.items():
            self.counters[_unpaired(kind)] += len(queue)
            queue.clear()
            self._last_s[kind] = None
            self._steps_back[kind] = 0

    def queued(self, kind: str) -> int:
        """Frames of ``kind`` ("color" or "depth") waiting for a partner."""
        return len(self._queues[kind])

    def _add(self, kind: str, stamp_s: float, item: T) -> Pair[T] | None:
        if not self._in_order(kind, stamp_s):
            return None
        other = DEPTH if kind == COLOR else COLOR
        theirs = self._queues[other]
        # The other kind arrives in order: its frames older than this one by more than the slop
        # can no longer meet a partner.
        while theirs and theirs[0][0] < stamp_s - self.slop_s:
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

    def _in_order(self, kind: str, stamp_s: float) -> bool:
        """Records ``stamp_s`` as the last of ``kind``; False (counted) if the frame must be dropped."""
        last = self._last_s[kind]
        if last is not None and stamp_s == last:
            self.counters[DUPLICATE_STAMP] += 1
            return False
        if last is not None and stamp_s < last:
            self._steps_back[kind] += 1
            if last - stamp_s <= self.jump_back_s and self._steps_back[kind] < self.max_out_of_order:
                self.counters[OUT_OF_ORDER] += 1
                return False
            self.counters[CLOCK_JUMPS] += 1
            self.clear()
        else:
            self._steps_back[kind] = 0
        self._last_s[kind] = stamp_s
        return True


def _unpaired(kind: str) -> str:
    return UNPAIRED_COLOR if kind == COLOR else UNPAIRED_DEPTH
