"""M4-SAM as a plug-in, on a tiny configuration (Hiera-T at input 64, random weights): its
registry entry and config, its growing memory through the runtime, the deep-update rule, the
MoE-LoRA's modality split, and its two weights formats with their refusals. The published network
against the reference's outputs is test_m4sam_parity.py.

    .venv/bin/python -m pytest -q test/test_m4sam.py
"""

import json

import numpy as np
import pytest
import torch
from conftest import retagged_weights, seeded, small_ssd, tum_rgbd

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import (
    CheckpointError,
    M4SamConfig,
    load_weights,
    model_class,
    save_weights,
    weights_model,
)
from rgbd_saliency_ros.model.m4sam.network import M4Sam, pseudo_prior
from rgbd_saliency_ros.model.m4sam.moe_lora import MoELoRAQKV, modalities
from rgbd_saliency_ros.model.m4sam.reference import reference_key
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.frames import normalize_rgb, reference_eval_map
from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime
from rgbd_saliency_ros.runtime.sequence import read_frame

SIZE = 64
CONFIG = M4SamConfig(backbone="sam2.1_hiera_t", input_size=SIZE, memory_frames=3)


def randomized(model: M4Sam, seed: int) -> M4Sam:
    """Every parameter and buffer drawn at random, as the parity fixture's weights are: built
    weights leave the LoRA paths at zero and the gates tied, which would hide them."""
    with seeded(seed), torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.uniform_(0.5, 1.5)
            elif t.dim() > 1:
                t.normal_(0.0, t[0].numel() ** -0.5)
            else:
                t.normal_(1.0 if name.endswith(".weight") else 0.0, 0.1)
    return model


@pytest.fixture(scope="module")
def model():
    with seeded(0):
        return randomized(M4Sam(CONFIG), 1).eval()


def frames(model: M4Sam, n: int):
    """n different real RGB-D frames (TUM RGB-D's, shifted) prepared by the runtime for
    ``model``: rgb (1, 3, S, S), depth (1, 1, S, S) in [0, 1]."""
    rgb, _, metres = tum_rgbd()
    runtime = SaliencyRuntime(TorchBackend(model))
    out = []
    for i in range(n):
        pair = FramePair("x", 0.1 * i, np.roll(rgb, 9 * i, axis=1), np.roll(metres, 9 * i, axis=1))
        prepared = runtime.prepare(pair)
        out.append((torch.from_numpy(prepared.rgb)[None], torch.from_numpy(prepared.depth)[None]))
    return out


def variant(model: M4Sam, **changes) -> M4Sam:
    """``model``'s weights under a config with ``changes``."""
    other = M4Sam(M4SamConfig(**{**model.config.to_dict(), **changes}))
    other.load_state_dict(model.state_dict())
    return other.eval()


def run(model, inputs, state=None):
    """Steps the frames one by one from ``state`` (a fresh stream if None); returns the
    probabilities (S, S) and the states after each frame."""
    state = model.initial_state(len(inputs[0][0])) if state is None else state
    probs, states = [], []
    with torch.inference_mode():
        for rgb, depth in inputs:
            prob, state = model.step_state(rgb, depth, state)
            probs.append(prob)
            states.append(state)
    return probs, states


def test_registered_under_its_name_with_a_torch_free_config():
    assert model_class("m4sam") is M4Sam
    config = M4SamConfig(backbone="sam2.1_hiera_s", input_size=128, memory_frames=7)
    assert M4SamConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match="unknown model config fields"):
        M4SamConfig.from_dict({"input_sise": 352})
    for bad in (
        {"input_size": 100},
        {"memory_frames": 0},
        {"deep_update_every": 0},
        {"deep_update_rule": "sometimes"},
        {"experts_top_k": 4},
    ):
        with pytest.raises(ValueError):
            M4SamConfig(**bad)


def test_preprocessing_stretches_rgb_per_frame_and_takes_relative_depth(model):
    pre = model.preprocessing()
    assert (pre.input_size, pre.rgb_minmax, pre.needs_depth) == (SIZE, True, True)
    dim = np.full((4, 4, 3), 60, np.uint8)
    dim[0, 0] = (40, 90, 200)
    x = normalize_rgb(dim, pre.mean, pre.std, pre.rgb_minmax)
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[0, 1, 1], (60 - 40) / (200 - 40), rtol=1e-6)
    assert not normalize_rgb(np.full((2, 2, 3), 7, np.uint8), pre.mean, pre.std, True).any()


@pytest.fixture(scope="module")
def inputs(model):
    return frames(model, 4)


@pytest.fixture(scope="module")
def history(model, inputs):
    """One stream over the four frames: (probabilities, states after each frame)."""
    return run(model, inputs)


def test_the_memory_grows_a_frame_a_step_up_to_its_bound_keeping_the_first(model, history):
    probs, states = history
    assert [s["keys"].shape[1] for s in states] == [1, 2, 3, 3]
    first_key = states[0]["keys"][:, 0]
    for s in states:
        for name in ("keys", "shrinkage", "values"):
            assert s[name].shape[1] == s["keys"].shape[1]
        torch.testing.assert_close(s["keys"][:, 0], first_key, rtol=0, atol=0)
    # frames 0, 2, 3 remain, the newest last
    torch.testing.assert_close(states[3]["keys"][:, 1], states[2]["keys"][:, 2], rtol=0, atol=0)
    assert all(p.shape == (1, 1, SIZE, SIZE) and 0 <= p.min() and p.max() <= 1 for p in probs)
    spec = model.state_spec()
    assert spec.growing
    assert spec.names == ("keys", "shrinkage", "values", "hidden", "deep_update_phase")
    spec.check({k: v[0].numpy() for k, v in states[-1].items()})
    assert not spec.health({k: v[0].numpy() for k, v in model.initial_state(1).items()}).reason
    longer = {k: v[0].numpy() for k, v in states[-1].items()}
    longer["keys"] = np.concatenate([longer["keys"], longer["keys"][:1]])
    assert "keys" in spec.health(longer).reason  # beyond the bound: the stream restarts


def test_without_keep_first_frame_the_oldest_goes(model, inputs):
    _, states = run(variant(model, keep_first_frame=False), inputs)
    torch.testing.assert_close(states[3]["keys"][:, 0], states[1]["keys"][:, 1], rtol=0, atol=0)


def test_the_memory_and_the_prior_matter(model, inputs, history):
    fresh, _ = run(model, inputs[2:3])
    assert (history[0][2] - fresh[0]).abs().max() > 1e-3
    # the first frame reads only the pseudo prior's value, keyed by the frame itself
    with torch.inference_mode():
        prior = pseudo_prior(model.encode(*inputs[0]).coarse)
    assert prior.min() == 0 and prior.max() == 1
    assert not pseudo_prior(torch.zeros(1, 1, 8, 8)).any()  # a flat map: no NaN


def test_deep_updates_after_frames_0_2_4_by_default_or_as_the_reference_draws(
    model, inputs, history
):
    phases = [s["deep_update_phase"] for s in history[1][:3]]
    decisions = [bool(model.deep_update(p)) for p in [torch.zeros(1, 1), *phases]]
    assert decisions == [True, False, True, False]
    drawn = variant(model, deep_update_rule="random")
    np.random.seed(1)  # the parity fixture's seed: draws 0.417, 0.720
    assert [bool(drawn.deep_update(torch.zeros(1, 1))) for _ in range(2)] == [True, False]
    # the hidden state follows the rule: always deep-updating gives another frame 2
    always = run(variant(model, deep_update_every=1), inputs[:3])[0]
    torch.testing.assert_close(always[1], history[0][1], rtol=0, atol=1e-6)  # both update after 0
    assert (always[2] - history[0][2]).abs().max() > 1e-4


def test_streams_batched_together_match_streams_alone(model, inputs, history):
    a, b = inputs[:3], [inputs[1], inputs[2], inputs[0]]
    together = run(
        model, [(torch.cat([x[0], y[0]]), torch.cat([x[1], y[1]])) for x, y in zip(a, b)]
    )
    for i, alone in enumerate((history[0], run(model, b)[0])):
        for t in range(3):
            torch.testing.assert_close(together[0][t][i : i + 1], alone[t], rtol=0, atol=1e-5)


def test_three_streams_through_the_runtime(model, inputs, history):
    rgb, _, metres = tum_rgbd()
    runtime = SaliencyRuntime(TorchBackend(model))
    results = {}
    for i, streams in enumerate([["a"], ["a", "b"], ["a", "b", "c"]]):
        frame = (np.roll(rgb, 9 * i, axis=1), np.roll(metres, 9 * i, axis=1))
        prepared = [runtime.prepare(FramePair(s, 0.1 * i, *frame)) for s in streams]
        for r in runtime.run(prepared):
            results.setdefault(r.stream_id, []).append(r)
            assert r.mask.shape == rgb.shape[:2]
    assert {s: runtime.memory.peek(s)["keys"].shape[0] for s in "abc"} == {"a": 3, "b": 2, "c": 1}
    # each stream's answers are the ones it gets alone, frame by frame with its state carried
    alone = {"a": history[0][:3], "b": run(model, inputs[1:3])[0], "c": run(model, inputs[2:3])[0]}
    for stream, probs in alone.items():
        for result, prob in zip(results[stream], probs, strict=True):
            np.testing.assert_allclose(result.model_probability, prob[0, 0], rtol=0, atol=1e-5)


def test_rgb_and_depth_share_a_batch_through_their_own_experts(model):
    qkv = model.trunk.blocks[0].attn.qkv
    assert isinstance(qkv, MoELoRAQKV)
    x = torch.randn(2, 8, 8, qkv.base.in_features)
    with torch.no_grad():
        with modalities([qkv], ("rgb", "depth")):
            both = qkv(x)
        with modalities([qkv], ("rgb",)):
            rgb = qkv(x[:1])
        with modalities([qkv], ("depth",)):
            depth = qkv(x[1:])
        with modalities([qkv], ("rgb",)):
            depth_as_rgb = qkv(x[1:])
    torch.testing.assert_close(both, torch.cat([rgb, depth]), rtol=0, atol=1e-5)
    assert (depth - depth_as_rgb).abs().max() > 1e-3
    with pytest.raises(RuntimeError, match="modalities"):
        qkv(x)


def test_a_stage_change_updates_the_first_and_last_input_widths_of_q_and_v(model):
    # block 2 of Hiera-T widens 96 -> 192: q and v are 192 wide, the updates 96
    qkv = model.trunk.blocks[model.trunk.stage_ends[0] + 1].attn.qkv
    d, out = qkv.base.in_features, qkv.base.out_features // 3
    assert out == 2 * d
    x = torch.randn(1, 4, 4, d)
    with torch.no_grad(), modalities([qkv], ("rgb",)):
        delta = qkv(x) - qkv.base(x)
    touched = delta.abs().amax(dim=(0, 1, 2)) > 0
    expected = torch.zeros(3 * out, dtype=torch.bool)
    expected[:d] = True
    expected[-d:] = True
    assert torch.equal(touched, expected)


@pytest.fixture(scope="module")
def project_weights(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("m4sam") / "m4.safetensors"
    save_weights(model, path)
    return path


def test_project_weights_round_trip_and_carry_name_and_config(model, project_weights):
    assert weights_model(project_weights) == (M4Sam, CONFIG)
    with seeded(5):
        other = M4Sam(CONFIG)
    load_weights(other, project_weights)
    loaded = other.state_dict()
    for k, v in model.state_dict().items():
        assert torch.equal(loaded[k], v), k


def test_weights_of_another_configuration_or_an_unbounded_memory_are_refused(
    model, project_weights, tmp_path
):
    wrong = tmp_path / "wrong.safetensors"
    config = {**CONFIG.to_dict(), "memory_frames": 10**6}
    retagged_weights(project_weights, wrong, lambda m: m.update(config=json.dumps(config)))
    with pytest.raises(CheckpointError, match=r"memory_frames = 1000000 .*\(1 to 1000\)"):
        weights_model(wrong)
    with pytest.raises(CheckpointError) as error:
        load_weights(variant(model, memory_frames=4), project_weights)
    assert "memory_frames: file 3, model 4" in str(error.value)


def test_predict_builds_m4sam_from_its_weights_file_alone(model, project_weights, tmp_path):
    data = small_ssd(tmp_path / "ssd")
    out = tmp_path / "out"
    args = ["predict", "--weights", str(project_weights), "--probabilities"]
    args += ["--rgb-dir", str(data / "rgb"), "--depth-dir", str(data / "depth")]
    assert cli_main([*args, "--out-dir", str(out)]) == 0
    runtime, state = SaliencyRuntime(TorchBackend(model)), model.initial_state(1)
    for name in sorted(p.stem for p in (data / "rgb").iterdir()):
        rgb, depth01 = read_frame(data / "rgb" / f"{name}.png", data / "depth" / f"{name}.png")
        prepared = runtime.prepare(FramePair("x", 0.0, rgb, depth01, False))
        with torch.inference_mode():
            prob, state = model.step_state(
                torch.from_numpy(prepared.rgb)[None], torch.from_numpy(prepared.depth)[None], state
            )
        np.testing.assert_allclose(np.load(out / f"{name}.npy"), prob[0, 0], rtol=0, atol=1e-5)


def reference_state_dict(model: M4Sam) -> dict[str, torch.Tensor]:
    """``model`` in the authors' format: their names, float16 as in the fixture, and the entries
    their network defines but never uses."""
    sd = {
        reference_key(k): v.half() if v.is_floating_point() else v
        for k, v in model.state_dict().items()
    }
    for i, block in enumerate(model.trunk.blocks):
        width = block.attn.qkv.base.in_features
        for path in ("lora_q", "lora_v"):
            sd[f"encoder.blocks.{i}.attn.qkv.{path}.weight"] = torch.zeros(width, width).half()
            sd[f"encoder.blocks.{i}.attn.qkv.{path}.bias"] = torch.zeros(width).half()
    sd["up4.conv.double_conv.0.weight"] = torch.zeros(64, 128, 3, 3).half()
    return sd


def test_reference_format_loads_strictly(model, tmp_path):
    sd = reference_state_dict(model)
    path = tmp_path / "M4SAM-tiny.pth"
    torch.save(sd, path)
    with seeded(7):
        other = M4Sam(CONFIG)
    assert load_weights(other, path) == {}
    loaded = other.state_dict()
    for k, v in model.state_dict().items():
        expected = v.half().float() if v.is_floating_point() else v
        assert torch.equal(loaded[k], expected), k

    def refused(weights, phrase):
        target = tmp_path / "bad.pth"
        torch.save(weights, target)
        with pytest.raises(CheckpointError) as error:
            load_weights(other, target)
        message = str(error.value)
        assert str(target) in message and phrase in message and "\n" not in message

    head = {"head.weight": sd["head.weight"]}
    refused({**head, "surprise.weight": torch.zeros(1)}, "does not have: surprise.weight")
    refused(head, "missing keys")
    refused({**sd, "head.weight": torch.zeros(1, 32, 1, 1)}, "shape mismatch for")


def test_reference_eval_map_is_a_second_sigmoid_stretched_per_frame():
    prob = np.array([[0.0, 0.5], [0.75, 1.0]], np.float32)
    out = reference_eval_map(prob)
    squashed = 1 / (1 + np.exp(-prob.astype(np.float64)))
    expected = (squashed - squashed.min()) / (squashed.max() - squashed.min() + 1e-8)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-7)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() > 0.999999
