"""Depth Anything V2 against the official code: every array of
``shared/fixtures/depth_anything_v2_parity/expected.npz`` (random ViT-S weights in the official
format, a real 640 x 480 frame) within 1e-4, through the runtime path the node and
``estimate-depth`` take (``runtime.depth_estimation``), and the command itself.

    .venv/bin/python -m pytest -q test/test_depth_anything_parity.py    # about 25 s on 2 cores

The fixture's README says what the official code did; the reference is the official code, not
transformers (0.06 off at 518 x 686).
"""

import numpy as np
import pytest
from conftest import find_shared

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.runtime.backends import create_estimator_backend
from rgbd_saliency_ros.runtime.depth_estimation import (
    DepthEstimation,
    inference_size,
    resize_to_frame,
)
from rgbd_saliency_ros.runtime.sequence import read_rgb

TOLERANCE = 1e-4  # the fixture's; 1 vs 2 threads of the official code differ by 1e-5


@pytest.fixture(scope="module")
def fixture_dir():
    return find_shared("fixtures", "depth_anything_v2_parity")


@pytest.fixture(scope="module")
def expected(fixture_dir):
    with np.load(fixture_dir / "expected.npz") as npz:
        return dict(npz)


@pytest.fixture(scope="module")
def rgb(fixture_dir):
    return read_rgb(fixture_dir / "rgb.png")  # cv2.imread, then BGR -> RGB as the official


@pytest.fixture(scope="module")
def backend(depth_anything_vits):
    return create_estimator_backend(str(depth_anything_vits))


def assert_close(
    ours: np.ndarray, reference: np.ndarray, what: str, tolerance: float = TOLERANCE
) -> None:
    assert ours.shape == reference.shape and ours.dtype == np.float32, what
    diff = float(np.abs(ours - reference).max())
    assert diff <= tolerance, f"{what}: max |ours - official| = {diff:.3g}"


def test_inference_size_is_the_official_one(backend):
    # 640 x 480: 518 / 480 scales the width to 690.67, nearest multiple of 14: 686.
    assert inference_size(480, 640, backend.preprocessing) == (518, 686)
    assert inference_size(640, 480, backend.preprocessing) == (686, 518)
    # The nearest multiple below the target is rounded up instead: 520 -> 532, not 518.
    wide = DepthEstimation(backend, input_size=520).preprocessing
    assert inference_size(480, 640, wide) == (532, 700)
    square = DepthEstimation(backend, keep_aspect_ratio=False).preprocessing
    assert inference_size(480, 640, square) == (518, 518)


def test_inputs_match(backend, rgb, expected):
    assert_close(DepthEstimation(backend).prepare(rgb), expected["da_input_infer"], "input")
    squashed = DepthEstimation(backend, keep_aspect_ratio=False).prepare(rgb)
    assert_close(squashed, expected["da_input_518x518"], "518x518 input")


def test_resize_to_frame_matches_the_official_resize(expected):
    ours = resize_to_frame(expected["da_relative_infer"][0], 480, 640)
    # 1e-6 measured; in float64 coordinates it would be 5e-5 off: this pins the float32 ones.
    assert_close(ours, expected["da_depth_frame"], "resize of the official output", 1e-5)


def test_official_inference_path(backend, rgb, expected):
    estimate = DepthEstimation(backend).estimate(rgb)
    assert_close(estimate.model_output[None], expected["da_relative_infer"], "518x686 output")
    assert_close(estimate.depth, expected["da_depth_frame"], "frame-size estimate")
    assert estimate.model_time_s > 0


def test_square_518(backend, rgb, expected):
    estimate = DepthEstimation(backend, keep_aspect_ratio=False).estimate(rgb)
    assert_close(estimate.model_output[None], expected["da_relative_518x518"], "518x518 output")
    assert estimate.depth.shape == (480, 640)


def test_estimate_depth_command_writes_the_official_output(
    depth_anything_vits, fixture_dir, expected, tmp_path, capsys
):
    # The fixture folder's only image is rgb.png: the command reads image files only.
    out = tmp_path / "depth"
    argv = ["estimate-depth", "--weights", str(depth_anything_vits), "--rgb-dir"]
    assert cli_main([*argv, str(fixture_dir), "--out-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["rgb.npy"]
    assert_close(np.load(out / "rgb.npy"), expected["da_depth_frame"], "estimate-depth output")
    assert "wrote 1 depth estimates" in capsys.readouterr().out


def test_estimate_depth_command_refuses_bad_input_in_one_line(
    depth_anything_vits, tmp_path, capsys
):
    missing = tmp_path / "missing.pth"
    empty = tmp_path / "empty"
    empty.mkdir()
    for weights, rgb_dir, error in (
        (missing, empty, f"{missing}: no such file"),
        (depth_anything_vits, empty, f"{empty}: no images"),
    ):
        argv = ["estimate-depth", "--weights", str(weights), "--rgb-dir", str(rgb_dir)]
        assert cli_main([*argv, "--out-dir", str(tmp_path / "out")]) == 2
        message = capsys.readouterr().err
        assert message.count("\n") == 1 and error in message
