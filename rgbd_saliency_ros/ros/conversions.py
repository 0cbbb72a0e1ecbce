"""sensor_msgs/Image <-> numpy for the node, and CameraInfo checks.

The Image <-> array path itself is ``runtime/images.py`` (no ROS; the replays use it too): this
module builds rclpy messages from it and re-exports its names, so the node imports one module.
Every input check raises ``ImageError`` with a ``kind`` the node counts, so bad frames are dropped
and visible, never fatal.

    rgb, depth_m = frame_arrays(color_msg, depth_msg, max_pixels=4096 * 4096)
    mask_msg = image_message(mask, "mono8", color_msg.header)
"""

from __future__ import annotations

import array
import re

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from ..runtime.images import (
    EMPTY_IMAGE,
    ENCODINGS,
    IMAGE_ERROR_KINDS,
    SIZE_MISMATCH,
    STEP_TOO_SMALL,
    TOO_LARGE,
    TRUNCATED_DATA,
    UNREGISTERED_DEPTH,
    UNSUPPORTED_ENCODING,
    ImageError,
    color_rgb,
    depth_metres,
    frame_arrays,
    image_array,
    image_fields,
    overlay_rgb,
)

__all__ = [  # with the runtime's names, which the node and tests take from here
    "EMPTY_IMAGE",
    "ENCODINGS",
    "IMAGE_ERROR_KINDS",
    "SIZE_MISMATCH",
    "STEP_TOO_SMALL",
    "TOO_LARGE",
    "TRUNCATED_DATA",
    "UNREGISTERED_DEPTH",
    "UNSUPPORTED_ENCODING",
    "ImageError",
    "color_rgb",
    "depth_metres",
    "frame_arrays",
    "image_array",
    "overlay_rgb",
    "CAMERA_INFO_DISTORTION",
    "CAMERA_INFO_KINDS",
    "CAMERA_INFO_MATRIX",
    "CAMERA_INFO_MODEL",
    "CAMERA_INFO_SIZE",
    "check_camera_info",
    "image_message",
    "stamp_to_s",
]

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


def stamp_to_s(stamp) -> float:
    """builtin_interfaces/Time -> seconds (float)."""
    return stamp.sec + stamp.nanosec * 1e-9


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
            float32, rgb8 (H, W, 3) uint8, ... (see ``runtime.images.image_fields``).
        encoding: a key of ``ENCODINGS``.
    """
    fields = image_fields(pixels, encoding)
    data = array.array("B")
    data.frombytes(fields.pop("data"))  # one copy; a plain list would be ~1000x slower
    msg = Image(**fields)
    msg.header = header
    msg.data = data
    return msg
