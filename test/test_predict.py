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
    folders (``depth_dir`` None: the color folder alone); returns its exit code."""
    sam2_ckpt, samdaq = weights
    depth = [] if depth_dir is None else ["--depth-dir", str(depth_dir)]
    return cli_main(
        [
            "predict",
            "--sam2-checkpoint",
            str(sam2_ckpt),
            "--weights",
            str(samdaq),
            "--rgb-dir",
            str(rgb_dir),
            *depth,
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


def estimated_predict(weights, estimator, rgb_dir, out_dir, *flags) -> int:
    """``rgbd-saliency predict --depth-source estimated`` on a color folder alone."""
    estimated = ("--depth-source", "estimated", "--depth-estimator-weights", str(estimator))
    return predict(weights, rgb_dir, None, out_dir, *estimated, *flags)


def test_predict_with_estimated_depth_reads_color_alone(
    weights, depth_anything_vits, shared_path, tmp_path
):
    """No --depth-dir: each frame's depth is its estimate (the parity fixture's random ViT-S at
    estimator input 28), as the node's depth source gives it: the probabilities equal the
    runtime's fed that estimate, and differ from those with the data set's depth."""
    from rgbd_saliency_ros.runtime.backends import create_backend, create_estimator_backend
    from rgbd_saliency_ros.runtime.depth_estimation import DepthEstimation
    from rgbd_saliency_ros.runtime.depth_source import DepthSource
    from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime
    from rgbd_saliency_ros.runtime.sequence import frame_stamp_s, image_files, read_rgb

    data = shared_path("data", "ssd_rgbd_sod")
    out, sensor = tmp_path / "out", tmp_path / "sensor"
    flags = ("--depth-estimator-input-size", "28", "--probabilities")
    assert estimated_predict(weights, depth_anything_vits, data / "rgb", out, *flags) == 0
    assert predict(weights, data / "rgb", data / "depth", sensor, "--probabilities") == 0
    sam2_ckpt, samdaq = weights
    runtime = SaliencyRuntime(create_backend("torch", sam2_checkpoint=sam2_ckpt, weights=samdaq))
    estimation = DepthEstimation(create_estimator_backend(str(depth_anything_vits)), 28)
    source = DepthSource("estimated", estimation, runtime.depth_conversion)
    for i, path in enumerate(image_files(data / "rgb")):
        rgb = read_rgb(path)
        pair = FramePair("rgb", frame_stamp_s(i), rgb, source.depth_for(rgb).depth, False)
        [expected] = runtime.run([runtime.prepare(pair)])
        prob = np.load(out / f"{path.stem}.npy")
        np.testing.assert_allclose(prob, expected.model_probability, rtol=0, atol=1e-6)
        mask = cv2.imread(str(out / f"{path.stem}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.shape == rgb.shape[:2]
        # random weights lean little on depth, but well beyond the 1e-6 above
        assert np.abs(prob - np.load(sensor / f"{path.stem}.npy")).max() > 1e-5


def test_predict_depth_source_flags_that_do_not_go_together_are_refused(
    weights, depth_anything_vits, tmp_path, capsys
):
    rgb, depth, out = (tmp_path / d for d in ("rgb", "depth", "out"))
    rgb.mkdir()
    depth.mkdir()
    vits = depth_anything_vits
    cases = (
        (lambda: estimated_predict(weights, vits, rgb, out, "--depth-dir", str(depth)),
         "--depth-dir is not read with --depth-source estimated"),
        (lambda: cli_main(["predict", "--rgb-dir", str(rgb), "--out-dir", str(out)]),
         "--depth-dir is needed"),
        (lambda: predict(weights, rgb, depth, out, "--depth-estimator-weights", "d.pth"),
         "--depth-estimator-weights goes with --depth-source estimated"),
        (lambda: estimated_predict(weights, tmp_path / "absent.pth", rgb, out),
         "absent.pth: no such file"),
    )  # fmt: skip
    for run, message in cases:
        assert run() == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
