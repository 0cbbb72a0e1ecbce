"""SAM's frame geometry, in numpy: the letterboxed model input, prompts in the square prompt
frame, masks back at the frame's size. No torch; used by ``segment.py`` and the tests.

    rgb_in = letterbox_rgb(rgb, 512)                          # (3, 512, 512) float32
    box_1024 = to_prompt_frame(box.reshape(2, 2), rgb.shape[:2], 1024).reshape(4)
    logits = masks_to_frame(low_res, 1024, rgb.shape[:2])     # (M, H, W) float32

A frame of H x W is resized so that its long side fills the square (aspect kept) and sits at the
top left; the rest is padding. Promptable models take prompts in a ``prompt_size`` square
(1024) while their encoder may see a smaller one (512 for EfficientViT-SAM-L): the two are the
same letterbox at two scales, each rounded on its own (as the reference does, so for some frame
sizes they differ by a pixel).
"""

from __future__ import annotations

import numpy as np

from ..model.contract import IMAGENET_MEAN, IMAGENET_STD
from .frames import normalize_rgb


def letterbox_shape(height: int, width: int, side: int) -> tuple[int, int]:
    """(h, w) of an H x W frame resized so that its long side is ``side`` pixels (rounded half
    up, as SAM's ``ResizeLongestSide``)."""
    scale = side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def resize_longest(image: np.ndarray, side: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB or (H, W) float32 -> the same with max(h, w) == ``side``: PIL's
    bilinear filter, which (unlike cv2's or torch's bilinear) averages over the whole footprint
    when it shrinks, as the reference's torchvision resize of a PIL image does. The image
    itself when its long side is already ``side``."""
    from PIL import Image

    rgb = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    if not (rgb or (image.dtype == np.float32 and image.ndim == 2)):
        raise ValueError(
            f"resize_longest needs (H, W, 3) uint8 or (H, W) float32, got {image.shape} "
            f"{image.dtype}"
        )
    if max(image.shape[:2]) == side:
        return image
    h, w = letterbox_shape(image.shape[0], image.shape[1], side)
    return np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))


def pad_square(chw: np.ndarray, side: int, value: float = 0.0) -> np.ndarray:
    """(C, h, w) -> (C, side, side), ``value`` appended at the bottom and the right."""
    c, h, w = chw.shape
    if h > side or w > side:
        raise ValueError(f"a {w}x{h} image does not fit a {side}x{side} square")
    out = np.full((c, side, side), value, dtype=chw.dtype)
    out[:, :h, :w] = chw
    return out


def letterbox_rgb(
    rgb: np.ndarray,
    side: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (3, side, side) float32: resized (``resize_longest``), normalised
    ((x / 255 - mean) / std), zero-padded (zero in the normalised space, not black)."""
    return pad_square(normalize_rgb(resize_longest(rgb, side), mean, std), side)


def letterbox_depth(depth: np.ndarray, side: int) -> np.ndarray:
    """(H, W) relative depth in [0, 1] (NaN invalid) -> (1, side, side) float32 in [0, 1]:
    resized as ``resize_longest``, invalid pixels and the padding 0 (the far end)."""
    if depth.ndim != 2:
        raise ValueError(f"depth must be (H, W), got shape {depth.shape}")
    relative = np.clip(np.nan_to_num(depth.astype(np.float32), nan=0.0), 0.0, 1.0)
    return pad_square(resize_longest(relative, side)[None], side)


def to_prompt_frame(xy: np.ndarray, frame_hw: tuple[int, int], prompt_size: int) -> np.ndarray:
    """Frame pixels -> prompt-frame pixels.

    Args:
        xy: (..., 2) (x right, y down) in the frame's pixels (boxes as (..., 2, 2) corners).
        frame_hw: (H, W) of the frame.
        prompt_size: side of the square prompt frame (1024 for SAM).

    Returns:
        (..., 2) float32: x scaled by w'/W and y by h'/H (float64, then rounded once), where
        (h', w') = ``letterbox_shape(H, W, prompt_size)``.
    """
    height, width = frame_hw
    new_h, new_w = letterbox_shape(height, width, prompt_size)
    out = np.array(xy, dtype=np.float64)
    out[..., 0] *= new_w / width
    out[..., 1] *= new_h / height
    return out.astype(np.float32)


def _taps(n_in: int, n_out: int):
    """Source indices and weights of a bilinear resize along one axis, half-pixel centres
    (align_corners=False), computed in float32 as torch does."""
    scale = np.float32(n_in / n_out)
    src = (np.arange(n_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    first = src.astype(np.int64)
    far = (src - first.astype(np.float32)).astype(np.float32)
    return first, np.minimum(first + 1, n_in - 1), np.float32(1.0) - far, far


def resize_bilinear(maps: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """(..., h, w) float32 -> (..., H, W): bilinear with half-pixel centres and no antialiasing,
    the arithmetic of torch's ``interpolate(mode="bilinear", align_corners=False)`` (within
    1e-6 of it; cv2's float bilinear is 2e-5 away, its weights being rounded coarser)."""
    r0, r1, rw0, rw1 = _taps(maps.shape[-2], hw[0])
    c0, c1, cw0, cw1 = _taps(maps.shape[-1], hw[1])
    rows = maps[..., r0, :] * rw0[:, None] + maps[..., r1, :] * rw1[:, None]
    return rows[..., c0] * cw0 + rows[..., c1] * cw1


def masks_to_frame(low_res: np.ndarray, prompt_size: int, frame_hw: tuple[int, int]) -> np.ndarray:
    """Mask logits over the prompt frame -> logits at the frame's size.

    Args:
        low_res: (M, h, w) float32 logits over the whole ``prompt_size`` square (256 x 256).
        prompt_size: side of the prompt frame.
        frame_hw: (H, W) of the frame.

    Returns:
        (M, H, W) float32 logits (a pixel is in the mask where > 0): bilinear up to the prompt
        frame, cropped to the frame's letterbox, bilinear to (H, W) (``resize_bilinear``).
    """
    new_h, new_w = letterbox_shape(frame_hw[0], frame_hw[1], prompt_size)
    full = resize_bilinear(np.asarray(low_res, np.float32), (prompt_size, prompt_size))
    return resize_bilinear(full[:, :new_h, :new_w], frame_hw).astype(np.float32, copy=False)
