"""Depth-guided parallel adapters (DPA): small convolutions beside the frozen Hiera trunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DepthProjector(nn.Sequential):
    """(B, 1, H, W) relative depth in [0, 1] -> (B, 3, H, W), an image the trunk can read."""

    def __init__(self) -> None:
        super().__init__(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 3, 1))


class DepthStemSkip(nn.Sequential):
    """Projected depth at the stage-0 size -> (B, C0, h, w), added to the depth stage-0 output.

    The trunk runs without gradients, so this skip is the depth projector's only training signal.
    """

    def __init__(self, out_channels: int, hidden: int = 64) -> None:
        super().__init__(
            nn.Conv2d(3, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, 1),
            nn.ReLU(),
        )


class BiModalAdapter(nn.Module):
    """Reads the RGB and depth features of one trunk stage, returns one residual for each stream.

    ``forward(rgb, depth, size)``: two (B, C_in, h, w) maps -> two (B, C_out, *size) maps,
    resized bilinearly (align_corners=False) to the next stage's resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv_in = nn.Conv2d(2 * in_channels, hidden, 3, padding=1)
        self.conv_out = nn.Conv2d(hidden, 2 * out_channels, 1)

    def forward(
        self, rgb: torch.Tensor, depth: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.conv_out(F.gelu(self.conv_in(torch.cat([rgb, depth], dim=1))))
        if out.shape[-2:] != size:
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out[:, : self.out_channels], out[:, self.out_channels :]


class SelfInferenceHead(nn.Sequential):
    """Training only: (B, 256, h, w) top-level features -> (B, 1, h, w) saliency in [0, 1]."""

    def __init__(self, in_channels: int = 256) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 128, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(128, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, 1),
            nn.Sigmoid(),
        )


class LoRALinear(nn.Linear):
    """A frozen ``nn.Linear`` plus a trainable low-rank update: W x + b + (alpha / r) B A x.

    Subclassing keeps the base weight's state_dict keys, so SAM2 checkpoints load unchanged.
    B starts at zero: a new LoRA layer leaves the output exactly as before.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float | None = None) -> None:
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None)
        self.load_state_dict(base.state_dict())
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self.lora_a = nn.Parameter(torch.randn(rank, base.in_features) / rank)
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = (alpha or rank) / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) + F.linear(F.linear(x, self.lora_a), self.lora_b) * self.scale


def add_lora(trunk: nn.Module, rank: int) -> None:
    """Replaces the attention projections (qkv, proj) of every Hiera block with LoRA layers."""
    for block in trunk.blocks:
        block.attn.qkv = LoRALinear(block.attn.qkv, rank)
        block.attn.proj = LoRALinear(block.attn.proj, rank)
