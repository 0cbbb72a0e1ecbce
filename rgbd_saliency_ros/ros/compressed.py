"""The node's input transports (image_transport's names): what to subscribe to and how to decode.

    color_in = input_transport("color", params.color_transport)   # raw or compressed
    node.create_subscription(color_in.msg_type, color_in.topic(topic), callback, qos)
    rgb = color_in.decode(msg, max_pixels)                           # raises ImageError

``raw`` is sensor_msgs/Image on the topic itself; ``compressed`` (color, JPEG or PNG) and
``compressedDepth`` (depth, the 16UC1 / 32FC1 PNG of compressed_depth_image_transport) are
sensor_msgs/CompressedImage on ``<topic>/compressed`` and ``<topic>/compressedDepth``. The codecs
are ``runtime.compressed``'s; their errors become ``ImageError`` with their own kind, counted by
the node like every other bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from ..runtime import compressed as codec
from ..runtime.depth import decode_ros_depth
from .conversions import ImageError, color_rgb, depth_metres


@dataclass(frozen=True)
class InputTransport:
    """One input's transport: the message type, the topic suffix and the decoder."""

    msg_type: type  # sensor_msgs Image or CompressedImage
    transport: str  # raw, compressed or compressedDepth
    decode: Callable[[Any, int], np.ndarray]  # (msg, max_pixels) -> RGB (H, W, 3) uint8 or metres

    def topic(self, base: str) -> str:
        """The topic this transport arrives on, for the raw topic ``base``."""
        return codec.transport_topic(base, self.transport)


def compressed_color_rgb(msg: CompressedImage, max_pixels: int) -> np.ndarray:
    """A ``compressed`` color message -> (H, W, 3) uint8 RGB. Raises ImageError."""
    try:
        return codec.decode_color(msg.format, msg.data, max_pixels)
    except codec.CompressedImageError as e:
        raise ImageError(e.kind, str(e)) from None


def compressed_depth_metres(msg: CompressedImage, max_pixels: int) -> np.ndarray:
    """A ``compressedDepth`` message -> (H, W) float32 metres, NaN invalid. Raises ImageError."""
    try:
        pixels, encoding = codec.decode_depth(msg.format, msg.data, max_pixels)
    except codec.CompressedImageError as e:
        raise ImageError(e.kind, str(e)) from None
    return decode_ros_depth(pixels, encoding)


_TRANSPORTS = {
    ("color", codec.RAW): InputTransport(Image, codec.RAW, color_rgb),
    ("color", codec.COMPRESSED): InputTransport(
        CompressedImage, codec.COMPRESSED, compressed_color_rgb
    ),
    ("depth", codec.RAW): InputTransport(Image, codec.RAW, depth_metres),
    ("depth", codec.COMPRESSED_DEPTH): InputTransport(
        CompressedImage, codec.COMPRESSED_DEPTH, compressed_depth_metres
    ),
}


def input_transport(kind: str, transport: str) -> InputTransport:
    """The transport of the ``kind`` input ("color" or "depth"): raw or compressed for color, raw
    or compressedDepth for depth. Raises ValueError for any other pair."""
    if (kind, transport) not in _TRANSPORTS:
        allowed = codec.COLOR_TRANSPORTS if kind == "color" else codec.DEPTH_TRANSPORTS
        raise ValueError(f"{kind} transport {transport!r} is not one of {', '.join(allowed)}")
    return _TRANSPORTS[(kind, transport)]


def input_transports(
    color_transport: str, depth_transport: str
) -> tuple[InputTransport, InputTransport]:
    """(color, depth) ``InputTransport`` of the node's ``color_transport`` and ``depth_transport``
    parameters. Raises ValueError for a transport the input has not."""
    return input_transport("color", color_transport), input_transport("depth", depth_transport)


def compressed_message(fmt: str, data: bytes, header: Header) -> CompressedImage:
    """(format, data) of a ``runtime.compressed`` encoder -> a CompressedImage with ``header``."""
    msg = CompressedImage()
    msg.header = header
    msg.format = fmt
    msg.data = data
    return msg
