"""Where a frame's depth comes from (``runtime/depth_source.py``): the robust scale-and-shift fit,
``fill`` on real 16UC1 frames with holes cut in them, ``estimated`` in the model's convention,
and the sources through ``SaliencyRuntime.prepare``.

    .venv/bin/python -m pytest -q test/test_depth_source.py

The fit is tested with oracle estimates (an exact, then a noisy and partly wrong, affine function
of the true inverse depth): random estimator weights say nothing about the fit.
"""

import numpy as np
import pytest
from conftest import find_shared, seeded
from plugin_model import DepthEcho, EchoConfig

from rgbd_saliency_ros.model import DepthAnythingV2, DepthAnythingV2Config
from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend, TorchEstimatorBackend
from rgbd_saliency_ros.runtime.depth import (
    DepthConversion,
    decode_ros_depth,
    depth_to_model_input,
    encode_ros_depth,
    read_nyu_depth,
    read_sun_depth,
    read_tum_depth,
)
from rgbd_saliency_ros.runtime.depth_estimation import DepthEstimate, DepthEstimation
from rgbd_saliency_ros.runtime.depth_source import (
    DepthSource,
    fill_depth,
    fit_scale_shift,
    relative_from_estimate,
)
from rgbd_saliency_ros.runtime.frames import resize_square
from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime

# The oracle estimate: relative inverse depth = SCALE / metres + SHIFT (units of no meaning).
SCALE, SHIFT = 0.7, 0.05
READERS = {"TUM": read_tum_depth, "SUN": read_sun_depth, "NYU": read_nyu_depth}
FILES = {"TUM": "TUM_depth.png", "SUN": "SUN_depth.png", "NYU": "NYU_depth.pgm"}


def sensor_frame(name: str) -> np.ndarray:
    """A real 640 x 480 frame as the node gets it over 16UC1: (H, W) float32 metres, NaN
    invalid."""
    metres = READERS[name](find_shared("data", "rgbd_encodings", FILES[name]))
    return decode_ros_depth(encode_ros_depth(metres, "16UC1"), "16UC1")


def oracle(depth_m: np.ndarray) -> np.ndarray:
    """The estimate a perfect relative estimator gives: affine in inverse depth; at the sensor's
    own holes (truth unknown) the median value."""
    est = SCALE / depth_m + SHIFT
    return np.where(np.isfinite(est), est, np.nanmedian(est)).astype(np.float32)


def cut_holes(depth_m: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(depth with holes, the holes' mask): a 120 x 160 block and 5 % of the other valid
    pixels, as glass, black objects and speckle take them."""
    rng = np.random.default_rng(seed)
    holes = np.zeros(depth_m.shape, bool)
    holes[180:300, 240:400] = True
    holes |= rng.random(depth_m.shape) < 0.05
    holes &= np.isfinite(depth_m)
    cut = depth_m.copy()
    cut[holes] = np.nan
    return cut, holes


def test_fit_recovers_an_exact_affine_relation():
    x = np.linspace(0.1, 3.0, 500)
    fit = fit_scale_shift(x, 2.5 * x - 0.3)
    assert fit.scale == pytest.approx(2.5, abs=1e-9) and fit.shift == pytest.approx(-0.3, abs=1e-9)
    assert (fit.pixels, fit.inlier_fraction) == (500, 1.0)


def test_fit_ignores_the_outliers_that_pull_least_squares():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 20000)
    y = 2.0 * x + 1.0 + rng.normal(0, 0.01, x.size)
    wrong = rng.random(x.size) < 0.3  # 30 % of the pixels: another surface entirely
    y[wrong] = rng.uniform(0, 8, wrong.sum())
    fit = fit_scale_shift(x, y)
    assert abs(fit.scale - 2.0) < 0.01 and abs(fit.shift - 1.0) < 0.01
    assert 0.65 < fit.inlier_fraction < 0.75
    least_squares_scale = np.polyfit(x, y, 1)[0]
    assert abs(least_squares_scale - 2.0) > 0.2


@pytest.mark.parametrize("name", sorted(READERS))
def test_fill_restores_the_removed_depth_with_an_exact_oracle(name):
    truth = sensor_frame(name)
    cut, holes = cut_holes(truth, seed=1)
    filled = fill_depth(cut, oracle(truth))
    assert filled.fit.scale == pytest.approx(1 / SCALE, rel=1e-6)
    assert filled.fit.shift == pytest.approx(-SHIFT / SCALE, abs=1e-6)
    kept = np.isfinite(cut)
    assert np.array_equal(filled.depth[kept], cut[kept])  # the sensor's pixels, bit for bit
    error = np.abs(filled.depth[holes] - truth[holes]) / truth[holes]
    assert error.max() < 1e-5
    # The sensor's own holes are filled too (from the oracle's median there).
    assert filled.filled_pixels == int(np.isnan(cut).sum())


@pytest.mark.parametrize("name", sorted(READERS))
def test_fill_with_a_noisy_partly_wrong_estimate(name):
    truth = sensor_frame(name)
    cut, holes = cut_holes(truth, seed=2)
    rng = np.random.default_rng(3)
    est = oracle(truth) * (1 + rng.normal(0, 0.02, truth.shape)).astype(np.float32)
    wrong = rng.random(truth.shape) < 0.1  # the estimator wrong on 10 % of the pixels
    est[wrong] = rng.uniform(0, 3 * est.max(), wrong.sum()).astype(np.float32)
    filled = fill_depth(cut, est)
    assert filled.fit.scale == pytest.approx(1 / SCALE, rel=0.02)
    good = holes & ~wrong
    error = np.abs(filled.depth[good] - truth[good]) / truth[good]
    # 2 % noise in inverse depth gives about 2 % in depth: the fit adds little to it.
    assert np.median(error) < 0.02 and np.percentile(error, 90) < 0.05


def test_fill_fills_nothing_without_a_trustworthy_fit():
    truth = sensor_frame("TUM")
    sparse = np.full_like(truth, np.nan)
    sparse[:10, :10] = truth[:10, :10]
    filled = fill_depth(sparse, oracle(truth))
    assert filled.fit is None and filled.filled_pixels == 0 and "fewer than 1000" in filled.reason
    assert np.array_equal(np.isnan(filled.depth), np.isnan(sparse))
    backwards = fill_depth(cut_holes(truth, 1)[0], -oracle(truth))  # far looks near
    assert backwards.fit is None and "does not fit the sensor" in backwards.reason


def test_relative_from_estimate_follows_the_model_convention():
    est = np.array([[0.0, 1.0], [3.0, 4.0]], np.float32)  # 4: the nearest pixel
    near_dark = relative_from_estimate(est, DepthConversion())
    np.testing.assert_allclose(near_dark, [[1.0, 0.75], [0.25, 0.0]])
    near_bright = relative_from_estimate(est, DepthConversion(near_is_bright=True))
    np.testing.assert_allclose(near_bright, [[0.0, 0.25], [0.75, 1.0]])
    assert near_dark.dtype == np.float32
    flat = relative_from_estimate(np.full((2, 3), 7.0, np.float32), DepthConversion())
    assert np.array_equal(flat, np.full((2, 3), 0.5, np.float32))


class OracleEstimation:
    """Stands in for ``DepthEstimation``: the oracle estimate of a known depth frame."""

    def __init__(self, truth: np.ndarray) -> None:
        self.estimate_of = oracle(truth)

    def estimate(self, rgb: np.ndarray) -> DepthEstimate:
        return DepthEstimate(self.estimate_of, self.estimate_of, 0.0)


@pytest.fixture(scope="module")
def runtime():
    with seeded(5):
        return SaliencyRuntime(TorchBackend(DepthEcho(EchoConfig(input_size=64))))


@pytest.fixture(scope="module")
def tiny_estimation():
    config = DepthAnythingV2Config(
        embed_dim=32, depth=4, num_heads=2, features=8, out_channels=(8, 8, 16, 16),
        layers=(0, 1, 2, 3), input_size=28,
    )  # fmt: skip
    with seeded(6):
        return DepthEstimation(TorchEstimatorBackend(DepthAnythingV2(config)))


def test_sources_through_the_runtime(runtime, tiny_estimation):
    truth = sensor_frame("TUM")
    rgb = np.random.default_rng(0).integers(0, 256, (*truth.shape, 3), dtype=np.uint8)
    cut, _ = cut_holes(truth, seed=1)

    sensor = DepthSource("sensor").depth_for(rgb, cut)
    assert sensor.is_metric and sensor.depth is cut and sensor.estimate is None

    # estimated: color alone, a real (tiny, random) estimator, relative depth in [0, 1]
    source = DepthSource("estimated", tiny_estimation, runtime.depth_conversion)
    assert not source.needs_sensor_depth
    estimated = source.depth_for(rgb)
    assert not estimated.is_metric and estimated.depth.shape == truth.shape
    expected = relative_from_estimate(estimated.estimate.depth, runtime.depth_conversion)
    assert np.array_equal(estimated.depth, expected)
    prepared = runtime.prepare(FramePair("cam", 0.0, rgb, estimated.depth, estimated.is_metric))
    assert np.array_equal(prepared.depth[0], resize_square(expected, 64))

    filled = DepthSource("fill", OracleEstimation(truth)).depth_for(rgb, cut)
    assert filled.is_metric and filled.source == "fill" and filled.fallback == ""
    assert filled.filled_pixels == int(np.isnan(cut).sum()) and filled.time_s > 0
    prepared = runtime.prepare(FramePair("cam", 0.0, rgb, filled.depth, filled.is_metric))
    relative = depth_to_model_input(filled.depth, runtime.depth_conversion)
    assert np.array_equal(prepared.depth[0], resize_square(relative, 64))

    # no valid sensor pixel: the estimate alone, and why
    empty = np.full_like(truth, np.nan)
    fallback = DepthSource("fill", OracleEstimation(truth)).depth_for(rgb, empty)
    assert not fallback.is_metric and "0 valid sensor pixels" in fallback.fallback


def test_sources_refuse_what_they_cannot_use(tiny_estimation):
    rgb = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown depth source"):
        DepthSource("stereo")
    with pytest.raises(ValueError, match="needs a depth estimator"):
        DepthSource("fill")
    with pytest.raises(ValueError, match="needs the sensor's depth"):
        DepthSource("sensor").depth_for(rgb)
    with pytest.raises(ValueError, match="differ in size"):
        DepthSource("fill", tiny_estimation).depth_for(rgb, np.ones((48, 60), np.float32))
