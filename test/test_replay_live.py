"""Live replay against the real node over DDS on loopback, on a private ROS domain.

    .venv/bin/python -m pytest -q test/test_replay_live.py

The node (``python -m rgbd_saliency_ros.ros.node``, random weights at input 64) runs in its own
process; this one plays a bag of real frames to it and records its masks. Bounded: the node gets
120 s to load, the replay a few seconds per frame.
"""

import json
import os

import numpy as np
import pytest
from conftest import private_domain, small_ssd

from rgbd_saliency_ros.evaluation.make_bag import MakeBagOptions, make_bag
from rgbd_saliency_ros.evaluation.metrics import RESULT_KEYS
from rgbd_saliency_ros.evaluation.node_process import node_command, running
from rgbd_saliency_ros.evaluation.replay import ReplayOptions

pytestmark = pytest.mark.slow


@pytest.fixture
def ros_domain(monkeypatch):
    """A private ROS domain for this test's processes (this one reads it at rclpy.init)."""
    domain = private_domain(3)
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return domain


def test_live_replay_through_the_node(tmp_path, ros_domain):
    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.evaluation.live import LiveOptions, live_replay

    frames = small_ssd(tmp_path / "frames")
    make_bag(
        frames / "rgb",
        frames / "depth",
        tmp_path / "bag",
        frames / "gt",
        MakeBagOptions(rate_hz=4.0),
        hfov_deg=69.0,
        progress=False,
    )
    sam2, weights = write_random_weights(tmp_path, 64)
    params = {"input_qos.reliability": "reliable", "diagnostics_period_s": 0.5}
    with running(node_command(sam2, weights, params, "warn"), env=dict(os.environ)) as node:
        summary = live_replay(
            tmp_path / "bag",
            tmp_path / "out",
            ReplayOptions(progress=False),
            LiveOptions(discovery_timeout_s=120.0, drain_timeout_s=15.0),
        )
        assert node.poll() is None, "the node died"

    assert summary == json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert summary["mode"] == "live" and summary["complete"] is True
    assert (summary["sent_color"], summary["sent_depth"], summary["sent_camera_info"]) == (3, 3, 3)
    received = summary["masks_received"]
    assert received >= 1 and summary["frames"] == received and summary["frames_scored"] == received
    assert all(np.isfinite(summary[k]) for k in RESULT_KEYS)
    assert summary["latency_ms_p95"] >= summary["latency_ms_p50"] > 0
    # Every frame without a mask is accounted for by the node: lost on the way, unpaired, replaced
    # by a newer pair while the model ran, refused, or a failed step.
    node_counts = summary["node_counters"]
    assert node_counts is not None and node_counts["published"] == received
    lost = 3 - node_counts["color_frames"]
    accounted = (
        lost
        + node_counts["unpaired_color"]
        + node_counts["dropped"]
        + node_counts["step_errors"]
        + sum(node_counts["bad_input"].values())
    )
    assert summary["frames_without_mask"] == 3 - received == accounted
    # metrics.json's bad_input names kinds as the node (and the offline replay) does
    assert summary["bad_input"] == node_counts["bad_input"]
    assert len(list((tmp_path / "out" / "masks").iterdir())) == received
    assert (tmp_path / "out" / "report.md").exists() and (
        tmp_path / "out" / "overview.png"
    ).exists()
    # 3D: the bag's CameraInfo places the ground truth in (pseudo-metric, relative8) depth
    assert summary["centroid_camera"] is True
    rows = (tmp_path / "out" / "frames.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert all(row.split(",")[header.index("gt_centroid_z_m")] for row in rows[1:])
