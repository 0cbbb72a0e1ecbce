"""Where a frame's depth comes from: the sensor, a depth estimator, or the sensor with its holes
filled from the estimator. No ROS and no torch (the estimator runs behind its backend).

    source = DepthSource("fill", DepthEstimation(create_estimator_backend("da_vits.pth")))
    sourced = source.depth_for(rgb, sensor_depth_m)      # sensor_depth_m: None for "estimated"
    pair = FramePair(stream, stamp_s, rgb, sourced.depth, depth_is_metric=sourced.is_metric)

- ``sensor``: the sensor's metric depth as it is (what the node did before).
- ``estimated``: the estimate alone, turned into the model's relative [0, 1] convention
  (``relative_from_estimate``); the sensor's depth is not needed.
- ``fill``: the sensor's metric depth, its invalid pixels filled from the estimate aligned to the
  sensor's valid pixels (``fill_depth``). Valid sensor pixels are kept bit for bit.

Which fit, and why. Depth Anything V2's estimate is relative *inverse* depth, known up to an
unknown scale and shift (it is trained with a scale-and-shift-invariant loss on disparity, as
MiDaS), so the alignment is an affine fit in inverse depth: 1 / sensor_m = scale * estimate +
shift. Least squares would be pulled by the pixels where sensor and estimate disagree for real
(flying pixels at depth edges, the glass and shiny surfaces where the sensor is wrong rather than
empty, the estimator's own mistakes); so the fit starts from MiDaS's closed-form alignment (match
the medians and the mean absolute deviations) and is refined by iteratively reweighted least
squares with Tukey's biweight, which gives no weight at all to residuals beyond 4.685 robust
standard deviations (MAD-scaled). It is deterministic (no random sampling, unlike RANSAC) and
costs a few passes over the valid pixels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .depth import DepthConversion
from .depth_estimation import DepthEstimate, DepthEstimation

DEPTH_SOURCES = ("sensor", "estimated", "fill")

# Tukey's biweight constant: 95 % efficiency under Gaussian residuals.
TUKEY_C = 4.685
# Median absolute deviation -> standard deviation under Gaussian residuals.
MAD_TO_SIGMA = 1.4826
FIT_ITERATIONS = 10
# Fewer valid sensor pixels than this and ``fill`` does not trust a fit (about 0.3 % of VGA).
MIN_FIT_PIXELS = 1000


@dataclass(frozen=True)
class AffineFit:
    """target = scale * estimate + shift, fitted robustly over ``pixels`` pixels."""

    scale: float
    shift: float
    pixels: int  # pixels the fit saw
    inlier_fraction: float  # of those, the share with a non-zero final weight


def fit_scale_shift(estimate: np.ndarray, target: np.ndarray) -> AffineFit:
    """Robust fit of target ~ scale * estimate + shift (see the module docstring).

    estimate, target: (N,) float arrays of the same pixels, finite. Returns the fit; ``scale`` is
    0 when the estimate is constant over these pixels (nothing to fit)."""
    x = np.asarray(estimate, np.float64).ravel()
    y = np.asarray(target, np.float64).ravel()
    if x.shape != y.shape or not x.size:
        raise ValueError(f"need two equal, non-empty sets of pixels, got {x.shape} and {y.shape}")
    # MiDaS's alignment: robust location and spread of each side.
    mx, my = np.median(x), np.median(y)
    spread_x, spread_y = np.mean(np.abs(x - mx)), np.mean(np.abs(y - my))
    if spread_x == 0:
        return AffineFit(0.0, float(my), x.size, 1.0)
    scale = spread_y / spread_x
    shift = my - scale * mx
    weights = np.ones_like(x)
    for _ in range(FIT_ITERATIONS):
        residual = y - (scale * x + shift)
        sigma = MAD_TO_SIGMA * np.median(np.abs(residual))
        if sigma == 0:  # most pixels already fit exactly: nothing left to reweight
            break
        u = residual / (TUKEY_C * sigma)
        weights = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        sw, swx, swy = weights.sum(), (weights * x).sum(), (weights * y).sum()
        swxx, swxy = (weights * x * x).sum(), (weights * x * y).sum()
        det = sw * swxx - swx * swx
        if det <= 0:  # the inliers share one estimate value: keep the last fit
            break
        scale = (sw * swxy - swx * swy) / det
        shift = (swy - scale * swx) / sw
    return AffineFit(float(scale), float(shift), x.size, float(np.mean(weights > 0)))


@dataclass
class FilledDepth:
    """The sensor's depth with its holes filled (``fill_depth``)."""

    depth: np.ndarray  # (H, W) float32 metres, NaN where still invalid
    fit: AffineFit | None  # 1 / metres = scale * estimate + shift; None: nothing was filled
    filled_pixels: int  # invalid sensor pixels given a value
    reason: str = ""  # why nothing was filled ("" when the fit was used)


def fill_depth(
    depth_m: np.ndarray, estimate: np.ndarray, min_fit_pixels: int = MIN_FIT_PIXELS
) -> FilledDepth:
    """The sensor's depth with its invalid pixels filled from the estimate.

    depth_m: (H, W) float metres, NaN / inf / <= 0 invalid. estimate: (H, W) float relative
    inverse depth at the same size. The fit of 1 / depth_m on the estimate over the valid pixels
    is used unless fewer than ``min_fit_pixels`` are valid or its scale is not positive (the
    estimate does not grow towards the sensor's near pixels): then nothing is filled. Valid pixels
    are kept as they are; a hole whose aligned inverse depth is not positive stays invalid."""
    if depth_m.shape != estimate.shape:
        raise ValueError(f"depth {depth_m.shape} and estimate {estimate.shape} differ in size")
    filled = np.asarray(depth_m, np.float32).copy()
    est = np.asarray(estimate, np.float32)
    with np.errstate(invalid="ignore"):
        sensor_valid = np.isfinite(filled) & (filled > 0)
    filled[~sensor_valid] = np.nan
    valid = sensor_valid & np.isfinite(est)
    count = int(valid.sum())
    if count < min_fit_pixels:
        return FilledDepth(
            filled, None, 0, f"{count} valid sensor pixels, fewer than {min_fit_pixels}"
        )
    fit = fit_scale_shift(est[valid], 1.0 / filled[valid].astype(np.float64))
    if fit.scale <= 0:
        return FilledDepth(
            filled, None, 0, f"the estimate does not fit the sensor (scale {fit.scale:.3g})"
        )
    holes = ~sensor_valid & np.isfinite(est)
    inverse = fit.scale * est[holes].astype(np.float64) + fit.shift
    usable = inverse > 0
    values = np.full(inverse.shape, np.nan, np.float32)
    values[usable] = (1.0 / inverse[usable]).astype(np.float32)
    filled[holes] = values
    return FilledDepth(filled, fit, int(usable.sum()))


def relative_from_estimate(estimate: np.ndarray, conversion: DepthConversion) -> np.ndarray:
    """(H, W) relative inverse depth -> (H, W) float32 in [0, 1], the model's depth convention:
    stretched per frame over its own min..max (it has no metric scale, so
    ``conversion.normalization`` "fixed" cannot apply), near bright or dark as
    ``conversion.near_is_bright`` says; 0.5 everywhere for a constant estimate.

    Linear in inverse depth, where the sensor path is linear in metres: the two agree in
    ordering, not in spacing (the far range is compressed here)."""
    est = np.asarray(estimate, np.float32)
    low, high = float(np.nanmin(est)), float(np.nanmax(est))
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("depth estimate has no finite value")
    if high > low:
        near_bright = np.clip((est - np.float32(low)) * np.float32(1.0 / (high - low)), 0.0, 1.0)
    else:
        near_bright = np.full_like(est, 0.5)
    near_bright = np.nan_to_num(near_bright, nan=0.0)  # unknown: far
    out = near_bright if conversion.near_is_bright else 1.0 - near_bright
    return out.astype(np.float32, copy=False)


@dataclass
class SourcedDepth:
    """A frame's depth input as ``FramePair`` takes it, and how it was made."""

    depth: np.ndarray  # (H, W) float32: metres (NaN invalid) if is_metric, else [0, 1] relative
    is_metric: bool
    source: str  # the source that ran: "sensor", "estimated", "fill"
    estimate: DepthEstimate | None = None  # the estimator's output (None for "sensor")
    fit: AffineFit | None = None  # fill: 1 / metres = scale * estimate + shift
    filled_pixels: int = 0  # fill: sensor holes given a value
    # fill: why this frame fell back to the estimate alone ("" when it did not)
    fallback: str = ""
    time_s: float = 0.0  # wall time of the source (estimator and fit)


class DepthSource:
    """Gives each frame its depth input from ``kind`` (one of ``DEPTH_SOURCES``).

    ``estimation``: the depth estimator (needed for "estimated" and "fill"). ``conversion``: the
    model's depth convention (its ``near_is_bright`` orients the estimate), the runtime's
    ``depth_conversion``. ``fill`` falls back to the estimate alone (relative, as "estimated")
    for a frame whose sensor depth is too sparse to fit, and says so in ``fallback``.
    """

    def __init__(
        self,
        kind: str,
        estimation: DepthEstimation | None = None,
        conversion: DepthConversion | None = None,
        min_fit_pixels: int = MIN_FIT_PIXELS,
    ) -> None:
        if kind not in DEPTH_SOURCES:
            raise ValueError(f"unknown depth source {kind!r}; expected one of {DEPTH_SOURCES}")
        if kind != "sensor" and estimation is None:
            raise ValueError(f"depth source {kind!r} needs a depth estimator's weights")
        self.kind = kind
        self.estimation = estimation
        self.conversion = conversion or DepthConversion()
        self.min_fit_pixels = min_fit_pixels

    @property
    def needs_sensor_depth(self) -> bool:
        """False for "estimated": color alone is enough."""
        return self.kind != "estimated"

    def depth_for(self, rgb: np.ndarray, sensor_depth_m: np.ndarray | None = None) -> SourcedDepth:
        """rgb (H, W, 3) uint8 RGB; sensor_depth_m (H, W) float metres, NaN / inf / <= 0 invalid,
        aligned to the color (ignored by "estimated"). Raises ValueError when a source that needs
        the sensor's depth has none, or sizes differ."""
        start = time.perf_counter()
        if self.kind == "sensor":
            if sensor_depth_m is None:
                raise ValueError("depth source 'sensor' needs the sensor's depth")
            return SourcedDepth(sensor_depth_m, True, "sensor")
        if self.kind == "fill":
            if sensor_depth_m is None:
                raise ValueError("depth source 'fill' needs the sensor's depth")
            if sensor_depth_m.shape != rgb.shape[:2]:
                raise ValueError(
                    f"color {rgb.shape[1]}x{rgb.shape[0]} and depth "
                    f"{sensor_depth_m.shape[1]}x{sensor_depth_m.shape[0]} differ in size"
                )
        estimate = self.estimation.estimate(rgb)
        reason = ""
        if self.kind == "fill":
            filled = fill_depth(sensor_depth_m, estimate.depth, self.min_fit_pixels)
            if filled.fit is not None:
                elapsed = time.perf_counter() - start
                return SourcedDepth(
                    filled.depth,
                    True,
                    "fill",
                    estimate,
                    filled.fit,
                    filled.filled_pixels,
                    "",
                    elapsed,
                )
            reason = filled.reason
        relative = relative_from_estimate(estimate.depth, self.conversion)
        elapsed = time.perf_counter() - start
        return SourcedDepth(relative, False, self.kind, estimate, None, 0, reason, elapsed)
