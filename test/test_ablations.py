"""Ablation variants of the model (serial adapters, LoRA, static queries, SAM2's memory bank)."""

import pytest
import torch

from rgbd_saliency_ros.model import SamDaq, SamDaqConfig, load_samdaq_weights, save_weights
from rgbd_saliency_ros.model.checkpoints import CheckpointError

SIZE = 64


def build(**kw):
    """A model for input 64 with the ablation settings ``kw``, weights drawn from seed 0 (the
    caller's random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SamDaq(SamDaqConfig(input_size=SIZE, **kw))


def clip(t=2):
    g = torch.Generator().manual_seed(1)
    return torch.randn(1, t, 3, SIZE, SIZE, generator=g), torch.rand(
        1, t, 1, SIZE, SIZE, generator=g
    )


@pytest.mark.parametrize(
    "adapter, trunk_trained", [("parallel", False), ("serial", False), ("lora", True)]
)
def test_adapter_variants_train(adapter, trunk_trained):
    model = build(adapter=adapter).train()
    probs, inter = model.forward_clip(*clip())
    (probs.mean() + inter.mean()).backward()
    trunk_grads = {n: p.grad for n, p in model.named_parameters() if n.startswith("trunk.")}
    lora = [n for n in trunk_grads if ".lora_" in n]
    assert bool(lora) == trunk_trained
    assert all(trunk_grads[n] is not None for n in lora)
    assert all(trunk_grads[n] is None for n in trunk_grads if ".lora_" not in n), (
        "frozen trunk weights get no grad"
    )
    for adapter_module in model.adapters:
        assert adapter_module.conv_in.weight.grad is not None


def test_only_parallel_keeps_the_trunk_out_of_the_graph():
    x = torch.randn(2, 3, SIZE, SIZE, requires_grad=True)
    assert not build(adapter="parallel").train()._trunk_stage(x, 0).requires_grad
    assert build(adapter="serial").train()._trunk_stage(x, 0).requires_grad


def test_serial_gradient_reaches_first_adapter_through_the_trunk():
    # The first serial adapter's residual feeds trunk stage 1: its gradient flows through the
    # trunk.
    model = build(adapter="serial").train()
    probs, _ = model.forward_clip(*clip(1))
    probs.mean().backward()
    assert model.adapters[0].conv_out.weight.grad.abs().sum() > 0


def test_new_lora_layers_leave_outputs_unchanged():
    base, lora = build(adapter="parallel").eval(), build(adapter="lora").eval()
    x = torch.randn(1, 3, SIZE, SIZE)
    with torch.no_grad():
        for stage in range(4):
            a, b = base._trunk_stage(x, stage), lora._trunk_stage(x, stage)
            torch.testing.assert_close(a, b)
            x = a


def test_lora_weights_round_trip_without_frozen_trunk(tmp_path):
    from safetensors.torch import load_file

    model = build(adapter="lora")
    with torch.no_grad():
        model.trunk.blocks[0].attn.qkv.lora_b.add_(0.5)
    save_weights(model, tmp_path / "lora.safetensors")
    keys = set(load_file(str(tmp_path / "lora.safetensors")))
    assert any(".lora_b" in k for k in keys) and not any(k.endswith("qkv.weight") for k in keys)
    fresh = build(adapter="lora")
    load_samdaq_weights(fresh, tmp_path / "lora.safetensors")
    torch.testing.assert_close(
        fresh.trunk.blocks[0].attn.qkv.lora_b, model.trunk.blocks[0].attn.qkv.lora_b
    )
    with pytest.raises(CheckpointError, match="adapter: file 'lora', model 'parallel'"):
        load_samdaq_weights(build(), tmp_path / "lora.safetensors")


def test_static_queries_never_change():
    model = build(temporal="static").eval()
    state = model.initial_tensor(1)
    with torch.no_grad():
        for _ in range(2):
            _, new = model.step(torch.randn(1, 3, SIZE, SIZE), torch.rand(1, 1, SIZE, SIZE), state)
            assert torch.equal(new, state)


def test_memory_bank_grows_to_its_size_and_stays():
    model = build(temporal="memory_bank", memory_frames=3).eval()
    bank = model.initial_tensor(2)
    assert bank.shape == (2, 0, 64, SIZE // 16, SIZE // 16)
    sizes = []
    with torch.no_grad():
        for _ in range(5):
            prob, bank = model.step(
                torch.randn(2, 3, SIZE, SIZE), torch.rand(2, 1, SIZE, SIZE), bank
            )
            sizes.append(bank.shape[1])
    assert sizes == [1, 2, 3, 3, 3] and prob.shape == (2, 1, SIZE, SIZE)
    assert torch.isfinite(prob).all()


def test_memory_bank_reads_its_memory():
    model = build(temporal="memory_bank").eval()
    rgb, depth = torch.randn(1, 3, SIZE, SIZE), torch.rand(1, 1, SIZE, SIZE)
    with torch.no_grad():
        first, bank = model.step(rgb, depth, model.initial_tensor(1))
        again, _ = model.step(rgb, depth, bank)
    assert (first - again).abs().max() > 1e-6


def test_reference_format_refused_for_ablations(shared_path):
    path = shared_path("fixtures", "samdaq_parity", "samdaq_tiny_random.pt")
    with pytest.raises(CheckpointError, match="not the serial/qtm ablation"):
        load_samdaq_weights(SamDaq(SamDaqConfig(adapter="serial")), path)
