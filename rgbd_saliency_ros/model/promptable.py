"""The contract of a promptable model (a SAM): an image embedding once per frame, then masks for
each prompt (points, a box) from that embedding.

    model = model_class("efficientvit_sam_l0")()
    embedding = model.embed_image(rgb)                 # rgb (1, 3, S, S), letterboxed
    low_res, iou = model.decode(embedding, boxes=boxes, multimask=False)

How it fits the plug-in contract (``base.SaliencyModel``): a promptable model is registered,
loaded and saved like every plug-in, and says ``Preprocessing(needs_prompts=True)``. It has no
per-stream state (``StateSpec()`` with no tensors): the prompts are inputs of each frame, not a
memory, and one frame's masks do not depend on the last. It has no saliency step either: without
a prompt it has no object to segment, so ``step_state`` refuses, and ``SaliencyRuntime`` refuses
such a model before a frame comes. The frames-in, masks-out path for it is
``runtime/segment.py`` (letterboxing, the prompt frame, masks at the frame's size).

Coordinates: prompts are given in a square *prompt frame* of ``prompt_size`` pixels (1024 for
SAM) in which the frame, resized so that its long side fills the square, sits at the top left.
The encoder's input is the same letterbox at ``preprocessing().input_size`` (512 for the L
models, 1024 for XL); masks come back at 256 x 256 over the whole prompt frame.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from .base import SaliencyModel
from .contract import StateSpec

LOW_RES_SIDE = 256  # side of the decoder's mask logits, over the whole prompt frame


class PromptableModel(SaliencyModel):
    """Base of promptable plug-ins: ``embed_image`` once per frame, ``decode`` per prompt."""

    prompt_size: ClassVar[int] = 1024  # side of the square frame prompt coordinates are in

    def state_spec(self) -> StateSpec:
        """No per-stream state: a frame's masks depend on that frame and its prompts only."""
        return StateSpec()

    def initial_state(self, batch: int = 1) -> dict[str, torch.Tensor]:
        return {}

    def step_state(self, rgb, depth, state):
        raise NotImplementedError(
            f"model {self.name} is promptable: it segments what prompts point at (points, boxes) "
            "and has no prompt-free saliency step; use `rgbd-saliency segment`"
        )

    def embed_image(self, rgb: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        """rgb (B, 3, S, S) normalised and letterboxed as ``preprocessing()`` says; depth
        (B, 1, S, S) in [0, 1], letterboxed the same way, for a model that takes depth (None
        otherwise). Returns the image embedding, (B, C, h, w) float32."""
        raise NotImplementedError

    def decode(
        self,
        embedding: torch.Tensor,
        points: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        boxes: torch.Tensor | None = None,
        multimask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for P prompts on one image.

        Args:
            embedding: (1, C, h, w), ``embed_image``'s output for the image.
            points: (P, N, 2) float32 (x, y) in the prompt frame's pixels, or None.
            labels: (P, N) int: 1 foreground, 0 background (-1: padding, ignored).
            boxes: (P, 4) float32 (x0, y0, x1, y1) in the prompt frame's pixels, or None.
            multimask: True: several candidate masks per prompt; False: one.

        Returns:
            low-res mask logits (P, M, 256, 256) float32 over the whole prompt frame, and the
            predicted IoU of each mask (P, M).
        """
        raise NotImplementedError
