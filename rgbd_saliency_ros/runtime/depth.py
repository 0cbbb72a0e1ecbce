"""Depth frame preparation: decoding to metres, and metres to the model's relative depth input.

No ROS and no torch. Two steps, kept apart so that every source of depth meets in one convention:

1. decode to metric depth, (H, W) float32 metres with NaN where invalid:
   `decode_ros_depth` (REP 118: 16UC1 millimetres, 32FC1 metres) or a data-set reader
   (`read_tum_depth`, `read_sun_depth`, `read_nyu_depth`);
2. `depth_to_model_input(depth_m, DepthConversion(...))` gives the model's input, (H, W) float32 in
   [0, 1], the convention of the training data (8-bit relative depth read as value / 255).

Data sets that already ship relative 8-bit depth skip both steps: `read_relative_depth_png`.

    from rgbd_saliency_ros.runtime import depth
    depth_m = depth.decode_ros_depth(array, "16UC1")
    x = depth.depth_to_model_input(depth_m, depth.DepthConversion(max_depth_m=6.0))
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from .encodings import DEPTH_ENCODINGS

SUPPORTED_DEPTH_ENCODINGS = DEPTH_ENCODINGS  # the name the node, replays and make-bag import

# TUM RGB-D: "the depth images are scaled by a factor of 5000".
TUM_UNITS_PER_M = 5000.0

# NYU Depth v2 toolbox constants: camera_params.m (depthParam1, depthParam2, maxDepth) as used by
# depth_rel2depth_abs.m, depth = 351.3 / (1092.5 - disparity) metres, clipped to 10 m; the raw
# Kinect reports 2047 where it has no measurement.
NYU_DEPTH_PARAM_1 = 351.3
NYU_DEPTH_PARAM_2 = 1092.5
NYU_MAX_DEPTH_M = 10.0
NYU_INVALID_DISPARITY = 2047


class InvalidDepthError(ValueError):
    """A depth frame has no valid pixel, so no relative depth can be made from it (bad input)."""


@dataclass(frozen=True)
class DepthConversion:
    """How metric depth becomes the model's relative depth input in [0, 1].

    The published weights were trained on 8-bit relative depth maps (normalised per image); this
    reproduces that convention from a metric camera. Stored inside weights files (`to_dict`), so
    the node, the evaluation and training convert depth the same way.
    """

    min_depth_m: float = 0.1  # metres; valid depth is clipped to [min_depth_m, max_depth_m]
    max_depth_m: float = 10.0  # metres; Kinect-class sensors are unreliable beyond about 10 m
    # "per_frame": stretch the valid pixels' own (clipped) min..max to 0..1, as the training data's
    # per-image normalisation did; "fixed": map min_depth_m..max_depth_m to 0..1, stable over time.
    normalization: Literal["per_frame", "fixed"] = "per_frame"
    # False: near is dark (0), far is bright (1), the convention of the parity fixture and the SSD
    # data. Check it against the depth maps of the data set the weights were trained on.
    near_is_bright: bool = False
    # Output value of invalid pixels, in [0, 1] (after the near/far orientation). 1.0 is "far" in
    # the default orientation, so holes look like background rather than like the nearest object.
    invalid_value: float = 1.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.min_depth_m) and np.isfinite(self.max_depth_m)):
            raise ValueError(
                f"depth range must be finite, got {self.min_depth_m}..{self.max_depth_m} m"
            )
        if not 0.0 <= self.min_depth_m < self.max_depth_m:
            raise ValueError(
                "need 0 <= min_depth_m < max_depth_m, "
                f"got {self.min_depth_m} and {self.max_depth_m} m"
            )
        if self.normalization not in ("per_frame", "fixed"):
            raise ValueError(
                f"normalization must be 'per_frame' or 'fixed', got {self.normalization!r}"
            )
        if not 0.0 <= self.invalid_value <= 1.0:
            raise ValueError(f"invalid_value must be in [0, 1], got {self.invalid_value}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (JSON / YAML / checkpoint safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DepthConversion:
        """Inverse of `to_dict`; unknown keys raise so a mistyped field is never ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown DepthConversion fields: {', '.join(unknown)}")
        return cls(**values)


def _invalid_to_nan(depth_m: np.ndarray) -> np.ndarray:
    """float32 copy of `depth_m` with NaN where the value is not a finite positive distance."""
    out = depth_m.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def _as_single_channel(image: np.ndarray, what: str) -> np.ndarray:
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim != 2 or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(
            f"{what} needs a non-empty (H, W) or (H, W, 1) image, got shape {image.shape}"
        )
    return image


def _require_supported(encoding: str) -> None:
    if encoding not in SUPPORTED_DEPTH_ENCODINGS:
        raise ValueError(
            f"unsupported depth encoding {encoding!r}; "
            f"expected one of {', '.join(SUPPORTED_DEPTH_ENCODINGS)}"
        )


def decode_ros_depth(image: np.ndarray, encoding: str) -> np.ndarray:
    """Decode a ROS depth image (REP 118) to metres.

    Args:
        image: (H, W) or (H, W, 1). "16UC1": uint16 millimetres, 0 = invalid. "32FC1": float32
            metres, NaN, +-inf and values <= 0 invalid.
        encoding: "16UC1" or "32FC1".

    Returns:
        (H, W) float32 metres, NaN where invalid. Always a new array.

    Raises:
        ValueError: other encodings, or a dtype / shape that does not fit the encoding.
    """
    _require_supported(encoding)
    image = _as_single_channel(image, f"depth encoding {encoding!r}")
    if encoding == "16UC1":
        if image.dtype != np.uint16:
            raise ValueError(f"depth encoding '16UC1' needs uint16 data, got {image.dtype}")
        depth_m = image.astype(np.float32) * np.float32(1e-3)
        depth_m[image == 0] = np.nan
        return depth_m
    if image.dtype != np.float32:
        raise ValueError(f"depth encoding '32FC1' needs float32 data, got {image.dtype}")
    return _invalid_to_nan(image)


def encode_ros_depth(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """Metres -> a ROS depth image (REP 118), the inverse of `decode_ros_depth`.

    Args:
        depth_m: (H, W) float metres; NaN, +-inf and values <= 0 are no measurement.
        encoding: "16UC1" (uint16 millimetres, rounded, 0 = invalid, clipped to 65535) or
            "32FC1" (float32 metres, NaN = invalid).

    Returns:
        (H, W) uint16 or float32, a new array.
    """
    _require_supported(encoding)
    depth = _invalid_to_nan(_as_single_channel(np.asarray(depth_m), f"encoding {encoding!r}"))
    if encoding == "32FC1":
        return depth
    mm = np.rint(np.nan_to_num(depth, nan=0.0) * np.float32(1000.0))
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _read_uint16(path: str | os.PathLike) -> np.ndarray:
    """(H, W) uint16 as stored (cv2 turns PNG's and PGM's big-endian samples into native order)."""
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read depth image {os.fspath(path)!r}")
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(
            f"{os.fspath(path)!r}: expected a single-channel 16-bit depth image, "
            f"got {image.dtype} {image.shape}"
        )
    return image


def _require_uint16(raw: np.ndarray, what: str) -> None:
    # Bit and unit arithmetic below is only right on the stored 16-bit values.
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{what} needs (H, W) uint16, got {raw.dtype} {raw.shape}")


def decode_tum_depth(raw: np.ndarray) -> np.ndarray:
    """TUM RGB-D depth -> metres.

    (H, W) uint16, 5000 units per metre, 0 = invalid -> (H, W) float32 metres, NaN invalid.
    """
    _require_uint16(raw, "decode_tum_depth")
    depth_m = raw.astype(np.float32) / np.float32(TUM_UNITS_PER_M)
    depth_m[raw == 0] = np.nan
    return depth_m


def decode_sun_depth(raw: np.ndarray) -> np.ndarray:
    """SUN RGB-D depth -> metres.

    (H, W) uint16 as stored -> (H, W) float32 metres, NaN invalid. SUN RGB-D stores millimetres
    with the 16 bits rotated left by 3; `(d >> 3) | (d << 13)` in 16 bits rotates them back.
    """
    _require_uint16(raw, "decode_sun_depth")
    millimetres = (raw >> 3) | (raw << 13)  # uint16 arithmetic: bits shifted past 15 drop out
    depth_m = millimetres.astype(np.float32) * np.float32(1e-3)
    depth_m[millimetres == 0] = np.nan
    return depth_m


def decode_nyu_disparity(disparity: np.ndarray) -> np.ndarray:
    """NYU Depth v2 raw Kinect disparity -> metres, as the NYU toolbox's depth_rel2depth_abs.

    Args:
        disparity: (H, W) uint16 raw disparity (0..2047) in native byte order, i.e. after the
            byte swap `read_nyu_depth` applies.

    Returns:
        (H, W) float32 metres, clipped to 10 m as the toolbox does; NaN where the Kinect reported
        no measurement (2047) or where the formula gives no positive depth (disparity >= 1092.5).
    """
    _require_uint16(disparity, "decode_nyu_disparity")
    disparity = disparity.astype(np.float64)
    with np.errstate(divide="ignore"):
        depth_m = NYU_DEPTH_PARAM_1 / (NYU_DEPTH_PARAM_2 - disparity)
    invalid = (disparity == NYU_INVALID_DISPARITY) | ~(depth_m > 0)
    depth_m = np.minimum(depth_m, NYU_MAX_DEPTH_M).astype(np.float32)
    depth_m[invalid] = np.nan
    return depth_m


def read_tum_depth(path: str | os.PathLike) -> np.ndarray:
    """Read a TUM RGB-D depth PNG -> (H, W) float32 metres, NaN invalid."""
    return decode_tum_depth(_read_uint16(path))


def read_sun_depth(path: str | os.PathLike) -> np.ndarray:
    """Read a SUN RGB-D depth PNG (bit-rotated mm) -> (H, W) float32 metres, NaN invalid."""
    return decode_sun_depth(_read_uint16(path))


def read_nyu_depth(path: str | os.PathLike) -> np.ndarray:
    """Read an NYU Depth v2 raw depth PGM -> (H, W) float32 metres, NaN invalid.

    The header claims a standard 16-bit PGM (big-endian, which cv2 decodes to native order), but
    NYU's writer stored the samples little-endian: the toolbox swaps the bytes after imread
    (`swapbytes`), and so do we. Without the swap, most of the frame falls above 1092.5 and reads
    as invalid.
    """
    return decode_nyu_disparity(_read_uint16(path).byteswap())


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a data set's depth image as stored: (H, W) uint8 or uint16, never cut to 8 bits.

    A 3-channel file is accepted only when its channels are equal (grey stored as color).
    """
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read depth image {os.fspath(path)!r}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{os.fspath(path)!r}: expected 8- or 16-bit depth, got {image.dtype}")
    if image.ndim == 3:
        if image.shape[2] not in (1, 3) or not all(
            np.array_equal(image[:, :, 0], image[:, :, c]) for c in range(1, image.shape[2])
        ):
            raise ValueError(
                f"{os.fspath(path)!r}: depth must be single-channel grey, got shape {image.shape}"
            )
        image = image[:, :, 0]
    return image


def relative_depth_from_8bit(depth_png: np.ndarray) -> np.ndarray:
    """8-bit relative depth of data sets and the fixture: (H, W) uint8 -> float32 value / 255."""
    if depth_png.dtype != np.uint8:
        raise ValueError(f"relative_depth_from_8bit needs uint8, got {depth_png.dtype}")
    return depth_png.astype(np.float32) / np.float32(255.0)


def read_relative_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a data set's relative depth PNG -> (H, W) float32 in [0, 1].

    8-bit files give value / 255 (the training convention); 16-bit files give value / 65535 at full
    precision rather than being cut to 8 bits.
    """
    image = read_depth_png(path)
    if image.dtype == np.uint8:
        return relative_depth_from_8bit(image)
    return image.astype(np.float32) / np.float32(65535.0)


def depth_to_model_input(depth_m: np.ndarray, conversion: DepthConversion) -> np.ndarray:
    """Metric depth -> the model's relative depth input.

    Args:
        depth_m: (H, W) float metres; NaN, +-inf and values <= 0 are invalid.
        conversion: clipping range, normalisation, orientation and the value of invalid pixels.

    Returns:
        (H, W) float32 in [0, 1]: valid depth clipped to [min_depth_m, max_depth_m], scaled to
        [0, 1] (per frame: by the clipped valid min..max, 0.5 everywhere when all valid pixels
        share one depth; fixed: by the clip range), flipped when near_is_bright; invalid pixels
        set to invalid_value.

    Raises:
        InvalidDepthError: no valid pixel in the frame.
        ValueError: not an (H, W) array.
    """
    depth_m = _as_single_channel(np.asarray(depth_m), "depth_to_model_input")
    depth = _invalid_to_nan(depth_m)
    valid = ~np.isnan(depth)
    if not valid.any():
        raise InvalidDepthError(
            f"depth frame {depth.shape} has no valid pixel (all zero, NaN, inf or negative)"
        )
    np.clip(depth, conversion.min_depth_m, conversion.max_depth_m, out=depth)  # NaN stays NaN
    if conversion.normalization == "per_frame":
        low = float(np.nanmin(depth))
        high = float(np.nanmax(depth))
    else:
        low, high = conversion.min_depth_m, conversion.max_depth_m
    if high > low:
        relative = (depth - np.float32(low)) * np.float32(1.0 / (high - low))
        np.clip(relative, 0.0, 1.0, out=relative)  # float32 rounding can step just outside
    else:
        relative = np.full_like(depth, 0.5)
    if conversion.near_is_bright:
        relative = 1.0 - relative
    relative[~valid] = conversion.invalid_value
    return relative.astype(np.float32, copy=False)
