"""Offline replay of bags made from real frames: masks, metrics.json, report; damaged bags.

    .venv/bin/python -m pytest -q test/test_replay.py

The model has random weights (input 64): the numbers mean nothing, their presence and the
bookkeeping do.
"""

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.evaluation.bags import BagError, BagWriter
from rgbd_saliency_ros.evaluation.make_bag import MakeBagOptions, make_bag
from rgbd_saliency_ros.evaluation.metrics import RESULT_KEYS
from rgbd_saliency_ros.evaluation.replay import ReplayOptions, replay_bag

pytestmark = pytest.mark.slow

PLOTS = ("overview.png", "pr_curve.png", "thresholds.png", "smeasure_over_time.png", "latency.png")


@pytest.fixture(scope="module")
def weights(random_weights_64):
    return random_weights_64


@pytest.fixture(scope="module")
def backend(random_backend_64):
    return random_backend_64


@pytest.fixture(scope="module")
def ssd_bag(tmp_path_factory):
    """The three real SSD frames (960x1080, relative depth, GT) as an MCAP bag at 10 Hz: one
    chunk per frame."""
    from conftest import find_shared

    data = find_shared("data", "ssd_rgbd_sod")
    path = tmp_path_factory.mktemp("bags") / "ssd"
    make_bag(
        data / "rgb",
        data / "depth",
        path,
        data / "gt",
        MakeBagOptions(rate_hz=10.0, storage="mcap"),
        hfov_deg=69.0,
        progress=False,
    )
    return path


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_replay_writes_masks_metrics_and_report(tmp_path, backend, ssd_bag):
    out = tmp_path / "out"
    summary = replay_bag(ssd_bag, out, backend, ReplayOptions(probabilities=True, progress=False))
    assert summary == _metrics(out)
    assert all(np.isfinite(summary[k]) for k in RESULT_KEYS)
    assert summary["latency_ms_p95"] >= summary["latency_ms_p50"] > 0
    assert (summary["pairs"], summary["processed"], summary["frames_scored"]) == (3, 3, 3)
    assert (summary["unpaired_color"], summary["unpaired_depth"]) == (0, 0)
    # 10 Hz: the memory carries over after the first frame
    assert summary["resets_by_cause"] == {"new_stream": 1} and summary["bad_input"] == {}
    assert summary["complete"] is True and summary["error"] is None
    masks = sorted((out / "masks").iterdir())
    assert [p.name for p in masks] == ["000000.png", "000001.png", "000002.png"]
    mask = cv2.imread(str(masks[0]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (1080, 960) and set(np.unique(mask)) <= {0, 255}
    assert len(list((out / "probabilities").iterdir())) == 3
    assert (out / "overlay.mp4").stat().st_size > 0 or (out / "overlay.avi").stat().st_size > 0
    report = (out / "report.md").read_text()
    for plot in PLOTS:
        assert (out / plot).stat().st_size > 0 and f"({plot})" in report
    assert len((out / "frames.csv").read_text().splitlines()) == 4


def test_offline_replay_with_an_estimated_depth(tmp_path, backend, ssd_bag, depth_anything_vits):
    """depth_source estimated reads color alone (the depth topic named here is not in the bag)
    and gives no 3D centroids; fill pairs with the bag's depth and places the object from its
    measured pixels. The parity fixture's random ViT-S at estimator input 28."""
    from rgbd_saliency_ros.runtime.backends import create_estimator_backend
    from rgbd_saliency_ros.runtime.depth_estimation import DepthEstimation

    estimation = DepthEstimation(create_estimator_backend(str(depth_anything_vits)), 28)
    summaries = {}
    for source, depth_topic in (
        ("estimated", "/no/depth"),
        ("fill", "/camera/aligned_depth_to_color/image_raw"),
    ):
        options = ReplayOptions(
            depth_topic=depth_topic, depth_source=source, video=False, progress=False
        )
        summaries[source] = replay_bag(
            ssd_bag, tmp_path / source, backend, options, estimation=estimation
        )
    estimated, filled = summaries["estimated"], summaries["fill"]
    assert (estimated["pairs"], estimated["processed"], estimated["depth_frames"]) == (3, 3, 0)
    assert estimated["depth_source"] == "estimated" and estimated["bad_input"] == {}
    assert estimated["frames_with_centroid_error"] == 0 and estimated["centroid_camera"]
    assert (filled["processed"], filled["depth_frames"], filled["depth_fallbacks"]) == (3, 3, 0)
    assert filled["frames_with_centroid_error"] > 0
    assert len(list((tmp_path / "estimated" / "masks").iterdir())) == 3
    with pytest.raises(ValueError, match="needs a depth estimator"):
        replay_bag(ssd_bag, tmp_path / "none", backend, ReplayOptions(depth_source="fill"))
    assert (
        cli_main(
            [
                "replay",
                "--live",
                "--bag",
                str(ssd_bag),
                "--out",
                str(tmp_path / "l"),
                "--depth-source",
                "estimated",
            ]
        )
        == 2
    )  # the node has its own depth_source


def test_replay_cli_with_gt_folder_is_deterministic(
    tmp_path, weights, backend, ssd_bag, shared_path, capsys
):
    """Ground truth from a folder by index, through the command line: the same masks and metrics as
    from the bag's mask topic (every pair, in order, no drops)."""
    reference = replay_bag(
        ssd_bag, tmp_path / "topic", backend, ReplayOptions(progress=False, video=False)
    )
    code = cli_main(
        [
            "replay",
            "--bag",
            str(ssd_bag),
            "--out",
            str(tmp_path / "folder"),
            "--sam2-checkpoint",
            weights[0],
            "--weights",
            weights[1],
            "--gt-topic",
            "",
            "--gt-dir",
            str(shared_path("data", "ssd_rgbd_sod", "gt")),
            "--no-video",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "Smeasure" in printed and str(tmp_path / "folder" / "report.md") in printed
    summary = _metrics(tmp_path / "folder")
    assert summary["gt_source"].startswith("folder")
    for key in RESULT_KEYS:
        assert summary[key] == pytest.approx(reference[key], abs=1e-9)
    for name in ("000000.png", "000001.png", "000002.png"):
        a = cv2.imread(str(tmp_path / "topic" / "masks" / name), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "folder" / "masks" / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(a, b)


def test_unpaired_frames_bad_depth_and_gaps_are_counted(tmp_path, backend):
    """A color frame without depth, an all-invalid depth frame, depth of another size than its
    color and a 3 s gap, on a small made-up bag; refused frames counted under the node's kinds."""
    path = tmp_path / "bag"
    start, period = 1_700_000_000 * 10**9, 100_000_000
    gen = np.random.default_rng(0)
    with BagWriter(path, "sqlite3") as bag:
        for i in range(6):
            stamp = start + i * period + (3 * 10**9 if i >= 4 else 0)
            bag.write_image(
                "/camera/color/image_raw",
                stamp,
                gen.integers(0, 256, (48, 64, 3), dtype=np.uint8),
                "rgb8",
                "c",
            )
            if i == 1:
                continue  # this color frame never gets a partner
            size = (24, 32) if i == 3 else (48, 64)
            depth = gen.integers(500, 4000, size).astype(np.uint16) * (i != 2)
            bag.write_image("/camera/aligned_depth_to_color/image_raw", stamp, depth, "16UC1", "c")
    summary = replay_bag(path, tmp_path / "out", backend, ReplayOptions(progress=False))
    assert (summary["color_frames"], summary["depth_frames"], summary["pairs"]) == (6, 5, 5)
    assert summary["unpaired_color"] == 1 and summary["unpaired_depth"] == 0
    assert summary["bad_input"] == {"invalid_depth": 1, "size_mismatch": 1}
    assert summary["processed"] == 3
    assert summary["resets_by_cause"] == {"new_stream": 1, "timeout": 1}
    assert (
        summary["frames_scored"] == 0 and summary["Smeasure"] is None
    )  # no ground truth in this bag
    assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == [
        "000000.png",
        "000004.png",
        "000005.png",
    ]
    assert "No ground truth" in (tmp_path / "out" / "report.md").read_text()


def _cut(bag, keep_fraction):
    mcap = next(bag.glob("*.mcap"))
    os.truncate(mcap, int(mcap.stat().st_size * keep_fraction))


def test_truncated_bag_keeps_what_was_processed(tmp_path, weights, backend, ssd_bag, capsys):
    bag = tmp_path / "cut"
    shutil.copytree(ssd_bag, bag)
    _cut(bag, 0.9)  # inside the third depth frame: a recording killed before it was closed
    with pytest.raises(BagError, match="truncated") as caught:
        replay_bag(bag, tmp_path / "out", backend, ReplayOptions(progress=False))
    assert "2 pairs processed" in str(caught.value)
    summary = _metrics(tmp_path / "out")
    assert summary["complete"] is False and "truncated" in summary["error"]
    assert (summary["processed"], summary["frames_scored"]) == (2, 2)
    assert np.isfinite(summary["Smeasure"])
    assert sorted(p.name for p in (tmp_path / "out" / "masks").iterdir()) == [
        "000000.png",
        "000001.png",
    ]
    assert "**Incomplete**" in (tmp_path / "out" / "report.md").read_text()

    # The command line says so in one message, with exit status 2, and keeps the outputs too.
    assert (
        cli_main(
            [
                "replay",
                "--bag",
                str(bag),
                "--out",
                str(tmp_path / "cli"),
                "--sam2-checkpoint",
                weights[0],
                "--weights",
                weights[1],
                "--no-video",
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert (
        "rgbd-saliency replay: error:" in error
        and "truncated" in error
        and "2 pairs processed" in error
    )
    assert _metrics(tmp_path / "cli")["processed"] == 2


def test_corrupt_bag_keeps_what_was_processed(tmp_path, backend, ssd_bag, capsys):
    bag = tmp_path / "corrupt"
    shutil.copytree(ssd_bag, bag)
    mcap = next(bag.glob("*.mcap"))
    data = bytearray(mcap.read_bytes())
    # The third depth message's encoding string gets an impossible length (the file's chunks carry
    # no CRC, so garbled pixels would pass unseen; a garbled header cannot).
    at = -1
    for _ in range(3):
        at = data.find(b"16UC1", at + 1)
    data[at - 4 : at] = (0xFFFFFF00).to_bytes(4, "little")
    mcap.write_bytes(bytes(data))
    with pytest.raises(BagError, match="damaged after"):
        replay_bag(bag, tmp_path / "out", backend, ReplayOptions(progress=False))
    summary = _metrics(tmp_path / "out")
    assert summary["complete"] is False
    assert summary["processed"] == 2 and len(list((tmp_path / "out" / "masks").iterdir())) == 2


REPORT_SCRIPT = """
import sys
import numpy as np
from rgbd_saliency_ros.evaluation.report import FrameRecord, ReplayRecorder

recorder = ReplayRecorder(sys.argv[1], "offline", expected_frames=2, video=False)
gt = np.zeros((16, 16), np.uint8)
gt[4:12, 4:12] = 255
rgb = np.zeros((16, 16, 3), np.uint8)
for i in range(2):
    recorder.add(FrameRecord(i, i * 10**8, 5.0 + i), rgb, gt.astype(np.float32) / 255, gt, gt)
recorder.finish({"pairs": 2}, {"bag": "none"})
print("pyplot" if "matplotlib.pyplot" in sys.modules else "no pyplot")
"""


def test_the_report_draws_its_plots_without_pyplot(tmp_path):
    """The plots come from Figures of their own: pyplot (and its process-wide backend and figure
    list) is never loaded, in a process of its own to see it."""
    done = subprocess.run(
        [sys.executable, "-c", REPORT_SCRIPT, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["no", "pyplot"]
    written = {"overview.png", "pr_curve.png", "thresholds.png", "smeasure_over_time.png"}
    assert written | {"latency.png"} <= {p.name for p in tmp_path.iterdir()}
    report = (tmp_path / "report.md").read_text()
    assert all(f"]({name})" in report for name in written)
