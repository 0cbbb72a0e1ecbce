"""The runtime layer without ROS: per-stream memory, and frames in / masks out on real frames."""

import numpy as np
import pytest
import torch
from conftest import seeded, tum_rgbd

from rgbd_saliency_ros.model import Preprocessing, SamDaq, SamDaqConfig, StateSpec, StateTensor
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.depth import InvalidDepthError
from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyConfig, SaliencyRuntime
from rgbd_saliency_ros.runtime.stream_memory import ResetCause, StreamMemory

QUERIES = np.ones((8, 64), np.float32)
STATE = {"state": QUERIES}  # a state as SAM-DAQ's spec makes it (the store never looks inside)
SPEC = StateSpec((StateTensor("state", (8, 64)),), norm_bound=10.0)  # STATE's rows: norm 8


def scaled(factor: float) -> dict:
    return {"state": QUERIES * np.float32(factor)}


def test_memory_continues_within_timeout():
    mem = StreamMemory(reset_timeout_s=1.0)
    assert mem.begin("a", 0.0) == (None, ResetCause.NEW_STREAM)
    mem.commit("a", 0.0, STATE)
    state, cause = mem.begin("a", 0.5)
    assert cause is None and np.array_equal(state["state"], QUERIES)
    state["state"][:] = 7  # the store hands out a copy
    assert np.array_equal(mem.begin("a", 0.5)[0]["state"], QUERIES)
    mem.commit("a", 0.5, scaled(2))
    assert np.array_equal(mem.begin("a", 0.6)[0]["state"], QUERIES * 2)


@pytest.mark.parametrize(
    "stamp, cause", [(0.9, ResetCause.BACKWARD_JUMP), (2.6, ResetCause.TIMEOUT)]
)
def test_memory_resets_on_backward_jump_and_gap(stamp, cause):
    mem = StreamMemory(reset_timeout_s=1.5)
    mem.commit("a", 1.0, STATE)
    assert mem.begin("a", stamp) == (None, cause)
    assert mem.resets[cause.value] == 1


def test_memory_same_stamp_is_not_a_reset():
    mem = StreamMemory()
    mem.commit("a", 1.0, STATE)
    assert mem.begin("a", 1.0)[1] is None


def test_memory_reset_on_request_for_one_or_all():
    mem = StreamMemory()
    for sid in ("a", "b"):
        mem.commit(sid, 1.0, STATE)
    assert mem.request_reset("a") == ["a"]
    assert mem.begin("a", 1.1) == (None, ResetCause.REQUEST)
    assert mem.begin("b", 1.1)[1] is None
    assert mem.request_reset("unknown") == []
    assert sorted(mem.request_reset()) == ["a", "b"]
    assert mem.begin("b", 1.2) == (None, ResetCause.REQUEST)
    mem.commit("b", 1.2, STATE)
    assert mem.begin("b", 1.3)[1] is None, "a request resets once"


def test_memory_evicts_idle_and_bounds_streams():
    mem = StreamMemory(evict_after_s=10.0, max_streams=2)
    mem.commit("a", 0.0, STATE)
    mem.commit("b", 5.0, STATE)
    mem.commit("c", 6.0, STATE)  # over max_streams: the least recently updated ("a") goes
    assert mem.streams() == ["b", "c"] and mem.evictions == 1
    mem.begin("c", 16.0)  # "b" has been idle 11 s of stamp time
    assert mem.streams() == ["c"] and mem.evictions == 2


@pytest.fixture(scope="module")
def runtime():
    with seeded(0):
        model = SamDaq(SamDaqConfig(input_size=64))
    return SaliencyRuntime(TorchBackend(model), SaliencyConfig(reset_timeout_s=0.5))


def tum_pair(stream="cam", stamp=0.0):
    rgb, _, metres = tum_rgbd()
    return FramePair(stream, stamp, rgb, metres)


def test_real_frame_in_mask_out_at_frame_size(runtime):
    pair = tum_pair()
    [result] = runtime.run([runtime.prepare(pair)])
    assert result.mask.shape == (480, 640) and result.mask.dtype == np.uint8
    assert set(np.unique(result.mask)) <= {0, 255}
    assert result.probability.shape == (480, 640) and result.probability.dtype == np.float32
    np.testing.assert_array_equal(result.mask == 255, result.probability >= 0.5)
    assert result.reset == ResetCause.NEW_STREAM and result.model_time_s > 0


def test_compiled_backend_leaves_the_callers_model_as_it_was():
    """compile=True compiles a wrapper the backend holds; the caller's module keeps its own
    encode (compiling is lazy: nothing runs here)."""
    model = SamDaq(SamDaqConfig(input_size=64))
    backend = TorchBackend(model, compile=True)
    assert "step_state" not in vars(model)  # no instance attribute shadowing SamDaq's
    assert backend._step is not model.step_state
    assert TorchBackend(model)._step == model.step_state


def test_backends_refuse_shapes_with_the_models_message(runtime):
    backend = runtime.backend
    rgb, depth = np.zeros((1, 3, 64, 64), np.float32), np.zeros((1, 1, 64, 64), np.float32)
    state = backend.initial_state(1)
    with pytest.raises(
        ValueError, match=r"rgb has shape \(1, 3, 32, 32\), expected \(1, 3, 64, 64\)"
    ):
        backend.step(rgb[..., :32, :32], depth, state)
    with pytest.raises(ValueError, match=r"state state has shape \(8, 32\), expected \(8, 64\)"):
        backend.step(rgb, depth, {"state": state["state"][..., :32]})
    with pytest.raises(ValueError, match=r"state has tensors \['bank'\], expected \['state'\]"):
        backend.step(rgb, depth, {"bank": state["state"]})


def test_batched_streams_equal_separate_runtimes():
    with seeded(0):
        backend = TorchBackend(SamDaq(SamDaqConfig(input_size=64)))
    together = SaliencyRuntime(backend)
    alone = SaliencyRuntime(backend)
    base = tum_pair()
    flipped = FramePair("other", 0.0, base.rgb[:, ::-1].copy(), base.depth[:, ::-1].copy())
    for t in range(3):
        a = FramePair("cam", t * 0.1, base.rgb, base.depth)
        b = FramePair("other", t * 0.1, flipped.rgb, flipped.depth)
        ra, rb = together.run([together.prepare(a), together.prepare(b)])
        [sa] = alone.run([alone.prepare(a)])
        np.testing.assert_allclose(ra.probability, sa.probability, rtol=0, atol=1e-5)
        assert not np.allclose(rb.probability, sa.probability, atol=1e-3)


def test_bad_frames_are_refused_with_reasons(runtime):
    pair = tum_pair()
    with pytest.raises(InvalidDepthError):
        runtime.prepare(FramePair("cam", 0.0, pair.rgb, np.full((480, 640), np.nan, np.float32)))
    with pytest.raises(ValueError, match="differ in size"):
        runtime.prepare(FramePair("cam", 0.0, pair.rgb, pair.depth[:240]))
    with pytest.raises(ValueError, match="at most one frame per stream"):
        p = runtime.prepare(pair)
        runtime.run([p, p])


def test_weights_depth_convention_wins_over_the_configured_one():
    backend = TorchBackend(
        SamDaq(SamDaqConfig(input_size=64)), metadata={"depth_conversion": {"max_depth_m": 3.0}}
    )
    rt = SaliencyRuntime(backend, SaliencyConfig())
    assert rt.depth_conversion.max_depth_m == 3.0


def test_memory_timeout_allows_for_slow_steps():
    mem = StreamMemory(reset_timeout_s=1.0)
    mem.commit("a", 0.0, STATE)
    assert mem.begin("a", 5.0, slack_s=6.0)[1] is None
    assert mem.begin("a", 8.0, slack_s=6.0) == (None, ResetCause.TIMEOUT)


def test_memory_reset_requested_during_a_step_is_kept():
    mem = StreamMemory()
    mem.commit("a", 0.0, STATE)
    assert mem.begin("a", 0.1)[1] is None
    mem.request_reset("a")  # e.g. a service call while the worker runs the step
    mem.commit("a", 0.1, STATE)
    assert mem.begin("a", 0.2) == (None, ResetCause.REQUEST)


class _SlowStub:
    """A backend whose every step takes 0.6 s by the runtime's clock (a fake perf_counter)."""

    preprocessing = Preprocessing(64)
    state_spec = SPEC
    metadata: dict = {}

    def initial_state(self, batch):
        return {"state": np.zeros((batch, 8, 64), np.float32)}

    def step(self, rgb, depth, state):
        return np.zeros((rgb.shape[0], 1, 64, 64), np.float32), {"state": state["state"] + 0.1}


@pytest.mark.parametrize(
    "allows_step_time, gap_s, restarts",
    [
        (False, 1.5, True),  # plain timeout (replay): 1.5 s > reset_timeout_s
        (True, 1.5, False),  # the node: 1.5 s < 1.0 + 2 x 0.6 s of step time
        (True, 2.5, True),  # but not without bound
    ],
)
def test_the_timeout_allows_twice_the_step_time_only_when_asked(
    monkeypatch, allows_step_time, gap_s, restarts
):
    import itertools
    import types

    import rgbd_saliency_ros.runtime.saliency as saliency

    ticks = itertools.count(step=0.3)  # two readings per step: 0.6 s a step
    monkeypatch.setattr(saliency, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))
    runtime = SaliencyRuntime(
        _SlowStub(), SaliencyConfig(reset_timeout_s=1.0, timeout_allows_step_time=allows_step_time)
    )
    assert (
        SaliencyConfig().timeout_allows_step_time is False
    )  # replay and predict stay deterministic
    rgb, depth = np.zeros((48, 64, 3), np.uint8), np.full((48, 64), 2.0, np.float32)
    [first] = runtime.run(
        [runtime.prepare(FramePair("cam", 10.0, rgb, depth, depth_is_metric=True))]
    )
    [later] = runtime.run(
        [runtime.prepare(FramePair("cam", 10.0 + gap_s, rgb, depth, depth_is_metric=True))]
    )
    assert first.reset == ResetCause.NEW_STREAM
    assert (later.reset == ResetCause.TIMEOUT) == restarts


# ---------------------------------------------------------------------------------- memory health


@pytest.mark.parametrize(
    "bad",
    [
        scaled(100.0),
        {"state": np.where(np.eye(8, 64) > 0, np.nan, QUERIES)},
        {"state": QUERIES[:4]},  # a state of another shape (a faulty backend)
    ],
)
def test_memory_drops_a_bad_state_and_restarts_the_stream(bad):
    mem = StreamMemory(health=SPEC.health)
    assert mem.commit("a", 0.0, STATE).ok and mem.state_norm("a") == pytest.approx(8.0)
    assert mem.begin("a", 0.1)[1] is None
    assert mem.commit("a", 0.1, bad).ok is False
    assert not mem.state_norm("a") <= 10.0  # reported as it was: beyond the bound, or NaN
    assert mem.begin("a", 0.2) == (None, ResetCause.BAD_STATE)
    assert mem.resets[ResetCause.BAD_STATE.value] == 1
    assert mem.commit("a", 0.2, STATE).ok and mem.begin("a", 0.3)[1] is None


def test_state_health_norm_is_the_longest_row():
    state = np.zeros((8, 64), np.float32)
    state[3, :2] = (3.0, 4.0)
    assert SPEC.health({"state": state}).norm == pytest.approx(5.0)
    state[0, 0] = np.inf
    health = SPEC.health({"state": state})
    assert np.isnan(health.norm) and not health.ok and "non-finite" in health.reason


def test_state_norm_bound_holds_however_the_memory_pushes():
    """The bound comes from the update's structure; here the update is driven with memory features
    far larger than any frame gives, for many steps, from a state already at the bound."""
    with seeded(1), torch.no_grad():
        model = SamDaq(SamDaqConfig(input_size=64))
        norm = model.qtm.update_ffn[1]
        norm.weight.uniform_(-2.0, 2.0)  # a trained-looking LayerNorm, not the identity
        norm.bias.uniform_(-1.0, 1.0)
        bound = model.state_norm_bound()
        spec = model.state_spec()
        state = model.initial_tensor(1)
        state = state / state.norm(dim=-1, keepdim=True) * bound
        largest = 0.0
        for _ in range(200):
            state = model.qtm.update(state, torch.randn(1, 64, 4, 4) * 1e4)
            largest = max(largest, spec.health({"state": state[0].numpy()}).norm)
    assert largest <= bound * 1.0001
    assert largest > 0.3 * bound  # the bound is not vacuous for this update


class CorruptingBackend(TorchBackend):
    """A torch backend whose state goes bad at the ``bad_at``-th step (0-based), as a faulty
    accelerator or a corrupted buffer would make it."""

    def __init__(self, model, bad_at, value):
        super().__init__(model)
        self.calls, self.bad_at, self.value = 0, bad_at, value

    def step(self, rgb, depth, state):
        prob, new_state = super().step(rgb, depth, state)
        self.calls += 1
        if self.calls - 1 == self.bad_at:
            new_state = {n: np.full_like(a, self.value) for n, a in new_state.items()}
        return prob, new_state


@pytest.mark.parametrize("value", [np.nan, 1e6])
def test_runtime_restarts_a_stream_whose_state_went_bad_and_warns_once(value):
    with seeded(0):
        backend = CorruptingBackend(SamDaq(SamDaqConfig(input_size=64)), bad_at=1, value=value)
    rt = SaliencyRuntime(backend, SaliencyConfig(reset_timeout_s=10.0))
    bound = backend.state_spec.norm_bound
    assert np.isfinite(bound) and rt.state_norm_bound == bound
    results = [rt.run([rt.prepare(tum_pair(stamp=0.1 * i))])[0] for i in range(4)]
    assert [r.reset for r in results] == [ResetCause.NEW_STREAM, None, ResetCause.BAD_STATE, None]
    assert results[0].state_norm <= bound and results[3].state_norm <= bound
    assert not results[1].state_norm <= bound
    assert results[1].memory_warning and "bad_state" in results[1].memory_warning
    assert all(r.memory_warning is None for r in results[2:])
    assert rt.memory.resets[ResetCause.BAD_STATE.value] == 1
    backend.bad_at = backend.calls  # bad again: counted again, but not warned again
    rt.run([rt.prepare(tum_pair(stamp=0.4))])
    again = rt.run([rt.prepare(tum_pair(stamp=0.5))])[0]
    assert again.reset is ResetCause.BAD_STATE and again.memory_warning is None
    assert rt.memory.resets[ResetCause.BAD_STATE.value] == 2
