"""Color frame preparation: encodings, normalisation, resizing.

.venv/bin/python -m pytest -q test/test_frames.py
"""

import cv2
import numpy as np
import pytest

from rgbd_saliency_ros.runtime.frames import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    color_to_rgb,
    normalize_rgb,
    resize_probability,
    resize_square,
)


@pytest.fixture
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)


def test_rgb8_is_returned_without_copy(rgb):
    assert color_to_rgb(rgb, "rgb8") is rgb


def test_bgr8_reverses_channels(rgb):
    out = color_to_rgb(rgb, "bgr8")
    np.testing.assert_array_equal(out, rgb[:, :, ::-1])
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)


@pytest.mark.parametrize("encoding, order", [("rgba8", [0, 1, 2]), ("bgra8", [2, 1, 0])])
def test_alpha_is_dropped(rgb, encoding, order):
    alpha = np.full((5, 7, 1), 17, dtype=np.uint8)
    image = np.concatenate([rgb[:, :, order], alpha], axis=2)
    np.testing.assert_array_equal(color_to_rgb(image, encoding), rgb)


@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1)])
def test_mono8_gives_three_equal_channels(shape):
    mono = np.arange(35, dtype=np.uint8).reshape(shape)
    out = color_to_rgb(mono, "mono8")
    assert out.shape == (5, 7, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], mono.reshape(5, 7))


def test_non_contiguous_input_is_accepted(rgb):
    flipped = rgb[:, ::-1]  # negative stride, as a careless caller might pass
    np.testing.assert_array_equal(color_to_rgb(flipped, "bgr8"), flipped[:, :, ::-1])


@pytest.mark.parametrize("encoding", ["yuv422", "16UC1", "RGB8", "bayer_rggb8", ""])
def test_unsupported_encoding_is_named(rgb, encoding):
    with pytest.raises(ValueError, match=f"'{encoding}'"):
        color_to_rgb(rgb, encoding)


@pytest.mark.parametrize(
    "encoding, image",
    [
        ("rgb8", np.zeros((4, 4, 4), np.uint8)),
        ("rgba8", np.zeros((4, 4, 3), np.uint8)),
        ("mono8", np.zeros((4, 4, 3), np.uint8)),
        ("bgr8", np.zeros((4, 4), np.uint8)),
        ("rgb8", np.zeros((0, 4, 3), np.uint8)),
        ("rgb8", np.zeros((4, 4, 3), np.uint16)),
    ],
)
def test_shape_or_dtype_that_does_not_fit_raises(encoding, image):
    with pytest.raises(ValueError, match=f"'{encoding}'"):
        color_to_rgb(image, encoding)


def test_normalize_rgb_matches_definition(rgb):
    out = normalize_rgb(rgb)
    expected = (rgb / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert out.dtype == np.float32 and out.shape == (3, 5, 7) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), rtol=0, atol=1e-6)


def test_normalize_rgb_on_fixture_frame(shared_path):
    path = shared_path("fixtures", "samdaq_parity", "rgb_0.png")
    frame = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    expected = ((frame / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).astype(
        np.float32
    )
    np.testing.assert_allclose(
        normalize_rgb(frame), expected.transpose(2, 0, 1), rtol=0, atol=1e-6
    )


def test_normalize_rgb_rejects_other_input():
    with pytest.raises(ValueError):
        normalize_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        normalize_rgb(np.zeros((4, 4, 4), np.uint8))


# Bilinear resizing with pixel centres aligned (cv2.INTER_LINEAR, align_corners=False): output
# pixel x samples the input at (x + 0.5) * in / out - 0.5, clamped to the edge pixels. From 2
# pixels to 4 that is 0, 0.25, 0.75, 1; from 2 to 6 it is 0, 0, 1/3, 2/3, 1, 1.
AT_2_TO_4 = np.array([0.0, 0.25, 0.75, 1.0])
AT_2_TO_6 = np.array([0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0])


def test_resize_square_is_bilinear_and_keeps_dtype():
    # a plane: 100 per step in x, 60 per step in y, channels apart by 10; bilinear keeps planes
    image = (np.array([[0, 100], [60, 160]])[:, :, None] + np.array([0, 10, 20])).astype(np.uint8)
    out = resize_square(image, 4)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    plane = 100 * AT_2_TO_4[None, :] + 60 * AT_2_TO_4[:, None]
    np.testing.assert_array_equal(out, np.rint(plane[:, :, None] + [0, 10, 20]))


def test_resize_square_keeps_constant_images_constant_whatever_the_aspect():
    out = resize_square(np.full((480, 640, 3), 37, np.uint8), 16)
    assert out.shape == (16, 16, 3) and (out == 37).all()
    depth = np.full((48, 64), 2.5, np.float32)
    assert (resize_square(depth, 32) == np.float32(2.5)).all()


def test_resize_square_returns_same_array_when_already_sized():
    image = np.zeros((8, 8, 3), np.uint8)
    assert resize_square(image, 8) is image


def test_resize_probability_back_to_frame_size():
    prob = np.array([[0.0, 0.4], [0.5, 0.9]], np.float32)  # a plane: 0.4 per x, 0.5 per y
    out = resize_probability(prob, (4, 6))
    assert out.shape == (4, 6) and out.dtype == np.float32
    expected = 0.4 * AT_2_TO_6[None, :] + 0.5 * AT_2_TO_4[:, None]
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6)
    assert resize_probability(prob, (2, 2)) is prob


def test_one_encoding_table_serves_color_depth_and_messages():
    """runtime/encodings.py is the one table: every color and depth encoding is a row of it, and
    an image written with its row's dtype and channels reads back through the message checks
    and converts (color to (H, W, 3) RGB, depth to (H, W) metres)."""
    from types import SimpleNamespace

    from rgbd_saliency_ros.runtime.depth import SUPPORTED_DEPTH_ENCODINGS
    from rgbd_saliency_ros.runtime.encodings import COLOR_ENCODINGS, DEPTH_ENCODINGS, ENCODINGS
    from rgbd_saliency_ros.runtime.frames import SUPPORTED_COLOR_ENCODINGS
    from rgbd_saliency_ros.runtime.images import color_rgb, depth_metres, image_fields

    assert SUPPORTED_COLOR_ENCODINGS == COLOR_ENCODINGS
    assert SUPPORTED_DEPTH_ENCODINGS == DEPTH_ENCODINGS
    for encoding, read in [(e, color_rgb) for e in COLOR_ENCODINGS] + [
        (e, depth_metres) for e in DEPTH_ENCODINGS
    ]:
        dtype, channels = ENCODINGS[encoding]
        shape = (2, 3) if channels == 1 else (2, 3, channels)
        msg = SimpleNamespace(**image_fields(np.ones(shape, dtype), encoding))
        assert msg.step == 3 * channels * np.dtype(dtype).itemsize, encoding
        out = read(msg, None)
        assert out.shape == ((2, 3, 3) if read is color_rgb else (2, 3)), encoding
