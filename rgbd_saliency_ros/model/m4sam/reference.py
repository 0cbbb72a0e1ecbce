"""The authors' checkpoint format: a plain ``state_dict`` of their whole ``M4SAM`` module (what
their training script saves and their test script loads strictly; 9218 keys for Hiera-L).

Their names map to this package's by ``reference_key``. Two kinds of their entries are defined
but never used by their forward pass, so they are read and dropped: each MoE-LoRA path's own
``weight``/``bias`` (it subclasses ``nn.Linear`` without using them) and the fourth U-Net step
``up4``. Anything else missing or extra is refused, naming the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..checkpoints import CheckpointError, _first, _load_into, _tensor_dict, _torch_load

# (pattern on this package's key, the reference's), applied in order.
_RENAMES = [
    (r"^trunk\.", "encoder."),
    (r"\.attn\.qkv\.base\.", ".attn.qkv.attn_qkv."),
    (r"\.(rgb|depth|fusion)\.(experts|gate)\.", r".\1_\2."),
    (r"^decoder\.fuse\.(\d)\.", lambda m: f"uim{int(m[1]) + 1}."),
    (r"^decoder\.reduce\.(\d)\.", lambda m: f"rfb{int(m[1]) + 1}."),
    (r"^decoder\.up\.(\d)\.conv\.", lambda m: f"up{int(m[1]) + 1}.conv.double_conv."),
    (r"^decoder\.mlf\.squeeze\.", "MLF.catconv."),
    (r"^decoder\.mlf\.channel_attention\.", "MLF.channel_fc."),
    (r"^decoder\.mlf\.spatial_attention\.", "MLF.spatial_conv."),
    (r"^decoder\.mlf\.gate\.", "MLF.gate_conv."),
    (r"^decoder\.", ""),  # head, side1, side2, edge1, edge2, edge_head
    (r"^memory\.key_encoder\.", "mem_model.memory.key_encoder.encoder."),
    (r"^memory\.key_projection\.key\.", "mem_model.memory.key_proj.key_proj."),
    (r"^memory\.key_projection\.shrinkage\.", "mem_model.memory.key_proj.d_proj."),
    (r"^memory\.key_projection\.selection\.", "mem_model.memory.key_proj.e_proj."),
    (r"\.attention\.channel_gate\.", ".attention.ChannelGate.mlp."),
    (r"\.attention\.spatial_gate\.", ".attention.SpatialGate.spatial.conv."),
    (r"^memory\.", "mem_model.memory."),
    (r"^mask_head\.", "mem_model.mask_decoder."),
]

# Defined by the reference, unused by its forward pass (see the module docstring).
_UNUSED = re.compile(r"^encoder\.blocks\.\d+\.attn\.qkv\.lora_[qv]\.(weight|bias)$|^up4\.")


def reference_key(key: str) -> str:
    """This package's parameter name -> the reference's."""
    for pattern, replacement in _RENAMES:
        key = re.sub(pattern, replacement, key)
    return key


def load_reference_checkpoint(model, path: str | os.PathLike) -> None:
    """Loads the reference's state_dict into an ``M4Sam``: every key it holds must be the
    model's (renamed) or a known unused one, and every one of the model's must be there.
    Raises ``CheckpointError`` naming the file."""
    path = Path(path)
    sd = _tensor_dict(path, _torch_load(path), "an M4-SAM state_dict")
    names = {reference_key(k): k for k in model.state_dict()}
    weights, unknown = {}, []
    for k, v in sd.items():
        if k in names:
            weights[names[k]] = v
        elif not _UNUSED.search(k):
            unknown.append(k)
    if unknown:
        raise CheckpointError(
            f"{path}: keys the reference M4-SAM ({model.config.backbone}) does not have: "
            f"{_first(unknown)}"
        )
    missing = sorted(k for k, own in names.items() if own not in weights)
    if missing:
        raise CheckpointError(
            f"{path}: missing keys of the reference M4-SAM ({model.config.backbone}): "
            f"{_first(missing)}"
        )
    _load_into(model, path, weights, set(names.values()))
