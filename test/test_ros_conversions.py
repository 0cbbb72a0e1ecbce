"""Image <-> numpy conversions of the node, on real frames, without spinning.

.venv/bin/python -m pytest -q test/test_ros_conversions.py
"""

import array

import cv2
import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from rgbd_saliency_ros.ros import conversions as conv
from rgbd_saliency_ros.runtime.depth import read_tum_depth

BIG = 10**8


@pytest.fixture(scope="module")
def tum():
    """(480, 640, 3) uint8 RGB and (480, 640) float32 metres (NaN invalid) of TUM RGB-D."""
    from conftest import find_shared

    folder = find_shared("data", "rgbd_encodings")
    rgb = cv2.cvtColor(cv2.imread(str(folder / "TUM_color.png")), cv2.COLOR_BGR2RGB)
    return rgb, read_tum_depth(folder / "TUM_depth.png")


def header(sec=12, nanosec=500_000_000, frame="camera_color_optical_frame"):
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame)


def raw_image(pixels: np.ndarray, encoding: str, step=None, bigendian=False, pad=0) -> Image:
    """An Image as a driver would fill it: rows of ``step`` bytes (padding after each row)."""
    rows = pixels.reshape(pixels.shape[0], -1)
    rows = rows.byteswap() if bigendian and rows.dtype.itemsize > 1 else rows
    raw = rows.view(np.uint8)
    if pad:
        raw = np.concatenate([raw, np.full((raw.shape[0], pad), 7, np.uint8)], axis=1)
    msg = Image(
        height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, is_bigendian=bigendian
    )
    msg.step = step if step is not None else raw.shape[1]
    msg.data = array.array("B", raw.tobytes())
    return msg


def test_color_encodings_give_rgb(tum):
    rgb, _ = tum
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
    assert np.array_equal(conv.color_rgb(raw_image(rgb, "rgb8"), BIG), rgb)
    assert np.array_equal(conv.color_rgb(raw_image(bgr, "bgr8"), BIG), rgb)
    assert np.array_equal(
        conv.color_rgb(raw_image(np.concatenate([rgb, alpha], 2), "rgba8"), BIG), rgb
    )
    assert np.array_equal(
        conv.color_rgb(raw_image(np.concatenate([bgr, alpha], 2), "bgra8"), BIG), rgb
    )
    grey = conv.color_rgb(raw_image(rgb[:, :, 0].copy(), "mono8"), BIG)
    assert grey.shape == rgb.shape and np.array_equal(grey[:, :, 2], rgb[:, :, 0])


def test_padded_rows_are_skipped(tum):
    rgb, depth_m = tum
    padded = conv.color_rgb(raw_image(rgb, "rgb8", step=640 * 3 + 64, pad=64), BIG)
    assert np.array_equal(padded, rgb) and padded.flags.c_contiguous
    mm = np.nan_to_num(depth_m * 1000, nan=0).round().astype(np.uint16)
    expected = np.where(mm > 0, mm / 1000.0, np.nan).astype(np.float32)
    padded = conv.depth_metres(raw_image(mm, "16UC1", step=640 * 2 + 6, pad=6), BIG)
    np.testing.assert_allclose(padded, expected, rtol=1e-6, equal_nan=True)


def test_depth_encodings_rep118(tum):
    _, depth_m = tum
    mm = np.nan_to_num(depth_m * 1000, nan=0).round().astype(np.uint16)
    from_mm = conv.depth_metres(raw_image(mm, "16UC1"), BIG)
    assert from_mm.dtype == np.float32 and from_mm.shape == (480, 640)
    assert np.array_equal(np.isnan(from_mm), mm == 0)
    assert np.allclose(from_mm[mm > 0], mm[mm > 0] / 1000.0)
    # a big-endian publisher's 16UC1 reads the same
    assert np.array_equal(
        conv.depth_metres(raw_image(mm, "16UC1", bigendian=True), BIG), from_mm, equal_nan=True
    )
    metres = depth_m.copy()
    metres[0, :3] = (np.inf, -1.0, 0.0)
    from_m = conv.depth_metres(raw_image(metres, "32FC1"), BIG)
    assert np.isnan(from_m[0, :3]).all()
    assert np.array_equal(from_m[1:], depth_m[1:], equal_nan=True)


@pytest.mark.parametrize(
    "edit, kind",
    [
        ({"encoding": "bgr16"}, conv.UNSUPPORTED_ENCODING),
        ({"encoding": "16UC1"}, conv.UNSUPPORTED_ENCODING),  # a depth encoding on the color topic
        ({"width": 0, "step": 0}, conv.EMPTY_IMAGE),
        ({"height": 0}, conv.EMPTY_IMAGE),
        ({"height": 481}, conv.TOO_LARGE),
        ({"step": 640 * 3 - 1}, conv.STEP_TOO_SMALL),
        ({"data": 640 * 3 * 480 - 1}, conv.TRUNCATED_DATA),
    ],
)
def test_bad_color_messages_raise_their_kind(tum, edit, kind):
    msg = raw_image(tum[0], "rgb8")
    for field, value in edit.items():
        if field == "data":
            msg.data = msg.data[:value]
        else:
            setattr(msg, field, value)
    with pytest.raises(conv.ImageError) as caught:
        conv.color_rgb(msg, max_pixels=640 * 480)
    assert caught.value.kind == kind


def test_bad_depth_messages_and_size_mismatch(tum):
    rgb, depth_m = tum
    mm = np.nan_to_num(depth_m * 1000, nan=0).astype(np.uint16)
    with pytest.raises(conv.ImageError) as caught:
        conv.depth_metres(raw_image(mm, "mono16"), BIG)
    assert caught.value.kind == conv.UNSUPPORTED_ENCODING
    small = raw_image(cv2.resize(mm, (320, 240), interpolation=cv2.INTER_NEAREST), "16UC1")
    with pytest.raises(conv.ImageError) as caught:
        conv.frame_arrays(raw_image(rgb, "rgb8"), small, BIG)
    assert caught.value.kind == conv.SIZE_MISMATCH
    # an all-invalid frame converts: refusing it is the runtime's business (InvalidDepthError)
    assert np.isnan(conv.depth_metres(raw_image(np.zeros_like(mm), "16UC1"), BIG)).all()


def test_outputs_round_trip_with_the_input_header(tum):
    rgb, depth_m = tum
    h = header()
    mask = np.where(np.nan_to_num(depth_m) > 1.5, 255, 0).astype(np.uint8)
    prob = np.clip(np.nan_to_num(depth_m) / 5.0, 0, 1).astype(np.float32)
    for pixels, encoding in ((mask, "mono8"), (prob, "32FC1"), (rgb, "rgb8")):
        msg = conv.image_message(pixels, encoding, h)
        assert msg.header.stamp == h.stamp and msg.header.frame_id == h.frame_id
        assert (msg.height, msg.width, msg.encoding) == (480, 640, encoding)
        assert msg.step * msg.height == len(msg.data)
        back = conv.image_array(msg, (encoding,), BIG)
        assert np.array_equal(back.reshape(pixels.shape), pixels)
    with pytest.raises(ValueError):
        conv.image_message(prob, "mono8", h)


def test_overlay_tints_only_the_mask(tum):
    rgb, _ = tum
    mask = np.zeros(rgb.shape[:2], np.uint8)
    mask[100:200, 100:300] = 255
    out = conv.overlay_rgb(rgb, mask)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    assert np.array_equal(out[mask == 0], rgb[mask == 0])
    assert (out[mask > 0, 0].astype(int) >= rgb[mask > 0, 0] // 2).all()
    assert not np.array_equal(out[mask > 0], rgb[mask > 0])


def test_stamp_to_seconds():
    assert conv.stamp_to_s(Time(sec=12, nanosec=500_000_000)) == 12.5


def _camera_info(**fields):
    from sensor_msgs.msg import CameraInfo

    info = CameraInfo(width=640, height=480, distortion_model="plumb_bob")
    info.d = [0.1, -0.2, 0.0, 0.0, 0.05]
    info.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [525.0, 0.0, 319.5, 0.0, 0.0, 525.0, 239.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    for name, value in fields.items():
        setattr(info, name, value)
    return info


@pytest.mark.parametrize(
    "fields, kind",
    [
        ({"width": 99999, "height": 3}, conv.CAMERA_INFO_SIZE),
        ({"width": 0, "height": 0}, conv.CAMERA_INFO_SIZE),
        ({"k": [float("nan")] + [0.0] * 8}, conv.CAMERA_INFO_MATRIX),
        ({"p": [float("inf")] + [0.0] * 11}, conv.CAMERA_INFO_MATRIX),
        ({"k": [-525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]}, conv.CAMERA_INFO_MATRIX),
        ({"distortion_model": "x" * 100_000}, conv.CAMERA_INFO_MODEL),
        ({"distortion_model": "plumb bob; rm -rf"}, conv.CAMERA_INFO_MODEL),
        ({"d": [0.1, 0.2]}, conv.CAMERA_INFO_DISTORTION),
        ({"d": [float("nan")] * 5}, conv.CAMERA_INFO_DISTORTION),
        ({"distortion_model": "custom", "d": [0.0] * 65}, conv.CAMERA_INFO_DISTORTION),
    ],
)
def test_camera_info_that_does_not_describe_the_image_is_refused(fields, kind):
    with pytest.raises(conv.ImageError) as caught:
        conv.check_camera_info(_camera_info(**fields), 640, 480)
    assert caught.value.kind == kind


def test_camera_info_of_the_image_passes():
    conv.check_camera_info(_camera_info(), 640, 480)
    conv.check_camera_info(_camera_info(binning_x=2, binning_y=2), 320, 240)
    uncalibrated = _camera_info(k=[0.0] * 9, p=[0.0] * 12, d=[], distortion_model="")
    conv.check_camera_info(uncalibrated, 640, 480)
    rational = _camera_info(distortion_model="rational_polynomial", d=[0.0] * 8)
    conv.check_camera_info(rational, 640, 480)
