"""Loading and saving SAM-DAQ weights, safely (no pickled code is ever run).

Three formats:

- Meta's SAM2.1 checkpoints (``{"model": state_dict}`` of ``SAM2Base``): the frozen backbone and
  the starting point of the fine-tuned decoder and memory encoder. ``load_sam2_checkpoint``.
- The reference SAM-DAQ checkpoints (a plain ``state_dict`` of its model without the frozen SAM2
  parts, its own key names). ``load_samdaq_weights`` detects and maps them.
- This project's format: safetensors with only the trained parameters and the model
  configuration (and the depth convention) in its metadata. ``save_weights`` / ``load_samdaq_weights``.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .config import SamDaqConfig
from .samdaq import SamDaq, is_trained_key

FORMAT_NAME = "rgbd_saliency_ros.samdaq"
FORMAT_VERSION = "1"


class CheckpointError(RuntimeError):
    """A weights file that cannot be loaded; the message names the file and what is wrong."""


# --------------------------------------------------------------------------------- raw reading


def _torch_load(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused: the file holds pickled Python objects, not only tensors "
            f"(loading it could run arbitrary code). Details: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({e})") from None


def is_safetensors(path: Path) -> bool:
    """True if ``path`` starts like a safetensors file (8-byte header length, then a JSON object)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return head[8:9] == b"{" and 0 < n < os.path.getsize(path)


def _load_into(model: SamDaq, path: Path, weights: dict[str, torch.Tensor], required: set[str]) -> None:
    """Copies ``weights`` into ``model``: every key must exist with the same shape, and every key
    in ``required`` must be given."""
    own = model.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise CheckpointError(f"{path}: unexpected keys for this model: {_first(unknown)}")
    missing = sorted(required - set(weights))
    if missing:
        raise CheckpointError(f"{path}: missing keys: {_first(missing)}")
    for k, v in weights.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{path}: shape mismatch for {k}: file has {tuple(v.shape)}, model ({model.config.backbone}, "
                f"input {model.config.input_size}) needs {tuple(own[k].shape)}"
            )
    with torch.no_grad():
        for k, v in weights.items():
            own[k].copy_(v)


def _first(keys: list[str], n: int = 8) -> str:
    """A readable list: all keys if few, else the modules they belong to and the first few."""
    if len(keys) <= n:
        return ", ".join(keys)
    groups = sorted({k.split(".")[0] for k in keys})
    return f"{len(keys)} keys under {', '.join(groups)}; first: {', '.join(keys[:n])}"


# ------------------------------------------------------------------------------------ SAM2.1

# SAM2Base prefixes -> this model's; the other SAM2 parameters drive SAM2's own video memory,
# which SAM-DAQ replaces, so they are skipped.
_SAM2_PREFIXES = {
    "image_encoder.trunk.": "trunk.",
    "image_encoder.neck.": "neck.",
    "sam_prompt_encoder.": "prompt_encoder.",
    "sam_mask_decoder.": "mask_decoder.",
    "memory_encoder.": "memory_encoder.",
    "no_mem_embed": "no_mem_embed",
}
# Loaded only into the memory-bank baseline, which keeps SAM2's own video memory.
_SAM2_MEMORY_BANK = {"memory_attention.": "memory_attention.", "maskmem_tpos_enc": "maskmem_tpos_enc"}
_SAM2_UNUSED = (
    "no_mem_pos_enc",
    "no_obj_ptr",
    "no_obj_embed_spatial",
    "mask_downsample.",
    "obj_ptr_proj.",
    "obj_ptr_tpos_proj.",
)


def _map_prefixes(key: str, table: dict[str, str]) -> str | None:
    for src in sorted(table, key=len, reverse=True):
        if key.startswith(src):
            return table[src] + key[len(src) :]
    return None


def load_sam2_checkpoint(model: SamDaq, path: str | os.PathLike) -> None:
    """Loads Meta's SAM2.1 checkpoint into the SAM2 parts of ``model`` (all of them, strictly)."""
    path = Path(path)
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path}: not a SAM2 checkpoint (expected a dict with a 'model' state_dict)")
    table = dict(_SAM2_PREFIXES)
    skipped = _SAM2_UNUSED
    if model.config.temporal == "memory_bank":
        table.update(_SAM2_MEMORY_BANK)
    else:
        skipped = skipped + tuple(_SAM2_MEMORY_BANK)
    weights, unknown = {}, []
    for k, v in ckpt["model"].items():
        mapped = _map_prefixes(k, table)
        if mapped is not None:
            weights[mapped] = v
        elif not k.startswith(skipped):
            unknown.append(k)
    if unknown:
        raise CheckpointError(f"{path}: keys that SAM2.1 ({model.config.backbone}) does not have: {_first(unknown)}")
    own_prefixes = {v: v for v in table.values()}
    required = {k for k in model.state_dict() if _map_prefixes(k, own_prefixes) and ".lora_" not in k}
    try:
        _load_into(model, path, weights, required)
    except CheckpointError as e:
        raise CheckpointError(f"{e} (the model is {model.config.backbone}: is the file for another SAM2.1 size?)") from None


# ---------------------------------------------------------------------------- reference format

# The reference's module names (misspellings included) -> this model's.
_REFERENCE_PREFIXES = {
    "encoder_adapter0.": "depth_projector.",
    "encoder_adapter0_.": "depth_stem_skip.",
    "encoder_adapter1.fc_up.": "adapters.0.conv_in.",
    "encoder_adapter1.fc_down.": "adapters.0.conv_out.",
    "encoder_adapter2.fc_up.": "adapters.1.conv_in.",
    "encoder_adapter2.fc_down.": "adapters.1.conv_out.",
    "encoder_adapter3.fc_up.": "adapters.2.conv_in.",
    "encoder_adapter3.fc_down.": "adapters.2.conv_out.",
    "encoder_adapter4.fc_up.": "adapters.3.conv_in.",
    "encoder_adapter4.fc_down.": "adapters.3.conv_out.",
    "mixer2.": "self_inference_head.",
    "frame_queries.": "qtm.frame_queries.",
    "frame_queires_embed.decoder_norm.": "qtm.frame_query_mlp.norm.",
    "frame_queires_embed.mask_embed.": "qtm.frame_query_mlp.",
    "frame2video_embed.0.": "qtm.frame_maps_proj.",
    "video_queries.": "qtm.video_queries.",
    "video_queires_embed.decoder_norm.": "qtm.video_query_mlp.norm.",
    "video_queires_embed.mask_embed.": "qtm.video_query_mlp.",
    "video_cross_attention.linear_": "qtm.read_attention.",
    "transformer_cross_attention.linear_": "qtm.update_cross_attention.",
    "transformer_self_attention.linear_": "qtm.update_self_attention.",
    "transformer_ffn.": "qtm.update_ffn.",
    "memory_proj.": "qtm.memory_proj.",
    "sparse_embed.": "qtm.prompt_proj.",
}
_REFERENCE_PREFIXES.update({"sam2." + k: v for k, v in _SAM2_PREFIXES.items()})

# Defined by the reference but never used in its forward pass.
REFERENCE_UNUSED = ("mixer0.", "mixer1.", "encoder_adapter1.skip.", "encoder_adapter2.skip.",
                    "encoder_adapter3.skip.", "encoder_adapter4.skip.") + tuple(
                        "sam2." + p for p in _SAM2_UNUSED + tuple(_SAM2_MEMORY_BANK))


def map_reference_state_dict(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Maps a reference SAM-DAQ state_dict to this model's keys.

    Returns (mapped weights, skipped unused keys, unknown keys).
    """
    mapped, skipped, unknown = {}, [], []
    for k, v in sd.items():
        new = _map_prefixes(k, _REFERENCE_PREFIXES)
        if new is not None:
            mapped[new] = v
        elif k.startswith(REFERENCE_UNUSED):
            skipped.append(k)
        else:
            unknown.append(k)
    return mapped, skipped, unknown


# ---------------------------------------------------------------------------- project format


def save_weights(model: SamDaq, path: str | os.PathLike, extra_metadata: dict | None = None) -> None:
    """Writes the trained parameters and the model config as safetensors.

    ``extra_metadata``: JSON-serialisable entries stored beside the config (e.g. the depth
    conversion the weights were trained with, under ``"depth_conversion"``).
    """
    from safetensors.torch import save_file

    metadata = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": json.dumps(model.config.to_dict())}
    for key, value in (extra_metadata or {}).items():
        metadata[key] = json.dumps(value)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.trained_state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)


def read_weights_metadata(path: str | os.PathLike) -> dict:
    """The decoded metadata of a project weights file: ``config`` as a dict, other entries as stored."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    if raw.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{path}: safetensors file without this project's metadata (format={raw.get('format')!r})")
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def weights_config(path: str | os.PathLike) -> SamDaqConfig | None:
    """The model config stored in a project weights file, or None for a reference checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not is_safetensors(path):
        return None
    try:
        return SamDaqConfig.from_dict(read_weights_metadata(path)["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in metadata ({e})") from None


def load_samdaq_weights(model: SamDaq, path: str | os.PathLike) -> dict:
    """Loads SAM-DAQ weights of either format (detected) into ``model``.

    Returns the file's metadata (empty for a reference checkpoint). Raises ``CheckpointError``
    naming the file on pickled objects, unknown or missing keys, shape or config mismatches.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    required = {k for k in model.trained_state_dict()}
    if is_safetensors(path):
        from safetensors.torch import load_file

        metadata = read_weights_metadata(path)
        stored = SamDaqConfig.from_dict(metadata["config"])
        if stored != model.config:
            diff = {k: (v, getattr(model.config, k)) for k, v in stored.to_dict().items() if getattr(model.config, k) != v}
            raise CheckpointError(
                f"{path}: weights were made for another model configuration: "
                + ", ".join(f"{k}: file {a!r}, model {b!r}" for k, (a, b) in diff.items())
            )
        weights = load_file(str(path))
        if not all(is_trained_key(k) for k in weights):
            raise CheckpointError(f"{path}: holds frozen SAM2 weights; the project format holds only trained ones")
        _load_into(model, path, weights, required)
        return metadata

    if model.config.adapter != "parallel" or model.config.temporal != "qtm":
        raise CheckpointError(f"{path}: the reference's checkpoints hold SAM-DAQ itself (parallel adapters, QTM), "
                              f"not the {model.config.adapter}/{model.config.temporal} ablation")
    sd = _torch_load(path)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"{path}: not a SAM-DAQ state_dict (expected a flat dict of tensors)")
    mapped, _skipped, unknown = map_reference_state_dict(sd)
    if unknown:
        raise CheckpointError(f"{path}: keys the reference SAM-DAQ model does not have: {_first(unknown)}")
    # Frozen SAM2 parts, when a full reference state_dict carries them, are loaded too.
    _load_into(model, path, mapped, required)
    return {}
