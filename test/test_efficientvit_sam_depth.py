"""The depth-aware EfficientViT-SAM (issue 21, item 2): a depth encoder of the RGB encoder's
architecture, F = F_rgb + alpha * F_depth after a middle backbone stage. With alpha = 0 it is the
RGB model bit for bit; gradients reach alpha and the depth encoder; the command takes --depth.

    .venv/bin/python -m pytest -q test/test_efficientvit_sam_depth.py
"""

import cv2
import numpy as np
import pytest
import torch
from conftest import seeded

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import load_weights, save_weights
from rgbd_saliency_ros.model.efficientvit_sam import (
    EfficientViTSamConfig,
    EfficientViTSamL0,
    EfficientViTSamXL0,
)
from rgbd_saliency_ros.runtime.letterbox import letterbox_depth

DEPTH = EfficientViTSamConfig(depth_fusion=True)


def rgb_twin(depth_model) -> EfficientViTSamL0:
    """The RGB model with the depth-aware model's weights (all but the depth parts)."""
    rgb = EfficientViTSamL0()
    rgb.load_state_dict(
        {k: v for k, v in depth_model.state_dict().items() if not k.startswith("depth_")}
    )
    return rgb.eval()


@pytest.fixture(scope="module")
def model():
    with seeded(0):
        return EfficientViTSamL0(DEPTH).eval()


@pytest.fixture(scope="module")
def inputs():
    with seeded(1):
        return torch.randn(1, 3, 512, 512), torch.rand(1, 1, 512, 512)


def test_the_fusion_level_and_alpha(model):
    assert model.fusion_stage == 2 and model.depth_alpha.shape == (128,)
    assert torch.equal(model.depth_alpha, torch.zeros(128))
    assert model.preprocessing().needs_depth and model.preprocessing().needs_prompts
    # The depth encoder is the RGB backbone's stages 0..2: the same modules, the same sizes.
    depth_sizes = [p.shape for p in model.depth_encoder.parameters()]
    rgb_sizes = [p.shape for p in model.image_encoder.backbone.stages[:3].parameters()]
    assert depth_sizes == rgb_sizes
    with torch.device("meta"):
        xl = EfficientViTSamXL0(DEPTH)
    assert xl.fusion_stage == 3 and xl.depth_alpha.shape == (256,)
    with pytest.raises(ValueError, match="fusion_stage 4 of efficientvit_sam_l0 must be in 0..3"):
        EfficientViTSamL0(EfficientViTSamConfig(depth_fusion=True, fusion_stage=4))
    with pytest.raises(ValueError, match="alpha_init must be finite"):
        EfficientViTSamConfig(depth_fusion=True, alpha_init=float("nan"))


@pytest.mark.slow  # two encoder passes at 512: 10 to 30 s on the shared 2-core machine
def test_alpha_zero_is_the_rgb_model_bit_for_bit(model, inputs):
    rgb, depth = inputs
    twin = rgb_twin(model)
    box = torch.tensor([[100.0, 150.0, 800.0, 700.0]])
    with torch.inference_mode():
        fused = model.embed_image(rgb, depth)
        plain = twin.embed_image(rgb)
        masks = model.decode(fused, boxes=box, multimask=True)
        twin_masks = twin.decode(plain, boxes=box, multimask=True)
    assert torch.equal(fused, plain)
    assert all(torch.equal(a, b) for a, b in zip(masks, twin_masks))


@pytest.mark.slow  # two backward passes at 512: 10 to 30 s on the shared 2-core machine
def test_gradients_reach_alpha_and_the_depth_encoder(inputs):
    rgb, depth = inputs
    with seeded(2):
        model = EfficientViTSamL0(DEPTH).train()
    trained = model.freeze_pretrained()
    assert trained == [n for n, _ in model.named_parameters() if n.startswith("depth_")]

    def grads():
        model.zero_grad(set_to_none=True)
        model.embed_image(rgb, depth).square().mean().backward()
        return {n: p.grad for n, p in model.named_parameters()}

    at_zero = grads()
    assert at_zero["depth_alpha"].abs().sum() > 0  # alpha moves from the first step
    with torch.no_grad():
        model.depth_alpha.fill_(0.1)
    moved = grads()
    assert moved["depth_alpha"].abs().sum() > 0
    for name in trained:
        assert moved[name] is not None and moved[name].abs().sum() > 0, name
    assert all(g is None for n, g in moved.items() if n not in trained)  # the rest is frozen


def test_an_official_checkpoint_starts_the_depth_encoder_as_the_rgb_stages(model, tmp_path):
    path = tmp_path / "l0.pt"
    torch.save(rgb_twin(model).state_dict(), path)  # the official format has no depth parts
    with seeded(5):
        fresh = EfficientViTSamL0(DEPTH)
    load_weights(fresh, path)
    rgb_stages = fresh.image_encoder.backbone.stages[:3].state_dict()
    assert rgb_stages.keys() == fresh.depth_encoder.stages.state_dict().keys()
    for k, v in fresh.depth_encoder.stages.state_dict().items():
        assert torch.equal(v, rgb_stages[k]), k


def test_letterboxed_depth():
    depth = np.full((30, 60), 0.5, np.float32)
    depth[0, 0] = np.nan
    out = letterbox_depth(depth, 64)
    assert out.shape == (1, 64, 64) and out.dtype == np.float32
    assert out[0, 0, 0] < 0.5 and np.allclose(out[0, 10:30, 10:50], 0.5)  # NaN -> 0, smoothed
    assert np.all(out[0, 32:] == 0.0)


def test_the_segment_command_takes_depth(model, tmp_path, capsys):
    with seeded(3):
        aware = EfficientViTSamL0(EfficientViTSamConfig(depth_fusion=True, alpha_init=0.5))
        rgb = (torch.rand(48, 64, 3) * 255).to(torch.uint8).numpy()
    weights = tmp_path / "aware.safetensors"
    save_weights(aware, weights)
    cv2.imwrite(str(tmp_path / "rgb.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    cv2.imwrite(str(tmp_path / "near_left.png"), ramp[:, ::-1])
    cv2.imwrite(str(tmp_path / "near_right.png"), ramp)
    args = ["segment", "--weights", str(weights), "--image", str(tmp_path / "rgb.png")]
    args += ["--box", "5", "5", "40", "40"]
    outputs = []
    for name in ("near_left", "near_right"):
        out = tmp_path / f"{name}.npz"
        assert cli_main([*args, "--depth", str(tmp_path / f"{name}.png"), "--out", str(out)]) == 0
        with np.load(out) as masks:
            assert masks["mask_logits"].shape == (1, 48, 64)
            outputs.append(masks["low_res_logits"])
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3  # the depth reaches the masks
    capsys.readouterr()
    assert cli_main([*args, "--out", str(tmp_path / "none.npz")]) == 2
    assert "model efficientvit_sam_l0 needs depth" in capsys.readouterr().err
