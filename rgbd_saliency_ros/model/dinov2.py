"""DINOv2 ViT as Depth Anything V2 uses it: the encoder of ``depth_anything_v2.py``.

Written from the official Depth-Anything-V2 code (Apache-2.0, DepthAnything/Depth-Anything-V2 @
a561b84, ``depth_anything_v2/dinov2.py`` and ``dinov2_layers/``), inference only: patch size 14,
a class token, no register tokens, LayerScale after attention and MLP, LayerNorm eps 1e-6, GELU
MLP of ratio 4. Parameter names are the official ones (``blocks.3.attn.qkv.weight``, ...), so the
official checkpoints load without a key map.

    vit = DinoV2(embed_dim=384, depth=12, num_heads=6)
    tokens = vit.intermediate_layers(rgb, (2, 5, 8, 11))   # 4 x (B, h*w, 384), h = H / 14
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 14
# The position embedding's grid: trained at 518 x 518 pixels, 37 x 37 patches.
POS_GRID = 37
# DINOv2 adds this to the patch grid before it derives the bicubic scale factor of its position
# embedding (dino issue 8: avoids a floor() one short); the official interpolation depends on it.
POS_INTERPOLATE_OFFSET = 0.1
LAYER_NORM_EPS = 1e-6


class PatchEmbed(nn.Module):
    """Non-overlapping 14 x 14 patches -> tokens: (B, 3, H, W) -> (B, H/14 * W/14, D)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, h*w, D), row-major patches


class Attention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, d / heads)
        # Softmax attention scaled by 1/sqrt(d / heads), as the official fallback without xformers;
        # the fused kernel keeps no (N, N) matrix per head alive.
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """A learned per-channel gain on a residual branch."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoV2(nn.Module):
    """The ViT encoder: patch tokens of an image, read out after chosen blocks."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POS_GRID * POS_GRID, embed_dim))
        # DINOv2's masked-image-modelling token: unused at inference, kept so that the official
        # checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def position_embedding(self, h: int, w: int) -> torch.Tensor:
        """(1, 1 + h*w, D): the class token's embedding, then the 37 x 37 grid's resized to h x w.

        As stored for a square 37 x 37 grid; otherwise bicubic (no antialias) with the official
        ``scale_factor`` ((h + 0.1) / 37, (w + 0.1) / 37) rather than a target size: PyTorch maps
        coordinates by 1 / scale_factor, so this differs from ``size=(h, w)`` (transformers' port
        does the latter and is 0.06 off at 518 x 686)."""
        if h == w == POS_GRID:
            return self.pos_embed
        pos = self.pos_embed.float()
        grid = pos[:, 1:].reshape(1, POS_GRID, POS_GRID, -1).permute(0, 3, 1, 2)  # (1, D, 37, 37)
        scale = ((h + POS_INTERPOLATE_OFFSET) / POS_GRID, (w + POS_INTERPOLATE_OFFSET) / POS_GRID)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
        patches = grid.permute(0, 2, 3, 1).reshape(1, h * w, -1)  # (1, h*w, D)
        return torch.cat((pos[:, :1], patches), dim=1).to(self.pos_embed.dtype)

    def intermediate_layers(self, x: torch.Tensor, layers: tuple[int, ...]) -> list[torch.Tensor]:
        """The patch tokens after each block in ``layers`` (0-based), final norm applied.

        x: (B, 3, H, W) float32, H and W multiples of 14. Returns one (B, H/14 * W/14, D) tensor
        per layer (the class token dropped), in the order of ``layers``."""
        h, w = x.shape[-2] // PATCH_SIZE, x.shape[-1] // PATCH_SIZE
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        tokens = tokens + self.position_embedding(h, w)
        taken: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks[: max(layers) + 1]):
            tokens = block(tokens)
            if i in layers:
                taken[i] = self.norm(tokens[:, 1:])  # LayerNorm is per token: cls dropped first
        return [taken[layer] for layer in layers]
