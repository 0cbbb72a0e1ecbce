"""The object's status and confidence figures from arrays (runtime.object_status, no ROS).

.venv/bin/python -m pytest -q test/test_object_status.py
"""

import math

import numpy as np
import pytest

from rgbd_saliency_ros.runtime.geometry import CameraModel, object_geometry
from rgbd_saliency_ros.runtime.object_status import (
    DEPTH_NOT_REGISTERED,
    FOUND,
    NO_SALIENT_OBJECT,
    NO_VALID_DEPTH,
    STALE,
    DepthNoise,
    StaleRule,
    centroid_covariance,
    object_figures,
)

CAMERA = CameraModel.pinhole(64, 48, 50.0, 50.0, 31.5, 23.5)


def square(side: int, depth_m: float = 1.0, probability: float = 0.8):
    """A side x side mask at the image centre on a flat depth: (mask, probability, depth)."""
    mask = np.zeros((48, 64), np.uint8)
    mask[24 - side // 2 : 24 - side // 2 + side, 32 - side // 2 : 32 - side // 2 + side] = 255
    prob = np.where(mask > 0, probability, 0.1).astype(np.float32)
    return mask, prob, np.full((48, 64), depth_m, np.float32)


def figures_of(mask, prob, depth, noise=None):
    return object_figures(mask, prob, depth, object_geometry(mask, depth, CAMERA), noise)


def test_figures_of_a_found_object():
    mask, prob, depth = square(10)
    prob[mask > 0] = np.linspace(0.6, 1.0, 100)
    depth[24, 32] = np.nan  # one hole in the mask
    f = figures_of(mask, prob, depth)
    assert f.own_status() == FOUND
    assert f.mask_pixels == 100 and f.point_count == 99
    assert f.mask_confidence == pytest.approx(0.8, abs=1e-6)  # the mean inside the mask only
    assert f.valid_depth_fraction == pytest.approx(0.99)
    # Every point at 1 m: sigma_z = 0.0012 + 0.0019 * 0.36 for each, z's std sigma / sqrt(N).
    sigma = 0.0012 + 0.0019 * 0.6**2
    assert f.centroid_std_m[2] == pytest.approx(sigma / math.sqrt(99), rel=1e-6)
    # x and y err along the rays: at most |x/z| times z's, under 0.1 here (the half-width).
    assert 0 < f.centroid_std_m[0] < 0.1 * f.centroid_std_m[2]
    assert np.allclose(f.centroid_covariance_m2, f.centroid_covariance_m2.T)


def test_empty_mask_and_mask_without_valid_depth():
    mask, prob, depth = square(10)
    empty = figures_of(np.zeros_like(mask), prob, depth)
    assert empty.own_status() == NO_SALIENT_OBJECT
    assert (empty.mask_pixels, empty.point_count) == (0, 0)
    assert math.isnan(empty.mask_confidence) and math.isnan(empty.valid_depth_fraction)
    assert np.isnan(empty.centroid_std_m).all()
    depth[mask > 0] = 0.0  # no valid depth under the mask (0 is invalid, REP 118)
    blind = figures_of(mask, prob, depth)
    assert blind.own_status() == NO_VALID_DEPTH
    assert blind.valid_depth_fraction == 0.0 and blind.point_count == 0
    assert blind.mask_confidence == pytest.approx(0.8)
    assert np.isnan(blind.centroid_std_m).all()


def test_centroid_std_shrinks_with_more_points_and_grows_with_depth():
    small, large = (figures_of(*square(side)) for side in (6, 20))
    assert large.point_count > small.point_count
    assert large.centroid_std_m[2] < small.centroid_std_m[2]
    # x and y also follow the rays' spread (a wider object): the same points measured k times
    # over give every axis 1/sqrt(k) of the std.
    points = object_geometry(*square(10)[::2], CAMERA).points_m
    once, four = (
        np.sqrt(np.diag(centroid_covariance(np.tile(points, (k, 1)), DepthNoise())))
        for k in (1, 4)
    )
    np.testing.assert_allclose(four, once / 2, rtol=1e-6)
    near, far = (figures_of(*square(10, depth_m=z)) for z in (0.8, 3.0))
    assert near.point_count == far.point_count
    assert (far.centroid_std_m > near.centroid_std_m).all()


def test_noise_model_is_the_stated_quadratic_and_its_covariance_the_stated_sum():
    noise = DepthNoise(0.001, 0.002, 0.5)
    assert noise.sigma_m(np.array([0.5, 1.5])) == pytest.approx([0.001, 0.003])
    points = np.array([[0.1, -0.2, 1.0], [0.0, 0.3, 1.5]])
    expected = (
        sum(noise.sigma_m(p[2]) ** 2 * np.outer(p / p[2], p / p[2]) for p in points)
        / len(points) ** 2
    )
    np.testing.assert_allclose(centroid_covariance(points, noise), expected)
    with pytest.raises(ValueError):
        DepthNoise(a_m=-0.001)


def test_stale_rule():
    rule = StaleRule(stale_after_s=1.0)
    assert rule.status(10.0, NO_SALIENT_OBJECT) == NO_SALIENT_OBJECT  # nothing found yet
    assert rule.status(10.1, FOUND) == FOUND and rule.last_good_s == 10.1
    assert rule.status(10.5, NO_VALID_DEPTH) == STALE  # hidden for 0.4 s
    assert rule.status(11.0, NO_SALIENT_OBJECT) == STALE
    assert rule.status(11.2, NO_SALIENT_OBJECT) == NO_SALIENT_OBJECT  # 1.1 s: gone
    assert rule.status(11.3, DEPTH_NOT_REGISTERED) == DEPTH_NOT_REGISTERED  # passed through
    assert rule.last_good_s == 10.1
    assert rule.status(5.0, NO_SALIENT_OBJECT) == NO_SALIENT_OBJECT  # clock went back: forgot
    assert rule.last_good_s is None
    never = StaleRule(0.0)
    never.status(1.0, FOUND)
    assert never.status(1.01, NO_SALIENT_OBJECT) == NO_SALIENT_OBJECT


def test_centroid_jitter_is_the_rms_spread_of_recent_found_centroids():
    from rgbd_saliency_ros.runtime.object_status import CentroidJitter

    jitter = CentroidJitter(frames=4)
    assert math.isnan(jitter.update(0.0, "found", np.zeros(3)))  # one centroid: undefined
    assert jitter.update(0.1, "found", np.array([0.02, 0.0, 0.0])) == pytest.approx(0.01)
    assert jitter.update(0.2, "stale", None) == pytest.approx(0.01)  # hidden: kept
    for t, x in ((0.3, 0.0), (0.4, 0.02), (0.5, 0.0)):  # only the last 4 found count
        value = jitter.update(t, "found", np.array([x, 0.0, 0.0]))
    assert value == pytest.approx(0.01)
    assert math.isnan(jitter.update(0.6, "no_salient_object", None))  # gone: forgotten
    jitter.update(0.7, "found", np.array([1.0, 1.0, 1.0]))
    assert math.isnan(jitter.update(0.1, "found", np.zeros(3)))  # a stamp going back
    with pytest.raises(ValueError):
        CentroidJitter(frames=1)
