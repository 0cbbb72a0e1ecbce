"""``rgbd-saliency predict`` on real frames of another size, with weights in the project format."""

import cv2
import numpy as np
import pytest

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model.random_weights import write_random_weights

SIZE = 128


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random weights for input 128: a Meta-format SAM2.1 checkpoint and project-format SAM-DAQ
    weights (sam2.pt, samdaq.safetensors)."""
    return write_random_weights(tmp_path_factory.mktemp("weights"), input_size=SIZE)


def predict(weights, rgb_dir, depth_dir, out_dir, *flags) -> int:
    """``rgbd-saliency predict`` with ``weights`` (sam2 checkpoint, SAM-DAQ weights) on two
    folders; returns its exit code."""
    sam2_ckpt, samdaq = weights
    return cli_main(
        [
            "predict",
            "--sam2-checkpoint",
            str(sam2_ckpt),
            "--weights",
            str(samdaq),
            "--rgb-dir",
            str(rgb_dir),
            "--depth-dir",
            str(depth_dir),
            "--out-dir",
            str(out_dir),
            *flags,
        ]
    )


def test_predict_real_frames_writes_masks_at_frame_size(weights, shared_path, tmp_path):
    data = shared_path("data", "ssd_rgbd_sod")
    out = tmp_path / "out"
    code = predict(weights, data / "rgb", data / "depth", out, "--probabilities")
    assert code == 0
    names = sorted(p.stem for p in (data / "rgb").iterdir())
    assert sorted(p.stem for p in out.glob("*.png")) == names
    for name in names:
        frame = cv2.imread(str(next((data / "rgb").glob(name + ".*"))))
        mask = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == frame.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        prob = np.load(out / f"{name}.npy")
        assert prob.shape == (SIZE, SIZE) and prob.dtype == np.float32
        assert 0.0 <= prob.min() and prob.max() <= 1.0


def test_predict_flags_conflicting_with_weights_are_refused(weights, tmp_path, capsys):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    rgb, depth, out = (tmp_path / d for d in ("rgb", "depth", "out"))
    code = predict(weights, rgb, depth, out, "--input-size", "256")
    assert code == 2
    err = capsys.readouterr().err
    assert "samdaq.safetensors" in err and "input_size: file 128, model 256" in err


def test_predict_missing_weights_file_names_it(weights, tmp_path, capsys):
    sam2_ckpt, _ = weights
    code = predict((sam2_ckpt, tmp_path / "nope.pt"), tmp_path, tmp_path, tmp_path / "o")
    assert code == 2
    assert "nope.pt: no such file" in capsys.readouterr().err
