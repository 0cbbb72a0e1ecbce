"""Export of a model's step to ONNX: the state tensors are inputs and outputs, the batch is
dynamic.

    rgbd-saliency export --format onnx --sam2-checkpoint S.pt --weights W --output step.onnx

Inputs ``rgb``, ``depth`` and each state tensor of the model's ``state_spec`` (SAM-DAQ's:
``state``); outputs ``prob`` and ``new_<name>`` for each. Only models whose state has a fixed shape
export (a growing memory bank would need a shape per length). The file carries what a runtime
needs to rebuild itself from it alone (in ``metadata_props``): the model's name and config, its
preprocessing and state description, the depth convention of the weights, the initial state, and
a hash of the weights.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..model.base import SaliencyModel
from ..model.checkpoints import stored_config, stored_model
from ..model.contract import Preprocessing, StateSpec

FRAME_INPUTS = ("rgb", "depth")
# The name is older than the plug-ins (files of every model use it); "model" names the plug-in.
FORMAT_NAME = "rgbd_saliency_ros.samdaq.step"
DEFAULT_MAX_BATCH = 16


def input_names(spec: StateSpec) -> list[str]:
    """The exported step's inputs: the frames, then each state tensor."""
    return [*FRAME_INPUTS, *spec.names]


def output_names(spec: StateSpec) -> list[str]:
    """The exported step's outputs: the probability, then each new state tensor."""
    return ["prob", *(f"new_{n}" for n in spec.names)]


def weights_sha256(model: SaliencyModel) -> str:
    """sha256 over the names and values of every parameter and buffer (frozen parts included)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(
    model: SaliencyModel,
    path: str | os.PathLike,
    weights_metadata: dict | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    progress: bool = True,
) -> Path:
    """Writes the model's step as ONNX (inputs and outputs: see the module docstring).

    ``weights_metadata``: the weights file's metadata; its ``depth_conversion`` travels with the
    export. Batch sizes 1..``max_batch`` are accepted by the exported graph. Raises ValueError for
    a model whose state grows.
    """
    import onnx

    model = model.eval()
    spec = model.state_spec()
    if spec.growing:
        raise ValueError(
            f"model {model.name} has a state that grows with the stream "
            f"({', '.join(t.name for t in spec.tensors if t.growing_axis is not None)}): "
            "its step does not export to a fixed-shape graph; run it with --backend torch"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s = model.preprocessing().input_size
    # Example inputs of batch 2: a batch of 1 would let the exporter specialise the batch to 1.
    example = (
        torch.zeros(2, 3, s, s),
        torch.zeros(2, 1, s, s),
        *(t.detach() for t in model.initial_state(2).values()),
    )
    names_in, names_out = input_names(spec), output_names(spec)
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    with tqdm(total=3, desc="export onnx", unit="stage", disable=not progress) as bar:
        bar.set_postfix_str("tracing the step")
        with torch.no_grad():
            program = torch.export.export(
                model.export_step(),
                example,
                # the state tensors are the step's *state: one tuple of shapes
                dynamic_shapes=({0: batch}, {0: batch}, tuple({0: batch} for _ in spec.names)),
                strict=False,
            )
        bar.update()
        bar.set_postfix_str("translating to ONNX")
        onnx_program = torch.onnx.export(
            program,
            example,
            input_names=names_in,
            output_names=names_out,
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


def _metadata(
    model: SaliencyModel, weights_metadata: dict | None, max_batch: int
) -> dict[str, str]:
    """What an exported file carries for the runtime to rebuild itself from (strings)."""
    initial = {n: t[0].detach().cpu().numpy().tolist() for n, t in model.initial_state(1).items()}
    metadata = {
        "format": FORMAT_NAME,
        "model": model.name,
        "config": json.dumps(model.config.to_dict()),
        "preprocessing": json.dumps(dataclasses.asdict(model.preprocessing())),
        "state_spec": json.dumps(model.state_spec().to_dict()),
        "initial_state": json.dumps(initial),
        "weights_sha256": weights_sha256(model),
        "max_batch": str(max_batch),
        "torch_version": torch.__version__,
    }
    if weights_metadata and "depth_conversion" in weights_metadata:
        metadata["depth_conversion"] = json.dumps(weights_metadata["depth_conversion"])
    return metadata


def read_onnx_metadata(path: str | os.PathLike) -> dict:
    """The metadata of an exported step: ``model`` (name), ``config`` (the plug-in's config),
    ``preprocessing`` (Preprocessing), ``state_spec`` (StateSpec), ``initial_state`` ({name:
    float32 array} of one stream), ``depth_conversion`` (dict, when the weights had one), and the
    rest as strings. Files exported before plug-ins (SAM-DAQ's, one ``state`` tensor, the bound as
    ``state_norm_bound``) read the same."""
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
        entries = {"config": json.loads(raw.get("config", "null"))}
        if "model" in raw:
            entries["model"] = raw["model"]
        cls = stored_model(path, entries)
        out["model"] = cls.name
        out["config"] = stored_config(path, entries)
        initial = json.loads(raw["initial_state"])
        if "state_spec" in raw:
            out["preprocessing"] = Preprocessing.from_dict(json.loads(raw["preprocessing"]))
            out["state_spec"] = StateSpec.from_dict(json.loads(raw["state_spec"]))
        else:  # before plug-ins: SAM-DAQ, the queries as one list, the bound apart
            bound = float(raw.get("state_norm_bound", "inf"))
            out["preprocessing"], out["state_spec"] = cls.describe(out["config"], bound)
            initial = {"state": initial}
        out["initial_state"] = {n: np.asarray(v, dtype=np.float32) for n, v in initial.items()}
        if "depth_conversion" in raw:
            out["depth_conversion"] = json.loads(raw["depth_conversion"])
    except (KeyError, TypeError, ValueError) as e:  # json's errors are ValueErrors
        raise ValueError(f"{path}: damaged metadata ({type(e).__name__}: {e})") from None
    return out
