"""The salient object's per-frame status and the confidence figures a planner can act on.

No ROS: the node (``ros.object_outputs``) and replay (frames.csv) call the same functions, so
they give the same figures for the same frame.

    found = object_geometry(mask, depth_m, camera, config)           # runtime.geometry
    figures = object_figures(mask, probability, depth_m, found, DepthNoise())
    status = tracker.status(stamp_s, figures)   # StaleRule: "found", "stale", ...

Statuses (``STATUSES``), in the order they are decided:

    depth_not_registered  depth could not be put in the color camera as configured (given by the
                          caller: a failed tf lookup, a missing depth CameraInfo)
    no_camera_info        no usable color CameraInfo: nothing can be placed in 3D (the caller's)
    no_metric_depth       the depth has no metric scale (depth_source estimated; the caller's)
    error                 the 3D computation raised (the caller's)
    found                 an object with at least ``min_points`` valid points
    stale                 none in this frame, but one was found less than ``stale_after_s`` ago
                          (input stamps): the target is presumably hidden (occluded, depth dropout)
                          and the last good estimate (its stamp given) is what there is
    no_salient_object     the mask is empty
    no_valid_depth        a mask, but fewer than ``min_points`` valid points under it

Depth noise model: the axial (along the optical axis) standard deviation of one depth pixel,
sigma_z(z) = a + b (z - c)^2 metres, z in metres: the quadratic error of structured-light and
time-of-flight cameras (Nguyen, Izadi, Lovell 2012, "Modeling Kinect Sensor Noise for Improved 3D
Reconstruction and Tracking": a = 0.0012 m, b = 0.0019 /m, c = 0.4 m for Kinect v1, the default).
A depth error moves the point along its ray, z (x/z, y/z, 1), so x and y err by x/z and y/z
times it. Pixels are taken as independent, and the centroid (the mean of N points) gets
Cov = sum_i sigma_z(z_i)^2 r_i r_i^T / N^2, r_i = (x_i/z_i, y_i/z_i, 1). The points' spread is
not added: they are the whole visible surface, not a sample of it, so their spread is the
object's extent, not an error of their mean. It is the sensor's share only (mask errors are not
in it): a lower bound of the centroid's error.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .geometry import ObjectGeometry

FOUND = "found"
STALE = "stale"
NO_SALIENT_OBJECT = "no_salient_object"
NO_VALID_DEPTH = "no_valid_depth"
DEPTH_NOT_REGISTERED = "depth_not_registered"
NO_CAMERA_INFO = "no_camera_info"
NO_METRIC_DEPTH = "no_metric_depth"
ERROR = "error"
STATUSES = (
    FOUND,
    STALE,
    NO_SALIENT_OBJECT,
    NO_VALID_DEPTH,
    DEPTH_NOT_REGISTERED,
    NO_CAMERA_INFO,
    NO_METRIC_DEPTH,
    ERROR,
)


@dataclass(frozen=True)
class DepthNoise:
    """sigma_z(z) = a_m + b_per_m (z - c_m)^2, metres (the module docstring's model)."""

    a_m: float = 0.0012
    b_per_m: float = 0.0019
    c_m: float = 0.4

    def __post_init__(self) -> None:
        if not (self.a_m >= 0 and self.b_per_m >= 0 and math.isfinite(self.c_m)):
            raise ValueError(
                f"depth noise needs a_m >= 0, b_per_m >= 0 and a finite c_m, got {self}"
            )

    def sigma_m(self, z_m: np.ndarray) -> np.ndarray:
        """Axial standard deviation (metres) of depth pixels at ``z_m`` metres."""
        z = np.asarray(z_m, np.float64)
        return self.a_m + self.b_per_m * (z - self.c_m) ** 2


# The names of ObjectFigures.values(), in the order the status and frames.csv give them.
FIGURE_KEYS = (
    "mask_confidence",
    "valid_depth_fraction",
    "point_count",
    "centroid_std_x_m",
    "centroid_std_y_m",
    "centroid_std_z_m",
)


@dataclass(frozen=True)
class ObjectFigures:
    """One frame's confidence figures; NaN where undefined (an empty mask, no point)."""

    mask_pixels: int
    # Mean probability over the mask's pixels, in [threshold, 1]: how sure the model is of the
    # pixels it called salient (1: all certain; near the threshold: a hesitant mask).
    mask_confidence: float
    # Mask pixels with valid depth (finite, > 0) / mask pixels, in [0, 1].
    valid_depth_fraction: float
    # Points the 3D outputs were computed from: valid mask pixels kept after edge rejection and
    # the choice of depth-continuous parts (runtime.geometry); 0 without an object.
    point_count: int
    # (3, 3) covariance of the centroid, m^2, from the depth noise model (module docstring).
    centroid_covariance_m2: np.ndarray
    # (3,) the centroid itself, metres (None without an object): for CentroidJitter.
    centroid_m: np.ndarray | None = None

    @property
    def centroid_std_m(self) -> np.ndarray:
        """(3,) standard deviations of the centroid's x, y, z, metres."""
        return np.sqrt(np.diag(self.centroid_covariance_m2))

    def values(self) -> dict[str, float]:
        """The figures a consumer gets (the status' values, replay's frames.csv), by
        ``FIGURE_KEYS``."""
        std = self.centroid_std_m
        return {
            "mask_confidence": self.mask_confidence,
            "valid_depth_fraction": self.valid_depth_fraction,
            "point_count": self.point_count,
            **{f"centroid_std_{axis}_m": float(v) for axis, v in zip("xyz", std)},
        }

    def own_status(self) -> str:
        """What this frame alone says: found, no_salient_object or no_valid_depth."""
        if self.point_count > 0:
            return FOUND
        return NO_SALIENT_OBJECT if self.mask_pixels == 0 else NO_VALID_DEPTH


def object_figures(
    mask: np.ndarray,
    probability: np.ndarray,
    depth_m: np.ndarray,
    found: ObjectGeometry | None,
    noise: DepthNoise | None = None,
) -> ObjectFigures:
    """The confidence figures of one frame (see ObjectFigures for each one's definition).

    Args:
        mask: (H, W) nonzero inside; probability: (H, W) float in [0, 1] it was thresholded from.
        depth_m: (H, W) float metres aligned to the mask; NaN, inf and <= 0 invalid.
        found: ``object_geometry`` of the same mask and depth (None: no object).
        noise: the depth noise model (default: Kinect v1's).
    """
    noise = noise or DepthNoise()
    inside = np.asarray(mask) > 0
    pixels = int(np.count_nonzero(inside))
    covariance = np.full((3, 3), np.nan)
    if pixels == 0:
        return ObjectFigures(0, math.nan, math.nan, 0, covariance)
    with np.errstate(invalid="ignore"):
        depth = depth_m[inside]
        valid = int(np.count_nonzero(np.isfinite(depth) & (depth > 0)))
    confidence = float(np.mean(probability[inside], dtype=np.float64))
    count = 0 if found is None else len(found.points_m)
    if count:
        covariance = centroid_covariance(found.points_m, noise)
    centroid = found.centroid_m if count else None
    return ObjectFigures(pixels, confidence, valid / pixels, count, covariance, centroid)


def centroid_covariance(points_m: np.ndarray, noise: DepthNoise) -> np.ndarray:
    """(3, 3) covariance (m^2) of the mean of (N, 3) points whose depths err independently by
    ``noise``, each along its own ray (module docstring)."""
    # float32 products reduced by BLAS (pairwise sums): a third of float64's (N, 3) path's time
    points = np.asarray(points_m, np.float32)
    z = points[:, 2]
    variance = np.float32(noise.a_m) + np.float32(noise.b_per_m) * (z - np.float32(noise.c_m)) ** 2
    variance *= variance
    rays = points[:, :2] / z[:, None]  # (x/z, y/z); the third component is 1
    weighted = rays * variance[:, None]
    out = np.empty((3, 3))
    out[:2, :2] = (weighted.T @ rays).astype(np.float64)
    out[:2, 2] = out[2, :2] = np.ones(len(z), np.float32) @ weighted
    out[2, 2] = float(np.sum(variance, dtype=np.float64))
    return out / len(z) ** 2


class StaleRule:
    """One stream's status over time: ``stale`` while a found object is less than
    ``stale_after_s`` old (input stamps) and the current frame has none; 0: never stale.
    A stamp earlier than the last good one (a rosbag loop, a clock jump) forgets it."""

    def __init__(self, stale_after_s: float) -> None:
        if not stale_after_s >= 0:
            raise ValueError(f"stale_after_s must be at least 0, got {stale_after_s}")
        self.stale_after_s = stale_after_s
        self.last_good_s: float | None = None  # stamp of the last frame with status found

    def status(self, stamp_s: float, own: str) -> str:
        """This frame's status from its ``own`` (``ObjectFigures.own_status`` or a caller's
        status such as depth_not_registered, which is passed through)."""
        if self.last_good_s is not None and stamp_s < self.last_good_s:
            self.last_good_s = None
        if own == FOUND:
            self.last_good_s = stamp_s
            return FOUND
        if (
            own in (NO_SALIENT_OBJECT, NO_VALID_DEPTH)
            and self.last_good_s is not None
            and stamp_s - self.last_good_s < self.stale_after_s
        ):
            return STALE
        return own


class CentroidJitter:
    """Temporal stability: the RMS distance (metres) of the last ``frames`` found centroids from
    their mean, NaN with fewer than two. A still object on a still camera gives the sensor's
    frame-to-frame noise; a jumping mask or a moving target gives more. Forgets its centroids
    when the target is gone (a status neither found nor stale) or a stamp goes back (a bag loop),
    as StaleRule forgets its last good stamp."""

    def __init__(self, frames: int = 10) -> None:
        if frames < 2:
            raise ValueError(f"jitter needs at least 2 frames, got {frames}")
        self._centroids: deque[np.ndarray] = deque(maxlen=frames)
        self._last_s = -math.inf

    def update(self, stamp_s: float, status: str, centroid_m: np.ndarray | None) -> float:
        """Takes this frame's status (after the stale rule) and, when found, its centroid;
        returns the jitter over the frames kept."""
        if stamp_s < self._last_s or status not in (FOUND, STALE):
            self._centroids.clear()
        self._last_s = stamp_s
        if status == FOUND and centroid_m is not None:
            self._centroids.append(np.asarray(centroid_m, np.float64))
        if len(self._centroids) < 2:
            return math.nan
        points = np.stack(self._centroids)
        return float(np.sqrt(np.mean(np.sum((points - points.mean(axis=0)) ** 2, axis=1))))
