"""Rates, latency percentiles and counters, and their DiagnosticArray form (no spinning).

.venv/bin/python -m pytest -q test/test_ros_diagnostics.py
"""

import math

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from rgbd_saliency_ros.ros.diagnostics import (
    BAD_INPUT_KINDS,
    COUNTERS,
    RateMeter,
    StreamStats,
    diagnostic_array,
    status_values,
)


def test_rate_meter_counts_events_in_its_window():
    meter = RateMeter(window_s=2.0)
    assert meter.rate_hz(0.0) == 0.0
    for i in range(31):
        meter.tick(10.0 + i / 30)
    assert abs(meter.rate_hz(11.0) - 30.0) < 1e-6
    assert meter.rate_hz(20.0) == 0.0  # all events older than the window


def test_stream_stats_snapshot_has_every_counter_and_percentiles():
    stats = StreamStats(window=100)
    snapshot = stats.snapshot(0.0)
    assert all(snapshot[name] == 0 for name in COUNTERS)
    assert {f"bad_input.{kind}" for kind in BAD_INPUT_KINDS} <= set(snapshot)
    assert math.isnan(snapshot["latency_ms_p50"]) and math.isnan(snapshot["query_norm"])
    for i in range(100):
        stats.record_frame(
            latency_ms=40.0 + i, model_ms=30.0, input_ms=3.0, wait_ms=0.0, now_s=i / 10
        )
    stats.count("bad_input.truncated_data")
    snapshot = stats.snapshot(9.9)
    assert snapshot["published"] == 100 and snapshot["bad_input.truncated_data"] == 1
    assert (
        abs(snapshot["latency_ms_p50"] - 89.5) < 1e-9
        and abs(snapshot["overhead_ms_p50"] - 59.5) < 1e-9
    )
    assert snapshot["latency_ms_p95"] > snapshot["latency_ms_p50"]
    assert abs(snapshot["output_hz"] - 10.0) < 1e-6


def test_diagnostic_array_round_trips_the_numbers():
    stats = StreamStats()
    stats.tick("color_in", 0.0)
    stats.tick("color_in", 0.1)
    stats.count("dropped", 3)
    stats.count("reset.bad_state")
    stats.set_gauge("query_norm", 8.25)
    msg = diagnostic_array(
        Time(sec=5),
        "saliency_node",
        {"state": "ready", "backend": "torch", "device": "cpu"},
        {"camera": stats.snapshot(0.1)},
    )
    node, camera = msg.status
    assert (
        node.name == "saliency_node"
        and node.message == "ready"
        and status_values(node)["backend"] == "torch"
    )
    assert camera.name == "saliency_node: camera" and camera.hardware_id == "cpu"
    assert camera.level == DiagnosticStatus.WARN and camera.message == "input but no output"
    values = status_values(camera)
    assert values["dropped"] == 3 and abs(values["color_in_hz"] - 10.0) < 1e-3
    assert values["reset.bad_state"] == 1 and values["query_norm"] == 8.25
    assert math.isnan(values["model_ms_p95"])
