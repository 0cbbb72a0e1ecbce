"""Fidelity to the reference EfficientViT-SAM-L0 (PyPI ``efficientsam`` 1.0.0, i.e.
mit-han-lab/efficientvit): its checkpoint format, one real frame, box and point prompts, its
image embedding, mask logits and IoU predictions (../shared/fixtures/efficientvit_sam_parity,
README there). Every float array within 1e-4, the resized frame exact.

    .venv/bin/python -m pytest -q test/test_efficientvit_sam_parity.py
"""

import json

import numpy as np
import pytest
import torch
from conftest import find_shared, unpacked_fixture

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import load_weights, model_class
from rgbd_saliency_ros.runtime.letterbox import resize_longest
from rgbd_saliency_ros.runtime.segment import Prompt, PromptSegmenter
from rgbd_saliency_ros.runtime.sequence import read_rgb

pytestmark = pytest.mark.slow  # about 25 s on the shared 2-core machine

TOL = 1e-4
WEIGHTS_XZ = "efficientvit_sam_l0_random.pt.xz"


@pytest.fixture(scope="module")
def fixture_dir():
    return find_shared("fixtures", "efficientvit_sam_parity")


@pytest.fixture(scope="module")
def weights(fixture_dir, tmp_path_factory):
    """The fixture's checkpoint, decompressed once per module (70 MB, about 2 s)."""
    return unpacked_fixture(tmp_path_factory, fixture_dir.name, WEIGHTS_XZ)


@pytest.fixture(scope="module")
def expected(fixture_dir):
    with np.load(fixture_dir / "expected.npz") as data:
        return dict(data)


@pytest.fixture(scope="module")
def prompts(fixture_dir):
    return json.loads((fixture_dir / "prompts.json").read_text())["sam_prompts"]


@pytest.fixture(scope="module")
def segmenter(weights, fixture_dir):
    """L0 with the fixture's weights, the fixture's frame set (the encoder has run)."""
    model = model_class("efficientvit_sam_l0")()
    load_weights(model, weights)
    segmenter = PromptSegmenter(model)
    segmenter.set_image(read_rgb(fixture_dir / "rgb.png"))
    return segmenter


def as_prompt(p: dict) -> Prompt:
    """A prompts.json entry (frame pixels) as the runtime's Prompt."""
    return Prompt(
        box=tuple(p["box"]) if "box" in p else None,
        points=tuple(map(tuple, p.get("points", ()))),
        labels=tuple(p.get("labels", ())),
    )


def max_diff(ours, theirs) -> float:
    ours = ours.numpy() if isinstance(ours, torch.Tensor) else ours
    assert ours.shape == theirs.shape
    return float(np.abs(ours - theirs).max())


def test_the_checkpoint_is_the_official_format(weights, segmenter):
    sd = torch.load(weights, map_location="cpu", weights_only=True)
    dtypes = [v.dtype for v in sd.values()]
    assert len(sd) == 409
    assert dtypes.count(torch.float16) == 373 and dtypes.count(torch.int64) == 36
    assert set(sd) == set(segmenter.model.state_dict())


def test_frame_preparation(fixture_dir, segmenter, expected):
    rgb = read_rgb(fixture_dir / "rgb.png")
    assert np.array_equal(resize_longest(rgb, 512), expected["sam_resized_u8"])
    rgb_in, depth_in = segmenter.model_input(rgb)
    assert max_diff(rgb_in[None], expected["sam_input"]) <= TOL and depth_in is None


def test_image_embedding(segmenter, expected):
    assert max_diff(segmenter.embedding, expected["sam_embedding"]) <= TOL


@pytest.mark.parametrize("name", ["box0", "box1", "point0", "point1"])
def test_sparse_prompt_embeddings(segmenter, prompts, expected, name):
    p = next(p for p in prompts if p["name"] == name)
    points = None
    if "points_1024" in p:
        points = (torch.tensor([p["points_1024"]]), torch.tensor([p["labels"]], dtype=torch.int))
    boxes = torch.tensor([p["box_1024"]]) if "box_1024" in p else None
    with torch.inference_mode():
        sparse, _ = segmenter.model.prompt_encoder(points, boxes, None)
    assert max_diff(sparse, expected[f"sam_{name}_sparse"]) <= TOL


@pytest.mark.parametrize("multimask", [True, False], ids=["multi", "single"])
@pytest.mark.parametrize("name", ["box0", "box1", "point0", "point1"])
def test_masks_and_iou_from_frame_pixel_prompts(segmenter, prompts, expected, name, multimask):
    p = next(p for p in prompts if p["name"] == name)
    result = segmenter.predict(as_prompt(p), multimask=multimask)
    tag = "multi" if multimask else "single"
    assert max_diff(result.low_res_logits, expected[f"sam_{name}_low_res_{tag}"]) <= TOL
    assert max_diff(result.iou, expected[f"sam_{name}_iou_{tag}"]) <= TOL
    assert result.mask_logits.shape == (3 if multimask else 1, 480, 640)
    if f"sam_{name}_masks_{tag}" in expected:  # the README stores the upscaled box0 single only
        assert max_diff(result.mask_logits, expected[f"sam_{name}_masks_{tag}"]) <= TOL


def run_segment(args) -> dict:
    assert cli_main(["segment", *map(str, args)]) == 0
    with np.load(args[args.index("--out") + 1]) as out:
        return dict(out)


def test_the_segment_command_reproduces_the_reference(weights, fixture_dir, expected, tmp_path):
    image = fixture_dir / "rgb.png"
    common = ["--model", "efficientvit_sam_l0", "--weights", weights, "--image", image]
    box = run_segment([*common, "--box", 162, 135, 521, 466, "--out", tmp_path / "box0.npz"])
    assert {k: (v.shape, v.dtype) for k, v in box.items()} == {
        "low_res_logits": ((1, 256, 256), np.float32),
        "iou": ((1,), np.float32),
        "mask_logits": ((1, 480, 640), np.float32),
    }
    assert max_diff(box["low_res_logits"], expected["sam_box0_low_res_single"]) <= TOL
    assert max_diff(box["iou"], expected["sam_box0_iou_single"]) <= TOL
    assert max_diff(box["mask_logits"], expected["sam_box0_masks_single"]) <= TOL
    points = ["--point", 350.5, 300, 1, "--point", 580, 370, 0]
    multi = run_segment([*common, *points, "--multimask", "--out", tmp_path / "point1.out"])
    assert max_diff(multi["low_res_logits"], expected["sam_point1_low_res_multi"]) <= TOL
    assert max_diff(multi["iou"], expected["sam_point1_iou_multi"]) <= TOL
    assert multi["mask_logits"].shape == (3, 480, 640)
