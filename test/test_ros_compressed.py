"""Compressed inputs as the node sees them: real sensor_msgs/CompressedImage messages (serialised
and back, as DDS delivers them) through the transports' decoders.

    .venv/bin/python -m pytest -q test/test_ros_compressed.py
"""

import cv2
import numpy as np
import pytest

from rgbd_saliency_ros.runtime.compressed import COMPRESSED_ERROR_KINDS, encode_color, encode_depth
from rgbd_saliency_ros.runtime.depth import read_tum_depth

MAX_PIXELS = 640 * 480


@pytest.fixture(scope="module")
def tum():
    from conftest import find_shared

    data = find_shared("data", "rgbd_encodings")
    rgb = cv2.cvtColor(cv2.imread(str(data / "TUM_color.png")), cv2.COLOR_BGR2RGB)
    depth_m = read_tum_depth(data / "TUM_depth.png")
    return rgb, np.nan_to_num(depth_m * 1000, nan=0).round().astype(np.uint16), depth_m


def _delivered(fmt: str, data: bytes):
    """A CompressedImage as a subscriber receives it: serialised by rclpy and read back."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage
    from std_msgs.msg import Header

    from rgbd_saliency_ros.ros.compressed import compressed_message

    msg = compressed_message(fmt, data, Header(frame_id="cam"))
    return deserialize_message(serialize_message(msg), CompressedImage)


def test_transports_choose_type_topic_and_decoder(tum):
    from sensor_msgs.msg import CompressedImage, Image

    from rgbd_saliency_ros.ros.compressed import input_transport
    from rgbd_saliency_ros.ros.conversions import frame_arrays, image_message

    rgb, mm, _ = tum
    color_in, depth_in = input_transport("color", "compressed"), input_transport(
        "depth", "compressedDepth"
    )
    assert (color_in.msg_type, color_in.topic_suffix) == (CompressedImage, "/compressed")
    assert (depth_in.msg_type, depth_in.topic_suffix) == (CompressedImage, "/compressedDepth")
    raw_color, raw_depth = input_transport("color", "raw"), input_transport("depth", "raw")
    assert (raw_color.msg_type, raw_color.topic_suffix, raw_depth.msg_type) == (Image, "", Image)
    for kind, transport in (
        ("color", "compressedDepth"),
        ("depth", "compressed"),
        ("color", "theora"),
    ):
        with pytest.raises(ValueError, match=f"{kind} transport"):
            input_transport(kind, transport)

    color = _delivered(*encode_color(rgb, "png"))
    depth = _delivered(*encode_depth(mm, "16UC1"))
    got_rgb, got_m = frame_arrays(color, depth, MAX_PIXELS, color_in.decode, depth_in.decode)
    # the same arrays as the raw Images of the same frame give
    raw_rgb, raw_m = frame_arrays(
        image_message(rgb, "rgb8", color.header),
        image_message(mm, "16UC1", color.header),
        MAX_PIXELS,
    )
    np.testing.assert_array_equal(got_rgb, raw_rgb)
    np.testing.assert_array_equal(got_m, raw_m)


def test_32fc1_compressed_depth_message_decodes_to_metres(tum):
    from rgbd_saliency_ros.ros.compressed import input_transport

    depth_m = tum[2]
    decoded = input_transport("depth", "compressedDepth").decode(
        _delivered(*encode_depth(depth_m, "32FC1", name_codec=True)), MAX_PIXELS
    )
    valid = np.isfinite(depth_m)
    np.testing.assert_array_equal(np.isfinite(decoded), valid)
    # within the format's quantisation: d^2 / (A - d), A = 10100 (z0 = 100), plus float32 slack
    error = decoded[valid] - depth_m[valid].astype(np.float64)
    assert np.all(error < depth_m[valid] ** 2 / (10100 - depth_m[valid]) + 1e-5) and np.all(
        error > -1e-5
    )


def test_bad_compressed_inputs_raise_image_errors_with_counted_kinds(tum):
    from rgbd_saliency_ros.ros.compressed import input_transport
    from rgbd_saliency_ros.ros.conversions import ImageError
    from rgbd_saliency_ros.ros.diagnostics import BAD_INPUT_KINDS, COUNTERS

    rgb, mm, _ = tum
    jpeg_depth = cv2.imencode(".jpg", (mm >> 4).astype(np.uint8))[1].tobytes()
    fmt, png = encode_depth(mm, "16UC1")
    cases = [
        ("depth", "16UC1; jpeg compressed mono8", jpeg_depth, "lossy_depth"),
        ("depth", fmt, png[: len(png) // 3], "decode_failed"),
        ("depth", "16UC1; compressedDepth rvl", png, "unsupported_compression"),
        ("color", "rgb8; jpeg compressed bgr8", b"\x00" * 64, "decode_failed"),
        ("color", *encode_color(np.zeros((481, 640, 3), np.uint8)), "too_large"),
    ]
    for kind, fmt, data, expected in cases:
        decode = input_transport(
            kind, "compressedDepth" if kind == "depth" else "compressed"
        ).decode
        with pytest.raises(ImageError) as caught:
            decode(_delivered(fmt, data), MAX_PIXELS)
        assert caught.value.kind == expected
        assert f"bad_input.{expected}" in COUNTERS
    assert set(COMPRESSED_ERROR_KINDS) <= set(BAD_INPUT_KINDS)
