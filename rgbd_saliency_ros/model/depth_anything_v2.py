"""Depth Anything V2: monocular relative depth, a depth source for RGB-only cameras.

Written from the official code (Apache-2.0, DepthAnything/Depth-Anything-V2 @ a561b84,
``depth_anything_v2/dpt.py`` and ``util/blocks.py``; the encoder is ``dinov2.py``): a DINOv2 ViT
read out after four blocks, then a DPT head (projections to four scales, a RefineNet fusion chain,
a convolutional output). The output is relative inverse depth (larger is nearer, >= 0, in the
model's own units: neither metres nor [0, 1]). ViT-S, -B and -L (``OFFICIAL``); ViT-G's SwiGLU
blocks are not implemented (its weights were never released).

Parameter names are the official ones, so ``depth_anything_v2_vits.pth`` (a plain state_dict)
loads strictly, with no key map:

    model = DepthAnythingV2.from_official_checkpoint("depth_anything_v2_vits.pth").eval()
    depth = model(rgb)          # rgb (B, 3, h, w) normalised, h, w multiples of 14 -> (B, h, w)

The frame -> input -> frame-size resizing of the official ``infer_image`` is numpy/cv2 work and
lives in ``runtime/depth_estimation.py``.

Why it is a ``DepthEstimator`` and not a ``SaliencyModel``: it has no per-stream state (a state
spec of nothing would be a fiction every caller has to carry), it gives depth, not probabilities
to threshold, and its input follows the frame's aspect ratio (518 x 686 for 640 x 480) where a
saliency step takes a fixed square: squashing to 518 x 518 would change the output (the parity
fixture holds both, and they differ). It feeds a saliency model's depth input instead.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import DepthEstimator
from .contract import EstimatorPreprocessing
from .dinov2 import PATCH_SIZE, DinoV2

# What a config (and so a weights file's metadata) may ask for: ViT-L's sizes with headroom.
MAX_EMBED_DIM = 1536
MAX_DEPTH = 40
MAX_CHANNELS = 2048
HEAD_HIDDEN = 32  # channels of the last 3 x 3 convolution (fixed in the official head)


@dataclass(frozen=True)
class DepthAnythingV2Config:
    """The shapes of a Depth Anything V2 model (``OFFICIAL`` holds the released ones; tests use
    tiny ones) and the input size it runs at."""

    embed_dim: int = 384  # ViT width
    depth: int = 12  # ViT blocks
    num_heads: int = 6
    features: int = 64  # DPT fusion channels
    out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)  # DPT projections, fine to coarse
    layers: tuple[int, int, int, int] = (2, 5, 8, 11)  # blocks (0-based) the DPT head reads
    # Pixels: the shorter side of the input (the official default). Not a weights shape: the
    # position embedding is resized to any input.
    input_size: int = 518

    def __post_init__(self) -> None:
        ints = (self.embed_dim, self.depth, self.num_heads, self.features, self.input_size)
        if not all(isinstance(v, int) and v >= 1 for v in ints):
            raise ValueError(f"sizes must be positive integers, got {ints}")
        if self.embed_dim > MAX_EMBED_DIM or self.depth > MAX_DEPTH:
            raise ValueError(
                f"embed_dim {self.embed_dim} / depth {self.depth} above the limits "
                f"{MAX_EMBED_DIM} / {MAX_DEPTH}"
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} not divisible by {self.num_heads} heads")
        channels = (*self.out_channels, self.features)
        if len(channels) != 5 or not all(
            isinstance(c, int) and 1 <= c <= MAX_CHANNELS for c in channels
        ):
            raise ValueError(
                f"out_channels {self.out_channels} and features {self.features} must be 4 and 1 "
                f"integers in 1..{MAX_CHANNELS}"
            )
        if len(self.layers) != 4 or list(self.layers) != sorted(set(self.layers)):
            raise ValueError(f"layers {self.layers} must be 4 increasing block indices")
        if self.layers[0] < 0 or self.layers[-1] >= self.depth:
            raise ValueError(f"layers {self.layers} outside the {self.depth} blocks")
        if self.input_size % PATCH_SIZE:
            raise ValueError(f"input_size {self.input_size} is not a multiple of {PATCH_SIZE}")

    @property
    def encoder(self) -> str:
        """The official name of these shapes ("vits", "vitb", "vitl"), else "custom"."""
        shapes = dataclasses.replace(self, input_size=OFFICIAL["vits"].input_size)
        return next((name for name, c in OFFICIAL.items() if c == shapes), "custom")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DepthAnythingV2Config:
        """From ``to_dict`` output (JSON lists back to tuples); unknown fields are refused."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown model config fields: {sorted(unknown)}")
        v = dict(values)
        for key in ("out_channels", "layers"):
            if key in v:
                v[key] = tuple(v[key])
        return cls(**v)


# The released models (run.py's model_configs; DINOv2's vit_small / vit_base / vit_large).
OFFICIAL = {
    "vits": DepthAnythingV2Config(),
    "vitb": DepthAnythingV2Config(
        embed_dim=768, num_heads=12, features=128, out_channels=(96, 192, 384, 768)
    ),
    "vitl": DepthAnythingV2Config(
        embed_dim=1024,
        depth=24,
        num_heads=16,
        features=256,
        out_channels=(256, 512, 1024, 1024),
        layers=(4, 11, 17, 23),
    ),
}


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear with align_corners=True, the DPT head's only resampling."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ResidualConvUnit(nn.Module):
    """x + conv(relu(conv(relu(x)))), 3 x 3 convolutions, no normalisation."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """RefineNet fusion: add the refined skip (if any), refine, upsample, 1 x 1 projection."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(channels, channels, 1)
        self.resConfUnit1 = ResidualConvUnit(channels)  # on the skip (unused by the first block)
        self.resConfUnit2 = ResidualConvUnit(channels)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        return self.out_conv(_resize(self.resConfUnit2(x), size))


class DptScratch(nn.Module):
    """The DPT head's convolutions after the projections (the official ``scratch``)."""

    def __init__(self, out_channels: tuple[int, int, int, int], features: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = out_channels
        self.layer1_rn = nn.Conv2d(c1, features, 3, padding=1, bias=False)
        self.layer2_rn = nn.Conv2d(c2, features, 3, padding=1, bias=False)
        self.layer3_rn = nn.Conv2d(c3, features, 3, padding=1, bias=False)
        self.layer4_rn = nn.Conv2d(c4, features, 3, padding=1, bias=False)
        self.refinenet1 = FusionBlock(features)
        self.refinenet2 = FusionBlock(features)
        self.refinenet3 = FusionBlock(features)
        self.refinenet4 = FusionBlock(features)
        self.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, HEAD_HIDDEN, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(HEAD_HIDDEN, 1, 1),
            nn.ReLU(),  # depth is never negative
        )


class DptHead(nn.Module):
    """Four token maps of the ViT -> one depth map at the input's size."""

    def __init__(self, config: DepthAnythingV2Config) -> None:
        super().__init__()
        c1, c2, c3, c4 = config.out_channels
        self.projects = nn.ModuleList(
            nn.Conv2d(config.embed_dim, c, 1) for c in config.out_channels
        )
        # patch grid -> 4x, 2x, 1x, 1/2x: the four scales the fusion chain climbs
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(c1, c1, 4, stride=4),
                nn.ConvTranspose2d(c2, c2, 2, stride=2),
                nn.Identity(),
                nn.Conv2d(c4, c4, 3, stride=2, padding=1),
            ]
        )
        self.scratch = DptScratch(config.out_channels, config.features)

    def forward(self, tokens: list[torch.Tensor], h: int, w: int) -> torch.Tensor:
        """tokens: 4 x (B, h*w, D), fine to coarse readouts -> (B, 1, 14h, 14w) depth."""
        s = self.scratch
        maps = []
        for x, project, resize, rn in zip(
            tokens,
            self.projects,
            self.resize_layers,
            (s.layer1_rn, s.layer2_rn, s.layer3_rn, s.layer4_rn),
        ):
            x = x.transpose(1, 2).reshape(x.shape[0], -1, h, w)  # (B, D, h, w)
            maps.append(rn(resize(project(x))))
        l1, l2, l3, l4 = maps  # (B, F, 4h, 4w), (B, F, 2h, 2w), (B, F, h, w), (B, F, h/2, w/2)
        x = s.refinenet4(l4, None, l3.shape[-2:])
        x = s.refinenet3(x, l3, l2.shape[-2:])
        x = s.refinenet2(x, l2, l1.shape[-2:])
        x = s.refinenet1(x, l1, (2 * l1.shape[-2], 2 * l1.shape[-1]))  # (B, F, 8h, 8w)
        x = _resize(s.output_conv1(x), (h * PATCH_SIZE, w * PATCH_SIZE))
        return s.output_conv2(x)


class DepthAnythingV2(DepthEstimator):
    """Depth Anything V2: (B, 3, h, w) normalised RGB -> (B, h, w) relative inverse depth."""

    name = "depth_anything_v2"
    config_class = DepthAnythingV2Config

    def __init__(self, config: DepthAnythingV2Config | None = None) -> None:
        super().__init__()
        self.config = config or DepthAnythingV2Config()
        c = self.config
        self.pretrained = DinoV2(c.embed_dim, c.depth, c.num_heads)
        self.depth_head = DptHead(c)

    def preprocessing(self) -> EstimatorPreprocessing:
        """Shorter side to ``input_size``, both sides multiples of 14, ImageNet normalisation."""
        return EstimatorPreprocessing(self.config.input_size, PATCH_SIZE)

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, h, w) float32, ImageNet-normalised, h and w multiples of 14 -> (B, h, w)
        float32 relative inverse depth, >= 0 (larger is nearer)."""
        shape = tuple(rgb.shape)
        if len(shape) != 4 or shape[1] != 3 or shape[2] % PATCH_SIZE or shape[3] % PATCH_SIZE:
            raise ValueError(
                f"rgb must be (B, 3, h, w) with h, w multiples of {PATCH_SIZE}, got {shape}"
            )
        h, w = rgb.shape[-2] // PATCH_SIZE, rgb.shape[-1] // PATCH_SIZE
        tokens = self.pretrained.intermediate_layers(rgb, self.config.layers)
        return self.depth_head(tokens, h, w)[:, 0]

    def load_reference_weights(self, path: str | os.PathLike) -> None:
        """The official checkpoint (a plain state_dict), strictly
        (``checkpoints.load_depth_anything_checkpoint``)."""
        from .checkpoints import load_depth_anything_checkpoint

        load_depth_anything_checkpoint(self, path)

    @classmethod
    def from_official_checkpoint(cls, path: str | os.PathLike) -> DepthAnythingV2:
        """The model of the size an official checkpoint holds (ViT-S, -B or -L, told from its
        tensors, not its file name), with its weights; raises ``CheckpointError``."""
        from .checkpoints import load_depth_anything_checkpoint, read_depth_anything_checkpoint

        config, weights = read_depth_anything_checkpoint(path)
        model = cls(config)
        load_depth_anything_checkpoint(model, path, weights)
        return model
