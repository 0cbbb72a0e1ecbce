"""A camera's intrinsics for the CameraInfo messages a bag carries: from a calibration file
(camera_calibration / camera_info_manager YAML) or from a field of view.

    camera = CameraIntrinsics.from_yaml("calib.yaml")
    camera = CameraIntrinsics.from_hfov(640, 480, hfov_deg=69.0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """A pinhole camera (plumb_bob, no distortion unless given) for CameraInfo messages."""

    width: int
    height: int
    fx: float  # pixels
    fy: float
    cx: float
    cy: float
    distortion_model: str = "plumb_bob"
    d: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_deg: float) -> CameraIntrinsics:
        """Square pixels, principal point at the centre, horizontal field of view ``hfov_deg``."""
        if not 0.0 < hfov_deg < 180.0:
            raise ValueError(
                f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}"
            )
        f = width / 2.0 / np.tan(np.radians(hfov_deg) / 2.0)
        return cls(width, height, float(f), float(f), (width - 1) / 2.0, (height - 1) / 2.0)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> CameraIntrinsics:
        """A camera_calibration / camera_info_manager YAML file (image_width, camera_matrix,
        ...)."""
        import yaml

        with open(path) as f:
            calib = yaml.safe_load(f)
        try:
            k = calib["camera_matrix"]["data"]
            d = calib.get("distortion_coefficients", {}).get("data", [0.0] * 5)
            return cls(
                int(calib["image_width"]),
                int(calib["image_height"]),
                float(k[0]),
                float(k[4]),
                float(k[2]),
                float(k[5]),
                calib.get("distortion_model", "plumb_bob"),
                tuple(float(x) for x in d),
            )
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(
                f"{path}: not a camera calibration file (need image_width, image_height, "
                f"camera_matrix.data): {e!r}"
            ) from e
