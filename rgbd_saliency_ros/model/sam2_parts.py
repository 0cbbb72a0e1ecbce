"""The pieces of SAM2.1 that the models use, built by the ``sam2`` package from its own configs.

SAM-DAQ keeps SAM2's Hiera trunk, FPN neck and prompt encoder frozen and fine-tunes its mask
decoder and memory encoder; SAM2's memory attention (kept only for the memory-bank baseline) and
object pointers are never used by SAM-DAQ itself. M4-SAM uses the Hiera trunk alone
(``build_hiera_trunk``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import SamDaqConfig


@dataclass
class Sam2Parts:
    """Submodules taken from one built ``SAM2Base``."""

    trunk: nn.Module  # Hiera: patch_embed, pos_embed, blocks, stage_ends
    neck: nn.Module  # FpnNeck over the four trunk levels
    scalp: int  # lowest-resolution neck levels SAM2 discards
    prompt_encoder: nn.Module  # only no_mask_embed and get_dense_pe() are used
    mask_decoder: nn.Module
    memory_encoder: nn.Module
    no_mem_embed: torch.Tensor  # (1, 1, 256), added to the top level E
    # SAM2's own video memory: used only by the "memory_bank" baseline.
    memory_attention: nn.Module
    maskmem_tpos_enc: torch.Tensor  # (7, 1, 1, 64) temporal encodings of memory slots


def build_sam2_parts(config: SamDaqConfig) -> Sam2Parts:
    """Builds SAM2.1 with random weights for ``config`` and returns the parts SAM-DAQ uses.

    The mask decoder gets SAM2's post-processing overrides (in eval mode, fall back to the best
    multimask output when the single mask is unstable), as the reference builds it;
    ``SamDaqConfig.multimask_fallback`` turns that off.
    """
    from sam2.build_sam import build_sam2  # importing sam2 sets up its Hydra config search path

    side = config.embed_size
    overrides = [
        f"++model.image_size={config.input_size}",
        # RoPE tables of SAM2's memory attention follow the feature size (64 at input 1024).
        f"++model.memory_attention.layer.self_attention.feat_sizes=[{side},{side}]",
        f"++model.memory_attention.layer.cross_attention.feat_sizes=[{side},{side}]",
    ]
    sam2 = build_sam2(
        config.sam2_config_file,
        ckpt_path=None,
        device="cpu",
        mode="eval",
        hydra_overrides_extra=overrides,
        apply_postprocessing=True,
    )
    encoder = sam2.image_encoder
    channels = tuple(encoder.trunk.channel_list[::-1])
    if channels != config.channels:
        raise RuntimeError(
            f"{config.backbone}: sam2 built trunk channels {channels}, expected {config.channels}"
        )
    if not (sam2.use_high_res_features_in_sam and sam2.directly_add_no_mem_embed):
        raise RuntimeError(
            f"{config.backbone}: SAM-DAQ needs a SAM2.1 config with high-res features and "
            "no_mem_embed"
        )
    return Sam2Parts(
        trunk=encoder.trunk,
        neck=encoder.neck,
        scalp=encoder.scalp,
        prompt_encoder=sam2.sam_prompt_encoder,
        mask_decoder=sam2.sam_mask_decoder,
        memory_encoder=sam2.memory_encoder,
        no_mem_embed=sam2.no_mem_embed,
        memory_attention=sam2.memory_attention,
        maskmem_tpos_enc=sam2.maskmem_tpos_enc,
    )


def build_hiera_trunk(config_file: str, channels: tuple[int, int, int, int]) -> nn.Module:
    """The Hiera trunk of a SAM2.1 config (``configs/sam2.1/sam2.1_hiera_l.yaml``...), random
    weights, nothing else of SAM2 built. Raises RuntimeError unless its stage channels are
    ``channels``."""
    import sam2  # noqa: F401  (importing sam2 sets up its Hydra config search path)
    from hydra import compose
    from hydra.utils import instantiate

    trunk = instantiate(compose(config_name=config_file).model.image_encoder.trunk)
    built = tuple(trunk.channel_list[::-1])
    if built != channels:
        raise RuntimeError(
            f"{config_file}: sam2 built trunk channels {built}, expected {channels}"
        )
    return trunk
