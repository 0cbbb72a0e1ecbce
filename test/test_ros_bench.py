"""``rgbd-saliency bench-node``: the node as a subprocess (its console entry), a publisher process,
and masks back over real DDS, with the package's defaults: a reliable publisher, as camera drivers
publish, the node's input QoS following it, no DDS profile (best effort loses 640x480 frames to
UDP fragmentation, more so under load: README, "QoS").

    .venv/bin/python -m pytest -q test/test_ros_bench.py
"""

import math
import re

from rgbd_saliency_ros.benchmarks.node import bench_node
from rgbd_saliency_ros.cli import main as cli_main


def test_bench_node_measures_overhead_from_the_nodes_own_figures():
    result = bench_node(frames=20, rate_hz=5.0, timeout_s=240.0)
    node = result.node
    assert node["color_frames"] > 0 and node["published"] > 0
    assert (
        node["published"] + node["dropped"]
        <= node["pairs"]
        <= min(node["color_frames"], node["depth_frames"])
    )
    for name in ("overhead_ms", "model_ms", "latency_ms", "input_ms", "wait_ms"):
        assert math.isfinite(node[f"{name}_p50"]) and node[f"{name}_p95"] >= node[f"{name}_p50"], (
            name
        )
    assert node["latency_ms_p50"] > node["model_ms_p50"] > 0
    assert len(result.received_latency_ms) == node["published"]
    report = result.report()
    assert re.search(r"overhead .* p50 +[\d.]+ ms +p95 +[\d.]+ ms", report)


def test_bench_node_command_refuses_half_a_model():
    assert cli_main(["bench-node", "--weights", "w.pt"]) == 2


def test_bench_node_with_an_estimated_depth_sends_color_alone(depth_anything_vits):
    """--depth-source estimated: the camera sends color only, the node answers it and reports
    its depth source's cost (the parity fixture's random ViT-S at estimator input 28)."""
    result = bench_node(
        frames=6,
        rate_hz=2.0,
        timeout_s=240.0,
        depth_source="estimated",
        depth_estimator_weights=str(depth_anything_vits),
        depth_estimator_input_size=28,
    )
    node = result.node
    assert node["published"] > 0 and node["depth_frames"] == 0
    assert 0 < node["depth_model_ms_p50"] <= node["depth_ms_p50"]
    report = result.report()
    assert "depth source estimated" in report and "no depth sent" in report
    assert re.search(r"estimator's network +p50 +[\d.]+ ms", report)
    assert cli_main(["bench-node", "--depth-source", "fill"]) == 2  # no estimator given
