"""sensor_msgs/Image <-> numpy, written here because cv_bridge is not available off-ROS.

Pure functions: a message (or anything with its fields) in, arrays out, and back. Every input check
raises ``ImageError`` with a ``kind`` the node counts, so bad frames are dropped and visible, never
fatal.

    rgb, depth_m = frame_arrays(color_msg, depth_msg, max_pixels=4096 * 4096)
    mask_msg = image_message(mask, "mono8", color_msg.header)
"""

from __future__ import annotations

import array
import re
import sys

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..runtime.compressed import (
    EMPTY_IMAGE,
    TOO_LARGE,
    UNSUPPORTED_ENCODING,
)  # zero size; above max_pixels
from ..runtime.depth import SUPPORTED_DEPTH_ENCODINGS, decode_ros_depth
from ..runtime.frames import SUPPORTED_COLOR_ENCODINGS, color_to_rgb

# encoding -> (numpy dtype of one channel, channels per pixel)
ENCODINGS = {
    "rgb8": (np.uint8, 3),
    "bgr8": (np.uint8, 3),
    "rgba8": (np.uint8, 4),
    "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1),
    "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}

# The kinds of bad input ImageError reports; the node keeps one counter for each. The first three
# are shared with the compressed transports' decoders.
STEP_TOO_SMALL = "step_too_small"  # row stride shorter than width x pixel size
TRUNCATED_DATA = "truncated_data"  # fewer than step x height bytes
SIZE_MISMATCH = "size_mismatch"  # color and depth of different sizes
UNREGISTERED_DEPTH = "unregistered_depth"  # depth to register into color, but no CameraInfo yet
IMAGE_ERROR_KINDS = (
    UNSUPPORTED_ENCODING,
    EMPTY_IMAGE,
    TOO_LARGE,
    STEP_TOO_SMALL,
    TRUNCATED_DATA,
    SIZE_MISMATCH,
    UNREGISTERED_DEPTH,
)

# The kinds of a CameraInfo that does not describe its image (check_camera_info).
CAMERA_INFO_SIZE = "camera_info_size"  # width x height (after binning) is not the image's
CAMERA_INFO_MATRIX = "camera_info_matrix"  # K, R or P not finite, or a negative focal length
CAMERA_INFO_MODEL = "camera_info_model"  # distortion model: not an identifier of sane length
CAMERA_INFO_DISTORTION = "camera_info_distortion"  # D not finite, or a length unfit for the model
CAMERA_INFO_KINDS = (
    CAMERA_INFO_SIZE,
    CAMERA_INFO_MATRIX,
    CAMERA_INFO_MODEL,
    CAMERA_INFO_DISTORTION,
)
# sensor_msgs/distortion_models.hpp -> coefficients; other names pass if they look like names.
DISTORTION_COEFFICIENTS = {
    "plumb_bob": (5,),
    "rational_polynomial": (8, 12, 14),
    "equidistant": (4,),
}
MAX_MODEL_NAME_CHARS = 64
MAX_DISTORTION_COEFFICIENTS = 64

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


class ImageError(ValueError):
    """An Image message the node cannot use; ``kind`` is one of ``IMAGE_ERROR_KINDS``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def stamp_to_s(stamp) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


def image_array(msg: Image, allowed: tuple[str, ...], max_pixels: int) -> np.ndarray:
    """The pixels of an Image message as an array, checked against its own fields.

    Args:
        msg: a sensor_msgs/Image (height, width, encoding, is_bigendian, step, data).
        allowed: the encodings the caller accepts (a subset of ``ENCODINGS``).
        max_pixels: frames with more than this many pixels (width x height) are refused.

    Returns:
        (H, W, C) array of the encoding's dtype in native byte order. A view of ``msg.data`` when
        no byte swap is needed (rows may be strided when ``step`` has padding); do not write to it.

    Raises:
        ImageError: see ``IMAGE_ERROR_KINDS``; the checks run in that order.
    """
    if msg.encoding not in allowed or msg.encoding not in ENCODINGS:
        raise ImageError(
            UNSUPPORTED_ENCODING,
            f"unsupported encoding {msg.encoding!r}; expected one of {', '.join(allowed)}",
        )
    height, width = int(msg.height), int(msg.width)
    if height == 0 or width == 0:
        raise ImageError(EMPTY_IMAGE, f"empty image: {width}x{height}")
    if height * width > max_pixels:
        raise ImageError(
            TOO_LARGE, f"{width}x{height} is more than max_image_pixels ({max_pixels})"
        )
    dtype, channels = ENCODINGS[msg.encoding]
    row_bytes = width * channels * np.dtype(dtype).itemsize
    if msg.step < row_bytes:
        raise ImageError(
            STEP_TOO_SMALL, f"step {msg.step} is less than width x pixel size ({row_bytes} bytes)"
        )
    needed = msg.step * height
    if len(msg.data) < needed:
        raise ImageError(
            TRUNCATED_DATA, f"data holds {len(msg.data)} bytes, step x height needs {needed}"
        )
    rows = np.frombuffer(msg.data, np.uint8, count=needed).reshape(height, msg.step)[:, :row_bytes]
    if np.dtype(dtype).itemsize > 1:
        # A multi-byte view needs aligned, contiguous rows; a copy is cheap next to a model step.
        rows = np.ascontiguousarray(rows)
    pixels = rows.view(dtype).reshape(height, width, channels)
    if np.dtype(dtype).itemsize > 1 and bool(msg.is_bigendian) != _NATIVE_BIG_ENDIAN:
        pixels = pixels.byteswap()
    return pixels


def color_rgb(msg: Image, max_pixels: int) -> np.ndarray:
    """A color Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB. Raises ImageError."""
    # cv2 (conversion, resizing) wants contiguous rows: a padded step gives strided ones.
    pixels = np.ascontiguousarray(image_array(msg, SUPPORTED_COLOR_ENCODINGS, max_pixels))
    return color_to_rgb(pixels, msg.encoding)


def depth_metres(msg: Image, max_pixels: int) -> np.ndarray:
    """A REP 118 depth Image (16UC1 mm, 32FC1 m) -> (H, W) float32 metres, NaN invalid.

    Raises ImageError; an all-invalid frame is not an error here (the runtime refuses it).
    """
    return decode_ros_depth(image_array(msg, SUPPORTED_DEPTH_ENCODINGS, max_pixels), msg.encoding)


def frame_arrays(
    color: Image,
    depth: Image,
    max_pixels: int,
    decode_color=color_rgb,
    decode_depth=depth_metres,
    register=None,
) -> tuple[np.ndarray, np.ndarray]:
    """A color + aligned depth pair -> ((H, W, 3) uint8 RGB, (H, W) float32 metres with NaN invalid).

    ``decode_color`` / ``decode_depth``: (msg, max_pixels) -> array, for other transports
    (``ros.compressed``). ``register``: for depth not aligned to color, a function from the depth
    camera's (h, w) metres to the color camera's (ValueError when it cannot, e.g. no CameraInfo
    yet). Raises ImageError, ``SIZE_MISMATCH`` when the two differ in size,
    ``UNREGISTERED_DEPTH`` when ``register`` fails.
    """
    rgb = decode_color(color, max_pixels)
    depth_m = decode_depth(depth, max_pixels)
    if register is not None:
        try:
            depth_m = register(depth_m)
        except ValueError as e:
            raise ImageError(UNREGISTERED_DEPTH, f"depth not registered to color: {e}") from None
    if rgb.shape[:2] != depth_m.shape:
        raise ImageError(
            SIZE_MISMATCH,
            f"color {rgb.shape[1]}x{rgb.shape[0]} and depth {depth_m.shape[1]}x{depth_m.shape[0]} differ in size",
        )
    return rgb, depth_m


def check_camera_info(info, width: int, height: int) -> None:
    """Raises ImageError (a ``CAMERA_INFO_KINDS`` kind) unless ``info`` can describe an image of
    ``width`` x ``height`` pixels: its size (divided by its binning), finite K, R and P with
    non-negative focal lengths (all zero: uncalibrated, allowed), a distortion model name of at
    most 64 identifier characters, and finite D of a length that fits a known model (or empty:
    no distortion)."""
    bin_x, bin_y = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    if (int(info.width) // bin_x, int(info.height) // bin_y) != (width, height):
        raise ImageError(
            CAMERA_INFO_SIZE,
            f"CameraInfo is for {info.width}x{info.height} "
            f"(binning {bin_x}x{bin_y}), image {width}x{height}",
        )
    k, r, p = (np.asarray(m, np.float64) for m in (info.k, info.r, info.p))
    finite = np.isfinite(k).all() and np.isfinite(r).all() and np.isfinite(p).all()
    if not finite or k[0] < 0 or k[4] < 0:
        raise ImageError(
            CAMERA_INFO_MATRIX,
            f"CameraInfo matrices not finite or a negative focal length (K {k.tolist()})",
        )
    model = info.distortion_model
    if len(model) > MAX_MODEL_NAME_CHARS or not re.fullmatch(r"[A-Za-z0-9_]*", model):
        raise ImageError(
            CAMERA_INFO_MODEL,
            f"distortion model name of {len(model)} characters: {model[:40]!r}...",
        )
    d = np.asarray(info.d, np.float64)
    fits = DISTORTION_COEFFICIENTS.get(model)
    finite = bool(np.isfinite(d).all())
    if len(d) > MAX_DISTORTION_COEFFICIENTS or not finite or (fits and len(d) not in (0, *fits)):
        raise ImageError(
            CAMERA_INFO_DISTORTION,
            f"{len(d)} distortion coefficients for {model!r} (expected "
            f"{fits or 'at most 64'}), finite: {finite}",
        )


def image_message(pixels: np.ndarray, encoding: str, header: Header) -> Image:
    """An array -> a new Image message with ``header`` (the same object is referenced, not copied).

    Args:
        pixels: (H, W) or (H, W, C) of the encoding's dtype: mono8 (H, W) uint8, 32FC1 (H, W)
            float32, rgb8 (H, W, 3) uint8, ...
        encoding: a key of ``ENCODINGS``.
    """
    dtype, channels = ENCODINGS[encoding]
    pixels = np.ascontiguousarray(pixels)
    if pixels.dtype != dtype or pixels.ndim not in (2, 3) or (pixels.shape + (1,))[2] != channels:
        raise ValueError(
            f"{encoding} needs (H, W{'' if channels == 1 else f', {channels}'}) {np.dtype(dtype)}, got {pixels.shape} {pixels.dtype}"
        )
    msg = Image()
    msg.header = header
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = _NATIVE_BIG_ENDIAN
    msg.step = msg.width * channels * pixels.dtype.itemsize
    data = array.array("B")
    data.frombytes(
        pixels.reshape(-1).view(np.uint8)
    )  # one copy; a plain list would be ~1000x slower
    msg.data = data
    return msg


def overlay_rgb(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.5,
) -> np.ndarray:
    """The color frame with the mask tinted, for people to look at.

    Args:
        rgb: (H, W, 3) uint8 RGB.
        mask: (H, W) uint8, nonzero inside.
        color: tint, RGB.
        alpha: tint weight in [0, 1] inside the mask; outside the frame is unchanged.

    Returns:
        (H, W, 3) uint8 RGB, a new array.
    """
    out = rgb.copy()
    inside = mask > 0
    tint = np.asarray(color, np.float32) * alpha
    out[inside] = (rgb[inside].astype(np.float32) * (1.0 - alpha) + tint).astype(np.uint8)
    return out
