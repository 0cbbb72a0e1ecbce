"""Color/depth pairing by stamp, driven with stamped messages directly (no spinning).

.venv/bin/python -m pytest -q test/test_ros_pairing.py
"""

import pytest

from rgbd_saliency_ros.runtime.pairing import (
    CLOCK_JUMPS,
    DUPLICATE_STAMP,
    OUT_OF_ORDER,
    PAIRS,
    STAMP_FUTURE,
    STAMP_NANOSEC,
    STAMP_NEGATIVE,
    STAMP_PAST,
    STAMP_ZERO,
    STRAY_STAMP,
    UNPAIRED_COLOR,
    UNPAIRED_DEPTH,
    ColorOnlyPairer,
    StampPairer,
    check_stamp,
)

PERIOD = 1 / 30


def play(pairer, events):
    """events: ("c" | "d", stamp_s); returns the (color stamp, depth stamp) of the pairs made."""
    pairs = []
    for kind, stamp in events:
        add = pairer.add_color if kind == "c" else pairer.add_depth
        pair = add(stamp, f"{kind}{stamp:.4f}")
        if pair is not None:
            assert (
                pair.color == f"c{pair.stamp_s:.4f}" and pair.depth == f"d{pair.depth_stamp_s:.4f}"
            )
            pairs.append((round(pair.stamp_s, 4), round(pair.depth_stamp_s, 4)))
    return pairs


def camera(start_s, frames, depth_offset_s=0.0, depth_first=False):
    """A 30 Hz camera's messages in arrival order."""
    events = []
    for i in range(frames):
        t = start_s + i * PERIOD
        both = [("c", t), ("d", t + depth_offset_s)]
        events += both[::-1] if depth_first else both
    return events


def test_pairs_equal_and_nearby_stamps_in_either_arrival_order():
    pairer = StampPairer(slop_s=0.01)
    assert len(play(pairer, camera(100.0, 10))) == 10
    assert len(play(pairer, camera(101.0, 10, depth_offset_s=0.004, depth_first=True))) == 10
    assert pairer.counters[PAIRS] == 20
    assert pairer.counters[UNPAIRED_COLOR] == pairer.counters[UNPAIRED_DEPTH] == 0


def test_nearest_partner_is_chosen_and_skipped_frames_are_counted():
    pairer = StampPairer(slop_s=0.02)
    pairs = play(pairer, [("d", 1.000), ("d", 1.010), ("d", 1.018), ("c", 1.015)])
    assert pairs == [(1.015, 1.018)]
    assert pairer.counters[UNPAIRED_DEPTH] == 2 and pairer.queued("depth") == 0


def test_frames_without_partner_are_counted_and_queues_stay_bounded():
    pairer = StampPairer(slop_s=0.005, queue_size=3)
    play(pairer, [("c", 1.0 + i * PERIOD) for i in range(10)])  # depth never comes
    assert pairer.queued("color") == 3 and pairer.counters[UNPAIRED_COLOR] == 7
    # depth arriving later than the queued color frames can still pair with the newest
    assert play(pairer, [("d", 1.0 + 9 * PERIOD)]) == [
        (round(1.0 + 9 * PERIOD, 4), round(1.0 + 9 * PERIOD, 4))
    ]
    assert pairer.counters[UNPAIRED_COLOR] == 9 and pairer.queued("color") == 0
    # every other depth frame lost (best-effort QoS): the lone color frames are dropped as depth
    # moves on
    events = [e for i, e in enumerate(camera(2.0, 20)) if not (e[0] == "d" and i % 4 == 1)]
    assert len(play(pairer, events)) == 10
    assert pairer.counters[UNPAIRED_COLOR] == 19 and pairer.queued("color") <= 1


def test_duplicate_and_out_of_order_stamps_are_dropped_and_counted():
    pairer = StampPairer(slop_s=0.01)
    events = camera(5.0, 3) + [
        ("c", 5.0 + 2 * PERIOD),
        ("d", 5.0 + 2 * PERIOD),
    ]  # the last pair again
    events += [("c", 5.0 + PERIOD), ("d", 5.0 + PERIOD)]  # a step back of one frame
    events += camera(5.0 + 3 * PERIOD, 3)
    assert len(play(pairer, events)) == 6
    assert pairer.counters[DUPLICATE_STAMP] == 2 and pairer.counters[OUT_OF_ORDER] == 2
    assert pairer.counters[CLOCK_JUMPS] == 0


def test_rosbag_loops_restart_pairing_every_time():
    pairer = StampPairer(slop_s=0.01, jump_back_s=0.5)
    for loop in range(5):
        pairs = play(pairer, camera(1000.0, 90, depth_offset_s=0.003))
        assert len(pairs) == 90, f"loop {loop}"
    assert pairer.counters[CLOCK_JUMPS] == 4
    assert pairer.counters[OUT_OF_ORDER] == 0 and pairer.counters[UNPAIRED_COLOR] == 0


def test_loop_seen_first_on_depth_and_a_late_pre_loop_frame():
    pairer = StampPairer(slop_s=0.01)
    play(pairer, camera(50.0, 30))
    # after the loop, depth arrives first; one pre-loop color frame was still in flight
    events = [("d", 10.0), ("c", 50.0 + 30 * PERIOD), ("c", 10.0)] + camera(10.0 + PERIOD, 30)
    assert len(play(pairer, events)) >= 30
    assert pairer.counters[CLOCK_JUMPS] >= 1


def test_short_loop_below_the_jump_threshold_restarts_after_a_few_steps_back():
    # a 0.2 s bag looping: each step back is shorter than jump_back_s, but they keep coming
    pairer = StampPairer(slop_s=0.01, jump_back_s=0.5, max_out_of_order=3)
    made = sum(len(play(pairer, camera(7.0, 6))) for _ in range(10))
    assert pairer.counters[CLOCK_JUMPS] == 9
    assert made >= 10 * 6 - 9 * 3  # at most the steps back before each jump are lost


def test_invalid_arguments():
    with pytest.raises(ValueError):
        StampPairer(slop_s=-0.1)
    with pytest.raises(ValueError):
        StampPairer(slop_s=0.01, queue_size=0)


@pytest.mark.parametrize("kind", ["c", "d"])
@pytest.mark.parametrize("offset_s", [-50.0, -2.0, 5.0, 3e8])
def test_one_stray_stamp_neither_restarts_pairing_nor_costs_other_frames(kind, offset_s):
    """One message stamped far back or ahead (any publisher's mistake) is dropped as a stray;
    the stream's pairs go on as if it had not come."""
    pairer = StampPairer(slop_s=0.01, jump_back_s=0.5)
    events = camera(100.0, 10)
    events.insert(11, (kind, 100.0 + 5 * PERIOD + offset_s))  # after the 6th color frame
    assert len(play(pairer, events)) == 10
    assert pairer.counters[CLOCK_JUMPS] == 0
    assert pairer.counters[STRAY_STAMP] == 1
    assert pairer.counters[UNPAIRED_COLOR] == pairer.counters[UNPAIRED_DEPTH] == 0


def test_a_loop_is_believed_when_one_kind_alone_goes_on_from_it():
    """Depth stops at the loop (a dead driver): color's own next frame confirms the jump."""
    pairer = StampPairer(slop_s=0.01, jump_back_s=0.5)
    play(pairer, camera(100.0, 30))
    play(pairer, [("c", 50.0), ("c", 50.0 + PERIOD)])
    assert pairer.counters[CLOCK_JUMPS] == 1 and pairer.counters[STRAY_STAMP] == 0
    after = round(50.0 + PERIOD, 4)
    assert play(pairer, [("d", 50.0 + PERIOD)]) == [(after, after)]


def test_color_only_streams_pair_each_frame_with_the_same_stamp_checks():
    """depth_source estimated: every color frame is a pair at once, with no depth; duplicates
    and small steps back are dropped as in pairing, a rosbag loop restarts once confirmed."""
    pairer = ColorOnlyPairer(jump_back_s=0.5)
    stamps = [100.0 + i * PERIOD for i in range(3)]
    pairs = [pairer.add_color(s, f"c{s:.4f}") for s in stamps]
    assert [(p.stamp_s, p.color, p.depth, p.depth_stamp_s) for p in pairs] == [
        (s, f"c{s:.4f}", None, s) for s in stamps
    ]
    assert pairer.add_color(stamps[-1], "again") is None  # duplicate
    assert pairer.add_color(stamps[-1] - 0.01, "late") is None  # a small step back
    assert pairer.add_color(50.0, "loop") is None  # a big one: held until confirmed
    assert pairer.add_color(50.0 + PERIOD, "after").color == "after"
    assert pairer.add_color(50.0 + 2 * PERIOD, "next").color == "next"
    counts = pairer.counters
    assert (counts[DUPLICATE_STAMP], counts[OUT_OF_ORDER], counts[CLOCK_JUMPS]) == (1, 1, 1)
    assert counts[UNPAIRED_COLOR] == 0 and counts[STRAY_STAMP] == 0
    assert pairer.add_color(10.0, "stray") is None  # a lone step back, not confirmed
    assert pairer.add_color(50.0 + 3 * PERIOD, "on").color == "on"
    assert counts[STRAY_STAMP] == 1 and counts[CLOCK_JUMPS] == 1
    with pytest.raises(ValueError, match="color-only"):
        pairer.add_depth(51.0, "depth")


@pytest.mark.parametrize(
    "sec, nanosec, expected",
    [
        (0, 0, STAMP_ZERO),
        (-5, 0, STAMP_NEGATIVE),
        (1_700_000_000, 1_000_000_000, STAMP_NANOSEC),
        (2**31 - 1, 0, STAMP_FUTURE),  # 2038
        (1_000, 0, STAMP_PAST),  # seconds since boot, not since the epoch
        (1_700_000_009, 999_999_999, None),
        (1_699_999_000, 0, None),
    ],
)
def test_check_stamp_against_the_clock(sec, nanosec, expected):
    now_s = 1_700_000_000.0
    assert check_stamp(sec, nanosec, now_s, max_ahead_s=10.0, max_behind_s=3600.0) == expected


def test_check_stamp_without_a_clock_or_bounds():
    assert check_stamp(2**31 - 1, 0, None, 10.0, 10.0) is None  # no clock yet (simulated time)
    assert check_stamp(1_000, 0, 1_700_000_000.0, 0.0, 0.0) is None  # bounds off
    assert check_stamp(0, 0, None) == STAMP_ZERO
    assert check_stamp(1, 2**32 - 1, None) == STAMP_NANOSEC
