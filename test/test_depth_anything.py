"""Depth Anything V2 as a model of ``model/``: the official sizes, strict and safe loading of the
official checkpoint format and of this project's, and refusals of files that are neither.

    .venv/bin/python -m pytest -q test/test_depth_anything.py

Its outputs against the official code are in test_depth_anything_parity.py.
"""

import pytest
import torch
from conftest import seeded
from plugin_model import DepthEcho, EchoConfig

from rgbd_saliency_ros.model import (
    CheckpointError,
    DepthAnythingV2,
    DepthAnythingV2Config,
    load_depth_estimator,
    register_model,
    save_weights,
)
from rgbd_saliency_ros.model import checkpoints
from rgbd_saliency_ros.model.depth_anything_v2 import OFFICIAL
from rgbd_saliency_ros.runtime.model_loading import load_model

register_model(DepthEcho)

# A few-block model with the official structure, for what the real sizes would make slow.
TINY = DepthAnythingV2Config(
    embed_dim=32,
    depth=4,
    num_heads=2,
    features=8,
    out_channels=(8, 8, 16, 16),
    layers=(0, 1, 2, 3),
    input_size=28,
)


@pytest.fixture(scope="module")
def official_weights(depth_anything_vits):
    return torch.load(depth_anything_vits, map_location="cpu", weights_only=True)


def test_official_sizes_match_the_released_models():
    # Parameter counts of the model zoo table (24.8M, 97.5M, 335.3M); state_dict key counts.
    expected = {"vits": (24.8, 239), "vitb": (97.5, 239), "vitl": (335.3, 407)}
    for name, config in OFFICIAL.items():
        with torch.device("meta"):
            model = DepthAnythingV2(config)
        millions = sum(p.numel() for p in model.parameters()) / 1e6
        assert (round(millions, 1), len(model.state_dict())) == expected[name]
        assert config.encoder == name
    assert TINY.encoder == "custom"


def test_official_checkpoint_loads_every_tensor_exactly(depth_anything_vits, official_weights):
    model = DepthAnythingV2.from_official_checkpoint(depth_anything_vits)
    assert model.config == OFFICIAL["vits"]
    own = model.state_dict()
    assert set(own) == set(official_weights) and len(own) == 239
    for key, value in official_weights.items():
        assert value.dtype == torch.float16
        assert torch.equal(own[key], value.float()), key  # float16 -> float32 is exact


def test_load_depth_estimator_reads_both_formats(depth_anything_vits, tmp_path):
    official = load_depth_estimator(depth_anything_vits)
    assert isinstance(official, DepthAnythingV2) and not official.training
    with seeded(4):
        tiny = DepthAnythingV2(TINY).eval()
    path = tmp_path / "tiny.safetensors"
    save_weights(tiny, path)
    loaded = load_depth_estimator(path)
    assert loaded.config == TINY
    rgb = torch.randn(2, 3, 28, 42)
    with torch.inference_mode():
        out = tiny(rgb)
        assert out.shape == (2, 28, 42) and (out >= 0).all()
        assert torch.equal(loaded(rgb), out)


def test_input_sides_must_be_multiples_of_the_patch():
    with seeded(4):
        tiny = DepthAnythingV2(TINY).eval()
    with pytest.raises(ValueError, match="multiples of 14"):
        tiny(torch.zeros(1, 3, 28, 40))


class Payload:
    """Unpickling this runs ``code``: what a malicious checkpoint would do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _broken(official: dict, kind: str, marker) -> object:
    """What a damaged or hostile file holds instead of ``official``."""
    sd = dict(official)
    if kind == "payload":
        sd["pretrained.norm.weight"] = Payload(f"open({str(marker)!r}, 'w').write('ran')")
    elif kind == "not a dict":
        return [sd["pretrained.cls_token"]]
    elif kind == "missing key":
        del sd["depth_head.scratch.output_conv2.2.bias"]
    elif kind == "unknown key":
        sd["depth_head.scratch.output_conv2.4.weight"] = torch.zeros(1)
    elif kind == "wrong shape":
        sd["pretrained.blocks.3.mlp.fc1.weight"] = torch.zeros(1536, 380, dtype=torch.float16)
    elif kind == "integer tensor":
        sd["pretrained.norm.bias"] = torch.zeros(384, dtype=torch.int64)
    elif kind == "unsupported width":
        sd["pretrained.cls_token"] = torch.zeros(1, 1, 512)
    elif kind == "not depth anything":
        return {"image_encoder.trunk.pos_embed": torch.zeros(1, 96, 7, 7)}
    return sd


BROKEN = {
    "payload": "pickled Python objects",
    "not a dict": "expected a dict of tensors",
    "missing key": "missing keys: depth_head.scratch.output_conv2.2.bias",
    "unknown key": "unexpected keys for this model: depth_head.scratch.output_conv2.4.weight",
    "wrong shape": "shape mismatch for pretrained.blocks.3.mlp.fc1.weight",
    "integer tensor": "pretrained.norm.bias holds torch.int64",
    "unsupported width": "ViT width 512; this package runs vits 384, vitb 768, vitl 1024 only",
    "not depth anything": "not a Depth Anything V2 checkpoint",
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_broken_official_files_are_refused_in_one_line(kind, official_weights, tmp_path):
    marker = tmp_path / "payload_ran"
    path = tmp_path / f"{kind.replace(' ', '_')}.pth"
    torch.save(_broken(official_weights, kind, marker), path)
    with pytest.raises(CheckpointError) as error:
        load_depth_estimator(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert BROKEN[kind] in message
    assert not marker.exists()


def test_size_limit_is_checked_before_reading(depth_anything_vits, monkeypatch):
    monkeypatch.setattr(checkpoints, "MAX_DEPTH_ANYTHING_BYTES", 2**20)
    with pytest.raises(CheckpointError, match="more than any Depth Anything V2 checkpoint"):
        load_depth_estimator(depth_anything_vits)


def test_official_weights_of_another_size_name_both(depth_anything_vits):
    with seeded(4):
        tiny = DepthAnythingV2(TINY)
    with pytest.raises(
        CheckpointError, match="holds Depth Anything V2 vits weights, the model is c"
    ):
        tiny.load_reference_weights(depth_anything_vits)


def test_saliency_and_depth_weights_are_not_mixed_up(tmp_path):
    echo = tmp_path / "echo.safetensors"
    save_weights(DepthEcho(EchoConfig()), echo)
    with pytest.raises(CheckpointError, match="not of a depth estimator"):
        load_depth_estimator(echo)
    tiny = tmp_path / "tiny.safetensors"
    save_weights(DepthAnythingV2(TINY), tiny)
    with pytest.raises(CheckpointError, match="a depth estimator, not a saliency model"):
        load_model(None, tiny)


def test_stored_config_is_bounded():
    with pytest.raises(ValueError, match="above the limits"):
        DepthAnythingV2Config(embed_dim=4096, num_heads=8)
    with pytest.raises(ValueError, match="unknown model config fields"):
        DepthAnythingV2Config.from_dict({"embed_dim": 384, "register_tokens": 4})
    assert DepthAnythingV2Config.from_dict(TINY.to_dict()) == TINY
