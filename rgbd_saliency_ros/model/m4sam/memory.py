"""M4-SAM's memory: an XMem-style bank of keys and values read by every frame, a hidden state
carried from frame to frame, and the head that turns a memory readout into a mask.

Per frame of B streams, with features F (B, 128, s, s) from the image path (s = S/8)::

    key_feat = key_encoder(F)                                  # (B, 64, s, s)
    key, shrinkage, selection = key_projection(key_feat)
    readout = read_memory(key, selection, bank_keys, bank_shrinkage, bank_values)
    hidden, embedding = decoder(key_feat, hidden, readout)
    prob = sigmoid(mask_head(embedding))                       # (B, 1, S, S)
    value, hidden = value_encoder(F, prob, hidden, deep_update)  # written into the bank

Keys and values stay at the memory's resolution: one frame of the bank is (64 + 1 + 256) x s x s
floats (2.5 MB at input 352).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .decoder import double_conv

FEATURE_DIM = 128  # memory features: gated multi-level fusion (64) + U-Net level (64)
KEY_DIM = 64
VALUE_DIM = 256
HIDDEN_DIM = 64


class GRUUpdate(nn.Module):
    """XMem's gated update of the hidden state h (B, H, s, s) from g (B, G, s, s): one 3x3
    convolution gives forget, update and candidate maps; ``h' = f h (1 - u) + u tanh(c)``."""

    def __init__(self, g_dim: int, hidden_dim: int = HIDDEN_DIM) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.transform = nn.Conv2d(g_dim + hidden_dim, 3 * hidden_dim, 3, padding=1)

    def forward(self, g: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        n = self.hidden_dim
        maps = self.transform(torch.cat([g, h], dim=1))
        forget = torch.sigmoid(maps[:, :n])
        update = torch.sigmoid(maps[:, n : 2 * n])
        candidate = torch.tanh(maps[:, 2 * n :])
        return forget * h * (1 - update) + update * candidate


class ResBlock(nn.Module):
    """Pre-activation residual block: two ReLU-then-3x3 convolutions, plus the input (through a
    3x3 convolution when the widths differ)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.downsample = nn.Conv2d(c_in, c_out, 3, padding=1) if c_in != c_out else None
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(x))))
        return out + (x if self.downsample is None else self.downsample(x))


class ChannelSpatialAttention(nn.Module):
    """CBAM: a channel gate from average- and max-pooled features through one MLP, then a spatial
    gate from the channel-wise max and mean through a 7x7 convolution."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel_gate = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels, channels // reduction),
            nn.ReLU(),
            nn.Linear(channels // reduction, channels),
        )
        self.spatial_gate = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = self.channel_gate(F.avg_pool2d(x, size, stride=size)) + self.channel_gate(
            F.max_pool2d(x, size, stride=size)
        )
        x = x * torch.sigmoid(pooled)[:, :, None, None]
        compressed = torch.cat([x.max(dim=1, keepdim=True)[0], x.mean(dim=1, keepdim=True)], 1)
        return x * torch.sigmoid(self.spatial_gate(compressed))


class FusionBlock(nn.Module):
    """Key features (B, X, s, s) and a readout (B, G, s, s) -> (B, out, s, s)."""

    def __init__(self, x_dim: int, g_dim: int, mid_dim: int, out_dim: int) -> None:
        super().__init__()
        self.block1 = ResBlock(x_dim + g_dim, mid_dim)
        self.attention = ChannelSpatialAttention(mid_dim)
        self.block2 = ResBlock(mid_dim, out_dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        g = self.block1(torch.cat([x, g], dim=1))
        return self.block2(g + self.attention(g))


class MemoryDecoder(nn.Module):
    """Readout and hidden state -> the frame's memory embedding (B, 256, s, s) and the updated
    hidden state (B, 64, s, s)."""

    def __init__(self) -> None:
        super().__init__()
        self.fuser = FusionBlock(KEY_DIM, VALUE_DIM + HIDDEN_DIM, 512, VALUE_DIM)
        self.hidden_update = GRUUpdate(VALUE_DIM)

    def forward(
        self, key_feat: torch.Tensor, hidden: torch.Tensor, readout: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.fuser(key_feat, torch.cat([readout, hidden], dim=1))
        return self.hidden_update(embedding, hidden), embedding


class KeyProjection(nn.Module):
    """Key features (B, 64, s, s) -> key (B, 64, s, s), shrinkage (B, 1, s, s) >= 1 (how sharply
    a memory entry is matched) and selection (B, 64, s, s) in (0, 1) (which key channels a query
    pixel uses)."""

    def __init__(self, dim: int = KEY_DIM) -> None:
        super().__init__()
        self.key = nn.Conv2d(dim, dim, 3, padding=1)
        self.shrinkage = nn.Conv2d(dim, 1, 3, padding=1)
        self.selection = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.key(x), self.shrinkage(x) ** 2 + 1, torch.sigmoid(self.selection(x))


class ValueEncoder(nn.Module):
    """A mask (B, 1, S, S) in [0, 1] and the frame's features (B, 128, s, s) -> the value written
    into the memory (B, 256, s, s), and the hidden state, deep-updated where asked."""

    def __init__(self) -> None:
        super().__init__()
        c = FEATURE_DIM
        self.mask_enhancer = double_conv(c + 1, c, c, bias=True)
        self.value_proj = nn.Sequential(
            nn.Conv2d(c, VALUE_DIM, 1), nn.BatchNorm2d(VALUE_DIM), nn.ReLU()
        )
        self.hidden_reinforce = GRUUpdate(VALUE_DIM)

    def forward(
        self,
        features: torch.Tensor,
        mask: torch.Tensor,
        hidden: torch.Tensor,
        deep_update: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``deep_update``: (B,) bool, whose streams' hidden states the new value updates."""
        small = F.interpolate(mask, size=features.shape[-2:], mode="bilinear", align_corners=False)
        value = self.value_proj(self.mask_enhancer(torch.cat([features, small], dim=1)))
        # Both branches per stream keep the step free of data-dependent control flow.
        reinforced = self.hidden_reinforce(value, hidden)
        return value, torch.where(deep_update.view(-1, 1, 1, 1), reinforced, hidden)


class MaskHead(nn.Module):
    """Memory embedding (B, 256, s, s) -> mask logits (B, 1, 8 s, 8 s): three stride-2
    transposed convolutions (BN, GELU), then a 3x3 convolution."""

    def __init__(self, c_in: int = VALUE_DIM, width: int = FEATURE_DIM) -> None:
        super().__init__()
        widths = (c_in, width, width // 2, width // 4)
        for i in (1, 2, 3):
            self.add_module(
                f"deconv{i}", nn.ConvTranspose2d(widths[i - 1], widths[i], 2, stride=2)
            )
            self.add_module(f"bn{i}", nn.BatchNorm2d(widths[i]))
        self.final_conv = nn.Conv2d(widths[3], 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in (1, 2, 3):
            x = F.gelu(getattr(self, f"bn{i}")(getattr(self, f"deconv{i}")(x)))
        return self.final_conv(x)


class XMemory(nn.Module):
    """The memory's trained parts (the bank itself is the per-stream state)."""

    def __init__(self) -> None:
        super().__init__()
        self.key_encoder = double_conv(FEATURE_DIM, KEY_DIM, KEY_DIM)
        self.key_projection = KeyProjection()
        self.value_encoder = ValueEncoder()
        self.decoder = MemoryDecoder()


def read_memory(
    key: torch.Tensor,
    selection: torch.Tensor,
    bank_keys: torch.Tensor,
    bank_shrinkage: torch.Tensor,
    bank_values: torch.Tensor,
) -> torch.Tensor:
    """XMem's memory read: every query pixel attends to every pixel of every frame in the bank.

    key, selection: (B, CK, s, s); bank_keys (B, T, CK, s, s), bank_shrinkage (B, T, 1, s, s),
    bank_values (B, T, CV, s, s). Returns the readout (B, CV, s, s).

    Similarity is the negative squared distance of key channels weighted by the query's
    selection, times the memory pixel's shrinkage, over sqrt(CK); softmax over the bank.
    """
    b, t, ck, h, w = bank_keys.shape
    mk = bank_keys.transpose(1, 2).flatten(2).transpose(1, 2)  # (B, T*h*w, CK)
    ms = bank_shrinkage.flatten(1).unsqueeze(2)  # (B, T*h*w, 1)
    qk, qe = key.flatten(2), selection.flatten(2)  # (B, CK, h*w)
    a_sq = mk.pow(2) @ qe
    two_ab = 2 * (mk @ (qk * qe))
    b_sq = (qe * qk.pow(2)).sum(1, keepdim=True)
    similarity = (-a_sq + two_ab - b_sq) * ms / math.sqrt(ck)  # (B, T*h*w, h*w)
    weights = torch.exp(similarity - similarity.max(dim=1, keepdim=True)[0])
    affinity = weights / weights.sum(dim=1, keepdim=True)
    mv = bank_values.transpose(1, 2).flatten(2)  # (B, CV, T*h*w)
    return torch.bmm(mv, affinity).view(b, -1, h, w)
