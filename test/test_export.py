"""ONNX export of the step and the ONNX Runtime backend: same answers as torch, state in and out.

The TensorRT backend needs a CUDA GPU and the tensorrt package: its build/run test skips without
them; its engine cache key is checked everywhere.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import seeded

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import SamDaq, SamDaqConfig
from rgbd_saliency_ros.runtime.backends import create_backend
from rgbd_saliency_ros.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from rgbd_saliency_ros.runtime.backends.tensorrt_backend import engine_cache_key
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
from rgbd_saliency_ros.runtime.depth import read_relative_depth_png
from rgbd_saliency_ros.runtime.export import export_onnx, read_onnx_metadata
from rgbd_saliency_ros.runtime.saliency import model_inputs
from rgbd_saliency_ros.runtime.sequence import read_rgb

SIZE = 64
# ONNX Runtime against torch (input 64, 3 steps) and against the reference (the fixture at 1024):
# measured at most 2.4e-7 (probability) and 1.2e-6 (state) on the project's CPU machine (the
# tests print theirs with -s); 1e-4, test_parity's tolerance for torch, leaves a margin of 80.
TOL = 1e-4


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A random model at input 64, its export, and both backends on it."""
    with seeded(0):
        model = SamDaq(SamDaqConfig(input_size=SIZE)).eval()
    path = export_onnx(
        model,
        tmp_path_factory.mktemp("onnx") / "step.onnx",
        {"depth_conversion": {"max_depth_m": 4.0}},
        max_batch=4,
        progress=False,
    )
    return model, path, TorchBackend(model), OnnxRuntimeBackend(path)


def random_frames(batch, seed):
    g = np.random.default_rng(seed)
    return (
        g.standard_normal((batch, 3, SIZE, SIZE), dtype=np.float32),
        g.random((batch, 1, SIZE, SIZE), dtype=np.float32),
    )


def test_metadata_lets_the_runtime_rebuild_itself(small):
    model, path, _, ort_backend = small
    meta = read_onnx_metadata(path)
    assert meta["model"] == "samdaq" and meta["config"] == model.config
    assert meta["preprocessing"] == model.preprocessing()
    np.testing.assert_array_equal(
        meta["initial_state"]["state"], model.initial_tensor(1)[0].detach().numpy()
    )
    assert ort_backend.metadata["depth_conversion"] == {"max_depth_m": 4.0}
    assert len(meta["weights_sha256"]) == 64 and meta["max_batch"] == "4"
    # The state's description, with the memory guard's bound, travels with the file.
    assert meta["state_spec"] == model.state_spec() == ort_backend.state_spec
    assert ort_backend.state_spec.norm_bound == pytest.approx(model.state_norm_bound(), rel=1e-6)


def test_onnxruntime_equals_torch_over_a_sequence(small):
    _, _, torch_backend, ort_backend = small
    s_t, s_o = torch_backend.initial_state(2), ort_backend.initial_state(2)
    np.testing.assert_array_equal(s_t["state"], s_o["state"])
    worst = np.zeros(2)  # largest |ORT - torch|: probability, state
    for t in range(3):
        rgb, depth = random_frames(2, t)
        p_t, s_t = torch_backend.step(rgb, depth, s_t)
        p_o, s_o = ort_backend.step(rgb, depth, s_o)
        worst = np.maximum(
            worst, [np.abs(p_o - p_t).max(), np.abs(s_o["state"] - s_t["state"]).max()]
        )
    print(
        f"ONNX Runtime vs torch at input {SIZE}: probability {worst[0]:.1e}, state {worst[1]:.1e}"
    )
    assert worst.max() <= TOL, worst


def test_onnxruntime_batch_of_three_equals_three_single_runs(small):
    _, _, _, ort_backend = small
    rgb, depth = random_frames(3, 7)
    queries = ort_backend.initial_state(3)["state"] + np.random.default_rng(1).normal(
        0, 0.1, (3, 8, 64)
    ).astype(np.float32)
    prob, new_state = ort_backend.step(rgb, depth, {"state": queries})
    for i in range(3):
        p, s = ort_backend.step(rgb[i : i + 1], depth[i : i + 1], {"state": queries[i : i + 1]})
        np.testing.assert_allclose(prob[i : i + 1], p, rtol=0, atol=1e-5)
        np.testing.assert_allclose(new_state["state"][i : i + 1], s["state"], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="exceeds the exported maximum 4"):
        ort_backend.step(*random_frames(5, 0), ort_backend.initial_state(5))


def test_int8_calibration_sees_the_states_a_stream_carries(small, tmp_path):
    """Each calibration input holds the state the stream carries into that frame (through
    SaliencyRuntime on ONNX Runtime), not only the initial one: int8 ranges must cover both."""
    from conftest import small_ssd

    from rgbd_saliency_ros.runtime.backends.tensorrt_backend import calibration_batches

    _, path, _, ort_backend = small
    folder = small_ssd(tmp_path / "ssd")
    batches = list(calibration_batches(folder / "rgb", folder / "depth", path))
    assert len(batches) == 3 and all(set(b) == {"rgb", "depth", "state"} for b in batches)
    state = ort_backend.initial_state(1)
    for batch in batches:
        assert batch["rgb"].shape == (1, 3, SIZE, SIZE) and batch["state"].shape == (1, 8, 64)
        np.testing.assert_allclose(batch["state"], state["state"], rtol=0, atol=1e-6)
        _, state = ort_backend.step(batch["rgb"], batch["depth"], {"state": batch["state"]})
    assert np.abs(batches[2]["state"] - batches[0]["state"]).max() > 1e-3


def test_not_an_export_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ValueError, match="junk.onnx"):
        OnnxRuntimeBackend(junk)
    with pytest.raises(ValueError, match="needs an exported ONNX file"):
        create_backend("onnxruntime")


def test_engine_cache_key_changes_with_every_field():
    base = dict(
        gpu_name="NVIDIA H100",
        compute_capability=(9, 0),
        trt_version="10.9.0",
        precision="float16",
        input_size=1024,
        batch_range=(1, 1, 4),
        weights_sha256="a" * 64,
    )
    key = engine_cache_key(**base)
    assert key == engine_cache_key(**base)
    changes = dict(
        gpu_name="NVIDIA Orin",
        compute_capability=(8, 7),
        trt_version="10.3.0",
        precision="int8",
        input_size=512,
        batch_range=(1, 2, 4),
        weights_sha256="b" * 64,
    )
    for field, value in changes.items():
        assert engine_cache_key(**{**base, field: value}) != key, field


def test_int8_engine_from_the_cache_needs_no_calibration_frames(tmp_path, monkeypatch):
    """What a CPU machine can check of int8: the runtime (node, predict) finds the engine that
    `export --precision int8 --calibration-dir` built, and says how to build a missing one."""
    import json
    import sys
    import types

    import onnx

    from rgbd_saliency_ros.runtime.backends import tensorrt_backend
    from rgbd_saliency_ros.runtime.export import FORMAT_NAME

    config = SamDaqConfig(backbone="sam2.1_hiera_t", input_size=64)
    model = onnx.helper.make_model(onnx.helper.make_graph([], "step", [], []))
    for key, value in {
        "format": FORMAT_NAME,
        "config": json.dumps(config.to_dict()),
        "max_batch": "4",
        "initial_state": json.dumps(np.zeros((8, 64)).tolist()),
        "weights_sha256": "ab" * 32,
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_path = tmp_path / "step.onnx"
    onnx.save_model(model, str(onnx_path))
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.9.0"))
    monkeypatch.setattr(tensorrt_backend, "_device_fields", lambda device: ("Orin", (8, 7), 0))
    cache = tmp_path / "engines"

    with pytest.raises(ValueError, match="--precision int8 --calibration-dir DIR --opt-batch 1"):
        tensorrt_backend.build_engine(onnx_path, "cuda", "int8", cache_dir=cache)
    key = engine_cache_key("Orin", (8, 7), "10.9.0", "int8", 64, (1, 1, 4), "ab" * 32)
    cache.mkdir()
    (cache / f"{key}.engine").write_bytes(b"built by export with calibration frames")
    assert (
        tensorrt_backend.build_engine(onnx_path, "cuda", "int8", cache_dir=cache)
        == cache / f"{key}.engine"
    )


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="TensorRT backend needs a CUDA GPU; none is visible"
)
@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is None, reason="the tensorrt package is not installed"
)
def test_tensorrt_float32_matches_onnxruntime(small, tmp_path):
    from rgbd_saliency_ros.runtime.backends.tensorrt_backend import TensorRTBackend

    _, path, _, ort_backend = small
    trt_backend = TensorRTBackend(path, "cuda", "float32", cache_dir=tmp_path)
    rgb, depth = random_frames(2, 3)
    state = ort_backend.initial_state(2)
    p_o, s_o = ort_backend.step(rgb, depth, state)
    p_t, s_t = trt_backend.step(rgb, depth, state)
    np.testing.assert_allclose(p_t, p_o, rtol=0, atol=1e-3)
    np.testing.assert_allclose(s_t["state"], s_o["state"], rtol=0, atol=1e-3)
    assert len(list(tmp_path.glob("*.engine"))) == 1
    TensorRTBackend(path, "cuda", "float32", cache_dir=tmp_path)  # reuses the cached engine
    assert len(list(tmp_path.glob("*.engine"))) == 1


# ------------------------------------------------------------ the reference fixture, at 1024


@pytest.fixture(scope="module")
def fixture_export(tmp_path_factory):
    from conftest import find_shared

    fixture = find_shared("fixtures", "samdaq_parity")
    out = tmp_path_factory.mktemp("fixture_onnx") / "step.onnx"
    code = cli_main(
        [
            "export",
            "--format",
            "onnx",
            "--sam2-checkpoint",
            str(fixture / "sam2.1_hiera_tiny_random.pt"),
            "--weights",
            str(fixture / "samdaq_tiny_random.pt"),
            "--output",
            str(out),
            "--max-batch",
            "2",
        ]
    )
    assert code == 0
    return fixture, out


@pytest.mark.slow  # exports the fixture at 1024 (about a minute on 2 cores)
def test_onnxruntime_matches_reference_on_all_fixture_frames(fixture_export):
    fixture, path = fixture_export
    expected = np.load(fixture / "expected.npz")
    backend = OnnxRuntimeBackend(path)
    state = backend.initial_state(1)
    worst = np.zeros(2)  # largest |ORT - reference|: probability, video queries
    for i in range(3):
        rgb, depth = model_inputs(
            read_rgb(fixture / f"rgb_{i}.png"),
            read_relative_depth_png(fixture / f"depth_{i}.png"),
            backend.preprocessing,
        )
        prob, state = backend.step(rgb[None], depth[None], state)
        worst = np.maximum(
            worst,
            [
                np.abs(prob[0, 0] - expected["prob"][i]).max(),
                np.abs(state["state"][0] - expected["video_queries"][i]).max(),
            ],
        )
    print(f"ONNX Runtime vs reference at 1024: probability {worst[0]:.1e}, state {worst[1]:.1e}")
    assert worst.max() <= TOL, worst


@pytest.mark.slow
def test_predict_with_onnxruntime_backend(fixture_export, tmp_path):
    fixture, path = fixture_export
    expected = np.load(fixture / "expected.npz")
    for sub in ("rgb", "depth"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "f0.png").symlink_to(fixture / f"{sub}_0.png")
    code = cli_main(
        [
            "predict",
            "--backend",
            "onnxruntime",
            "--engine",
            str(path),
            "--rgb-dir",
            str(tmp_path / "rgb"),
            "--depth-dir",
            str(tmp_path / "depth"),
            "--out-dir",
            str(tmp_path / "out"),
            "--probabilities",
        ]
    )
    assert code == 0
    np.testing.assert_allclose(
        np.load(tmp_path / "out" / "f0.npy"), expected["prob"][0], rtol=0, atol=TOL
    )
    assert Path(tmp_path / "out" / "f0.png").is_file()
