"""The model seam: a plug-in defined in test/ alone (``plugin_model.DepthEcho``, a state that grows
each frame) runs through every frames-in, masks-out path with no package file changed for it;
SAM-DAQ's memory-bank baseline (a growing bank) runs several streams; unknown names are refused.

    .venv/bin/python -m pytest -q test/test_plugin_seam.py

The node over real rclpy is in test_ros_plugin.py.
"""

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import retagged_weights, seeded, small_ssd, tum_rgbd
from plugin_model import DepthEcho, EchoConfig

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import (
    CheckpointError,
    SamDaq,
    SamDaqConfig,
    model_names,
    register_model,
    save_weights,
)
from rgbd_saliency_ros.runtime.backends import create_backend
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.export import export_onnx
from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime
from rgbd_saliency_ros.runtime.sequence import read_frame

register_model(DepthEcho)


@pytest.fixture(scope="module")
def echo():
    with seeded(3):
        return DepthEcho(EchoConfig(input_size=64, max_frames=4)).eval()


@pytest.fixture(scope="module")
def echo_weights(echo, tmp_path_factory):
    path = tmp_path_factory.mktemp("echo") / "echo.safetensors"
    save_weights(echo, path)
    return path


def frames(n: int = 5):
    """n different real frames: TUM RGB-D's, shifted a little more each time."""
    rgb, _, metres = tum_rgbd()
    return [(np.roll(rgb, 9 * i, axis=1), np.roll(metres, 9 * i, axis=1)) for i in range(n)]


def run_streams(backend, schedule):
    """``schedule``: per step, the streams that get a frame (frame i of the step i). Returns
    {stream: [probability...]} and the runtime."""
    runtime = SaliencyRuntime(backend)
    seq, out = frames(len(schedule)), {}
    for i, streams in enumerate(schedule):
        rgb, depth = seq[i]
        prepared = [runtime.prepare(FramePair(s, 0.1 * i, rgb, depth)) for s in streams]
        for r in runtime.run(prepared):
            out.setdefault(r.stream_id, []).append(r)
    return out, runtime


# Streams joining at different steps: their states differ in length, then all reach the cap.
SCHEDULE = [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c"], ["b", "c"]]


def solo(backend, stream):
    """The same frames for ``stream`` alone (one runtime, one stream)."""
    return run_streams(backend, [[stream] if stream in s else [] for s in SCHEDULE])[0][stream]


def test_a_plugin_with_a_growing_state_runs_three_streams(echo):
    backend = TorchBackend(echo)
    together, runtime = run_streams(backend, SCHEDULE)
    for stream in "abc":
        alone = solo(backend, stream)
        assert len(together[stream]) == len(alone) >= 4
        for t, s in zip(together[stream], alone):
            np.testing.assert_allclose(t.probability, s.probability, rtol=0, atol=1e-6)
            assert t.mask.shape == (480, 640) and t.state_norm <= 2**0.5
    # each stream's history grew by a row a frame, up to max_frames
    seen = {"a": 5, "b": 5, "c": 4}
    for stream, count in seen.items():
        state = runtime.memory.peek(stream)
        assert state["history"].shape == (min(count, 4), 2)
    # the memory matters: the same frame from a fresh state gives another answer
    fresh = run_streams(backend, [["z"]])[0]["z"][0]
    assert not np.allclose(fresh.probability, together["a"][1].probability, atol=1e-4)


def test_samdaq_memory_bank_runs_several_streams():
    with seeded(0):
        model = SamDaq(SamDaqConfig(input_size=64, temporal="memory_bank", memory_frames=2))
    backend = TorchBackend(model.eval())
    assert backend.state_spec.growing
    together, runtime = run_streams(backend, SCHEDULE)
    for stream in "abc":
        for t, s in zip(together[stream], solo(backend, stream)):
            np.testing.assert_allclose(t.probability, s.probability, rtol=0, atol=1e-5)
    assert runtime.memory.peek("a")["bank"].shape == (2, 64, 4, 4)


def test_predict_runs_the_plugin_from_its_weights_alone(echo, echo_weights, tmp_path):
    data = small_ssd(tmp_path / "ssd")
    code = cli_main(
        [
            "predict",
            "--weights",
            str(echo_weights),
            "--rgb-dir",
            str(data / "rgb"),
            "--depth-dir",
            str(data / "depth"),
            "--out-dir",
            str(tmp_path / "out"),
            "--probabilities",
        ]
    )
    assert code == 0
    names = sorted(p.stem for p in (data / "rgb").iterdir())
    state = echo.initial_state(1)
    for name in names:
        rgb, depth01 = read_frame(data / "rgb" / f"{name}.png", data / "depth" / f"{name}.png")
        prepared = SaliencyRuntime(TorchBackend(echo)).prepare(
            FramePair("x", 0.0, rgb, depth01, False)
        )
        with torch.no_grad():
            prob, state = echo.step_state(
                torch.from_numpy(prepared.rgb)[None], torch.from_numpy(prepared.depth)[None], state
            )
        written = np.load(tmp_path / "out" / f"{name}.npy")
        np.testing.assert_allclose(written, prob[0, 0].numpy(), rtol=0, atol=1e-6)
        mask = cv2.imread(str(tmp_path / "out" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        assert mask.shape == rgb.shape[:2] and set(np.unique(mask)) <= {0, 255}


def test_offline_replay_runs_the_plugin(echo_weights, tmp_path):
    data = small_ssd(tmp_path / "ssd")
    bag = tmp_path / "bag"
    assert (
        cli_main(
            [
                "make-bag",
                "--rgb-dir",
                str(data / "rgb"),
                "--depth-dir",
                str(data / "depth"),
                "--gt-dir",
                str(data / "gt"),
                "--out",
                str(bag),
            ]
        )
        == 0
    )
    out = tmp_path / "replay"
    code = cli_main(
        ["replay", "--bag", str(bag), "--out", str(out), "--weights", str(echo_weights)]
        + ["--no-video"]
    )
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["info"]["model"] == "depth_echo_test" and metrics["processed"] >= 2
    assert len((out / "frames.csv").read_text().splitlines()) == 1 + len(list(data.glob("rgb/*")))
    assert 0.0 <= metrics["Smeasure"] <= 1.0


def test_growing_states_do_not_export(echo, tmp_path):
    with pytest.raises(ValueError, match="grows with the stream.*history.*--backend torch"):
        export_onnx(echo, tmp_path / "echo.onnx", progress=False)


def test_samdaq_weights_still_need_their_backbone(tmp_path):
    from rgbd_saliency_ros.model.random_weights import write_random_weights

    _, weights = write_random_weights(tmp_path, input_size=64)
    with pytest.raises(ValueError, match="samdaq also needs Meta's SAM2.1 checkpoint"):
        create_backend("torch", weights=str(weights))


def test_an_unknown_model_name_is_refused_naming_the_file_and_the_known_ones(
    echo_weights, tmp_path
):
    path = tmp_path / "unknown.safetensors"
    retagged_weights(echo_weights, path, lambda m: m.update(model="nobody"))
    with pytest.raises(CheckpointError) as error:
        create_backend("torch", weights=str(path))
    message = str(error.value)
    assert str(path) in message and "'nobody'" in message and "\n" not in message
    assert all(name in message for name in model_names())
    assert {"samdaq", "depth_echo_test"} <= set(model_names())
