"""Depth decoding (REP 118 and real data-set files) and conversion to the model's relative depth.

.venv/bin/python -m pytest -q test/test_depth.py
"""

import cv2
import numpy as np
import pytest
from PIL import Image

from rgbd_saliency_ros.runtime.depth import (
    DepthConversion,
    InvalidDepthError,
    decode_nyu_disparity,
    decode_ros_depth,
    decode_tum_depth,
    depth_to_model_input,
    read_depth_png,
    read_nyu_depth,
    read_relative_depth_png,
    read_sun_depth,
    read_tum_depth,
    relative_depth_from_8bit,
)


def _plausible_indoor(depth_m: np.ndarray) -> bool:
    """Indoor Kinect-class frame: mostly valid, median 0.5..6 m, nothing outside 0.2..12 m."""
    valid = ~np.isnan(depth_m)
    if valid.mean() <= 0.5:
        return False
    values = depth_m[valid]
    return (
        0.5 < float(np.median(values)) < 6.0
        and 0.2 < float(values.min()) <= float(values.max()) < 12.0
    )


# The data sets' stored values, read without the code's readers (PIL for the PNGs, the PGM's
# bytes as NYU wrote them: little-endian) and decoded by each encoding's published definition.
def _png_values(path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float64)


def _tum_metres(path) -> np.ndarray:
    raw = _png_values(path)  # "scaled by a factor of 5000", 0 = no measurement
    return np.where(raw > 0, raw / 5000.0, np.nan)


def _sun_metres(path) -> np.ndarray:
    raw = _png_values(path).astype(np.int64)  # millimetres, rotated 3 bits left within 16 bits
    mm = raw // 8 + (raw % 8) * 2**13
    return np.where(mm > 0, mm / 1000.0, np.nan)


def _nyu_metres(path) -> np.ndarray:
    data = path.read_bytes()
    header = b"P5 640 480 65535\n"
    d = np.frombuffer(data[len(header) :], "<u2").reshape(480, 640).astype(np.float64)
    with np.errstate(divide="ignore"):
        metres = np.minimum(351.3 / (1092.5 - d), 10.0)  # NYU toolbox, clipped at 10 m
    return np.where((d == 2047) | (d >= 1092.5), np.nan, metres)


DATA_SETS = {
    "TUM": (read_tum_depth, "TUM_depth.png", _tum_metres),
    "SUN": (read_sun_depth, "SUN_depth.png", _sun_metres),
    "NYU": (read_nyu_depth, "NYU_depth.pgm", _nyu_metres),
}


@pytest.mark.parametrize("name", sorted(DATA_SETS))
def test_data_set_depth_is_its_encodings_metres(shared_path, name):
    reader, file, metres = DATA_SETS[name]
    path = shared_path("data", "rgbd_encodings", file)
    depth_m = reader(path)
    expected = metres(path)
    assert depth_m.dtype == np.float32 and depth_m.shape == (480, 640)
    np.testing.assert_array_equal(np.isnan(depth_m), np.isnan(expected))
    np.testing.assert_allclose(depth_m, expected, rtol=1e-6, equal_nan=True)
    assert _plausible_indoor(depth_m)


# Reading the stored values as another encoding (ROS millimetres) gives no plausible frame: TUM's
# 5000/m as 1000/m is 5x too far, SUN's rotated bits are nonsense.
@pytest.mark.parametrize("file", ["TUM_depth.png", "SUN_depth.png"])
def test_data_set_depth_read_as_ros_millimetres_would_fail(shared_path, file):
    raw = cv2.imread(str(shared_path("data", "rgbd_encodings", file)), cv2.IMREAD_UNCHANGED)
    assert not _plausible_indoor(decode_ros_depth(raw, "16UC1"))


def test_nyu_pgm_byte_order(shared_path):
    path = shared_path("data", "rgbd_encodings", "NYU_depth.pgm")
    data = path.read_bytes()
    header = b"P5 640 480 65535\n"
    assert data.startswith(header)
    big_endian = np.frombuffer(data[len(header) :], dtype=">u2").reshape(480, 640)
    # cv2 follows the PGM spec (big-endian samples); NYU wrote little-endian ones, so the Kinect's
    # 11-bit disparity only appears after a byte swap.
    from_cv2 = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(from_cv2, big_endian)
    swapped = from_cv2.byteswap()
    assert swapped.max() == 2047 and swapped.min() > 0
    assert not _plausible_indoor(decode_nyu_disparity(from_cv2))


def test_nyu_disparity_formula_and_invalid():
    disparity = np.array([[0, 700, 1057, 1060, 1092, 1093, 2047]], dtype=np.uint16)
    depth_m = decode_nyu_disparity(disparity)
    np.testing.assert_allclose(
        depth_m[0, :3], 351.3 / (1092.5 - np.array([0, 700, 1057])), rtol=1e-6
    )
    assert (
        depth_m[0, 3] == 10.0 and depth_m[0, 4] == 10.0
    )  # beyond 10 m: clipped as the toolbox does
    assert np.isnan(depth_m[0, 5]) and np.isnan(depth_m[0, 6])  # negative depth; no measurement


def test_decoders_reject_wrong_dtype():
    with pytest.raises(ValueError):
        decode_tum_depth(np.zeros((2, 2), np.int32))


def test_16uc1_millimetres_and_zero_invalid():
    raw = np.array([[0, 1, 1500], [65535, 0, 800]], dtype=np.uint16)
    depth_m = decode_ros_depth(raw[:, :, None], "16UC1")
    assert depth_m.dtype == np.float32 and depth_m.shape == (2, 3)
    np.testing.assert_array_equal(np.isnan(depth_m), raw == 0)
    np.testing.assert_allclose(depth_m[raw > 0], raw[raw > 0] / 1000.0, rtol=1e-6)


def test_32fc1_invalid_values():
    raw = np.array([[np.nan, np.inf, -np.inf, -1.0, 0.0, 2.5]], dtype=np.float32)
    depth_m = decode_ros_depth(raw, "32FC1")
    assert depth_m is not raw
    np.testing.assert_array_equal(np.isnan(depth_m), [[True] * 5 + [False]])
    assert depth_m[0, 5] == np.float32(2.5)


@pytest.mark.parametrize(
    "encoding, image",
    [
        ("16UC1", np.zeros((2, 2), np.float32)),
        ("32FC1", np.zeros((2, 2), np.uint16)),
        ("32FC1", np.zeros((2, 2), np.float64)),
        ("16UC1", np.zeros((2, 2, 3), np.uint16)),
        ("mono16", np.zeros((2, 2), np.uint16)),
        ("8UC1", np.zeros((2, 2), np.uint8)),
    ],
)
def test_bad_depth_encoding_or_data_raises(encoding, image):
    with pytest.raises(ValueError, match=f"'{encoding}'"):
        decode_ros_depth(image, encoding)


@pytest.mark.parametrize(
    "encoding, raw",
    [
        ("16UC1", np.array([[0, 1000, 2000, 4000]], np.uint16)),
        ("32FC1", np.array([[np.nan, 1.0, 2.0, 4.0]], np.float32)),
    ],
)
@pytest.mark.parametrize("invalid_value", [0.0, 0.25, 1.0])
def test_invalid_pixels_become_invalid_value(encoding, raw, invalid_value):
    conversion = DepthConversion(invalid_value=invalid_value)
    out = depth_to_model_input(decode_ros_depth(raw, encoding), conversion)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[invalid_value, 0.0, 1 / 3, 1.0]], atol=1e-6)


def test_all_kinds_of_invalid_in_metres():
    depth_m = np.array([[np.nan, np.inf, -np.inf, -2.0, 0.0, 3.0, 5.0]], np.float32)
    out = depth_to_model_input(depth_m, DepthConversion(invalid_value=0.5))
    np.testing.assert_allclose(out, [[0.5] * 5 + [0.0, 1.0]])


def test_per_frame_vs_fixed_normalization():
    depth_m = np.array([[1.0, 2.0, 3.0, 20.0, 0.05]], np.float32)
    per_frame = depth_to_model_input(depth_m, DepthConversion(min_depth_m=0.5, max_depth_m=5.0))
    # clipped to 0.5..5 m first: 1, 2, 3, 5, 0.5 m, then stretched over the frame's own 0.5..5 m
    np.testing.assert_allclose(per_frame, [[0.5 / 4.5, 1.5 / 4.5, 2.5 / 4.5, 1.0, 0.0]], atol=1e-6)

    near = np.array([[2.0, 3.0]], np.float32)
    per_frame = depth_to_model_input(near, DepthConversion(min_depth_m=0.0, max_depth_m=10.0))
    fixed = depth_to_model_input(
        near, DepthConversion(min_depth_m=0.0, max_depth_m=10.0, normalization="fixed")
    )
    np.testing.assert_allclose(per_frame, [[0.0, 1.0]])
    np.testing.assert_allclose(fixed, [[0.2, 0.3]], atol=1e-6)


def test_single_depth_frame_gives_mid_grey():
    out = depth_to_model_input(
        np.array([[2.0, 2.0, np.nan]], np.float32), DepthConversion(invalid_value=0.0)
    )
    np.testing.assert_array_equal(out, [[0.5, 0.5, 0.0]])


def test_near_is_bright_flips_valid_pixels_only():
    depth_m = np.array([[1.0, 2.0, 4.0, np.nan]], np.float32)
    dark = depth_to_model_input(depth_m, DepthConversion(invalid_value=0.0))
    bright = depth_to_model_input(depth_m, DepthConversion(invalid_value=0.0, near_is_bright=True))
    np.testing.assert_allclose(bright[0, :3], 1.0 - dark[0, :3], atol=1e-6)
    assert bright[0, 0] == 1.0 and dark[0, 0] == 0.0
    assert bright[0, 3] == dark[0, 3] == 0.0


def test_real_depth_converts_into_unit_range(shared_path):
    depth_m = read_tum_depth(shared_path("data", "rgbd_encodings", "TUM_depth.png"))
    out = depth_to_model_input(depth_m, DepthConversion())
    assert out.shape == depth_m.shape and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0 and not np.isnan(out).any()


@pytest.mark.parametrize(
    "depth_m",
    [
        np.zeros((3, 4), np.float32),
        np.full((3, 4), np.nan, np.float32),
        np.array([[np.inf, -1.0]], np.float32),
    ],
)
def test_all_invalid_depth_raises_specific_error(depth_m):
    with pytest.raises(InvalidDepthError):
        depth_to_model_input(depth_m, DepthConversion())
    assert issubclass(InvalidDepthError, ValueError)


def test_depth_conversion_round_trip_and_validation():
    conversion = DepthConversion(
        min_depth_m=0.3,
        max_depth_m=6.0,
        normalization="fixed",
        near_is_bright=True,
        invalid_value=0.0,
    )
    assert DepthConversion.from_dict(conversion.to_dict()) == conversion
    with pytest.raises(ValueError, match="unknown"):
        DepthConversion.from_dict({**conversion.to_dict(), "max_depth": 5.0})
    for bad in [
        dict(min_depth_m=5.0, max_depth_m=1.0),
        dict(min_depth_m=-1.0),
        dict(max_depth_m=float("inf")),
        dict(normalization="global"),
        dict(invalid_value=1.5),
    ]:
        with pytest.raises(ValueError):
            DepthConversion(**bad)


def test_fixture_8bit_depth_is_value_over_255(shared_path):
    path = shared_path("fixtures", "samdaq_parity", "depth_0.png")
    png = np.array(Image.open(path))  # an independent reader
    assert png.dtype == np.uint8 and png.shape == (1024, 1024)
    expected = png.astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(read_relative_depth_png(path), expected)
    np.testing.assert_array_equal(relative_depth_from_8bit(png), expected)


def test_relative_depth_from_8bit_rejects_16bit():
    with pytest.raises(ValueError):
        relative_depth_from_8bit(np.zeros((2, 2), np.uint16))


def test_16bit_png_is_never_cut_to_8bit(tmp_path):
    values = np.array([[0, 255, 256, 1000], [30000, 40000, 65534, 65535]], np.uint16)
    path = tmp_path / "depth16.png"
    assert cv2.imwrite(str(path), values)
    raw = read_depth_png(path)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw, values)
    np.testing.assert_allclose(read_relative_depth_png(path), values / 65535.0, rtol=1e-6)


def test_grey_stored_as_color_is_accepted_other_color_is_not(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "grey3.png"
    cv2.imwrite(str(path), np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(read_depth_png(path), grey)
    color = np.zeros((3, 4, 3), np.uint8)
    color[:, :, 1] = 9
    cv2.imwrite(str(path), color)
    with pytest.raises(ValueError):
        read_depth_png(path)
    with pytest.raises(FileNotFoundError):
        read_depth_png(tmp_path / "missing.png")


def test_encode_ros_depth_writes_rep118_and_decodes_back():
    from rgbd_saliency_ros.runtime.depth import encode_ros_depth

    depth_m = np.array([[0.5, np.nan, 1.2344, -1.0], [np.inf, 0.0, 70.0, 2.0]], np.float32)
    mm = encode_ros_depth(depth_m, "16UC1")
    # Millimetres rounded, no measurement (NaN, inf, <= 0) as 0, beyond 65.535 m clipped.
    assert mm.dtype == np.uint16 and mm.tolist() == [[500, 0, 1234, 0], [0, 0, 65535, 2000]]
    back = decode_ros_depth(mm, "16UC1")
    np.testing.assert_allclose(back[0, [0, 2]], [0.5, 1.234], rtol=1e-6)
    assert np.isnan(back[0, 1]) and np.isnan(back[1, 0])
    metres = encode_ros_depth(depth_m, "32FC1")
    assert metres.dtype == np.float32
    assert np.isnan(metres).tolist() == [[False, True, False, True], [True, True, False, False]]
    assert metres[1, 2] == np.float32(70.0)
    with pytest.raises(ValueError, match="unsupported depth encoding"):
        encode_ros_depth(depth_m, "mono16")
