"""Frames and prompts in, masks out, for a promptable model (EfficientViT-SAM): what
``rgbd-saliency segment`` runs, with no ROS in it.

    segmenter = PromptSegmenter(model)                    # a model.promptable.PromptableModel
    segmenter.set_image(rgb)                              # (H, W, 3) uint8: the encoder runs once
    result = segmenter.predict(Prompt(box=(162, 135, 521, 466)), multimask=True)
    result.mask_logits                                    # (3, H, W) float32, > 0: in the mask

    rgbd-saliency segment --model efficientvit_sam_l0 --weights efficientvit_sam_l0.pt \
        --image frame.png --box 162 135 521 466 --point 310 190 1 --multimask --out masks.npz

Prompts are in the frame's pixels; ``letterbox.py`` does the geometry (the encoder's letterboxed
input, the square prompt frame, masks back at the frame's size). One image embedding serves any
number of prompts, each decoded on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..model.promptable import PromptableModel
from .depth import read_relative_depth_png
from .letterbox import letterbox_depth, letterbox_rgb, masks_to_frame, to_prompt_frame
from .model_loading import load_promptable_model
from .sequence import read_rgb


@dataclass(frozen=True)
class Prompt:
    """One object to segment: a box, points, or both, in the frame's pixels."""

    box: tuple[float, float, float, float] | None = None  # (x0, y0, x1, y1)
    points: tuple[tuple[float, float], ...] = ()  # (x, y) each
    labels: tuple[int, ...] = ()  # per point: 1 on the object, 0 off it

    def __post_init__(self) -> None:
        if self.box is None and not self.points:
            raise ValueError("a prompt needs a box or at least one point")
        if len(self.points) != len(self.labels):
            raise ValueError(f"{len(self.points)} points but {len(self.labels)} labels")
        if any(label not in (0, 1) for label in self.labels):
            raise ValueError(f"point labels are 1 (object) or 0 (background), got {self.labels}")
        values = [*(self.box or ()), *(c for p in self.points for c in p)]
        if not np.isfinite(np.asarray(values, np.float64)).all():
            raise ValueError("prompt coordinates must be finite")
        if self.box is not None and not (
            self.box[0] <= self.box[2] and self.box[1] <= self.box[3]
        ):
            raise ValueError(f"box {self.box} must be (x0, y0, x1, y1) with x0 <= x1, y0 <= y1")


@dataclass
class Segmentation:
    """A prompt's masks: M = 3 candidates (multimask) or 1."""

    low_res_logits: np.ndarray  # (M, 256, 256) float32, over the whole square prompt frame
    iou: np.ndarray  # (M,) float32, the model's predicted IoU of each mask
    mask_logits: np.ndarray  # (M, H, W) float32 at the frame's size; > 0 is in the mask


class PromptSegmenter:
    """Holds a promptable model and the embedding of the last image set."""

    def __init__(self, model: PromptableModel) -> None:
        if not isinstance(model, PromptableModel):
            raise ValueError(f"model {model.name} is not promptable")
        self.model = model.eval()
        self.preprocessing = model.preprocessing()
        self.device = next(model.parameters()).device
        self.embedding: torch.Tensor | None = None  # (1, C, h, w)
        self.frame_hw: tuple[int, int] | None = None

    def model_input(
        self, rgb: np.ndarray, depth: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The encoder's inputs for a frame: rgb (3, S, S) float32, letterboxed and normalised;
        depth (1, S, S) float32 in [0, 1], letterboxed (``letterbox_depth``), or None for a
        model that takes no depth."""
        pre, name = self.preprocessing, self.model.name
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or min(rgb.shape[:2]) == 0:
            raise ValueError(f"color must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
        rgb_in = letterbox_rgb(rgb, pre.input_size, pre.mean, pre.std)
        if not pre.needs_depth:
            if depth is not None:
                raise ValueError(f"model {name} takes no depth")
            return rgb_in, None
        if depth is None:
            raise ValueError(f"model {name} needs depth")
        if depth.shape != rgb.shape[:2]:
            raise ValueError(f"depth {depth.shape} and color {rgb.shape[:2]} differ in size")
        return rgb_in, letterbox_depth(depth, pre.input_size)

    def set_image(self, rgb: np.ndarray, depth: np.ndarray | None = None) -> None:
        """Runs the image encoder on a frame: rgb (H, W, 3) uint8 RGB; depth (H, W) float32
        relative depth in [0, 1] (NaN invalid) for a model that takes depth, else None."""
        inputs = [
            None if a is None else torch.from_numpy(a[None]).to(self.device)
            for a in self.model_input(rgb, depth)
        ]
        with torch.inference_mode():
            self.embedding = self.model.embed_image(*inputs)
        self.frame_hw = rgb.shape[:2]

    def predict(self, prompt: Prompt, multimask: bool = False) -> Segmentation:
        """Masks for one prompt on the image last set."""
        if self.embedding is None:
            raise RuntimeError("set_image must come before predict")
        size = self.model.prompt_size
        kwargs = {}
        if prompt.points:
            points = to_prompt_frame(np.asarray(prompt.points), self.frame_hw, size)
            kwargs["points"] = torch.from_numpy(points[None]).to(self.device)
            kwargs["labels"] = torch.tensor([prompt.labels], dtype=torch.int, device=self.device)
        if prompt.box is not None:
            box = to_prompt_frame(np.reshape(prompt.box, (2, 2)), self.frame_hw, size)
            kwargs["boxes"] = torch.from_numpy(box.reshape(1, 4)).to(self.device)
        with torch.inference_mode():
            low_res, iou = self.model.decode(self.embedding, multimask=multimask, **kwargs)
        low_res = low_res[0].float().cpu().numpy()
        return Segmentation(
            low_res, iou[0].float().cpu().numpy(), masks_to_frame(low_res, size, self.frame_hw)
        )


def segment_file(
    weights: str | os.PathLike,
    image: str | os.PathLike,
    prompt: Prompt,
    out: str | os.PathLike,
    model: str | None = None,
    depth: str | os.PathLike | None = None,
    multimask: bool = False,
    device: str = "cpu",
) -> Segmentation:
    """One image file and one prompt through a promptable model (``rgbd-saliency segment``).

    ``model``: the registry name, needed for an official checkpoint (a project weights file
    names its own). ``depth``: an aligned depth image in the data sets' relative convention
    (8-bit value / 255), for a model that takes depth. Writes ``out`` (.npz): ``low_res_logits``
    (M, 256, 256), ``iou`` (M,) and ``mask_logits`` (M, H, W) at the image's size, all float32;
    M = 3 with ``multimask``, else 1.
    """
    segmenter = PromptSegmenter(load_promptable_model(weights, model, device).model)
    relative = None if depth is None else read_relative_depth_png(depth)
    segmenter.set_image(read_rgb(Path(image)), relative)
    result = segmenter.predict(prompt, multimask)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:  # a file object: np.savez would append .npz to another suffix
        np.savez(
            f,
            low_res_logits=result.low_res_logits,
            iou=result.iou,
            mask_logits=result.mask_logits,
        )
    return result
