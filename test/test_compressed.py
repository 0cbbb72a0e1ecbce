"""Compressed images as image_transport's plugins write them: every encoding round trip on real
frames, the compressedDepth header and quantisation, and every way a message can be unusable.

    .venv/bin/python -m pytest -q test/test_compressed.py
"""

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from rgbd_saliency_ros.runtime.compressed import (
    COMPRESSED_ERROR_KINDS,
    CompressedImageError,
    decode_color,
    decode_depth,
    encode_color,
    encode_depth,
    quantization_error_bound_m,
    rvl_decode,
    rvl_encode,
    transport_topic,
)
from rgbd_saliency_ros.runtime.depth import decode_ros_depth, read_sun_depth

MAX_PIXELS = 640 * 480


@pytest.fixture(scope="module")
def tum():
    """TUM RGB-D's real pair: RGB, 16UC1 millimetres and metres (TUM's 1/5000 m steps)."""
    from conftest import tum_rgbd

    return tum_rgbd()


def test_png_color_is_lossless_and_stored_as_the_plugin_stores_it(tum):
    rgb = tum[0]
    fmt, data = encode_color(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    # an independent decoder reads the file's own (RGB) channels: they are the image's
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), rgb)
    np.testing.assert_array_equal(decode_color(fmt, data, MAX_PIXELS), rgb)


def test_jpeg_color_round_trip_on_real_frames(tum, shared_path):
    sun = cv2.cvtColor(
        cv2.imread(str(shared_path("data", "rgbd_encodings", "SUN_color.jpg"))), cv2.COLOR_BGR2RGB
    )
    for rgb in (tum[0], sun):
        fmt, data = encode_color(rgb, "jpeg", quality=95)
        assert fmt == "rgb8; jpeg compressed bgr8" and data[:3] == b"\xff\xd8\xff"
        decoded = decode_color(fmt, data, rgb.shape[0] * rgb.shape[1])
        assert decoded.shape == rgb.shape and decoded.dtype == np.uint8
        error = decoded.astype(np.float64) - rgb
        psnr = 10 * np.log10(255**2 / np.mean(error**2))
        assert psnr > 32, psnr  # quality 95: JPEG's loss only, channels in the right order
        # Pillow (another JPEG decoder) reads the same picture
        other = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.float64)
        assert np.abs(other - decoded).mean() < 1.0


def test_channel_order_follows_the_format_string():
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 200  # RGB red
    _, as_bgr = cv2.imencode(
        ".png", red[..., ::-1].copy()
    )  # stored BGR, as the plugin stores rgb8
    _, as_rgb = cv2.imencode(".png", red)  # the array compressed as it is
    for fmt, data in (
        ("rgb8; png compressed bgr8", as_bgr),
        ("png", as_bgr),  # no ";": older, BGR
        ("bgr8; png compressed bgr8", as_bgr),
        ("rgb8; png compressed rgb8", as_rgb),
    ):
        decoded = decode_color(fmt, data.tobytes(), 64)
        assert decoded[0, 0].tolist() == [200, 0, 0], fmt
    grey = decode_color(
        "mono8; png compressed ", cv2.imencode(".png", np.full((4, 4), 77, np.uint8))[1], 64
    )
    assert grey.shape == (4, 4, 3) and (grey == 77).all()


@pytest.mark.parametrize("name_codec", [False, True])
def test_16uc1_depth_is_bit_exact_with_the_plugins_header(tum, name_codec):
    mm = tum[1]
    fmt, data = encode_depth(mm, "16UC1", name_codec=name_codec)
    assert fmt == ("16UC1; compressedDepth png" if name_codec else "16UC1; compressedDepth")
    assert struct.unpack("<i", data[:4]) == (0,)  # ConfigHeader.format = INV_DEPTH
    assert data[12:20] == b"\x89PNG\r\n\x1a\n"
    # the PNG after the 12-byte header holds the millimetres themselves (read by Pillow)
    np.testing.assert_array_equal(
        np.asarray(Image.open(io.BytesIO(data[12:]))).astype(np.uint16), mm
    )
    pixels, encoding = decode_depth(fmt, data, MAX_PIXELS)
    assert encoding == "16UC1" and pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, mm)
    # through decode_ros_depth: the metres of the raw Image
    np.testing.assert_array_equal(
        decode_ros_depth(pixels, encoding), decode_ros_depth(mm, "16UC1"), strict=True
    )


def test_16uc1_drops_depth_beyond_depth_max_as_the_plugin_does(shared_path):
    mm = read_sun_depth(shared_path("data", "rgbd_encodings", "SUN_depth.png")) * 1000
    mm = np.nan_to_num(mm, nan=0).round().astype(np.uint16)
    assert (mm > 3000).any() and (mm[mm > 0] <= 3000).any()
    pixels, _ = decode_depth(*encode_depth(mm, "16UC1", depth_max_m=3.0), MAX_PIXELS)
    np.testing.assert_array_equal(pixels, np.where(mm > 3000, 0, mm))


def test_32fc1_quantisation_by_hand():
    # z0 = 100: A = 100 * 101 = 10100, B = 1 - 10100 / 10 = -1009; q = floor(A / d + B)
    depth = np.array([[1.0, 2.5, 3.0, 0.5], [np.nan, 10.0, 12.0, 0.0]], np.float32)
    fmt, data = encode_depth(depth, "32FC1")
    assert fmt == "32FC1; compressedDepth"
    assert struct.unpack("<iff", data[:12]) == (0, 10100.0, -1009.0)
    q = np.asarray(Image.open(io.BytesIO(data[12:]))).astype(np.int64)
    assert q.tolist() == [
        [9091, 3031, 2357, 19191],
        [0, 0, 0, 0],
    ]  # NaN, >= depth_max, 0: no measurement
    metres, encoding = decode_depth(fmt, data, 64)
    assert encoding == "32FC1" and metres.dtype == np.float32
    expected = [[1.0, 2.5, 10100 / 3366, 10100 / 20200], [np.nan] * 4]
    np.testing.assert_allclose(metres, np.array(expected, np.float32), rtol=1e-7, equal_nan=True)


def test_32fc1_real_depth_within_the_quantisation_bound(tum):
    depth_m = tum[2]
    fmt, data = encode_depth(depth_m, "32FC1")
    decoded, _ = decode_depth(fmt, data, MAX_PIXELS)
    valid = np.isfinite(depth_m)
    np.testing.assert_array_equal(np.isnan(decoded), ~valid)  # TUM's depths are all below 10 m
    error = decoded[valid].astype(np.float64) - depth_m[valid]
    bound = quantization_error_bound_m(depth_m[valid])
    slack = 4e-7 * depth_m[valid]  # float32 arithmetic (a few ulps)
    assert (error >= -slack).all() and (error < bound + slack).all()
    assert (error > 1e-4).mean() > 0.5  # it is lossy: most depths move (by less than the bound)
    # a coarser quantisation (z0 = 50) stays within its own, larger bound
    decoded, _ = decode_depth(*encode_depth(depth_m, "32FC1", depth_quantization=50.0), MAX_PIXELS)
    error = decoded[valid].astype(np.float64) - depth_m[valid]
    coarse = quantization_error_bound_m(depth_m[valid], depth_quantization=50.0)
    assert (error >= -slack).all() and (error < coarse + slack).all() and error.max() > bound.max()


def _png_claiming(width: int, height: int) -> bytes:
    """A real 16-bit PNG whose header (CRC fixed) claims another size."""
    data = bytearray(cv2.imencode(".png", np.ones((4, 4), np.uint16))[1].tobytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_lossy_and_broken_depth_are_refused_with_their_kind(tum):
    rgb, mm, _ = tum
    header = struct.pack("<iff", 0, 0.0, 0.0)
    grey_jpeg = cv2.imencode(".jpg", (mm >> 8).astype(np.uint8))[1].tobytes()
    good_fmt, good = encode_depth(mm, "16UC1")
    cases = [
        (
            "lossy_depth",
            "16UC1; jpeg compressed mono8",
            grey_jpeg,
        ),  # a driver's compressed transport
        ("lossy_depth", "16UC1; compressedDepth", header + grey_jpeg),  # JPEG behind the header
        ("lossy_depth", "16UC1; compressedDepth jpeg", good),  # the format says jpeg
        ("unsupported_compression", "16UC1; compressedDepth zstd", good),
        ("unsupported_compression", "16UC1; png compressed ", good[12:]),
        ("unsupported_encoding", "8UC1; compressedDepth", good),
        ("decode_failed", good_fmt, good[:12]),  # the header alone
        ("decode_failed", good_fmt, good[: len(good) // 2]),  # cut short
        ("decode_failed", good_fmt, b"\0" * 100),
        (
            "decode_failed",
            good_fmt,
            header + cv2.imencode(".png", rgb)[1].tobytes(),
        ),  # 8-bit color PNG
        ("too_large", good_fmt, header + _png_claiming(100_000, 100_000)),
        (
            "decode_failed",
            "32FC1; compressedDepth",
            struct.pack("<iff", 0, np.inf, 0.0) + good[12:],
        ),
    ]
    for kind, fmt, data in cases:
        with pytest.raises(CompressedImageError) as caught:
            decode_depth(fmt, data, MAX_PIXELS)
        assert caught.value.kind == kind, (fmt, str(caught.value))
    assert {"lossy_depth", "unsupported_compression", "decode_failed"} <= set(
        COMPRESSED_ERROR_KINDS
    )


def test_broken_color_is_refused_with_its_kind(tum):
    rgb = tum[0]
    fmt, data = encode_color(rgb, "jpeg")
    frame = data.index(b"\xff\xc0")  # the JPEG's frame header (SOF0): claim 5000 x 5000
    claiming = data[: frame + 5] + struct.pack(">HH", 5000, 5000) + data[frame + 9 :]
    for kind, payload in (
        ("decode_failed", b"not an image"),
        ("decode_failed", data[:200]),
        # cut short past its headers: OpenCV 4.6 decodes this into a part-grey image
        ("decode_failed", data[: len(data) // 2]),
        ("too_large", _png_claiming(5000, 5000)),
        ("too_large", claiming),
        ("decode_failed", b""),
    ):
        with pytest.raises(CompressedImageError) as caught:
            decode_color(fmt, payload, MAX_PIXELS)
        assert caught.value.kind == kind, str(caught.value)


def test_transport_topics_follow_image_transport():
    assert transport_topic("camera/color/image_raw", "raw") == "camera/color/image_raw"
    assert (
        transport_topic("camera/color/image_raw", "compressed")
        == "camera/color/image_raw/compressed"
    )
    assert (
        transport_topic("depth/image_raw", "compressedDepth") == "depth/image_raw/compressedDepth"
    )


def test_rvl_words_as_the_plugin_writes_them():
    # Worked by hand from the plugin's CompressRVL / EncodeVLE for [0, 0, 5, 7, 0]: 2 zeros (nibble
    # 2), 2 nonzeros (2), 5 - 0 = 5 zigzag 10 = 0b1010: low group 2 with "more" (0xA), then 1;
    # 7 - 5 = 2 zigzag 4 (4); then 1 zero (1), 0 nonzeros (0). Nibbles 2 2 A 1 4 1 0, padded with
    # one 0 nibble, first in the top bits: 0x22A14100, stored little-endian.
    assert rvl_encode(np.array([[0, 0, 5, 7, 0]], np.uint16)) == bytes.fromhex("0041a122")
    np.testing.assert_array_equal(rvl_decode(bytes.fromhex("0041a122"), 5), [0, 0, 5, 7, 0])
    # runs at both ends, all zero, none zero, a step down by 65535 (a long zigzag number)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 65536, (37, 53)).astype(np.uint16)
    noisy[noisy < 20000] = 0
    for image in (
        noisy,
        np.zeros((3, 4), np.uint16),
        np.full((2, 5), 9, np.uint16),
        np.array([[65535, 1, 0, 65535]], np.uint16),
    ):
        np.testing.assert_array_equal(rvl_decode(rvl_encode(image), image.size), image.ravel())


def test_rvl_compressed_depth_round_trips_like_png(tum):
    _, mm, depth_m = tum
    fmt, data = encode_depth(mm, "16UC1", codec="rvl")
    assert fmt == "16UC1; compressedDepth rvl" and struct.unpack("<II", data[12:20]) == (640, 480)
    pixels, encoding = decode_depth(fmt, data, MAX_PIXELS)
    assert encoding == "16UC1"
    np.testing.assert_array_equal(pixels, mm)  # lossless
    # 32FC1: the same quantised image as the PNG coding, so the same metres
    rvl = decode_depth(*encode_depth(depth_m, "32FC1", codec="rvl"), MAX_PIXELS)[0]
    np.testing.assert_array_equal(
        rvl, decode_depth(*encode_depth(depth_m, "32FC1"), MAX_PIXELS)[0]
    )
    for kind, damaged in (
        ("decode_failed", data[: len(data) // 2]),
        ("too_large", data[:12] + struct.pack("<II", 640, 481) + data[20:]),
        ("decode_failed", data[:12] + struct.pack("<II", 320, 480) + data[20:]),
        ("empty_image", data[:12] + struct.pack("<II", 0, 480) + data[20:]),
    ):
        with pytest.raises(CompressedImageError) as caught:
            decode_depth(fmt, damaged, MAX_PIXELS)
        assert caught.value.kind == kind, str(caught.value)
