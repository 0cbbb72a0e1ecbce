"""Replay's 3D centroids on a synthetic bag of cards at known poses.

    .venv/bin/python -m pytest -q test/test_replay_geometry.py

The bag is rendered by ``scenes.py``: a card facing the camera moves in front of a wall, with its
ground-truth mask and the CameraInfo, depth in 16UC1 millimetres as a RealSense sends it. The
card's visible face is flat and facing the camera, so its ground-truth centroid is its face's
centre. The model is a stand-in that calls the nearest part of the depth salient (the masks then
come through the model input's 64 pixels and back, as the real model's do).
"""

import csv
import json
import math

import numpy as np
import pytest
from scenes import Box, Pinhole, Plane, render

from rgbd_saliency_ros.evaluation.bags import BagWriter
from rgbd_saliency_ros.evaluation.calibration import CameraIntrinsics
from rgbd_saliency_ros.evaluation.make_bag import BagTopics
from rgbd_saliency_ros.evaluation.replay import ReplayOptions, replay_bag
from rgbd_saliency_ros.model.config import SamDaqConfig
from rgbd_saliency_ros.model.contract import Preprocessing, StateSpec, StateTensor
from rgbd_saliency_ros.runtime.backends.base import BackendInfo, StepBackend
from rgbd_saliency_ros.runtime.depth import encode_ros_depth

CAMERA = Pinhole(320, 240, 262.5, 262.5, 159.5, 119.5)
HALF_THICKNESS_M = 0.0005
# (x, y, z) of each frame's card centre, metres in the camera's optical frame
POSES = [(-0.2 + 0.05 * i, 0.03 * math.sin(i), 0.8 + 0.08 * i) for i in range(8)]
START_NS, PERIOD_NS = 1_700_000_000 * 10**9, 100_000_000


class NearestIsSalient(StepBackend):
    """Stand-in model: probability 1 where the relative depth input is in its nearest quarter."""

    name = "nearest"

    def __init__(self, input_size: int = 64) -> None:
        self.config = SamDaqConfig(input_size=input_size)
        self.preprocessing = Preprocessing(input_size)
        self.state_spec = StateSpec((StateTensor("state", (1,)),))
        self.metadata = {}

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("nearest", "cpu", "float32")

    def initial_state(self, batch: int) -> dict:
        return {"state": np.zeros((batch, 1), np.float32)}

    def step(self, rgb, depth, state):
        return (depth < 0.25).astype(np.float32), state


def write_bag(path, camera_info: bool = True) -> None:
    wall = Plane((0.0, 0.0, 2.5), (0.0, 0.0, -1.0))
    with BagWriter(path, "sqlite3") as bag:
        for i, centre in enumerate(POSES):
            scene = render(CAMERA, [wall, Box(centre, (0.06, 0.04, HALF_THICKNESS_M))])
            rgb = np.full((240, 320, 3), 128, np.uint8)
            rgb[scene.ids == 1] = (200, 30, 30)
            stamp = START_NS + i * PERIOD_NS
            frame = "camera_color_optical_frame"
            bag.write_image(BagTopics.color, stamp, rgb, "rgb8", frame)
            bag.write_image(
                BagTopics.depth, stamp, encode_ros_depth(scene.depth_m, "16UC1"), "16UC1", frame
            )
            bag.write_image(BagTopics.gt, stamp, scene.mask(1), "mono8", frame)
            if camera_info:
                intrinsics = CameraIntrinsics(320, 240, CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy)
                bag.write_camera_info(BagTopics.camera_info, stamp, intrinsics, frame)


def replay(tmp_path, camera_info: bool = True) -> tuple[dict, list[dict]]:
    """The scene's bag replayed offline: (metrics.json's content, frames.csv's rows)."""
    write_bag(tmp_path / "bag", camera_info)
    summary = replay_bag(
        tmp_path / "bag",
        tmp_path / "out",
        NearestIsSalient(),
        ReplayOptions(progress=False, video=False),
    )
    with open(tmp_path / "out" / "frames.csv") as f:
        return summary, list(csv.DictReader(f))


def test_ground_truth_centroids_are_the_cards_and_the_mask_centroids_close(tmp_path):
    summary, rows = replay(tmp_path)
    assert len(rows) == len(POSES)
    for row, (x, y, z) in zip(rows, POSES):
        # Half a pixel's footprint (the card's pixels are whole pixels) plus half a millimetre
        # (16UC1 rounds depth to millimetres).
        tolerance = 0.5 * z / CAMERA.fx + 0.0005
        gt = [float(row[f"gt_centroid_{axis}_m"]) for axis in "xyz"]
        assert np.allclose(gt, (x, y, z - HALF_THICKNESS_M), atol=tolerance), (gt, (x, y, z))
        predicted = [float(row[f"centroid_{axis}_m"]) for axis in "xyz"]
        assert float(row["centroid_error_m"]) == pytest.approx(math.dist(predicted, gt), abs=2e-4)
    # The masks come back from 64 pixels: their rims are off by up to 2.5 image pixels, which moves
    # a centroid by at most about a footprint (the rims' errors partly cancel).
    errors = [float(row["centroid_error_m"]) for row in rows]
    assert max(errors) < max(z for _, _, z in POSES) / CAMERA.fx * 2.5
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics == summary
    assert metrics["centroid_error_m_p50"] == pytest.approx(np.percentile(errors, 50), abs=2e-4)
    assert metrics["centroid_error_m_p95"] == pytest.approx(np.percentile(errors, 95), abs=2e-4)
    assert metrics["frames_with_centroid_error"] == len(POSES)
    assert "CameraInfo on /camera/color/camera_info" in metrics["centroid_source"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## 3D centroid" in report and "(centroid_error_over_time.png)" in report
    assert (tmp_path / "out" / "centroid_error_over_time.png").stat().st_size > 0


def test_without_camera_info_the_centroid_columns_stay_empty_and_the_report_says_why(tmp_path):
    summary, rows = replay(tmp_path, camera_info=False)
    assert len(rows) == len(POSES) and all(row["centroid_error_m"] == "" for row in rows)
    assert all(row["gt_centroid_z_m"] == "" and row["centroid_z_m"] == "" for row in rows)
    assert summary["centroid_error_m_p50"] is None and summary["frames_with_centroid_error"] == 0
    assert "no CameraInfo on /camera/color/camera_info" in summary["centroid_source"]
    assert "No 3D centroids: no CameraInfo" in (tmp_path / "out" / "report.md").read_text()
    assert summary["frames_scored"] == len(POSES)  # the 2D metrics do not depend on it


def test_frames_csv_has_the_nodes_object_status_and_confidence_figures(tmp_path):
    """The same runtime functions as the node's object/status (runtime.object_status)."""
    from rgbd_saliency_ros.runtime.object_status import DepthNoise

    _, rows = replay(tmp_path)
    for row, (_, _, z) in zip(rows, POSES):
        assert row["object_status"] == "found"
        # The stand-in's 0/1 map, upsampled from 64 pixels: its rim in between, above 0.5.
        assert 0.5 < float(row["mask_confidence"]) < 1.0
        assert float(row["valid_depth_fraction"]) == pytest.approx(1.0)
        # The card's face (12 x 8 cm) on the pixels at its depth, give or take its rim.
        footprint = (0.12 * CAMERA.fx / z) * (0.08 * CAMERA.fy / z)
        assert 0.7 * footprint < int(row["point_count"]) < 1.3 * footprint
        # The card faces the camera: z's std is sigma_z(z) / sqrt(N) (the default Kinect model).
        sigma = DepthNoise().sigma_m(z) / math.sqrt(int(row["point_count"]))
        assert float(row["centroid_std_z_m"]) == pytest.approx(sigma, rel=0.01)
        assert 0 < float(row["centroid_std_x_m"]) < float(row["centroid_std_z_m"])


def test_without_camera_info_the_status_says_so(tmp_path):
    _, rows = replay(tmp_path, camera_info=False)
    assert {row["object_status"] for row in rows} == {"no_camera_info"}
    assert all(row["point_count"] == "" and row["centroid_std_z_m"] == "" for row in rows)
