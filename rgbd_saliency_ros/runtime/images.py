"""sensor_msgs/Image fields <-> numpy arrays, and the kinds of frame that cannot be used.

No ROS: a message is anything with an Image's fields (``height``, ``width``, ``encoding``,
``is_bigendian``, ``step``, ``data``): rclpy's, rosbags', a SimpleNamespace. Written by hand
because cv_bridge is not available off-ROS. The node (``ros/conversions.py``) and the replays
(``evaluation/``) read and write images through these functions only, so they accept, refuse and
name bad frames the same way; every refusal is an ``ImageError`` with a ``kind`` (the node counts
``bad_input.<kind>``, the replays' metrics.json ``bad_input`` uses the same names).

    rgb, depth_m = frame_arrays(color_msg, depth_msg, max_pixels=4096 * 4096)
    fields = image_fields(mask, "mono8")  # height, width, encoding, is_bigendian, step, data
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from .depth import SUPPORTED_DEPTH_ENCODINGS, decode_ros_depth
from .encodings import ENCODINGS
from .frames import SUPPORTED_COLOR_ENCODINGS, color_to_rgb

# The kinds of bad input ImageError reports, in the order image_array checks them. The first three
# are shared with the compressed transports' decoders (runtime/compressed.py).
UNSUPPORTED_ENCODING = "unsupported_encoding"
EMPTY_IMAGE = "empty_image"  # zero width or height
TOO_LARGE = "too_large"  # more pixels than max_pixels
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
# Frames that convert but that SaliencyRuntime.prepare refuses.
INVALID_DEPTH = "invalid_depth"  # InvalidDepthError: no valid depth pixel
MALFORMED = "malformed"  # any other ValueError

_NATIVE_BIG_ENDIAN = sys.byteorder == "big"


class ImageError(ValueError):
    """An image that cannot be used; ``kind`` names why (``IMAGE_ERROR_KINDS``, or a compressed
    transport's kind for ``runtime.compressed.CompressedImageError``, a subclass)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def image_array(
    msg: Any, allowed: tuple[str, ...] = tuple(ENCODINGS), max_pixels: int | None = None
) -> np.ndarray:
    """The pixels of an Image message, checked against its own fields.

    Args:
        msg: anything with an Image's fields; ``data`` is bytes, array.array('B') or uint8 array.
        allowed: the encodings the caller accepts (a subset of ``ENCODINGS``).
        max_pixels: frames with more than this many pixels (width x height) are refused; None:
            no limit.

    Returns:
        (H, W) for one channel, else (H, W, C); the encoding's dtype in native byte order. A view
        of ``msg.data`` when no copy is needed (rows may be strided when ``step`` has padding):
        do not write to it.

    Raises:
        ImageError: see ``IMAGE_ERROR_KINDS``; the checks run in that order.
    """
    if msg.encoding not in allowed or msg.encoding not in ENCODINGS:
        raise ImageError(
            UNSUPPORTED_ENCODING,
            f"unsupported encoding {msg.encoding!r}; expected one of {', '.join(allowed)}",
        )
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageError(EMPTY_IMAGE, f"empty image: {width}x{height}")
    if max_pixels is not None and height * width > max_pixels:
        raise ImageError(TOO_LARGE, f"{width}x{height} is more than {max_pixels} pixels")
    dtype, channels = ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageError(
            STEP_TOO_SMALL, f"step {step} is less than width x pixel size ({row_bytes} bytes)"
        )
    data = np.frombuffer(memoryview(msg.data), np.uint8)
    if data.size < step * height:
        raise ImageError(
            TRUNCATED_DATA,
            f"truncated image: {data.size} bytes of data, step x height needs {step * height}",
        )
    rows = data[: step * height].reshape(height, step)[:, :row_bytes]
    if itemsize > 1:
        # A multi-byte view needs aligned, contiguous rows; a copy is cheap next to a model step.
        rows = np.ascontiguousarray(rows)
    pixels = rows.view(dtype)
    if itemsize > 1 and bool(msg.is_bigendian) != _NATIVE_BIG_ENDIAN:
        pixels = pixels.byteswap()
    shape = (height, width) if channels == 1 else (height, width, channels)
    return pixels.reshape(shape)


def image_fields(pixels: np.ndarray, encoding: str) -> dict[str, Any]:
    """The fields of an Image message holding ``pixels`` (all but the header).

    Args:
        pixels: (H, W) or (H, W, C) of the encoding's dtype (uint8 for rgb8 / mono8, uint16 for
            16UC1, float32 for 32FC1), any byte order.
        encoding: a key of ``ENCODINGS``.

    Returns:
        height, width, encoding, is_bigendian (0: little-endian data), step (bytes per row, no
        padding) and data ((H * step,) uint8, contiguous; a view of ``pixels`` when they are
        contiguous little-endian already).

    Raises:
        ValueError: an unknown encoding, or pixels of another shape or dtype.
    """
    if encoding not in ENCODINGS:
        raise ValueError(
            f"unsupported encoding {encoding!r}; expected one of {', '.join(ENCODINGS)}"
        )
    dtype, channels = ENCODINGS[encoding]
    dtype = np.dtype(dtype)
    shape_ok = (pixels.ndim == 2 and channels == 1) or (
        pixels.ndim == 3 and pixels.shape[2] == channels
    )
    if not shape_ok or (pixels.dtype.kind, pixels.dtype.itemsize) != (dtype.kind, dtype.itemsize):
        wanted = "(H, W)" if channels == 1 else f"(H, W, {channels})"
        raise ValueError(
            f"encoding {encoding} needs {wanted} {dtype}, got {pixels.shape} {pixels.dtype}"
        )
    little = np.ascontiguousarray(pixels, dtype=dtype.newbyteorder("<"))
    height, width = pixels.shape[:2]
    return {
        "height": height,
        "width": width,
        "encoding": encoding,
        "is_bigendian": 0,
        "step": width * channels * dtype.itemsize,
        "data": little.reshape(-1).view(np.uint8),
    }


def color_rgb(msg: Any, max_pixels: int | None) -> np.ndarray:
    """A color Image (rgb8, bgr8, rgba8, bgra8, mono8) -> (H, W, 3) uint8 RGB.

    Raises ImageError."""
    # cv2 (conversion, resizing) wants contiguous rows: a padded step gives strided ones.
    pixels = np.ascontiguousarray(image_array(msg, SUPPORTED_COLOR_ENCODINGS, max_pixels))
    return color_to_rgb(pixels, msg.encoding)


def depth_metres(msg: Any, max_pixels: int | None) -> np.ndarray:
    """A REP 118 depth Image (16UC1 mm, 32FC1 m) -> (H, W) float32 metres, NaN invalid.

    Raises ImageError; an all-invalid frame is not an error here (the runtime refuses it).
    """
    return decode_ros_depth(image_array(msg, SUPPORTED_DEPTH_ENCODINGS, max_pixels), msg.encoding)


def frame_arrays(
    color: Any,
    depth: Any,
    max_pixels: int | None,
    decode_color=color_rgb,
    decode_depth=depth_metres,
    register=None,
) -> tuple[np.ndarray, np.ndarray]:
    """A color + aligned depth pair -> ((H, W, 3) uint8 RGB, (H, W) float32 metres, NaN invalid).

    ``decode_color`` / ``decode_depth``: (message, max_pixels) -> array, for other transports
    (compressed ones) or other message wrappers (a bag's records). ``register``: for depth not
    aligned to color, a function from the depth camera's (h, w) metres to the color camera's
    (ValueError when it cannot, e.g. no CameraInfo yet). Raises ImageError, ``SIZE_MISMATCH``
    when the two differ in size, ``UNREGISTERED_DEPTH`` when ``register`` fails.
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
            f"color {rgb.shape[1]}x{rgb.shape[0]} and depth "
            f"{depth_m.shape[1]}x{depth_m.shape[0]} differ in size",
        )
    return rgb, depth_m


def overlay_rgb(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 0, 0),
    alpha: float = 0.5,
) -> np.ndarray:
    """The color frame with the mask tinted, for people to look at (the node's overlay topic and
    the replay report's pictures).

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
