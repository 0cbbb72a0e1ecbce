"""Hostile and broken weights files through every loader entry point: predict, export, replay,
node.

    .venv/bin/python -m pytest -q test/test_hostile_weights.py     # about 50 s on 2 busy cores

Each file is one a careless or hostile user could hand over: empty, a pickle under a safetensors
name, a header length of 2^62, metadata asking for a model of input 32768 or a name of 100 000
characters, a pickle whose payload would write a marker file, ... Every entry point must refuse it
with one line naming the file (the commands: exit status 2; the node: an error of the kind its
``serve`` turns into exit status 1, checked end to end for two files), and no payload may run.
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from conftest import private_domain, private_ros_context, retagged_weights

from rgbd_saliency_ros.evaluation.node_process import private_ros_env
from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.model import CheckpointError
from rgbd_saliency_ros.model.checkpoints import CONFIG_LIMITS, MAX_HEADER_BYTES, MAX_TENSORS

SIZE = 64


class Payload:
    """Unpickling this runs ``code``: what a malicious checkpoint would do."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _config_edit(**fields):
    def change(metadata):
        config = json.loads(metadata["config"])
        config.update(fields)
        metadata["config"] = json.dumps(config)

    return change


def _payload_code(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').write('the payload ran')"


def _write(name: str, folder: Path, good: Path, marker: Path) -> Path:
    """Writes the hostile file ``name`` into ``folder``; returns its path. See HOSTILE."""
    path = folder / name
    if name == "empty.safetensors":
        path.write_bytes(b"")
    elif name == "pickle_named.safetensors":
        torch.save({"w": torch.zeros(2), "x": Payload(_payload_code(marker))}, path)
    elif name == "header_2e62.safetensors":
        path.write_bytes(struct.pack("<Q", 2**62) + b'{"a": 1}' + bytes(64))
    elif name == "header_16MiB.safetensors":
        path.write_bytes(struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{" + bytes(64))
    elif name == "header_not_json.safetensors":
        path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}" + bytes(16))
    elif name == "input_32768.safetensors":
        retagged_weights(good, path, _config_edit(input_size=32768))
    elif name == "queries_1e6.safetensors":
        retagged_weights(good, path, _config_edit(num_video_queries=10**6))
    elif name == "negative_width.safetensors":
        retagged_weights(good, path, _config_edit(adapter_width=-64))
    elif name == "input_size_true.safetensors":
        retagged_weights(good, path, _config_edit(input_size=True))
    elif name == "model_name_100k.safetensors":
        retagged_weights(good, path, _config_edit(backbone="sam2.1_hiera_t" + "x" * 100_000))
    elif name == "config_not_object.safetensors":
        retagged_weights(good, path, lambda m: m.update(config=json.dumps("sam2.1_hiera_t")))
    elif name == "no_config.safetensors":
        retagged_weights(good, path, lambda m: m.pop("config"))
    elif name == "int8_tensors.safetensors":
        tensors = {k: v.to(torch.int8) for k, v in load_file(str(good)).items()}
        from safetensors import safe_open

        with safe_open(str(good), framework="pt") as f:
            save_file(tensors, str(path), metadata=f.metadata())
    elif name == "truncated.safetensors":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) * 2 // 3])
    elif name == "too_many_tensors.safetensors":
        from safetensors import safe_open

        with safe_open(str(good), framework="pt") as f:
            metadata = f.metadata()
        many = {f"t{i}": torch.zeros(1) for i in range(MAX_TENSORS + 1)}
        save_file(many, str(path), metadata=metadata)
    elif name == "payload.pt":
        payload = Payload(_payload_code(marker))
        torch.save({"qtm.video_queries.weight": torch.zeros(8, 64), "x": payload}, path)
    elif name == "zip_garbage.pt":
        path.write_bytes(b"PK\x03\x04" + os.urandom(256))
    elif name == "text.pt":
        path.write_text("these are not weights\n" * 10)
    elif name == "not_tensors.pt":
        torch.save({"a": 1, "b": "two"}, path)
    else:
        raise KeyError(name)
    return path


# file -> a phrase its error must contain (besides the file's name)
HOSTILE = {
    "empty.safetensors": "too short",
    "pickle_named.safetensors": "not a safetensors file",
    "header_2e62.safetensors": f"limit of {MAX_HEADER_BYTES}",
    "header_16MiB.safetensors": f"limit of {MAX_HEADER_BYTES}",
    "header_not_json.safetensors": "not a readable safetensors file",
    "input_32768.safetensors": f"1 to {CONFIG_LIMITS['input_size']}",
    "queries_1e6.safetensors": f"1 to {CONFIG_LIMITS['num_video_queries']}",
    "negative_width.safetensors": "adapter_width",
    "input_size_true.safetensors": "must be an integer",
    "model_name_100k.safetensors": "100014 characters",
    "config_not_object.safetensors": "no model config",
    "no_config.safetensors": "no model config",
    "int8_tensors.safetensors": "not floating-point",
    "truncated.safetensors": "safetensors",
    "too_many_tensors.safetensors": f"limit of {MAX_TENSORS}",
    "payload.pt": "pickled Python objects",
    "zip_garbage.pt": "not a readable PyTorch checkpoint",
    "text.pt": "not a readable PyTorch checkpoint",
    "not_tensors.pt": "not a tensor",
}


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """Good random weights at input 64, every hostile file, one RGB-D frame, a one-pair bag."""
    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.evaluation.bags import BagWriter

    root = tmp_path_factory.mktemp("hostile")
    sam2_ckpt, good = write_random_weights(root, input_size=SIZE)
    marker = root / "PAYLOAD_RAN"
    files = {name: _write(name, root, good, marker) for name in HOSTILE}
    frames = root / "frames"
    for sub in ("rgb", "depth"):
        (frames / sub).mkdir(parents=True)
    gen = np.random.default_rng(0)
    cv2.imwrite(str(frames / "rgb" / "0.png"), gen.integers(0, 256, (48, 64, 3), np.uint8))
    cv2.imwrite(str(frames / "depth" / "0.png"), gen.integers(1, 256, (48, 64), np.uint8))
    bag = root / "bag"
    with BagWriter(bag, "sqlite3") as writer:
        writer.write_image(
            "/camera/color/image_raw",
            10**18,
            gen.integers(0, 256, (48, 64, 3), np.uint8),
            "rgb8",
            "cam",
        )
        writer.write_image(
            "/camera/aligned_depth_to_color/image_raw",
            10**18,
            gen.integers(300, 3000, (48, 64)).astype(np.uint16),
            "16UC1",
            "cam",
        )
    return dict(
        root=root, sam2=sam2_ckpt, good=good, files=files, marker=marker, frames=frames, bag=bag
    )


def _command(rig, entry: str, sam2: Path, weights: Path) -> list[str]:
    model = ["--sam2-checkpoint", str(sam2), "--weights", str(weights)]
    out = str(rig["root"] / f"out_{entry}")
    if entry == "predict":
        return [
            "predict",
            *model,
            "--rgb-dir",
            str(rig["frames"] / "rgb"),
            "--depth-dir",
            str(rig["frames"] / "depth"),
            "--out-dir",
            out,
        ]
    if entry == "export":
        return ["export", *model, "--output", out + ".onnx"]
    return ["replay", *model, "--bag", str(rig["bag"]), "--out", out]


def _assert_one_line_naming(text: str, path: Path, phrase: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got {len(lines)}:\n{text[:2000]}"
    assert str(path) in lines[0] and phrase in lines[0], lines[0]
    assert len(lines[0]) <= 800


# Every file through predict; export and replay load through the same code, so there the .pt
# files that need a model built first (about 2.5 s each here) are represented by the payload alone.
CASES = [("predict", name) for name in sorted(HOSTILE)] + [
    (entry, name)
    for entry in ("export", "replay")
    for name in sorted(HOSTILE)
    if name.endswith(".safetensors") or name == "payload.pt"
]


@pytest.mark.parametrize("entry, name", CASES)
def test_commands_refuse_in_one_line_with_status_2(rig, entry, name, capsys):
    path = rig["files"][name]
    code = cli_main(_command(rig, entry, rig["sam2"], path))
    captured = capsys.readouterr()
    assert code == 2
    assert f"rgbd-saliency {entry}: error:" in captured.err
    _assert_one_line_naming(captured.err, path, HOSTILE[name])
    assert not rig["marker"].exists(), "a pickled payload ran"


@pytest.mark.parametrize("entry", ["predict", "export", "replay"])
def test_a_payload_as_the_sam2_checkpoint_is_refused_too(rig, entry, capsys):
    path = rig["files"]["payload.pt"]
    assert cli_main(_command(rig, entry, path, rig["good"])) == 2
    _assert_one_line_naming(capsys.readouterr().err, path, "pickled Python objects")
    assert not rig["marker"].exists(), "a pickled payload ran"


@pytest.fixture(scope="module")
def ros_context():
    with private_ros_context(private_domain(50)) as context:
        yield context


@pytest.mark.parametrize("name", sorted(HOSTILE) + ["payload.pt as sam2_checkpoint"])
def test_node_refuses_at_start_with_a_startup_error(rig, ros_context, name):
    from rclpy.parameter import Parameter

    from rgbd_saliency_ros.ros.node import STARTUP_ERRORS, SaliencyNode

    sam2, weights = rig["sam2"], rig["files"].get(name)
    if weights is None:
        sam2, weights = rig["files"]["payload.pt"], rig["good"]
    bad = sam2 if weights == rig["good"] else weights
    node = SaliencyNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("sam2_checkpoint", value=str(sam2)),
            Parameter("weights", value=str(weights)),
        ],
    )
    try:
        with pytest.raises(STARTUP_ERRORS) as caught:
            node.start()
    finally:
        node.destroy_node()
    assert isinstance(caught.value.__cause__, CheckpointError)  # the error that names the file
    _assert_one_line_naming(str(caught.value.__cause__), bad, HOSTILE[bad.name])
    assert str(caught.value) == f"cannot load the model: {caught.value.__cause__}"
    assert not rig["marker"].exists(), "a pickled payload ran"


@pytest.mark.parametrize("name", ["empty.safetensors"])
def test_node_process_exits_1_with_one_line(rig, name):
    """End to end: the console script, its exit status and what it prints (no traceback)."""
    path = rig["files"][name]
    env = private_ros_env(private_domain(60))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rgbd_saliency_ros.ros.node",
            "--ros-args",
            "-p",
            f"sam2_checkpoint:={rig['sam2']}",
            "-p",
            f"weights:={path}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Traceback" not in output
    fatal = [line for line in output.splitlines() if "FATAL" in line]
    assert len(fatal) == 1 and str(path) in fatal[0] and HOSTILE[name] in fatal[0], output
