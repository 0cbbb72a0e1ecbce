"""EfficientViT-SAM (L0, L1, L2, XL0, XL1): a light promptable SAM, as a plug-in of ``model/``.

    model = EfficientViTSamL0().eval()
    load_weights(model, "efficientvit_sam_l0.pt")      # the official checkpoint, tensors only
    embedding = model.embed_image(rgb)                 # (1, 3, 512, 512) -> (1, 256, 64, 64)
    low_res, iou = model.decode(embedding, boxes=box_1024, multimask=True)

    rgbd-saliency segment --model efficientvit_sam_l0 --weights efficientvit_sam_l0.pt \
        --image frame.png --box 162 135 521 466 --out masks.npz

The image encoder (``efficientvit_backbone``) is EfficientViT-L/XL with the SAM neck; the prompt
encoder is SAM's, taken from the ``sam2`` package (its ``PromptEncoder`` computes the same values
as SAM v1's for points, boxes and masks, with the same weights and keys); the mask decoder is SAM
v1's, written here (``sam_decoder``). How a promptable model fits the plug-in contract (no
per-stream state, no saliency step) is in ``promptable.py``.

One plug-in per size, registered under the name its weights carry (``efficientvit_sam_l0`` ...):
the size is the class, so the config holds only what can vary within a size. Official
checkpoints (a plain ``state_dict`` or ``{"state_dict": ...}``, float16 or float32, with int64
BatchNorm counters) load through ``load_weights`` -> ``load_reference_weights``; this project's
safetensors format holds the whole model.

Reference: mit-han-lab/efficientvit (Apache-2.0), as repackaged by PyPI ``efficientsam`` 1.0.0;
``../shared/fixtures/efficientvit_sam_parity`` pins its outputs.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from .contract import IMAGENET_MEAN, IMAGENET_STD, DataclassConfig, Preprocessing
from .efficientvit_backbone import Backbone, EMBED_DIM, EMBED_SIDE, ENCODER_ARCHS, ImageEncoder
from .promptable import PromptableModel
from .sam_decoder import SamMaskDecoder

MASK_IN_CHANNELS = 16  # hidden channels of the prompt encoder's mask-prompt path


@dataclass(frozen=True)
class EfficientViTSamConfig(DataclassConfig):
    """What can vary within one EfficientViT-SAM size (the size itself is the plug-in).

    ``depth_fusion`` False is EfficientViT-SAM as published (RGB only). True is the depth-aware
    variant of Zhou et al., "Efficient Segment Anything with Depth-Aware Fusion and Limited
    Training Data": a depth encoder of the RGB encoder's architecture whose features are added to
    the RGB features at a middle level, F = F_rgb + alpha * F_depth, the fused features going on
    through the rest of the RGB encoder, the neck, and SAM's unchanged prompt encoder and mask
    decoder. What the paper leaves open is chosen so (see ``EfficientViTSam``):

    - the level: the output of backbone stage ``fusion_stage``; None picks the first stage the
      neck reads (L: stage 2, stride 8, 128 channels; XL: stage 3, stride 16, 256 channels), the
      deepest level whose fusion still reaches every level the neck reads. The depth encoder is
      the backbone's stages 0..fusion_stage only: deeper depth stages would feed nothing;
    - alpha: one learnable weight per channel of that level, starting at ``alpha_init``. At 0
      the model is exactly the RGB model (training starts from the pretrained behaviour, as a
      zero-initialised ControlNet branch does); the depth encoder's gradient is then zero until
      alpha has moved, which alpha's own gradient does from the first step.
    """

    depth_fusion: bool = False
    fusion_stage: int | None = None  # backbone stage whose output gets the depth features
    alpha_init: float = 0.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.alpha_init):
            raise ValueError(f"alpha_init must be finite, got {self.alpha_init}")


def _sam_prompt_encoder(prompt_size: int) -> torch.nn.Module:
    """SAM's prompt encoder for a 64 x 64 embedding and a square prompt frame."""
    from sam2.modeling.sam.prompt_encoder import PromptEncoder

    return PromptEncoder(
        embed_dim=EMBED_DIM,
        image_embedding_size=(EMBED_SIDE, EMBED_SIDE),
        input_image_size=(prompt_size, prompt_size),
        mask_in_chans=MASK_IN_CHANNELS,
    )


class EfficientViTSam(PromptableModel):
    """EfficientViT-SAM of one size (``variant``, a key of ``ENCODER_ARCHS``); the registered
    plug-ins are the subclasses below. Build with random weights; load with ``load_weights``.

    The depth-aware variant (``config.depth_fusion``) adds ``depth_encoder`` (backbone stages
    0..fusion_stage) and ``depth_alpha`` ((C,) at that stage). Its depth input is relative depth
    in [0, 1] (the data sets' convention, near bright; 0 where invalid and in the letterbox's
    padding), given to the depth encoder as a grey image normalised with the RGB statistics, so
    that the depth encoder can start as a copy of the pretrained RGB stages (what loading an
    official checkpoint does). ``freeze_pretrained`` leaves only the depth encoder and alpha
    trainable: the paper's limited training data is the reason to keep SAM's parts as they are.
    """

    variant: ClassVar[str] = ""
    config_class = EfficientViTSamConfig

    def __init__(self, config: EfficientViTSamConfig | None = None) -> None:
        super().__init__()
        if self.variant not in ENCODER_ARCHS:
            raise TypeError(f"{type(self).__name__} is not one EfficientViT-SAM size")
        self.config = config or EfficientViTSamConfig()
        self.arch = ENCODER_ARCHS[self.variant]
        self.image_encoder = ImageEncoder(self.arch)
        self.prompt_encoder = _sam_prompt_encoder(self.prompt_size)
        self.mask_decoder = SamMaskDecoder()
        if self.config.depth_fusion:
            stage = self.config.fusion_stage
            self.fusion_stage = self.arch.neck_stages[-1] if stage is None else stage
            last = len(self.arch.widths) - 2  # fusing after the last stage would skip the encoder
            if not 0 <= self.fusion_stage <= last:
                raise ValueError(f"fusion_stage {stage} of {self.name} must be in 0..{last}")
            self.depth_encoder = Backbone(self.arch, self.fusion_stage + 1)
            width = self.arch.widths[self.fusion_stage]
            self.depth_alpha = nn.Parameter(torch.full((width,), float(self.config.alpha_init)))
            grey = torch.tensor([IMAGENET_MEAN, IMAGENET_STD]).view(2, 1, 3, 1, 1)
            self.register_buffer("depth_stats", grey, persistent=False)

    def preprocessing(self) -> Preprocessing:
        # SAM's pixel statistics (123.675, 116.28, 103.53) / 255 and (58.395, 57.12, 57.375) / 255
        # are ImageNet's.
        depth = "relative" if self.config.depth_fusion else "none"
        return Preprocessing(
            self.arch.input_size, IMAGENET_MEAN, IMAGENET_STD, depth=depth, needs_prompts=True
        )

    @classmethod
    def is_trained_key(cls, key: str) -> bool:
        # BatchNorm's int64 counters are no weights (and safetensors files hold floats only).
        return not key.endswith("num_batches_tracked")

    def embed_image(self, rgb: torch.Tensor, depth: torch.Tensor | None = None) -> torch.Tensor:
        """rgb (B, 3, S, S) float32, ImageNet-normalised, letterboxed (S = 512 for L, 1024 for
        XL) -> (B, 256, 64, 64) float32. ``depth``: (B, 1, S, S) float32 relative depth in
        [0, 1], letterboxed the same way, for the depth-aware variant; None for the RGB model."""
        s = self.arch.input_size
        if rgb.ndim != 4 or tuple(rgb.shape[1:]) != (3, s, s):
            raise ValueError(f"rgb has shape {tuple(rgb.shape)}, expected (B, 3, {s}, {s})")
        if not self.config.depth_fusion:
            if depth is not None:
                raise ValueError(f"model {self.name} takes no depth")
            return self.image_encoder(rgb)
        if depth is None or tuple(depth.shape) != (len(rgb), 1, s, s):
            shape = None if depth is None else tuple(depth.shape)
            raise ValueError(f"depth has shape {shape}, expected ({len(rgb)}, 1, {s}, {s})")
        k, backbone = self.fusion_stage, self.image_encoder.backbone
        levels = backbone.run_stages(rgb, 0, k + 1)
        mean, std = self.depth_stats
        depth_features = self.depth_encoder((depth - mean) / std)[-1]  # grey: 3 equal channels
        levels[k] = levels[k] + self.depth_alpha.view(1, -1, 1, 1) * depth_features
        levels += backbone.run_stages(levels[k], k + 1, len(backbone.stages))
        return self.image_encoder.embed(levels)

    def init_depth_encoder(self) -> None:
        """The depth encoder becomes a copy of the RGB backbone's stages 0..fusion_stage."""
        rgb_stages = self.image_encoder.backbone.stages
        for depth_stage, rgb_stage in zip(self.depth_encoder.stages, rgb_stages):
            depth_stage.load_state_dict(rgb_stage.state_dict())

    def freeze_pretrained(self) -> list[str]:
        """Leaves only the depth-aware parts (depth encoder, alpha) trainable; returns their
        parameter names."""
        trained = []
        for name, parameter in self.named_parameters():
            parameter.requires_grad = name.startswith(("depth_encoder.", "depth_alpha"))
            if parameter.requires_grad:
                trained.append(name)
        return trained

    def decode(self, embedding, points=None, labels=None, boxes=None, multimask=False):
        """See ``PromptableModel.decode``; the prompt frame is 1024 x 1024, masks 256 x 256."""
        if points is None and boxes is None:
            raise ValueError("a prompt needs points or a box")
        if (points is None) != (labels is None):
            raise ValueError("points and labels go together")
        sparse, dense = self.prompt_encoder(
            None if points is None else (points, labels), boxes, None
        )
        return self.mask_decoder(
            embedding, self.prompt_encoder.get_dense_pe(), sparse, dense, multimask
        )

    def load_reference_weights(self, path: str | os.PathLike) -> None:
        """Loads an official EfficientViT-SAM checkpoint of this size (tensors only); raises
        ``CheckpointError`` naming the file."""
        load_official_checkpoint(self, path)


def load_official_checkpoint(model: EfficientViTSam, path: str | os.PathLike) -> None:
    """Copies an official checkpoint (a ``state_dict``, or ``{"state_dict": ...}``) into
    ``model``: every float tensor of the encoder, prompt encoder and decoder must be there with
    its shape (float16 is widened exactly); BatchNorm's int64 ``num_batches_tracked`` counters,
    unused in inference, are checked for their names and skipped. A depth-aware model's depth
    encoder, which official files do not have, starts as a copy of the RGB stages."""
    from .checkpoints import CheckpointError, _first, _load_into, _tensor_dict, _torch_load

    path = Path(path)
    ckpt = _torch_load(path)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    sd = _tensor_dict(path, ckpt, "an EfficientViT-SAM state_dict")
    own = model.state_dict()
    counters = [k for k in sd if k.endswith("num_batches_tracked")]
    unknown = [k for k in counters if k not in own]
    if unknown:
        raise CheckpointError(f"{path}: unexpected keys for this model: {_first(unknown)}")
    weights = {k: v for k, v in sd.items() if k not in counters}
    required = {
        k
        for k in own
        if k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder."))
        and model.is_trained_key(k)
    }
    try:
        _load_into(model, path, weights, required)
    except CheckpointError as e:  # the hint first: the key lists may be cut
        detail = str(e).removeprefix(f"{path}: ")
        raise CheckpointError(
            f"{path}: does not fit {model.name} (a file of another EfficientViT-SAM size?): "
            f"{detail}"
        ) from None
    if model.config.depth_fusion:
        model.init_depth_encoder()


class EfficientViTSamL0(EfficientViTSam):
    name = "efficientvit_sam_l0"
    variant = "l0"


class EfficientViTSamL1(EfficientViTSam):
    name = "efficientvit_sam_l1"
    variant = "l1"


class EfficientViTSamL2(EfficientViTSam):
    name = "efficientvit_sam_l2"
    variant = "l2"


class EfficientViTSamXL0(EfficientViTSam):
    name = "efficientvit_sam_xl0"
    variant = "xl0"


class EfficientViTSamXL1(EfficientViTSam):
    name = "efficientvit_sam_xl1"
    variant = "xl1"
