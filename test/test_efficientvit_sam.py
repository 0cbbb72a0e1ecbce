"""EfficientViT-SAM as a promptable plug-in: its sizes, its place in the contract, loading the
official checkpoint format safely, and SAM's frame geometry (runtime/letterbox.py). The outputs
against the reference are in test_efficientvit_sam_parity.py.

    .venv/bin/python -m pytest -q test/test_efficientvit_sam.py
"""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import seeded

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import CheckpointError, load_weights, model_class, save_weights
from rgbd_saliency_ros.model.efficientvit_sam import EfficientViTSamL0, EfficientViTSamL1
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.letterbox import (
    letterbox_rgb,
    letterbox_shape,
    masks_to_frame,
    resize_bilinear,
    resize_longest,
    to_prompt_frame,
)
from rgbd_saliency_ros.runtime.saliency import SaliencyRuntime
from rgbd_saliency_ros.runtime.segment import Prompt, PromptSegmenter

# Parameters of each size: L0's from the parity fixture's README (the reference counted them),
# the others as mit-han-lab/efficientvit's model zoo publishes them (millions, one decimal).
PARAMETERS = {"l0": 34_792_784, "l1": 47.7e6, "l2": 61.3e6, "xl0": 117.0e6, "xl1": 203.3e6}


@pytest.fixture(scope="module")
def l0():
    with seeded(0):
        return EfficientViTSamL0().eval()


@pytest.fixture(scope="module")
def official_file(l0, tmp_path_factory):
    """``l0``'s weights as the official checkpoints hold them: float16, int64 BN counters,
    wrapped in {"state_dict": ...}."""
    sd = {k: v.half() if v.is_floating_point() else v for k, v in l0.state_dict().items()}
    path = tmp_path_factory.mktemp("evit") / "l0.pt"
    torch.save({"state_dict": sd}, path)
    return path


@pytest.mark.parametrize("size", sorted(PARAMETERS))
def test_every_size_has_the_published_parameter_count(size):
    with torch.device("meta"):
        model = model_class(f"efficientvit_sam_{size}")()
    count = sum(p.numel() for p in model.parameters())
    expected = PARAMETERS[size]
    assert count == expected if size == "l0" else round(count / 1e5) == round(expected / 1e5)
    assert model.preprocessing().input_size == (1024 if size.startswith("xl") else 512)


def test_a_promptable_model_has_no_state_and_no_saliency_step(l0):
    pre = l0.preprocessing()
    assert pre.needs_prompts and not pre.needs_depth
    assert l0.state_spec().names == () and l0.initial_state(2) == {}
    rgb = torch.zeros(1, 3, 512, 512)
    with pytest.raises(NotImplementedError, match="promptable"):
        l0.step_state(rgb, torch.zeros(1, 1, 512, 512), {})
    with pytest.raises(ValueError, match="efficientvit_sam_l0 is promptable"):
        SaliencyRuntime(TorchBackend(l0))


def test_masks_for_boxes_and_points_and_batched_prompts(l0):
    with seeded(1), torch.inference_mode():
        embedding = l0.embed_image(torch.randn(1, 3, 512, 512))
        boxes = torch.tensor([[100.0, 200.0, 700.0, 650.0], [0.0, 0.0, 300.0, 1000.0]])
        low, iou = l0.decode(embedding, boxes=boxes, multimask=True)
        one = [l0.decode(embedding, boxes=b[None], multimask=True) for b in boxes]
        points = torch.tensor([[[500.0, 300.0], [900.0, 600.0]]])
        low_p, iou_p = l0.decode(embedding, points, torch.tensor([[1, 0]]), multimask=False)
    assert embedding.shape == (1, 256, 64, 64)
    assert low.shape == (2, 3, 256, 256) and iou.shape == (2, 3)
    assert low_p.shape == (1, 1, 256, 256) and iou_p.shape == (1, 1)
    for i, (low_i, iou_i) in enumerate(one):  # each prompt decodes on its own
        assert torch.allclose(low[i], low_i[0], atol=1e-4)
        assert torch.allclose(iou[i], iou_i[0], atol=1e-5)
    assert not torch.allclose(low[0], low[1], atol=1e-2)  # the box matters
    with pytest.raises(ValueError, match="points or a box"):
        l0.decode(embedding)
    with pytest.raises(ValueError, match="takes no depth"):
        l0.embed_image(torch.zeros(1, 3, 512, 512), torch.zeros(1, 1, 512, 512))


def test_the_official_format_loads_float16_into_float32(l0, official_file):
    fresh = EfficientViTSamL0()
    load_weights(fresh, official_file)
    for k, v in l0.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(fresh.state_dict()[k], v.half().float()), k


def test_official_files_that_do_not_fit_are_refused_in_one_line(l0, official_file, tmp_path):
    sd = torch.load(official_file, weights_only=True)["state_dict"]

    def refused(name: str, value) -> str:
        path = tmp_path / name
        torch.save(value, path)
        with pytest.raises(CheckpointError) as e:
            load_weights(EfficientViTSamL0(), path)
        message = str(e.value)
        assert "\n" not in message and str(path) in message
        return message

    missing = {k: v for k, v in sd.items() if not k.startswith("mask_decoder.iou_token")}
    assert "missing keys: mask_decoder.iou_token.weight" in refused("missing.pt", missing)
    wider = dict(sd, **{"image_encoder.norm.weight": torch.zeros(512)})
    assert "another EfficientViT-SAM size" in refused("wider.pt", wider)
    extra = dict(sd, **{"image_encoder.backbone.stages.5.op_list.0.norm.num_batches_tracked": 0})
    assert "not a tensor" in refused("not_tensor.pt", extra)
    counter = dict(
        sd, **{"image_encoder.backbone.stages.5.norm.num_batches_tracked": torch.tensor(0)}
    )
    assert "unexpected keys" in refused("counter.pt", counter)
    assert "not an EfficientViT-SAM state_dict" in refused("list.pt", [1, 2])
    # A size's file into another size: L1's deeper stages find no weights in L0's file.
    path = tmp_path / "l0_into_l1.pt"
    torch.save(sd, path)  # the plain state_dict form
    with pytest.raises(CheckpointError) as e:
        load_weights(EfficientViTSamL1(), path)
    assert "does not fit efficientvit_sam_l1 (a file of another EfficientViT-SAM size?): " + (
        "missing keys"
    ) in str(e.value)


def test_the_project_format_holds_the_whole_model(l0, tmp_path):
    path = tmp_path / "l0.safetensors"
    save_weights(l0, path)
    fresh = EfficientViTSamL0()
    load_weights(fresh, path)
    for k, v in l0.state_dict().items():
        if v.is_floating_point():
            assert torch.equal(fresh.state_dict()[k], v), k
    with pytest.raises(CheckpointError, match="weights of model 'efficientvit_sam_l0'"):
        load_weights(EfficientViTSamL1(), path)


def test_letterbox_geometry():
    assert letterbox_shape(480, 640, 1024) == (768, 1024)
    assert letterbox_shape(480, 640, 512) == (384, 512)
    # Each scale rounds on its own: 2 x 512's letterbox is not always 1024's.
    assert letterbox_shape(333, 1000, 512) == (170, 512)
    assert letterbox_shape(333, 1000, 1024) == (341, 1024)
    box = to_prompt_frame(np.array([[0.0, 298.5], [177.25, 422.0]]), (480, 640), 1024)
    assert box.dtype == np.float32
    assert np.allclose(box, [[0.0, 477.6], [283.6, 675.2]], atol=1e-4)


def test_letterboxed_input_pads_with_zero_after_normalising():
    rgb = np.full((100, 50, 3), 255, np.uint8)
    x = letterbox_rgb(rgb, 64)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    white = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    assert np.allclose(x[:, :, :32], white[:, None, None], atol=1e-5)
    assert np.all(x[:, :, 32:] == 0.0)
    same = np.zeros((64, 40, 3), np.uint8)
    assert resize_longest(same, 64) is same


def test_mask_upscaling_follows_torch_bilinear():
    with seeded(2):
        low = torch.randn(2, 256, 256) * 5
    ours = masks_to_frame(low.numpy(), 1024, (480, 640))
    full = F.interpolate(low[None], (1024, 1024), mode="bilinear", align_corners=False)
    ref = F.interpolate(full[..., :768, :], (480, 640), mode="bilinear", align_corners=False)[0]
    assert ours.shape == (2, 480, 640) and ours.dtype == np.float32
    assert np.abs(ours - ref.numpy()).max() < 1e-5
    down = resize_bilinear(low.numpy(), (100, 37))
    ref = F.interpolate(low[None], (100, 37), mode="bilinear", align_corners=False)[0]
    assert np.abs(down - ref.numpy()).max() < 1e-5


def test_the_segment_command_writes_masks_at_the_image_size(official_file, tmp_path, capsys):
    with seeded(3):
        rgb = (torch.rand(60, 100, 3) * 255).to(torch.uint8).numpy()
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    out = tmp_path / "masks.npz"
    args = ["segment", "--model", "efficientvit_sam_l0", "--weights", str(official_file)]
    args += ["--image", str(image), "--box", "10", "5", "60", "50", "--point", "30", "20", "1"]
    assert cli_main([*args, "--multimask", "--out", str(out)]) == 0
    assert f"wrote {out}: 3 mask(s)" in capsys.readouterr().out
    model = EfficientViTSamL0()
    load_weights(model, official_file)
    segmenter = PromptSegmenter(model)
    segmenter.set_image(rgb)
    with np.load(out) as written:
        assert written["mask_logits"].shape == (3, 60, 100)
        assert written["low_res_logits"].shape == (3, 256, 256) and written["iou"].shape == (3,)
        direct = segmenter.predict(Prompt((10, 5, 60, 50), ((30, 20),), (1,)), multimask=True)
        assert np.array_equal(written["mask_logits"], direct.mask_logits)
        assert np.array_equal(written["iou"], direct.iou)


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "a prompt needs a box or at least one point"),
        (["--point", "3", "4", "2"], "--point LABEL is 1 (on the object) or 0 (off it), got 2"),
        (["--box", "1", "1", "9", "9", "--model", "samdaq"], "model samdaq is not promptable"),
        (["--box", "1", "1", "9", "9", "--model", "sam_x"], "unknown model 'sam_x'"),
        (["--box", "1", "1", "9", "9"], "does not say which model it is: give the model's name"),
        (
            ["--box", "1", "1", "9", "9", "--depth", "d.png", "--model", "efficientvit_sam_l0"],
            "takes no depth",
        ),
    ],
)
def test_the_segment_command_refuses_in_one_line(official_file, tmp_path, capsys, flags, message):
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "d.png"), np.zeros((8, 8), np.uint8))
    args = ["segment", "--weights", str(official_file), "--image", str(image)]
    args += [str(tmp_path / f) if f == "d.png" else f for f in flags]
    assert cli_main([*args, "--out", str(tmp_path / "out.npz")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out.npz").exists()
