"""Color frame preparation: ROS-style encodings to RGB, ImageNet normalisation, resizing.

No ROS and no torch: arrays in, arrays out. Used by the node (message arrays), the replay tools and
training, so that every path prepares color the same way.

    from rgbd_saliency_ros.runtime.frames import color_to_rgb, resize_square, normalize_rgb
    rgb = color_to_rgb(array, "bgr8")                     # (H, W, 3) uint8 RGB
    x = normalize_rgb(resize_square(rgb, 1024))           # (3, 1024, 1024) float32
"""

from __future__ import annotations

import cv2
import numpy as np

# ImageNet statistics on value / 255, the default normalisation (torch-free module)
from ..model.contract import IMAGENET_MEAN, IMAGENET_STD
from .encodings import COLOR_ENCODINGS, ENCODINGS

# color encoding -> cv2 conversion to RGB, None if already RGB (channels: encodings.ENCODINGS)
_TO_RGB = {
    "rgb8": None,
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}

SUPPORTED_COLOR_ENCODINGS = COLOR_ENCODINGS


def color_to_rgb(image: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a color image in a ROS encoding to RGB.

    Args:
        image: (H, W, C) uint8; for mono8 also (H, W). C must fit the encoding (3 for rgb8/bgr8,
            4 for rgba8/bgra8, 1 for mono8).
        encoding: one of `SUPPORTED_COLOR_ENCODINGS` (sensor_msgs/Image encoding strings).

    Returns:
        (H, W, 3) uint8 RGB. For rgb8 this is `image` itself (no copy); otherwise a new array.
        Alpha is dropped; mono8 gives three equal channels.

    Raises:
        ValueError: unsupported encoding, or a dtype / shape that does not fit the encoding.
    """
    if encoding not in _TO_RGB:
        raise ValueError(
            f"unsupported color encoding {encoding!r}; "
            f"expected one of {', '.join(SUPPORTED_COLOR_ENCODINGS)}"
        )
    channels, conversion = ENCODINGS[encoding][1], _TO_RGB[encoding]
    if image.dtype != np.uint8:
        raise ValueError(f"color encoding {encoding!r} needs uint8 data, got {image.dtype}")
    if channels == 1 and image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] != channels or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(
            f"color encoding {encoding!r} needs shape (H, W, {channels}) with H, W > 0, "
            f"got {image.shape}"
        )
    if conversion is None:
        return image
    # cv2 rejects views with odd strides (e.g. a flipped array); messages are contiguous already.
    return cv2.cvtColor(np.ascontiguousarray(image), conversion)


def normalize_rgb(
    rgb: np.ndarray,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    minmax: bool = False,
) -> np.ndarray:
    """Normalise an RGB image for the model (ImageNet statistics unless the model says others).

    Args:
        rgb: (H, W, 3) uint8 RGB.
        mean, std: per channel, applied to value / 255 (the model's ``Preprocessing``).
        minmax: first stretch value / 255 to [0, 1] by the image's own min and max over all
            channels (``Preprocessing.rgb_minmax``); a flat image gives zeros.

    Returns:
        (3, H, W) float32, C-contiguous: `(rgb / 255 - mean) / std` per channel.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"normalize_rgb needs (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    if minmax:
        chw = rgb.transpose(2, 0, 1).astype(np.float32, order="C") / np.float32(255.0)
        low, high = chw.min(), chw.max()
        if high > low:
            chw = (chw - low) / (high - low)
        else:
            chw[:] = 0.0
        chw -= np.asarray(mean, np.float32)[:, None, None]
        chw /= np.asarray(std, np.float32)[:, None, None]
        return chw
    # One multiply-add per value: x * (1 / (255 std)) - mean / std equals (x / 255 - mean) / std
    # to within a few float32 ulps.
    scale = (1.0 / (255.0 * np.asarray(std))).astype(np.float32)
    offset = (np.asarray(mean) / np.asarray(std)).astype(np.float32)
    chw = rgb.transpose(2, 0, 1).astype(np.float32, order="C")  # (3, H, W), a new array
    chw *= scale[:, None, None]
    chw -= offset[:, None, None]
    return chw


def resize_square(
    image: np.ndarray, size: int, interpolation: int = cv2.INTER_LINEAR
) -> np.ndarray:
    """Resize an image to the square model input size, ignoring its aspect ratio, as training does.

    Args:
        image: (H, W) or (H, W, C), any dtype cv2.resize accepts (uint8 RGB, float32 depth, ...).
        size: side of the square model input, pixels.
        interpolation: cv2 flag; bilinear (cv2.INTER_LINEAR) for color.

    Returns:
        (size, size[, C]), same dtype. `image` itself (no copy) when it already has that size.
    """
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return cv2.resize(image, (size, size), interpolation=interpolation)


def resize_probability(prob: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """Resize a probability map back to the frame's size, bilinearly.

    Args:
        prob: (h, w) float32 in [0, 1], e.g. the model output at its square input size.
        frame_hw: (H, W) of the color frame, pixels.

    Returns:
        (H, W) float32 in [0, 1]; `prob` itself when it already has that size.
    """
    height, width = frame_hw
    if prob.ndim != 2:
        raise ValueError(f"resize_probability needs an (h, w) map, got shape {prob.shape}")
    prob = prob.astype(np.float32, copy=False)
    if prob.shape == (height, width):
        return prob
    return cv2.resize(prob, (width, height), interpolation=cv2.INTER_LINEAR)


def reference_eval_map(prob: np.ndarray) -> np.ndarray:
    """The map M4-SAM's published test script scores and saves, from the model's probability.

    That script passes the probability through a sigmoid a second time, then stretches each frame
    to [0, 1] by its own min and max (plus 1e-8); ``* 255`` as uint8 is the PNG it writes. Not a
    probability any more (every value of the second sigmoid is above 0.5, and the stretch depends
    on the frame): thresholds and the runtime's outputs use ``prob`` itself. This reproduces the
    published maps and scores for comparison.

    Args:
        prob: (h, w) float32 in [0, 1], the model's probability (at the size to score at).

    Returns:
        (h, w) float32 in [0, 1], computed in float64.
    """
    squashed = 1.0 / (1.0 + np.exp(-np.asarray(prob, np.float64)))
    low = squashed.min()
    return ((squashed - low) / (squashed.max() - low + 1e-8)).astype(np.float32)
