"""M4-SAM's image decoder: RGB-depth fusion per trunk level, a U-Net path to the coarse map, and
the Gated Multi-Level Feature Fusion that gives the memory its features.

    decoder = CoarseDecoder(channels=(144, 288, 576, 1152))
    coarse, memory_features = decoder(rgb_levels, depth_levels)
    # coarse: (B, 1, S, S) logits; memory_features: (B, 128, S/8, S/8)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

WIDTH = 64  # channels of every level after its receptive-field block, and of the U-Net path


class ConvBN(nn.Sequential):
    """Convolution without bias, then batch norm (no activation)."""

    def __init__(self, c_in: int, c_out: int, kernel, padding=0, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False)
        self.bn = nn.BatchNorm2d(c_out)


def double_conv(c_in: int, c_mid: int, c_out: int, bias: bool = False) -> nn.Sequential:
    """Two 3x3 convolution, batch norm, ReLU stages: (B, c_in, h, w) -> (B, c_out, h, w)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_mid, 3, padding=1, bias=bias),
        nn.BatchNorm2d(c_mid),
        nn.ReLU(),
        nn.Conv2d(c_mid, c_out, 3, padding=1, bias=bias),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class RgbDepthInteraction(nn.Module):
    """Fuses one trunk level of RGB (a) and depth (b), both (B, C, h, w), into (B, C, h, w): a
    convolution of their concatenation, then of that with their product, difference and maximum
    (DCTNet's unified interaction module)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.catconv1 = ConvBN(2 * channels, channels, 3, padding=1)
        self.catconv2 = ConvBN(4 * channels, channels, 3, padding=1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        joint = self.catconv1(torch.cat([a, b], dim=1))
        return self.catconv2(torch.cat([joint, a * b, a - b, torch.maximum(a, b)], dim=1))


class ReceptiveFieldBlock(nn.Module):
    """(B, C_in, h, w) -> (B, 64, h, w): a 1x1 branch and three branches of growing receptive
    field (1xn, nx1, then a 3x3 dilated by n, for n = 3, 5, 7), mixed, plus a 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int = WIDTH) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(ConvBN(c_in, c_out, 1))
        for k in (1, 2, 3):
            n = 2 * k + 1
            branch = nn.Sequential(
                ConvBN(c_in, c_out, 1),
                ConvBN(c_out, c_out, (1, n), padding=(0, k)),
                ConvBN(c_out, c_out, (n, 1), padding=(k, 0)),
                ConvBN(c_out, c_out, 3, padding=n, dilation=n),
            )
            self.add_module(f"branch{k}", branch)
        self.conv_cat = ConvBN(4 * c_out, c_out, 3, padding=1)
        self.conv_res = ConvBN(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [getattr(self, f"branch{k}")(x) for k in range(4)]
        return F.relu(self.conv_cat(torch.cat(branches, dim=1)) + self.conv_res(x))


class UpBlock(nn.Module):
    """U-Net step: the coarser map (B, 64, h, w) upsampled x2 (bilinear, align_corners=True),
    padded to the skip's size, concatenated after the skip (B, 64, 2h, 2w), then two 3x3
    conv-BN-ReLU."""

    def __init__(self, c_in: int = 2 * WIDTH, c_out: int = WIDTH) -> None:
        super().__init__()
        self.conv = double_conv(c_in, c_in // 2, c_out)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=True)
        dy, dx = skip.shape[-2] - up.shape[-2], skip.shape[-1] - up.shape[-1]
        up = F.pad(up, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, up], dim=1))


class GatedMultiLevelFusion(nn.Module):
    """Four levels (B, 64, h, w) each, already at the finest size -> (B, 64, h, w).

    Their concatenation is squeezed to 64 channels and weighted by a channel attention (global
    pooling) and a spatial one (channel mean); a sigmoid gate from the finest level and that
    result mixes the two: ``gate * enhanced + (1 - gate) * finest``.
    """

    def __init__(self, levels: int = 4, width: int = WIDTH) -> None:
        super().__init__()
        self.squeeze = nn.Sequential(
            nn.Conv2d(levels * width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        self.channel_attention = nn.Sequential(
            nn.Conv2d(width, width // 4, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(width // 4, width, 1, bias=False),
        )
        self.spatial_attention = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(8, 1, 3, padding=1, bias=False),
        )
        self.gate = nn.Sequential(
            nn.Conv2d(2 * width, width, 1, bias=False), nn.BatchNorm2d(width)
        )

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        finest = levels[0]
        joint = self.squeeze(torch.cat(levels, dim=1))
        channel = torch.sigmoid(self.channel_attention(F.adaptive_avg_pool2d(joint, 1)))
        spatial = torch.sigmoid(self.spatial_attention(joint.mean(dim=1, keepdim=True)))
        enhanced = joint * channel * spatial
        gate = torch.sigmoid(self.gate(torch.cat([finest, enhanced], dim=1)))
        return gate * enhanced + (1 - gate) * finest


class Decoded(NamedTuple):
    """What the image path gives the memory for a batch of frames."""

    coarse: torch.Tensor  # (B, 1, S, S) logits of the U-Net head (the reference's ``out``)
    memory_features: torch.Tensor  # (B, 128, S/8, S/8): gated fusion (64) then U-Net level (64)


class CoarseDecoder(nn.Module):
    """Trunk levels of RGB and depth (strides 4, 8, 16, 32) -> coarse logits and the memory's
    features. ``side*`` and ``edge*`` are the reference's training-only deep-supervision heads."""

    def __init__(self, channels: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.fuse = nn.ModuleList(RgbDepthInteraction(c) for c in channels)
        self.reduce = nn.ModuleList(ReceptiveFieldBlock(c) for c in channels)
        self.up = nn.ModuleList(UpBlock() for _ in range(3))
        self.mlf = GatedMultiLevelFusion()
        self.head = nn.Conv2d(WIDTH, 1, 1)
        for name in ("side1", "side2", "edge1", "edge2", "edge_head"):
            self.add_module(name, nn.Conv2d(WIDTH, 1, 1))

    def forward(self, rgb: list[torch.Tensor], depth: list[torch.Tensor]) -> Decoded:
        """rgb, depth: four (B, C_i, S/4/2^i, S/4/2^i) trunk levels."""
        x = [r(f(a, b)) for f, r, a, b in zip(self.fuse, self.reduce, rgb, depth, strict=True)]
        u1 = self.up[0](x[3], x[2])  # S/16
        u2 = self.up[1](u1, x[1])  # S/8
        u3 = self.up[2](u2, x[0])  # S/4
        coarse = F.interpolate(self.head(u3), scale_factor=4, mode="bilinear")
        finest = [x[0]] + [
            F.interpolate(x[i], scale_factor=2**i, mode="bilinear") for i in (1, 2, 3)
        ]
        fused = F.interpolate(
            self.mlf(finest), size=u2.shape[-2:], mode="bilinear", align_corners=True
        )
        return Decoded(coarse, torch.cat([fused, u2], dim=1))
