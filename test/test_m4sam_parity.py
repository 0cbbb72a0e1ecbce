"""Fidelity to the published M4-SAM (HankLiu2020/M4-SAM): its checkpoint format, its frames, its
outputs (../shared/fixtures/m4sam_parity/, README there).

The reference checkpoint (Hiera-L, input 352, random weights; xz-compressed) is loaded as it is;
three real frames go through ``SaliencyRuntime`` one by one with each stream's state carried, and
the memory branch's probabilities, the coarse logits and the reference's evaluation maps match
its outputs within the README's bounds on every frame.

    .venv/bin/python -m pytest -q test/test_m4sam_parity.py   # ~1-2 min on 2 quiet cores (more
                                                              # when busy); Hiera-L at 352

The encoder runs once per frame for the whole module: the memory variants (the reference's
deep-update draw, other decisions) rerun only the memory from recorded image features.
"""

import dataclasses

import cv2
import numpy as np
import pytest
import torch
from conftest import find_shared, unpacked_fixture

from rgbd_saliency_ros.model import load_weights
from rgbd_saliency_ros.model.m4sam import M4Sam, M4SamConfig
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.frames import reference_eval_map
from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime

TOL = 1e-4  # the README's bound: float-order noise ~1e-6, the smallest wiring error ~1.6e-3
TOL_EVAL_MAP = 2e-4  # the evaluation map's stretch about doubles differences (README)
FRAMES = 3
REFERENCE_KEYS = 9218

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fixture_dir():
    return find_shared("fixtures", "m4sam_parity")


@pytest.fixture(scope="module")
def expected(fixture_dir):
    data = np.load(fixture_dir / "expected.npz")
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def checkpoint(fixture_dir, tmp_path_factory):
    """The reference checkpoint, decompressed once for the module (0.7 GB, in a temp folder)."""
    return unpacked_fixture(tmp_path_factory, fixture_dir.name, "m4sam_hiera_l_random.pth.xz")


@pytest.fixture(scope="module")
def model(checkpoint):
    model = M4Sam(M4SamConfig(backbone="sam2.1_hiera_l", input_size=352))
    assert load_weights(model, checkpoint) == {}
    return model


def read_pair(fixture_dir, i: int, stamp_s: float) -> FramePair:
    """Frame i as a camera pair: RGB uint8, depth relative in [0, 1] (PNG / 255, near dark)."""
    rgb = cv2.cvtColor(cv2.imread(str(fixture_dir / f"rgb_{i}.png")), cv2.COLOR_BGR2RGB)
    depth = cv2.imread(str(fixture_dir / f"depth_{i}.png"), cv2.IMREAD_UNCHANGED)
    return FramePair("camera", stamp_s, rgb, depth.astype(np.float32) / 255, False)


@pytest.fixture(scope="module")
def runtime_run(model, fixture_dir):
    """The three frames through the runtime, one stream: results, and the image features the
    model computed for each (recorded on their way from ``encode`` to the memory)."""
    recorded = []
    encode = model.encode

    def recording(rgb, depth):
        recorded.append(encode(rgb, depth))
        return recorded[-1]

    model.encode = recording
    try:
        runtime = SaliencyRuntime(TorchBackend(model))
        results = []
        for i in range(FRAMES):
            [result] = runtime.run([runtime.prepare(read_pair(fixture_dir, i, 0.04 * i))])
            results.append(result)
    finally:
        del model.encode
    return results, recorded


def rerun_memory(model, decoded, decisions=None):
    """The memory alone over recorded image features; ``decisions`` (one bool per frame but the
    last) replace the model's deep-update rule. Returns the probabilities (S, S)."""
    state, probs = model.initial_state(1), []
    with torch.inference_mode():
        for i, features in enumerate(decoded):
            deep = None
            if decisions is not None and i < len(decisions):
                deep = torch.tensor([decisions[i]])
            prob, _, state = model.step_decoded(features, state, deep_update=deep)
            probs.append(prob[0, 0].numpy())
    return probs


def test_the_checkpoint_is_the_reference_format(checkpoint, model):
    sd = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert len(sd) == REFERENCE_KEYS
    assert sd["encoder.blocks.2.attn.qkv.lora_q.lora_B"].shape == (144, 4)  # a stage change
    own = model.state_dict()
    torch.testing.assert_close(
        own["memory.key_projection.shrinkage.weight"],
        sd["mem_model.memory.key_proj.d_proj.weight"].float(),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("frame", range(FRAMES))
def test_memory_branch_matches_the_reference_through_the_runtime(runtime_run, expected, frame):
    results, _ = runtime_run
    prob = results[frame].model_probability
    assert prob.shape == (352, 352) and np.isfinite(prob).all()
    diff = np.abs(prob - expected["mem_out"][frame]).max()
    print(f"frame {frame}: max |mem_out - reference| = {diff:.3g}")
    assert diff <= TOL
    # the frames are 352 x 352: the published probability is the model's own
    np.testing.assert_array_equal(results[frame].probability, prob)
    np.testing.assert_array_equal(results[frame].mask == 255, prob >= 0.5)


@pytest.mark.parametrize("frame", range(FRAMES))
def test_coarse_logits_and_evaluation_maps_match_the_reference(runtime_run, expected, frame):
    results, decoded = runtime_run
    coarse = decoded[frame].coarse[0, 0].numpy()
    assert np.isfinite(coarse).all()
    diff = np.abs(coarse - expected["out"][frame]).max()
    print(f"frame {frame}: max |out - reference| = {diff:.3g}")
    assert diff <= TOL
    final = reference_eval_map(results[frame].model_probability)
    diff = np.abs(final - expected["final"][frame]).max()
    print(f"frame {frame}: max |final - reference| = {diff:.3g}")
    assert diff <= TOL_EVAL_MAP


def test_the_fixture_exercises_the_memory(expected):
    # Guards the test itself: frames differ by far more than the tolerance.
    assert np.abs(expected["mem_out"][1] - expected["mem_out"][0]).max() > 100 * TOL
    assert expected["deep_update"].tolist() == [True, False]  # what deep_update_every 2 gives


def test_the_references_random_draw_reproduces_it_when_seeded(model, runtime_run, expected):
    _, decoded = runtime_run
    default = model.config
    model.config = dataclasses.replace(default, deep_update_rule="random")
    try:
        np.random.seed(int(expected["np_seed"]))
        probs = rerun_memory(model, decoded)
    finally:
        model.config = default
    for frame, prob in enumerate(probs):
        assert np.abs(prob - expected["mem_out"][frame]).max() <= TOL


def test_other_deep_update_decisions_change_only_later_frames(model, runtime_run, expected):
    _, decoded = runtime_run
    recorded = rerun_memory(model, decoded, expected["deep_update"].tolist())
    flipped = rerun_memory(model, decoded, [not d for d in expected["deep_update"]])
    for frame in range(FRAMES):
        assert np.abs(recorded[frame] - expected["mem_out"][frame]).max() <= TOL
    assert np.abs(flipped[0] - expected["mem_out"][0]).max() <= TOL
    assert np.abs(flipped[2] - expected["mem_out"][2]).max() > 10 * TOL
