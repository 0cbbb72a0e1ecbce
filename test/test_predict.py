"""``rgbd-saliency predict`` on real frames of another size, with weights in the project format."""

import cv2
import numpy as np
import pytest
import torch

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import SamDaq, SamDaqConfig, save_weights
from rgbd_saliency_ros.model.sam2_parts import build_sam2_parts

SIZE = 128


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A Meta-format SAM2.1 checkpoint and project-format SAM-DAQ weights, random, for input 128."""
    from sam2.build_sam import build_sam2

    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    sam2 = build_sam2(
        SamDaqConfig().sam2_config_file,
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={SIZE}"],
    )
    torch.save({"model": sam2.state_dict()}, folder / "sam2.pt")
    model = SamDaq(SamDaqConfig(input_size=SIZE), build_sam2_parts(SamDaqConfig(input_size=SIZE)))
    save_weights(model, folder / "samdaq.safetensors")
    return folder / "sam2.pt", folder / "samdaq.safetensors"


def test_predict_real_frames_writes_masks_at_frame_size(weights, shared_path, tmp_path):
    sam2_ckpt, samdaq = weights
    data = shared_path("data", "ssd_rgbd_sod")
    out = tmp_path / "out"
    code = cli_main(
        [
            "predict",
            "--sam2-checkpoint",
            str(sam2_ckpt),
            "--weights",
            str(samdaq),
            "--rgb-dir",
            str(data / "rgb"),
            "--depth-dir",
            str(data / "depth"),
            "--out-dir",
            str(out),
            "--probabilities",
        ]
    )
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
    sam2_ckpt, samdaq = weights
    (tmp_path / "rgb").mkdir()
    (tmp_path / "depth").mkdir()
    code = cli_main(
        [
            "predict",
            "--sam2-checkpoint",
            str(sam2_ckpt),
            "--weights",
            str(samdaq),
            "--input-size",
            "256",
            "--rgb-dir",
            str(tmp_path / "rgb"),
            "--depth-dir",
            str(tmp_path / "depth"),
            "--out-dir",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "samdaq.safetensors" in err and "input_size: file 128, model 256" in err


def test_predict_missing_weights_file_names_it(weights, tmp_path, capsys):
    sam2_ckpt, _ = weights
    code = cli_main(
        [
            "predict",
            "--sam2-checkpoint",
            str(sam2_ckpt),
            "--weights",
            str(tmp_path / "nope.pt"),
            "--rgb-dir",
            str(tmp_path),
            "--depth-dir",
            str(tmp_path),
            "--out-dir",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "nope.pt: no such file" in capsys.readouterr().err
