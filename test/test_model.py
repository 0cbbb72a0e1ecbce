"""SAM-DAQ model behaviour on tiny random models: state, batching, clips, gradients, inputs."""

import pytest
import torch
from conftest import seeded

from rgbd_saliency_ros.model import SamDaq, SamDaqConfig

SIZE = 128


@pytest.fixture(scope="module")
def model():
    with seeded(0):
        return SamDaq(SamDaqConfig(input_size=SIZE)).eval()


def frames(seed: int, batch: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, SIZE, SIZE, generator=g), torch.rand(
        batch, 1, SIZE, SIZE, generator=g
    )


def run(model, seeds, state=None):
    """Steps one stream through the frames of ``seeds``; returns probabilities and final state."""
    state = model.initial_tensor(1) if state is None else state
    probs = []
    with torch.no_grad():
        for s in seeds:
            p, state = model.step(*frames(s), state)
            probs.append(p)
    return probs, state


def test_step_shapes_and_ranges(model):
    probs, state = run(model, [1])
    assert probs[0].shape == (1, 1, SIZE, SIZE)
    assert 0.0 <= probs[0].min() and probs[0].max() <= 1.0
    assert state.shape == (1, 8, 64) and torch.isfinite(state).all()


def test_state_carries_memory_and_reset_reproduces_first_frame(model):
    first, _ = run(model, [1])
    probs, state = run(model, [1, 2])
    assert not torch.equal(state, model.initial_tensor(1)), "the state must change after a frame"
    # The same frame seen with memory differs from seeing it first.
    with_memory, _ = run(model, [1], state)
    assert (with_memory[0] - first[0]).abs().max() > 1e-6
    again, _ = run(model, [1], model.initial_tensor(1))
    torch.testing.assert_close(again[0], first[0], rtol=0, atol=0)


def test_streams_in_one_batch_equal_streams_alone(model):
    seeds = {0: [1, 2, 3], 1: [4, 5, 6]}
    alone = {k: run(model, v) for k, v in seeds.items()}
    state = model.initial_tensor(2)
    with torch.no_grad():
        for t in range(3):
            parts = [frames(seeds[k][t]) for k in (0, 1)]
            rgb = torch.cat([p[0] for p in parts])
            depth = torch.cat([p[1] for p in parts])
            prob, state = model.step(rgb, depth, state)
            for k in (0, 1):
                torch.testing.assert_close(prob[k : k + 1], alone[k][0][t], rtol=0, atol=1e-5)
    for k in (0, 1):
        torch.testing.assert_close(state[k : k + 1], alone[k][1], rtol=0, atol=1e-5)


def test_clip_forward_equals_steps(model):
    seeds = [1, 2, 3]
    probs, _ = run(model, seeds)
    rgb = torch.stack([frames(s)[0][0] for s in seeds])[None]
    depth = torch.stack([frames(s)[1][0] for s in seeds])[None]
    with torch.no_grad():
        clip, intermediate = model.forward_clip(rgb, depth)
    assert clip.shape == (1, 3, SIZE, SIZE) and intermediate.shape == (
        1,
        3,
        SIZE // 16,
        SIZE // 16,
    )
    for t in range(3):
        torch.testing.assert_close(clip[0, t], probs[t][0, 0], rtol=0, atol=1e-5)


def test_training_gradients_reach_trained_parts_only():
    with seeded(0):
        model = SamDaq(SamDaqConfig(input_size=64)).train()
        rgb = torch.randn(1, 2, 3, 64, 64)
        depth = torch.rand(1, 2, 1, 64, 64)
    probs, intermediate = model.forward_clip(rgb, depth)
    (probs.mean() + intermediate.mean()).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    frozen = [n for n in grads if n.startswith(("trunk.", "neck.", "prompt_encoder."))]
    assert frozen and all(grads[n] is None for n in frozen)
    for name in (
        "depth_projector.0.weight",
        "depth_stem_skip.0.weight",
        "adapters.0.conv_in.weight",
        "adapters.3.conv_out.weight",
        "qtm.video_queries.weight",
        "qtm.prompt_proj.weight",
        "mask_decoder.transformer.layers.0.mlp.layers.0.weight",
        "self_inference_head.0.weight",
    ):
        assert grads[name] is not None and grads[name].abs().sum() > 0, name


def test_bad_input_shapes_are_refused(model):
    rgb, depth = frames(1)
    state = model.initial_tensor(1)
    with pytest.raises(ValueError, match="depth has shape"):
        model.step(rgb, depth[..., :64], state)
    with pytest.raises(ValueError, match="state has shape"):
        model.step(rgb, depth, model.initial_tensor(2))


@pytest.mark.parametrize("backbone", ["sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l"])
def test_every_sam2_size_builds_and_steps(backbone):
    model = SamDaq(SamDaqConfig(backbone=backbone, input_size=64)).eval()
    with torch.no_grad():
        prob, state = model.step(
            torch.randn(1, 3, 64, 64), torch.rand(1, 1, 64, 64), model.initial_tensor(1)
        )
    assert prob.shape == (1, 1, 64, 64) and state.shape == (1, 8, 64)
    assert model.qtm.prompt_proj.in_features == (64 // 16) ** 2


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 32"):
        SamDaqConfig(input_size=1000)
    with pytest.raises(ValueError, match="unknown backbone"):
        SamDaqConfig(backbone="sam2.1_hiera_xl")
    with pytest.raises(ValueError, match="unknown model config fields"):
        SamDaqConfig.from_dict({"backbone": "sam2.1_hiera_t", "inputsize": 512})
