"""Export of the SAM-DAQ step to ONNX: the state is an input and an output, the batch is dynamic.

    rgbd-saliency export --format onnx --sam2-checkpoint S.pt --weights W --output step.onnx

The file carries what a runtime needs to rebuild itself from it alone (in ``metadata_props``):
the model config, the depth convention of the weights, the initial state, and a hash of the
weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..model import SamDaq
from ..model.checkpoints import stored_config

INPUT_NAMES = ("rgb", "depth", "state")
OUTPUT_NAMES = ("prob", "new_state")
FORMAT_NAME = "rgbd_saliency_ros.samdaq.step"
DEFAULT_MAX_BATCH = 16


def weights_sha256(model: SamDaq) -> str:
    """sha256 over the names and values of every parameter and buffer (frozen parts included)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(
    model: SamDaq,
    path: str | os.PathLike,
    weights_metadata: dict | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    progress: bool = True,
) -> Path:
    """Writes ``model.step`` as ONNX with inputs (rgb, depth, state) and outputs (prob, new_state).

    ``weights_metadata``: the weights file's metadata; its ``depth_conversion`` travels with the
    export. Batch sizes 1..``max_batch`` are accepted by the exported graph.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    cfg = model.config
    s = cfg.input_size
    # Example inputs of batch 2: a batch of 1 would let the exporter specialise the batch to 1.
    example = (
        torch.zeros(2, 3, s, s),
        torch.zeros(2, 1, s, s),
        model.initial_state(2).detach(),
    )
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with tqdm(total=3, desc="export onnx", unit="stage", disable=not progress) as bar:
        bar.set_postfix_str("tracing the step")
        with torch.no_grad():
            program = torch.export.export(
                model, example, dynamic_shapes={n: {0: batch} for n in INPUT_NAMES}, strict=False
            )
        bar.update()
        bar.set_postfix_str("translating to ONNX")
        onnx_program = torch.onnx.export(
            program,
            example,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamo=True,
        )
        bar.update()
        bar.set_postfix_str("writing")
        proto = onnx_program.model_proto
        del proto.metadata_props[:]
        for key, value in _metadata(model, weights_metadata, max_batch).items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save_model(proto, str(path))
        bar.update()
    return path


def _metadata(model: SamDaq, weights_metadata: dict | None, max_batch: int) -> dict[str, str]:
    """What an exported file carries for the runtime to rebuild itself from (strings)."""
    metadata = {
        "format": FORMAT_NAME,
        "config": json.dumps(model.config.to_dict()),
        "initial_state": json.dumps(model.initial_state(1)[0].detach().cpu().numpy().tolist()),
        "weights_sha256": weights_sha256(model),
        "max_batch": str(max_batch),
        "torch_version": torch.__version__,
        "state_norm_bound": repr(model.state_norm_bound()),
    }
    if weights_metadata and "depth_conversion" in weights_metadata:
        metadata["depth_conversion"] = json.dumps(weights_metadata["depth_conversion"])
    return metadata


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """The metadata of an exported step: ``config`` (SamDaqConfig), ``initial_state`` ((Q, D)
    float32 array), ``depth_conversion`` (dict, when the weights had one), and the rest as
    strings."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as e:  # onnx raises protobuf DecodeError and others for damaged files
        raise ValueError(f"{path}: not a readable ONNX file ({e})") from None
    raw = {p.key: p.value for p in proto.metadata_props}
    if raw.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{path}: not a SAM-DAQ step exported by rgbd-saliency export "
            f"(format={raw.get('format')!r})"
        )
    out: dict = dict(raw)
    try:
        out["config"] = stored_config(path, {"config": json.loads(raw.get("config", "null"))})
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: the model config in its metadata is not JSON ({e})") from None
    out["initial_state"] = np.asarray(json.loads(raw["initial_state"]), dtype=np.float32)
    if "depth_conversion" in raw:
        out["depth_conversion"] = json.loads(raw["depth_conversion"])
    if "state_norm_bound" in raw:  # absent from files exported before it existed
        out["state_norm_bound"] = float(raw["state_norm_bound"])
    return out
