"""SAM-DAQ: SAM2.1 with depth-guided parallel adapters and a query-driven temporal memory.

The per-frame model is a pure step over a batch of independent streams::

    model = SamDaq(SamDaqConfig(backbone="sam2.1_hiera_t", input_size=1024))
    state = model.initial_state(batch=2)
    prob, state = model.step(rgb, depth, state)   # frame after frame

All weights live on the module; a stream's memory is the ``state`` tensor the caller holds.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .adapters import BiModalAdapter, DepthProjector, DepthStemSkip, SelfInferenceHead, add_lora
from .base import SaliencyModel
from .config import SamDaqConfig
from .contract import Preprocessing, StateSpec, StateTensor
from .query_memory import QueryTemporalMemory
from .sam2_parts import Sam2Parts, build_sam2_parts

# Prefixes of the SAM2 parts that stay frozen (pretrained by Meta, never fine-tuned); the LoRA
# ablation adds trainable low-rank factors inside the trunk.
FROZEN_PREFIXES = ("trunk.", "neck.", "prompt_encoder.", "memory_attention.", "maskmem_tpos_enc")


def is_trained_key(key: str) -> bool:
    """True for the parameters SAM-DAQ trains (and a weights file of this project holds)."""
    return not key.startswith(FROZEN_PREFIXES) or ".lora_" in key


class Features(NamedTuple):
    """What the image encoder gives the decoder for a batch of frames."""

    embed: torch.Tensor  # E, (B, 256, S/16, S/16), no_mem_embed added
    high_res: tuple[torch.Tensor, torch.Tensor]  # (B, 32, S/4, S/4), (B, 64, S/8, S/8)
    raw_embed: torch.Tensor  # the top level before no_mem_embed (memory-bank baseline only)
    embed_pos: torch.Tensor  # (1 or B, 256, S/16, S/16) its sine position encoding (same)


class SamDaq(SaliencyModel):
    """The SAM-DAQ network. Build with random weights; load weights with ``model.checkpoints``.

    Its variants (``SamDaqConfig.adapter``, ``.temporal``) are configurations of this one plug-in:
    the state is ``{"state": (Q, D)}`` for QTM and the static ablation, ``{"bank": (T, 64, s, s)}``
    (T growing to ``memory_frames``) for the memory-bank baseline.
    """

    name = "samdaq"
    config_class = SamDaqConfig
    backbone_checkpoint = "Meta's SAM2.1 checkpoint (--sam2-checkpoint, parameter sam2_checkpoint)"

    def __init__(self, config: SamDaqConfig, sam2: Sam2Parts | None = None) -> None:
        super().__init__()
        self.config = config
        sam2 = sam2 or build_sam2_parts(config)
        self.trunk = sam2.trunk
        self.neck = sam2.neck
        self.scalp = sam2.scalp
        self.prompt_encoder = sam2.prompt_encoder
        self.mask_decoder = sam2.mask_decoder
        self.mask_decoder.dynamic_multimask_via_stability = config.multimask_fallback
        self.memory_encoder = sam2.memory_encoder
        self.no_mem_embed = sam2.no_mem_embed
        if config.temporal == "memory_bank":
            self.memory_attention = sam2.memory_attention
            self.maskmem_tpos_enc = sam2.maskmem_tpos_enc

        c0, c1, c2, c3 = config.channels
        w = config.adapter_width
        self.depth_projector = DepthProjector()
        self.depth_stem_skip = DepthStemSkip(c0, w)
        if config.adapter == "parallel":  # stage s's inputs -> residuals at stage s's output size
            pairs = [(c0, c1), (c1, c2), (c2, c3), (c3, c3)]
        elif config.adapter == "serial":  # stage s's outputs -> residuals added before stage s+1
            pairs = [(c0, c0), (c1, c1), (c2, c2), (c3, c3)]
        else:  # lora: the trunk adapts itself; only the final RGB-depth fusion stays
            pairs = [(c3, c3)]
            add_lora(self.trunk, config.lora_rank)
        self.adapters = nn.ModuleList([BiModalAdapter(a, b, w) for a, b in pairs])
        self.qtm = QueryTemporalMemory(config)
        self.self_inference_head = SelfInferenceHead()

        for name, p in self.named_parameters():
            if not is_trained_key(name):
                p.requires_grad_(False)
        self.eval()

    # ----------------------------------------------------------------------------------- encoder

    def _trunk_stage(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        """Runs one Hiera stage. Stage 0 takes images (N, 3, S, S); the others take the previous
        stage's (N, C, h, w). Returns (N, C_stage, h', w').

        With parallel adapters nothing trained sits inside the trunk, so it runs under no_grad and
        stores no activations; the serial and LoRA ablations need gradients through it.
        """
        trunk = self.trunk
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.config.adapter != "parallel"):
            if stage == 0:
                x = trunk.patch_embed(x)  # (N, h, w, C0)
                x = x + trunk._get_pos_embed(x.shape[1:3])
                first = 0
            else:
                x = x.permute(0, 2, 3, 1)
                first = trunk.stage_ends[stage - 1] + 1
            for block in trunk.blocks[first : trunk.stage_ends[stage] + 1]:
                x = block(x)
        return x.permute(0, 3, 1, 2)

    def encode(self, rgb: torch.Tensor, depth: torch.Tensor) -> Features:
        """rgb: (B, 3, S, S) ImageNet-normalised; depth: (B, 1, S, S) relative depth in [0, 1]."""
        b = rgb.shape[0]
        depth_img = self.depth_projector(depth)  # (B, 3, S, S)
        # RGB and depth share the frozen trunk: one batch of 2B per stage.
        x = self._trunk_stage(torch.cat([rgb, depth_img], dim=0), 0)
        f_rgb, f_depth = x[:b], x[b:]
        stem = F.interpolate(depth_img, size=x.shape[-2:], mode="bilinear", align_corners=False)
        f_depth = f_depth + self.depth_stem_skip(stem)
        levels = [f_rgb]
        for stage in (1, 2, 3):
            if self.config.adapter == "serial":
                a_rgb, a_depth = self.adapters[stage - 1](f_rgb, f_depth, f_rgb.shape[-2:])
                f_rgb, f_depth = f_rgb + a_rgb, f_depth + a_depth
                levels[-1] = f_rgb
            x = self._trunk_stage(torch.cat([f_rgb, f_depth], dim=0), stage)
            if self.config.adapter == "parallel":
                a_rgb, a_depth = self.adapters[stage - 1](f_rgb, f_depth, x.shape[-2:])
                f_rgb, f_depth = x[:b] + a_rgb, x[b:] + a_depth
            else:
                f_rgb, f_depth = x[:b], x[b:]
            levels.append(f_rgb)
        a_rgb, _ = self.adapters[-1](f_rgb, f_depth, f_rgb.shape[-2:])
        levels[3] = f_rgb + a_rgb

        # Only the RGB stream goes through the neck; the depth neck output would be unused.
        fpn, pos = self.neck(levels)
        if self.scalp > 0:
            fpn, pos = fpn[: -self.scalp], pos[: -self.scalp]
        high_res = (self.mask_decoder.conv_s0(fpn[0]), self.mask_decoder.conv_s1(fpn[1]))
        embed = fpn[-1] + self.no_mem_embed.view(1, -1, 1, 1)
        return Features(embed, high_res, fpn[-1], pos[-1])

    # ----------------------------------------------------------------------------------- decoder

    def decode(self, features: Features, tokens: torch.Tensor) -> torch.Tensor:
        """SAM2's mask decoder on sparse prompt tokens (B, Q, 256) -> logits (B, 1, S/4, S/4)."""
        embed = features.embed
        dense = self.prompt_encoder.no_mask_embed.weight.view(1, -1, 1, 1).expand(
            embed.shape[0], -1, *embed.shape[-2:]
        )
        logits, _, _, _ = self.mask_decoder(
            image_embeddings=embed,
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=tokens,
            dense_prompt_embeddings=dense,
            multimask_output=False,
            repeat_image=False,
            high_res_features=list(features.high_res),
        )
        return logits.float()

    # ------------------------------------------------------------------------------------- steps

    @staticmethod
    def describe(config: SamDaqConfig, norm_bound: float) -> tuple[Preprocessing, StateSpec]:
        """The preprocessing and state of a model of ``config`` whose queries stay within
        ``norm_bound`` (``state_norm_bound``): what an exported file of it declares."""
        if config.temporal == "memory_bank":
            s = config.embed_size
            bank = StateTensor("bank", (config.memory_frames, 64, s, s), growing_axis=0)
            return Preprocessing(config.input_size), StateSpec((bank,))
        queries = StateTensor("state", (config.num_video_queries, config.query_dim))
        return Preprocessing(config.input_size), StateSpec((queries,), norm_bound)

    def preprocessing(self) -> Preprocessing:
        return self.describe(self.config, self.state_norm_bound())[0]

    def state_spec(self) -> StateSpec:
        return self.describe(self.config, self.state_norm_bound())[1]

    def initial_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        """The contract's initial state: ``{name: initial_tensor(batch)}``."""
        return {self.state_spec().names[0]: self.initial_tensor(batch)}

    def step_state(
        self, rgb: torch.Tensor, depth: torch.Tensor, state: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The contract's step: ``step`` on the one state tensor."""
        [(name, tensor)] = state.items()
        prob, new = self.step(rgb, depth, tensor)
        return prob, {name: new}

    def initial_tensor(self, batch: int = 1) -> torch.Tensor:
        """The state at a stream's first frame: (batch, num_video_queries, query_dim) float32, or
        for the memory-bank baseline an empty bank (batch, 0, 64, S/16, S/16)."""
        if self.config.temporal == "memory_bank":
            s = self.config.embed_size
            return self.no_mem_embed.new_zeros(
                batch, 0, self.memory_encoder.out_proj.out_channels, s, s
            )
        return self.qtm.initial_state(batch)

    def state_norm_bound(self) -> float:
        """Largest L2 norm of one video query in a state this model can produce (see
        ``QueryTemporalMemory.state_norm_bound``); inf for the memory-bank baseline (its state is
        a bank of features, not queries)."""
        if self.config.temporal == "memory_bank":
            return float("inf")
        return self.qtm.state_norm_bound()

    def step_features(
        self, features: Features, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame from encoded features: returns probability (B, 1, S, S) and the new state."""
        temporal = self.config.temporal
        if temporal == "memory_bank":
            embed = self._attend_to_memory(features, state)
            queries = self.qtm.initial_state(embed.shape[0]).to(embed)
        else:
            embed, queries = features.embed, state
        logits = self.decode(features._replace(embed=embed), self.qtm.prompt(queries, embed))
        size = self.config.input_size
        prob = torch.sigmoid(
            F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
        )
        if temporal == "static":
            return prob, state
        if temporal == "memory_bank":
            memory = self.memory_encoder(features.raw_embed, prob, skip_mask_sigmoid=True)[
                "vision_features"
            ]
            return prob, torch.cat([state, memory[:, None]], dim=1)[
                :, -self.config.memory_frames :
            ]
        memory = self.memory_encoder(features.embed, prob, skip_mask_sigmoid=True)[
            "vision_features"
        ]
        return prob, self.qtm.update(state, memory)

    def temporal_parts(self) -> list[tuple[nn.Module, str]]:
        """(module, method name) of the temporal part of a step, for timing it apart: reading the
        memory into this frame's prompt (QTM's read attention, or SAM2's memory attention) and
        writing this frame into it (memory encoder, QTM update)."""
        parts = [(self.qtm, "prompt"), (self.memory_encoder, "forward")]
        if self.config.temporal == "memory_bank":
            return [*parts, (self, "_attend_to_memory")]
        return [*parts, (self.qtm, "update")]

    def _attend_to_memory(self, features: Features, bank: torch.Tensor) -> torch.Tensor:
        """SAM2's memory attention of the top level over a bank (B, T, 64, s, s), newest last."""
        if bank.shape[1] == 0:
            return features.embed
        b, t, c, h, w = bank.shape
        pos = self.memory_encoder.position_encoding(bank[:, 0]).to(bank.dtype)  # (B, 64, s, s)
        # Slot encodings as SAM2 orders them: the previous frame first.
        tpos = self.maskmem_tpos_enc[:t].flip(0).view(1, t, c, 1, 1)
        memory = bank.permute(1, 3, 4, 0, 2).reshape(t * h * w, b, c)
        memory_pos = (pos[:, None] + tpos).permute(1, 3, 4, 0, 2).reshape(t * h * w, b, c)
        curr = features.raw_embed.flatten(2).permute(2, 0, 1)  # (s*s, B, 256)
        curr_pos = features.embed_pos.expand(b, -1, -1, -1).flatten(2).permute(2, 0, 1)
        out = self.memory_attention(
            curr=curr, curr_pos=curr_pos, memory=memory, memory_pos=memory_pos
        )
        return out.permute(1, 2, 0).reshape(b, -1, h, w)

    def step(
        self, rgb: torch.Tensor, depth: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame of B independent streams.

        rgb: (B, 3, S, S) float32, ImageNet-normalised RGB. depth: (B, 1, S, S) float32 in [0, 1].
        state: (B, num_video_queries, query_dim), from ``initial_state`` or the previous step.
        Returns (prob (B, 1, S, S) float32 in [0, 1], new state of the same shape as ``state``).
        """
        self.config.check_step_inputs(rgb, depth, state)
        return self.step_features(self.encode(rgb, depth), state)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, state: torch.Tensor):
        """Same as ``step`` (so that the module exports and traces as the step)."""
        return self.step(rgb, depth, state)

    def forward_clip(
        self, rgb: torch.Tensor, depth: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training forward over clips: every stream starts from the initial state.

        rgb: (B, T, 3, S, S); depth: (B, T, 1, S, S). Returns probabilities (B, T, S, S) and the
        self-inference maps (B, T, S/16, S/16), both in [0, 1].
        """
        b, t = rgb.shape[:2]
        feats = self.encode(rgb.flatten(0, 1), depth.flatten(0, 1))  # frames as (B*T, ...)

        def frame(x: torch.Tensor, i: int) -> torch.Tensor:
            return x.unflatten(0, (b, t))[:, i]

        intermediate = self.self_inference_head(feats.embed).squeeze(1).unflatten(0, (b, t))
        state = self.initial_tensor(b).to(rgb.device)
        probs = []
        for i in range(t):
            f = Features(
                frame(feats.embed, i),
                (frame(feats.high_res[0], i), frame(feats.high_res[1], i)),
                frame(feats.raw_embed, i),
                feats.embed_pos[:1],  # the same for every frame; a batch of B*T would not expand
            )
            prob, state = self.step_features(f, state)
            probs.append(prob[:, 0])
        return torch.stack(probs, dim=1), intermediate

    @classmethod
    def is_trained_key(cls, key: str) -> bool:
        """Everything but the frozen SAM2 trunk, neck and prompt encoder (``is_trained_key``)."""
        return is_trained_key(key)

    def load_backbone(self, path) -> None:
        """Meta's SAM2.1 checkpoint into the SAM2 parts (``checkpoints.load_sam2_checkpoint``)."""
        from .checkpoints import load_sam2_checkpoint

        load_sam2_checkpoint(self, path)

    def load_reference_weights(self, path) -> None:
        """The reference SAM-DAQ checkpoint (``checkpoints.load_reference_checkpoint``)."""
        from .checkpoints import load_reference_checkpoint

        load_reference_checkpoint(self, path)

    def clip_loss(
        self, rgb: torch.Tensor, depth: torch.Tensor, gt: torch.Tensor, intermediate_weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SAM-DAQ's training loss over clips: BCE of the masks plus ``intermediate_weight`` times
        BCE of the self-inference maps (against the ground truth resized bilinearly,
        align_corners=False, as the reference does).

        rgb (B, T, 3, S, S), depth (B, T, 1, S, S), gt (B, T, S, S) float in [0, 1]. Returns
        (total, mask BCE, intermediate BCE), scalars averaged over every pixel of every frame.
        """
        return self.loss(*self.forward_clip(rgb, depth), gt, intermediate_weight)

    @staticmethod
    def loss(
        probs: torch.Tensor,
        intermediate: torch.Tensor,
        gt: torch.Tensor,
        intermediate_weight: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``clip_loss`` from ``forward_clip``'s outputs: probs (B, T, S, S), intermediate
        (B, T, S/16, S/16), both in [0, 1]."""
        # BCE is not autocast-safe: always in float32.
        with torch.autocast(probs.device.type, enabled=False):
            gt_small = F.interpolate(
                gt.float(), size=intermediate.shape[-2:], mode="bilinear", align_corners=False
            )
            mask = F.binary_cross_entropy(probs.float(), gt.float())
            inter = F.binary_cross_entropy(intermediate.float(), gt_small)
        return mask + intermediate_weight * inter, mask, inter
