"""Loading and saving model weights, safely (no pickled code is ever run).

Three formats:

- This project's format, for every model plug-in: safetensors with only the trained parameters,
  and in its metadata the model's name (``model``: the registry key), its configuration and the
  depth convention. ``save_weights`` / ``load_weights``; ``weights_model`` reads the name and
  config from the header alone.
- Meta's SAM2.1 checkpoints (``{"model": state_dict}`` of ``SAM2Base``): SAM-DAQ's frozen backbone
  and the starting point of its fine-tuned decoder and memory encoder. ``load_sam2_checkpoint``.
- The reference SAM-DAQ checkpoints (a plain ``state_dict`` of its model without the frozen SAM2
  parts, its own key names). ``load_weights`` hands any file that is not safetensors to the
  model's ``load_reference_weights`` (``load_reference_checkpoint`` for SAM-DAQ).
- Depth Anything V2's official checkpoints (``depth_anything_v2_vits.pth``: a plain
  ``state_dict`` under the official key names). ``load_depth_estimator`` reads them, or a depth
  estimator in this project's format.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from .base import DepthEstimator
from .depth_anything_v2 import OFFICIAL, DepthAnythingV2, DepthAnythingV2Config
from .registry import DEFAULT_MODEL, UnknownModelError, model_class
from .samdaq import SamDaq

FORMAT_NAME = "rgbd_saliency_ros.samdaq"
# Raised when the layout of the file changes; files of any other version are refused on load.
FORMAT_VERSION = "1"


# What a weights file may ask for. A file's metadata decides the model that is built, so anything
# beyond these is refused before a tensor is allocated (input 32768 would ask for about 6 GB). The
# published weights use input 1024, 30 frame and 8 video queries of width 64, adapters of width 64.
# SAM-DAQ's, and the default of a plug-in that declares no ``config_limits`` of its own.
CONFIG_LIMITS = {
    "input_size": 4096,
    "num_frame_queries": 1024,
    "num_video_queries": 1024,
    "query_dim": 1024,
    "adapter_width": 1024,
    "lora_rank": 1024,
    "memory_frames": 6,
}
MAX_NAME_CHARS = 64  # any string in the stored config (model name, adapter, temporal)
MAX_HEADER_BYTES = 16 * 2**20  # safetensors header (JSON); ours is about 100 KiB for Hiera-L
# Tensors in one file: SAM-DAQ's trained parameters of Hiera-L are about 400, M4-SAM's whole
# Hiera-L network 9014 (9218 in its authors' files).
MAX_TENSORS = 16384
MAX_MESSAGE_CHARS = 600  # an error is one line of at most this many characters
# An official Depth Anything V2 checkpoint (a pickle, not safetensors) is read whole: ViT-L's is
# 1.3 GB in float32, so a larger file is not one.
MAX_DEPTH_ANYTHING_BYTES = 2 * 2**30


class CheckpointError(RuntimeError):
    """A weights file that cannot be loaded; the message names the file and what is wrong.

    The message is always one line (newlines of wrapped library errors are folded, long ones cut),
    so that the node and the commands can report it as it is.
    """

    def __init__(self, message: str) -> None:
        line = " ".join(str(message).split())
        if len(line) > MAX_MESSAGE_CHARS:
            line = line[: MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(line)


def _short(value, chars: int = 40) -> str:
    """``repr(value)``, cut to ``chars`` characters: values from a file may be huge."""
    text = repr(value)
    return text if len(text) <= chars else text[: chars - 3] + "..."


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
    except Exception as e:  # torch.load raises many kinds (zipfile, struct, EOF, Runtime...)
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {first})"
        ) from None


def _tensor_dict(path: Path, value, what: str) -> dict[str, torch.Tensor]:
    """``value`` if it is a dict of at most MAX_TENSORS tensors under string keys; else
    CheckpointError."""
    if not isinstance(value, dict):
        raise CheckpointError(
            f"{path}: not {what} (expected a dict of tensors, found {type(value).__name__})"
        )
    if len(value) > MAX_TENSORS:
        raise CheckpointError(
            f"{path}: {len(value)} entries, more than the limit of {MAX_TENSORS}"
        )
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise CheckpointError(
                f"{path}: not {what}: entry {_short(k)} is a {type(v).__name__}, not a tensor"
            )
    return value


def is_safetensors(path: Path) -> bool:
    """True if ``path`` is meant as a safetensors file: named ``*.safetensors``, or starting like
    one (an 8-byte header length, then a JSON object). Such files never reach ``torch.load``."""
    if Path(path).suffix.lower() == ".safetensors":
        return True
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def check_safetensors_header(path: Path) -> None:
    """Raises CheckpointError unless ``path`` has a plausible safetensors header: a length
    within the file and below MAX_HEADER_BYTES, then a JSON object (checked before safetensors
    reads it)."""
    size = os.path.getsize(path)
    if size < 10:
        raise CheckpointError(
            f"{path}: not a safetensors file ({size} bytes: too short for a header)"
        )
    with open(path, "rb") as f:
        head = f.read(9)
    n = int.from_bytes(head[:8], "little")
    if n <= MAX_HEADER_BYTES and 2 <= n <= size - 8 and head[8:9] == b"{":
        return
    if head.startswith((b"PK\x03\x04", b"\x80\x02", b"\x80\x04")):  # zip (torch.save), pickle
        raise CheckpointError(
            f"{path}: not a safetensors file: it is a PyTorch/pickle file; only a reference "
            "checkpoint may be one, named .pt (it then loads tensors only)"
        )
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{path}: not a usable safetensors file: header length {n} bytes is above the limit "
            f"of {MAX_HEADER_BYTES} bytes"
        )
    raise CheckpointError(
        f"{path}: not a safetensors file (header length {n}, file {size} bytes, first header "
        f"byte {head[8:9]!r}: damaged?)"
    )


def _describe(model) -> str:
    """The model as error messages name it: plug-in, backbone (if any), input size."""
    backbone = getattr(model.config, "backbone", None)
    size = model.preprocessing().input_size
    return f"{model.name}{', ' + backbone if backbone else ''}, input {size}"


def _load_into(model, path: Path, weights: dict[str, torch.Tensor], required: set[str]) -> None:
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
        # Integer buffers (BatchNorm's num_batches_tracked) take integers, the rest floats.
        if own[k].is_floating_point() and not v.is_floating_point():
            raise CheckpointError(f"{path}: {k} holds {v.dtype}, not floating-point values")
        if not own[k].is_floating_point() and (v.is_floating_point() or v.is_complex()):
            raise CheckpointError(f"{path}: {k} holds {v.dtype}, not integer values")
        if tuple(v.shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"{path}: shape mismatch for {k}: file has {tuple(v.shape)}, model "
                f"({_describe(model)}) needs {tuple(own[k].shape)}"
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
_SAM2_MEMORY_BANK = {
    "memory_attention.": "memory_attention.",
    "maskmem_tpos_enc": "maskmem_tpos_enc",
}
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
        raise CheckpointError(
            f"{path}: not a SAM2 checkpoint (expected a dict with a 'model' state_dict)"
        )
    _tensor_dict(path, ckpt["model"], "a SAM2 checkpoint")
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
        raise CheckpointError(
            f"{path}: keys that SAM2.1 ({model.config.backbone}) does not have: {_first(unknown)}"
        )
    own_prefixes = {v: v for v in table.values()}
    required = {
        k for k in model.state_dict() if _map_prefixes(k, own_prefixes) and ".lora_" not in k
    }
    try:
        _load_into(model, path, weights, required)
    except CheckpointError as e:
        raise CheckpointError(
            f"{e} (the model is {model.config.backbone}: is the file for another SAM2.1 size?)"
        ) from None


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
REFERENCE_UNUSED = (
    "mixer0.",
    "mixer1.",
    "encoder_adapter1.skip.",
    "encoder_adapter2.skip.",
    "encoder_adapter3.skip.",
    "encoder_adapter4.skip.",
) + tuple("sam2." + p for p in _SAM2_UNUSED + tuple(_SAM2_MEMORY_BANK))


def map_reference_state_dict(
    sd: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
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


def save_weights(model, path: str | os.PathLike, extra_metadata: dict | None = None) -> None:
    """Writes a model plug-in's trained parameters, its name and its config as safetensors.

    ``extra_metadata``: JSON-serialisable entries stored beside the config (e.g. the depth
    conversion the weights were trained with, under ``"depth_conversion"``).
    """
    from safetensors.torch import save_file

    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model": model.name,
        "config": json.dumps(model.config.to_dict()),
    }
    for key, value in (extra_metadata or {}).items():
        metadata[key] = json.dumps(value)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.trained_state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)


def read_weights_metadata(path: str | os.PathLike) -> dict:
    """The decoded metadata of a project weights file: ``config`` as a dict, other entries as
    stored. Reads only the header (after ``check_safetensors_header``); raises CheckpointError.
    """
    from safetensors import safe_open

    path = Path(path)
    check_safetensors_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            count = len(f.keys())
    except Exception as e:  # safetensors raises its own error types for damaged headers
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(e).__name__}: {e})"
        ) from None
    if count > MAX_TENSORS:
        raise CheckpointError(f"{path}: {count} tensors, more than the limit of {MAX_TENSORS}")
    if raw.get("format") != FORMAT_NAME:
        raise CheckpointError(
            f"{path}: safetensors file without this project's metadata "
            f"(format={_short(raw.get('format'))})"
        )
    if raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {_short(raw.get('format_version'))} of {FORMAT_NAME}, but "
            f"this rgbd_saliency_ros reads version {FORMAT_VERSION!r} only (a newer release "
            "wrote it?)"
        )
    out = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def stored_model(path: Path, metadata: dict) -> type:
    """The plug-in a file's metadata names (``model``; SAM-DAQ when absent, as in files written
    before plug-ins); raises CheckpointError naming the file and the known models."""
    name = metadata.get("model", DEFAULT_MODEL)
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        raise CheckpointError(f"{path}: model name {_short(name)} is not a short string")
    try:
        return model_class(name, str(path))
    except UnknownModelError as e:
        raise CheckpointError(str(e)) from None


def stored_config(path: Path, metadata: dict):
    """The model config in a weights file's metadata, of the plug-in it names, within the
    plug-in's ``config_limits`` (``CONFIG_LIMITS`` when it declares none; checked before anything
    is built from it); raises CheckpointError naming the file, the field and the limit."""
    cls = stored_model(path, metadata)
    values = metadata.get("config")
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: metadata has no model config (config={_short(values)})")
    limits = getattr(cls, "config_limits", None)
    limits = CONFIG_LIMITS if limits is None else limits
    for name, value in values.items():
        if isinstance(value, str) and len(value) > MAX_NAME_CHARS:
            raise CheckpointError(
                f"{path}: config field {_short(name)} is {len(value)} characters long, above "
                f"the limit of {MAX_NAME_CHARS}"
            )
        limit = limits.get(name)
        if limit is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise CheckpointError(
                f"{path}: config field {name} must be an integer, got {_short(value)}"
            )
        if not 1 <= value <= limit:
            raise CheckpointError(
                f"{path}: config field {name} = {value} is outside what a weights file may ask "
                f"for (1 to {limit})"
            )
    try:
        return cls.config_class.from_dict(values)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in metadata ({e})") from None


def weights_model(path: str | os.PathLike) -> tuple[type | None, object | None]:
    """(plug-in class, config) stored in a project weights file, from its header alone;
    (None, None) for a file of another format (a reference checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not is_safetensors(path):
        return None, None
    metadata = read_weights_metadata(path)
    return stored_model(path, metadata), stored_config(path, metadata)


def weights_config(path: str | os.PathLike):
    """The model config stored in a project weights file, or None for a reference checkpoint."""
    return weights_model(path)[1]


def _load_safetensors(model, path: Path, required: set[str]) -> dict:
    """Loads a project weights file into ``model``: metadata, config and every tensor's shape are
    checked from the header before any tensor is read."""
    from safetensors import safe_open

    metadata = read_weights_metadata(path)
    if stored_model(path, metadata) is not type(model):
        raise CheckpointError(
            f"{path}: weights of model {metadata.get('model', DEFAULT_MODEL)!r}, "
            f"not {model.name!r}"
        )
    stored = stored_config(path, metadata)
    if stored != model.config:
        diff = {
            k: (v, getattr(model.config, k))
            for k, v in stored.to_dict().items()
            if getattr(model.config, k) != v
        }
        raise CheckpointError(
            f"{path}: weights were made for another model configuration: "
            + ", ".join(f"{k}: file {a!r}, model {b!r}" for k, (a, b) in diff.items())
        )
    own = model.state_dict()
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            if not all(model.is_trained_key(k) for k in keys):
                raise CheckpointError(
                    f"{path}: holds frozen (pretrained) weights; the project format "
                    "holds only trained ones"
                )
            for k in keys:
                shape = tuple(f.get_slice(k).get_shape())
                if k in own and shape != tuple(own[k].shape):
                    raise CheckpointError(
                        f"{path}: shape mismatch for {k}: file has {shape}, "
                        f"model needs {tuple(own[k].shape)}"
                    )
            weights = {k: f.get_tensor(k) for k in keys if k in own}
            unknown = [k for k in keys if k not in own]
    except CheckpointError:
        raise
    except Exception as e:  # safetensors' own errors for data that does not match its header
        raise CheckpointError(
            f"{path}: damaged safetensors data ({type(e).__name__}: {e})"
        ) from None
    if unknown:
        raise CheckpointError(f"{path}: unexpected keys for this model: {_first(sorted(unknown))}")
    _load_into(model, path, weights, required)
    return metadata


def load_weights(model, path: str | os.PathLike) -> dict:
    """Loads weights into a model plug-in: this project's format, or (any other file) the
    reference's format through the model's ``load_reference_weights``.

    Returns the file's metadata (empty for a reference checkpoint). Raises ``CheckpointError``
    naming the file on pickled objects, unknown or missing keys, shape, model or config
    mismatches, and files that are not what they say they are.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if is_safetensors(path):
        return _load_safetensors(model, path, set(model.trained_state_dict()))
    try:
        model.load_reference_weights(path)
    except NotImplementedError as e:
        raise CheckpointError(f"{path}: not a safetensors file, and {e}") from None
    return {}


# SAM-DAQ's name for ``load_weights`` (its README and users' scripts call it so).
load_samdaq_weights = load_weights


def load_reference_checkpoint(model: SamDaq, path: str | os.PathLike) -> None:
    """Loads the reference SAM-DAQ implementation's state_dict (its key names, mapped; its unused
    modules skipped) into ``model``; raises ``CheckpointError`` naming the file."""
    path = Path(path)
    required = set(model.trained_state_dict())
    if model.config.adapter != "parallel" or model.config.temporal != "qtm":
        raise CheckpointError(
            f"{path}: the reference's checkpoints hold SAM-DAQ itself (parallel adapters, QTM), "
            f"not the {model.config.adapter}/{model.config.temporal} ablation"
        )
    sd = _tensor_dict(path, _torch_load(path), "a SAM-DAQ state_dict")
    mapped, _skipped, unknown = map_reference_state_dict(sd)
    if unknown:
        raise CheckpointError(
            f"{path}: keys the reference SAM-DAQ model does not have: {_first(unknown)}"
        )
    # Frozen SAM2 parts, when a full reference state_dict carries them, are loaded too.
    _load_into(model, path, mapped, required)


# ------------------------------------------------------------------------- Depth Anything V2


def read_depth_anything_checkpoint(
    path: str | os.PathLike,
) -> tuple[DepthAnythingV2Config, dict[str, torch.Tensor]]:
    """Reads an official Depth Anything V2 checkpoint (a plain state_dict of ``pretrained.*`` and
    ``depth_head.*`` tensors, any float dtype): its tensors and the official configuration
    (``OFFICIAL``) of their ViT width. Tensors only (``weights_only``), within
    ``MAX_DEPTH_ANYTHING_BYTES`` and ``MAX_TENSORS``; raises CheckpointError naming the file."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_DEPTH_ANYTHING_BYTES:
        raise CheckpointError(
            f"{path}: {path.stat().st_size} bytes, more than any Depth Anything V2 checkpoint "
            f"this package reads (limit {MAX_DEPTH_ANYTHING_BYTES})"
        )
    sd = _tensor_dict(path, _torch_load(path), "a Depth Anything V2 state_dict")
    token = sd.get("pretrained.cls_token")
    if token is None or token.ndim != 3:
        raise CheckpointError(
            f"{path}: not a Depth Anything V2 checkpoint (no pretrained.cls_token of shape "
            f"(1, 1, width); it holds {_first(sorted(sd), 4)})"
        )
    width = token.shape[-1]
    for config in OFFICIAL.values():
        if config.embed_dim == width:
            return config, sd
    widths = ", ".join(f"{name} {c.embed_dim}" for name, c in OFFICIAL.items())
    raise CheckpointError(
        f"{path}: Depth Anything V2 of ViT width {width}; this package runs {widths} only"
    )


def load_depth_anything_checkpoint(
    model: DepthAnythingV2,
    path: str | os.PathLike,
    weights: dict[str, torch.Tensor] | None = None,
) -> None:
    """Loads an official checkpoint into ``model`` strictly: every key, no other, each of its
    shape (``weights``: the file's tensors if already read by ``read_depth_anything_checkpoint``).
    Raises CheckpointError naming the file."""
    path = Path(path)
    if weights is None:
        config, weights = read_depth_anything_checkpoint(path)
        if config.encoder != model.config.encoder:
            raise CheckpointError(
                f"{path}: holds Depth Anything V2 {config.encoder} weights, the model is "
                f"{model.config.encoder}"
            )
    _load_into(model, path, weights, set(model.state_dict()))


def load_depth_estimator(path: str | os.PathLike) -> DepthEstimator:
    """A depth estimator with its weights, on the CPU in eval mode, from this project's format
    (the plug-in its metadata names) or an official Depth Anything V2 checkpoint (any other
    file). Raises CheckpointError naming the file, also for a saliency model's weights."""
    path = Path(path)
    cls, config = weights_model(path)
    if cls is None:
        return DepthAnythingV2.from_official_checkpoint(path).eval()
    if not issubclass(cls, DepthEstimator):
        raise CheckpointError(
            f"{path}: weights of the saliency model {cls.name!r}, not of a depth estimator"
        )
    model = cls(config)
    load_weights(model, path)
    return model.eval()
