"""M4-SAM (Multi-Modal Mixture-of-Experts with Memory-Augmented SAM) as a model plug-in.

    model = M4Sam(M4SamConfig(backbone="sam2.1_hiera_l", input_size=352))
    model.load_reference_weights("M4SAM-rdvs-59.pth")        # the authors' checkpoint, as it is
    state = model.initial_state(batch=1)
    prob, state = model.step_state(rgb, depth, state)        # frame after frame

One frame of B streams:

1. Image path (no state): RGB and depth (repeated to 3 channels) go through the SAM2.1 Hiera
   trunk as one batch; its attention carries Modality-Aware MoE-LoRA (``moe_lora``), RGB's half
   through the RGB experts, depth's through the depth experts, both through the fusion experts.
   Each level's RGB and depth are fused, a U-Net gives the coarse logits, and the Gated
   Multi-Level Feature Fusion gives the memory its features (``decoder``).
2. Memory (the state): at a stream's first frame the bank is empty and the pseudo prior, the
   coarse map's sigmoid min-max stretched to [0, 1], is encoded as the value paired with the
   frame's own key (Pseudo-Guided Initialization). Each frame reads the bank, decodes the mask
   (the output) and writes its key and value into the bank (``memory``).

The state grows by one frame per step up to ``memory_frames``; states of streams at different
lengths do not stack (the runtime batches equal lengths together).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..base import SaliencyModel
from ..contract import Preprocessing, StateSpec, StateTensor
from ..sam2_parts import build_hiera_trunk
from .config import CONFIG_LIMITS, M4SamConfig
from .decoder import CoarseDecoder, Decoded
from .memory import HIDDEN_DIM, KEY_DIM, VALUE_DIM, MaskHead, XMemory, read_memory
from .moe_lora import inject_moe_lora, modalities

# The per-stream state, in StateSpec order (shapes without the batch axis; T <= memory_frames).
STATE_DOC = {
    "keys": "(T, 64, s, s): the bank's keys, oldest first (s = input / 8)",
    "shrinkage": "(T, 1, s, s): how sharply each bank pixel is matched (>= 1)",
    "values": "(T, 256, s, s): the bank's values (mask-aware features of each frame)",
    "hidden": "(64, s, s): the hidden state carried from frame to frame, in [-1, 1]",
    "deep_update_phase": "(1,): frames since the last deep update, modulo deep_update_every",
}


def pseudo_prior(coarse: torch.Tensor) -> torch.Tensor:
    """The first frame's stand-in for a ground-truth mask: coarse logits (B, 1, S, S) through a
    sigmoid, min-max stretched per stream to [0, 1] (the reference stretches over its whole
    batch, which is one stream). A constant map gives zeros."""
    prob = torch.sigmoid(coarse)
    low = prob.amin(dim=(1, 2, 3), keepdim=True)
    span = prob.amax(dim=(1, 2, 3), keepdim=True) - low
    return torch.where(span > 0, (prob - low) / span, torch.zeros_like(prob))


class M4Sam(SaliencyModel):
    """The M4-SAM network. Random weights when built; ``load_reference_weights`` reads the
    authors' checkpoints, ``checkpoints.load_weights`` this project's files (both hold the
    whole network: there is no separate backbone file)."""

    name = "m4sam"
    config_class = M4SamConfig
    config_limits = CONFIG_LIMITS

    def __init__(self, config: M4SamConfig, trunk: nn.Module | None = None) -> None:
        """``trunk``: a Hiera trunk for ``config.backbone`` (built from sam2's config if None)."""
        super().__init__()
        self.config = config
        self.trunk = trunk or build_hiera_trunk(config.sam2_config_file, config.channels)
        # A plain list (not registered twice): the wrappers live under ``trunk``.
        self.lora = inject_moe_lora(
            self.trunk,
            config.lora_rank,
            config.lora_alpha,
            config.experts_per_modality,
            config.experts_top_k,
        )
        self.decoder = CoarseDecoder(config.channels)
        self.memory = XMemory()
        self.mask_head = MaskHead()
        # The trunk stays as SAM2.1 trained it; only its LoRA paths are trained (as the
        # reference freezes it before injecting them).
        for name, p in self.trunk.named_parameters():
            p.requires_grad_(".lora_" in name)
        self.eval()

    # ------------------------------------------------------------------------------ contract

    def preprocessing(self) -> Preprocessing:
        """RGB / 255 min-max stretched per frame (no mean/std) and depth relative in [0, 1],
        repeated to three channels by the model, as the reference's loader gives them."""
        return Preprocessing(
            self.config.input_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), rgb_minmax=True
        )

    def state_spec(self) -> StateSpec:
        s, t = self.config.memory_size, self.config.memory_frames
        return StateSpec(
            (
                StateTensor("keys", (t, KEY_DIM, s, s), growing_axis=0),
                StateTensor("shrinkage", (t, 1, s, s), growing_axis=0),
                StateTensor("values", (t, VALUE_DIM, s, s), growing_axis=0),
                StateTensor("hidden", (HIDDEN_DIM, s, s)),
                StateTensor("deep_update_phase", (1,)),
            )
        )

    def initial_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """An empty bank, a zero hidden state (``STATE_DOC``), float32 on the model's device."""
        s = self.config.memory_size
        zeros = self.decoder.head.weight.new_zeros
        return {
            "keys": zeros(batch, 0, KEY_DIM, s, s),
            "shrinkage": zeros(batch, 0, 1, s, s),
            "values": zeros(batch, 0, VALUE_DIM, s, s),
            "hidden": zeros(batch, HIDDEN_DIM, s, s),
            "deep_update_phase": zeros(batch, 1),
        }

    def step_state(
        self, rgb: torch.Tensor, depth: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """rgb (B, 3, S, S) as ``preprocessing()`` says, depth (B, 1, S, S) in [0, 1], states of
        equal bank lengths. Returns (the memory branch's probability (B, 1, S, S) float32 in
        [0, 1], the new state)."""
        prob, _, new = self.step_decoded(self.encode(rgb, depth), state)
        return prob, new

    # ---------------------------------------------------------------------------- the network

    def encode(self, rgb: torch.Tensor, depth: torch.Tensor) -> Decoded:
        """The image path of a frame (no state): coarse logits and the memory's features."""
        s, b = self.config.input_size, rgb.shape[0]
        for label, x, c in (("rgb", rgb, 3), ("depth", depth, 1)):
            if tuple(x.shape) != (b, c, s, s):
                raise ValueError(f"{label} has shape {tuple(x.shape)}, expected {(b, c, s, s)}")
        images = torch.cat([rgb, depth.expand(-1, 3, -1, -1)])  # (2B, 3, S, S)
        with modalities(self.lora, ("rgb", "depth")):
            levels = self.trunk(images)  # strides 4, 8, 16, 32
        return self.decoder([x[:b] for x in levels], [x[b:] for x in levels])

    def step_decoded(
        self,
        decoded: Decoded,
        state: dict[str, torch.Tensor],
        deep_update: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """The memory's part of a step. ``deep_update``: (B,) bool decisions for this frame,
        instead of the config's rule (to replay a recorded run). Returns (probability
        (B, 1, S, S), the coarse logits (B, 1, S, S) it started from, the new state)."""
        features = decoded.memory_features  # (B, 128, s, s)
        mem = self.memory
        key_feat = mem.key_encoder(features)
        key, shrinkage, selection = mem.key_projection(key_feat)
        hidden = state["hidden"]
        if state["keys"].shape[1] == 0:
            # Pseudo-Guided Initialization: the prior's value, matched by this frame's own key.
            every = torch.ones(len(features), dtype=torch.bool, device=features.device)
            value, hidden = mem.value_encoder(
                features, pseudo_prior(decoded.coarse), hidden, every
            )
            bank = (key[:, None], shrinkage[:, None], value[:, None])
        else:
            bank = (state["keys"], state["shrinkage"], state["values"])
        readout = read_memory(key, selection, *bank)
        hidden, embedding = mem.decoder(key_feat, hidden, readout)
        prob = torch.sigmoid(self.mask_head(embedding))

        phase = state["deep_update_phase"]
        if deep_update is None:
            deep_update = self.deep_update(phase)
        value, hidden = mem.value_encoder(features, prob, hidden, deep_update)
        new = {
            "keys": self._remember(state["keys"], key),
            "shrinkage": self._remember(state["shrinkage"], shrinkage),
            "values": self._remember(state["values"], value),
            "hidden": hidden,
            "deep_update_phase": torch.remainder(phase + 1, self.config.deep_update_every),
        }
        return prob, decoded.coarse, new

    def deep_update(self, phase: torch.Tensor) -> torch.Tensor:
        """Whether the frame just decoded deep-updates each stream's hidden state: phase (B, 1)
        -> (B,) bool (``M4SamConfig.deep_update_rule``)."""
        if self.config.deep_update_rule == "random":
            draw = bool(np.random.rand() < 0.5)  # the reference's draw, one per step
            return torch.full((len(phase),), draw, device=phase.device)
        return phase[:, 0] == 0

    def _remember(self, bank: torch.Tensor, entry: torch.Tensor) -> torch.Tensor:
        """bank (B, T, ...) with entry (B, ...) appended, at most ``memory_frames`` long: the
        oldest goes first, after the first frame when ``keep_first_frame``."""
        bank = torch.cat([bank, entry[:, None]], dim=1)
        if bank.shape[1] <= self.config.memory_frames:
            return bank
        drop = 1 if self.config.keep_first_frame else 0
        return torch.cat([bank[:, :drop], bank[:, drop + 1 :]], dim=1)

    # ------------------------------------------------------------------------------- weights

    def load_reference_weights(self, path: str | os.PathLike) -> None:
        """The authors' checkpoint (a plain state_dict of their whole ``M4SAM``, strict)."""
        from .reference import load_reference_checkpoint

        load_reference_checkpoint(self, path)
