"""Modality-Aware MoE-LoRA: low-rank updates of the frozen Hiera trunk's attention, computed by
small convolutional experts chosen per window and per modality.

Each block's ``attn.qkv`` Linear is wrapped (``inject_moe_lora``). Beside the frozen projection,
two low-rank paths (for q and for v) project the input to ``rank`` channels, run them as an image
through three groups of experts (one for RGB, one for depth, one for both: "fusion") and project
back. Within a group a gate picks the ``top_k`` best experts per window from the window's mean
features; their outputs are combined as log(sum(exp(expert))), with no gate weights (what the
released weights were trained with).

RGB and depth may share one batch: ``modalities(trunk, ("rgb", "depth"))`` says that the first
half of the batch is RGB and the second depth; Hiera partitions windows batch-first, so every
block sees the same split.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MODALITIES = ("rgb", "depth")
# An all-zero sum of expert exponentials becomes this before the log (the reference's value,
# float64 machine epsilon), so that the log stays finite.
_EMPTY_SUM = float(np.finfo(float).eps)


# Each group's experts, cycled when a group has more than three: an expert is a stack of
# (kernel, depthwise, batch norm) convolutions on the rank channels, each followed by GELU (a
# convolution has a bias where no batch norm follows it).
_SEPARABLE = ((3, True, True), (1, False, False))
_GROUP_EXPERTS = {
    "rgb": (((3, False, True),), ((5, False, True),), _SEPARABLE),
    "depth": (((3, False, True),), ((5, False, True),), _SEPARABLE),
    "fusion": (
        ((1, False, True), (3, False, True)),
        ((5, False, True), (1, False, False)),
        ((3, True, True), (3, False, False)),
    ),
}


def _expert(convs: tuple[tuple[int, bool, bool], ...], rank: int) -> nn.Sequential:
    """One expert on (N, rank, h, w), keeping the shape."""
    layers = []
    for kernel, depthwise, norm in convs:
        groups = rank if depthwise else 1
        layers.append(
            nn.Conv2d(rank, rank, kernel, padding=kernel // 2, groups=groups, bias=not norm)
        )
        layers += [nn.BatchNorm2d(rank), nn.GELU()] if norm else [nn.GELU()]
    return nn.Sequential(*layers)


class ExpertGate(nn.Module):
    """Picks the ``top_k`` of ``experts`` experts for each sample from its mean features.

    ``w_noise``, ``mean`` and ``std`` drive the reference's noisy gating and load-balancing loss in
    training; they are kept so that its checkpoints load (inference uses ``w_gate`` only).
    """

    def __init__(self, rank: int, experts: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.w_gate = nn.Parameter(torch.zeros(rank, experts))
        self.w_noise = nn.Parameter(torch.zeros(rank, experts))
        self.register_buffer("mean", torch.tensor([0.0]))
        self.register_buffer("std", torch.tensor([1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, rank, h, w). Returns (N, experts) bool: the experts that run for each sample."""
        logits = F.adaptive_avg_pool2d(x, 1).flatten(1) @ self.w_gate  # (N, experts)
        top, index = logits.topk(self.top_k, dim=1)
        # An expert whose softmax weight underflows to 0 is not run (the reference dispatches on
        # non-zero weights), hence the weights rather than the indices alone.
        weights = torch.zeros_like(logits).scatter(1, index, torch.softmax(top, dim=1))
        return weights != 0


class ExpertGroup(nn.Module):
    """A gate and its experts: (N, rank, h, w) -> (N, rank, h, w)."""

    def __init__(self, group: str, rank: int, experts: int, top_k: int) -> None:
        super().__init__()
        kinds = _GROUP_EXPERTS[group]
        self.experts = nn.ModuleList(_expert(kinds[i % len(kinds)], rank) for i in range(experts))
        self.gate = ExpertGate(rank, experts, top_k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chosen = self.gate(x)  # (N, experts)
        total = torch.zeros_like(x)
        # Every expert runs on the whole batch (they are tiny) and only the chosen ones count,
        # summed in expert order as the reference adds them.
        for i, expert in enumerate(self.experts):
            pick = chosen[:, i].view(-1, 1, 1, 1)
            total = total + torch.where(pick, expert(x).exp(), torch.zeros_like(x))
        return torch.where(total == 0, torch.full_like(total, _EMPTY_SUM), total).log()


class ModalityLoRA(nn.Module):
    """One low-rank path: x (..., C) -> a (..., C) update, through the experts of the batch's
    modalities and the fusion experts."""

    def __init__(self, features: int, rank: int, alpha: float, experts: int, top_k: int) -> None:
        super().__init__()
        self.lora_A = nn.Parameter(torch.zeros(rank, features))
        self.lora_B = nn.Parameter(torch.zeros(features, rank))
        self.scaling = alpha / rank
        self.rgb = ExpertGroup("rgb", rank, experts, top_k)
        self.depth = ExpertGroup("depth", rank, experts, top_k)
        self.fusion = ExpertGroup("fusion", rank, experts, top_k)

    def forward(self, x: torch.Tensor, modalities: tuple[str, ...]) -> torch.Tensor:
        """x: (N, h, w, C), N split into equal parts, one per entry of ``modalities``."""
        low = (x @ self.lora_A.T).permute(0, 3, 1, 2).contiguous()  # (N, rank, h, w)
        own = torch.cat(
            [
                getattr(self, m)(part)
                for m, part in zip(modalities, low.chunk(len(modalities)), strict=True)
            ]
        )
        mixed = low + own + self.fusion(low)
        return (mixed.permute(0, 2, 3, 1) @ self.lora_B.T) * self.scaling


class MoELoRAQKV(nn.Module):
    """A Hiera block's qkv projection with MoE-LoRA updates of q and v."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, experts: int, top_k: int) -> None:
        super().__init__()
        self.base = base
        width = base.in_features
        self.lora_q = ModalityLoRA(width, rank, alpha, experts, top_k)
        self.lora_v = ModalityLoRA(width, rank, alpha, experts, top_k)
        # Set around each trunk pass by ``modalities``: a Hiera block calls qkv(x) with no way to
        # pass more arguments.
        self.modalities: tuple[str, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, h, w, C_in) -> (N, h, w, 3 C_out)."""
        if not self.modalities:
            raise RuntimeError("MoE-LoRA trunk run outside modalities(): the experts are unknown")
        qkv = self.base(x)
        d = self.base.in_features
        # The updates are C_in wide; at a stage change q and v are wider (C_out = 2 C_in) and the
        # reference adds the updates to the first C_in channels of q and the last C_in of v.
        qkv[..., :d] += self.lora_q(x, self.modalities)
        qkv[..., -d:] += self.lora_v(x, self.modalities)
        return qkv


def inject_moe_lora(
    trunk: nn.Module, rank: int, alpha: float, experts: int, top_k: int
) -> list[MoELoRAQKV]:
    """Wraps every block's ``attn.qkv`` of a Hiera ``trunk`` in place; returns the wrappers."""
    wrappers = []
    for block in trunk.blocks:
        if isinstance(block.attn.qkv, MoELoRAQKV):
            raise ValueError("the trunk already carries MoE-LoRA")
        block.attn.qkv = MoELoRAQKV(block.attn.qkv, rank, alpha, experts, top_k)
        wrappers.append(block.attn.qkv)
    return wrappers


@contextlib.contextmanager
def modalities(wrappers: list[MoELoRAQKV], kinds: tuple[str, ...]) -> Iterator[None]:
    """Within the block, the trunk's batch is ``len(kinds)`` equal parts of these modalities."""
    if any(k not in MODALITIES for k in kinds):
        raise ValueError(f"unknown modality in {kinds}; expected {MODALITIES}")
    for w in wrappers:
        w.modalities = kinds
    try:
        yield
    finally:
        for w in wrappers:
            w.modalities = ()
