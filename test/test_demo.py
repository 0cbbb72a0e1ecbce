"""The demo's steps, small: synthetic videos, a bag, the node, the live replay and the report.

    .venv/bin/python -m pytest -q test/test_demo.py

Training is the one step left out (minutes on two cores): weights already in the demo's weights
folder are reused, as ``make demo`` does on its second run; here they are random (input 64).
"""

import json
import os
import shutil

import pytest

from rgbd_saliency_ros.evaluation import demo
from rgbd_saliency_ros.evaluation.metrics import RESULT_KEYS

pytestmark = pytest.mark.slow


def test_demo_with_weights_present(tmp_path, repo_root, capsys):
    from rgbd_saliency_ros.model.random_weights import write_random_weights

    environment = dict(os.environ)
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    sam2, weights = write_random_weights(weights_dir, 64)
    shutil.move(sam2, weights_dir / demo.BACKBONE_FILE)
    shutil.move(weights, weights_dir / demo.WEIGHTS_FILE)
    key = demo.training_key(repo_root, demo.ITERATIONS, videos=1, frames=4, size=64)
    (weights_dir / demo.STAMP_FILE).write_text(json.dumps(key))

    summary = demo.run_demo(
        tmp_path, repo_root, videos=1, frames=4, size=64, bag_frames=6, rate_hz=5.0
    )
    # The node and the replay got their private ROS domain in their own environment only.
    assert dict(os.environ) == environment

    printed = capsys.readouterr().out
    for step in range(1, demo.STEPS + 1):
        assert f"[{step}/{demo.STEPS}]" in printed
    assert "reusing" in printed
    assert summary == json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert summary["mode"] == "live" and summary["sent_color"] == 6
    assert summary["masks_received"] >= 1 and all(summary[k] is not None for k in RESULT_KEYS)
    assert (tmp_path / "report" / "report.md").exists()
    assert "ready:" in (tmp_path / "logs" / "node.log").read_text()
    text = demo.summary_text(summary, tmp_path / "report")
    assert "Smeasure" in text and "report.md" in text


def test_demo_data_and_weights_of_other_settings_are_not_reused(tmp_path, repo_root):
    logs = tmp_path / "logs"
    logs.mkdir()
    demo.make_videos(tmp_path, repo_root, videos=1, frames=2, size=32, bag_frames=2, log_dir=logs)
    train = tmp_path / "data" / "train"
    assert len(list((train / "video_000" / "rgb").iterdir())) == 2
    # an older demo's data
    demo.make_videos(tmp_path, repo_root, videos=1, frames=3, size=32, bag_frames=2, log_dir=logs)
    assert len(list((train / "video_000" / "rgb").iterdir())) == 3
    key = demo.training_key(repo_root, 300, 64, 24, 96)
    assert key == demo.training_key(repo_root, 300, 64, 24, 96)
    assert key != demo.training_key(repo_root, 200, 64, 24, 96)
