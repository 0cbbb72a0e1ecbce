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
