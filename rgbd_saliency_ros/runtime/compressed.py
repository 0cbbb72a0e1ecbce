"""Compressed camera images, as ROS's image_transport plugins write them: decoding and encoding.

No ROS: a sensor_msgs/CompressedImage is its ``format`` string and its ``data`` bytes, so the node
(ros/compressed.py), the offline replay and make-bag share these functions.

- ``compressed`` (compressed_image_transport): color as JPEG or PNG; ``format`` is e.g.
  ``"rgb8; jpeg compressed bgr8"`` (the source encoding; the codec; the channel order stored).
- ``compressedDepth`` (compressed_depth_image_transport): a 12-byte ``ConfigHeader`` (int32
  compression format, 0 = inverse depth; float32 quantisation parameters A, B; little-endian as
  the plugin memcpy's its struct on every ROS platform), then a 16-bit PNG. 16UC1 millimetres are
  stored as they are (lossless); 32FC1 metres are quantised as inverse depth,
  ``q = uint16(A / d + B)`` with ``A = z0 (z0 + 1)``, ``B = 1 - A / depth_max`` (z0: the
  plugin's depth_quantization, 100 by default; depth_max 10 m), read back as ``d = A / (q - B)``,
  q = 0 being no measurement. ``format`` is ``"32FC1; compressedDepth"`` (Humble) or
  ``"32FC1; compressedDepth png"`` (Iron and later); or, from Iron on, ``"...; compressedDepth
  rvl"``: the same 16-bit image RVL-coded (uint32 width, height, then the RVL words).

A depth image coded as JPEG (a driver's ``compressed`` transport on depth, or ``format`` naming
jpeg) has lost its values: refused as ``lossy_depth``, never guessed at.

    rgb = decode_color(msg.format, msg.data, max_pixels)  # (H, W, 3) uint8 RGB
    pixels, encoding = decode_depth(msg.format, msg.data, max_pixels)  # 16UC1 mm or 32FC1 m
    fmt, data = encode_depth(mm, "16UC1")  # what the plugin would publish
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from .encodings import DEPTH_ENCODINGS

# Kinds shared with the raw-image checks (same names, same counters).
from .images import EMPTY_IMAGE, TOO_LARGE, UNSUPPORTED_ENCODING, ImageError

# image_transport's transport names, and the topic each one publishes on (base topic + suffix).
RAW, COMPRESSED, COMPRESSED_DEPTH = "raw", "compressed", "compressedDepth"
COLOR_TRANSPORTS = (RAW, COMPRESSED)
DEPTH_TRANSPORTS = (RAW, COMPRESSED_DEPTH)
COLOR_CODECS = ("jpeg", "png")

# Kinds of bad input beyond the raw Image checks; the node counts each one in /diagnostics.
DECODE_FAILED = "decode_failed"  # the bytes are not an image of the kind ``format`` says
LOSSY_DEPTH = "lossy_depth"  # depth coded as JPEG: its distances are gone
UNSUPPORTED_COMPRESSION = "unsupported_compression"  # a codec or layout not read here (RVL, TIFF)
COMPRESSED_ERROR_KINDS = (DECODE_FAILED, LOSSY_DEPTH, UNSUPPORTED_COMPRESSION)

# compressed_depth_image_transport's ConfigHeader: enum compressionFormat (int), float[2].
CONFIG_HEADER = struct.Struct("<iff")
INV_DEPTH = 0  # its compressionFormat for every image it writes
RVL_SIZE = struct.Struct("<II")  # "compressedDepth rvl": width, height before the RVL words
DEPTH_MAX_M = 10.0  # the plugin's defaults (parameters depth_max, depth_quantization, png_level)
DEPTH_QUANTIZATION = 100.0
PNG_LEVEL = 3
JPEG_QUALITY = 95  # compressed_image_transport's default jpeg_quality

# A limit for offline tools (the node has max_image_pixels): a header claiming more is refused
# before anything is decoded.
DEFAULT_MAX_PIXELS = 8192 * 8192

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


class CompressedImageError(ImageError):
    """A CompressedImage that cannot be used; ``kind`` is one of ``COMPRESSED_ERROR_KINDS`` or
    the shared ``UNSUPPORTED_ENCODING``, ``EMPTY_IMAGE``, ``TOO_LARGE``."""


def transport_topic(base: str, transport: str) -> str:
    """The topic a transport publishes on: ``base`` for raw, else ``base/<transport>``."""
    return base if transport == RAW else f"{base}/{transport}"


def _as_bytes(data) -> bytes:
    # rclpy gives array.array('B') (or a list), rosbags a numpy uint8 array: one copy to bytes.
    return data.tobytes() if hasattr(data, "tobytes") else bytes(data)


def _codec(data: bytes) -> str | None:
    if data.startswith(_PNG_MAGIC):
        return "png"
    if data.startswith(_JPEG_MAGIC):
        return "jpeg"
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header (SOFn), scanning its marker segments."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("no marker where one should be")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a segment
            pos += 2
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("no frame header before the scan")
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 <= len(data):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        pos += 2 + length
    raise ValueError("cut short before its frame header")


def _image_size(data: bytes) -> tuple[int, int]:
    """(width, height) a PNG or JPEG's header claims; read by hand because Pillow's header reader
    warns or raises by its own global pixel limit, not the caller's."""
    if data.startswith(_PNG_MAGIC) and data[12:16] == b"IHDR" and len(data) >= 24:
        return struct.unpack_from(">II", data, 16)
    if data.startswith(_JPEG_MAGIC):
        return _jpeg_size(data)
    raise ValueError("neither a PNG nor a JPEG header")


def _check_size(data: bytes, max_pixels: int) -> None:
    """Refuses an image whose header claims too many pixels, before decoding it (a small file
    can claim a huge image)."""
    try:
        width, height = _image_size(data)
    except (ValueError, struct.error) as e:
        raise CompressedImageError(DECODE_FAILED, f"unreadable image header: {e}") from None
    _check_claimed_size(width, height, max_pixels)


def _check_claimed_size(width: int, height: int, max_pixels: int) -> None:
    """Refuses an empty image, or one of more than ``max_pixels``, from the size it claims."""
    if width == 0 or height == 0:
        raise CompressedImageError(EMPTY_IMAGE, f"empty image: {width}x{height}")
    if width * height > max_pixels:
        raise CompressedImageError(
            TOO_LARGE, f"{width}x{height} is more than max_image_pixels ({max_pixels})"
        )


def _imdecode(data: bytes, flags: int, what: str) -> np.ndarray:
    # OpenCV before 4.7 or so decodes a JPEG cut short into a part-grey image instead of failing
    # (4.6, Ubuntu 24.04's, does): a complete JPEG ends with its end-of-image marker.
    if data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise CompressedImageError(
            DECODE_FAILED, f"{what}: the JPEG data are cut short (no end-of-image marker)"
        )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as e:
        raise CompressedImageError(DECODE_FAILED, f"{what}: cannot decode: {e}") from None
    if image is None or image.size == 0:
        raise CompressedImageError(
            DECODE_FAILED, f"{what}: the data do not decode (damaged or cut short)"
        )
    return image


def _stored_bgr(fmt: str) -> bool:
    """Whether the decoded channels are in BGR order, as compressed_image_transport reads
    ``format``: BGR when it says "compressed bgr..." or carries no ";" (older publishers); RGB
    order otherwise (what was compressed was already in the source's RGB order)."""
    return ";" not in fmt or "compressed bgr" in fmt.split(";", 1)[1]


def decode_color(fmt: str, data, max_pixels: int) -> np.ndarray:
    """A ``compressed`` color image (JPEG or PNG) -> (H, W, 3) uint8 RGB.

    Args:
        fmt: the message's ``format`` (e.g. "rgb8; jpeg compressed bgr8", "bgr8; png compressed
            bgr8", "jpeg"); the codec is taken from the data's signature.
        data: the message's ``data`` (bytes, array.array or a uint8 array).
        max_pixels: an image whose header claims more pixels is refused undecoded.

    Grey images give three equal channels; 16-bit PNG is reduced to 8 bits (OpenCV's colour read).

    Raises:
        CompressedImageError: ``decode_failed`` (neither JPEG nor PNG, damaged, cut short),
            ``too_large``, ``empty_image``.
    """
    data = _as_bytes(data)
    if _codec(data) is None:
        raise CompressedImageError(
            DECODE_FAILED,
            f"color data ({len(data)} bytes, format {fmt!r}) is neither JPEG nor PNG",
        )
    _check_size(data, max_pixels)
    image = _imdecode(data, cv2.IMREAD_COLOR, "color")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if _stored_bgr(fmt) else image


def encode_color(
    rgb: np.ndarray,
    codec: str = "jpeg",
    quality: int = JPEG_QUALITY,
    png_level: int = PNG_LEVEL,
    encoding: str = "rgb8",
) -> tuple[str, bytes]:
    """(H, W, 3) uint8 RGB -> (format, data) as compressed_image_transport publishes an rgb8
    Image: the pixels stored in BGR order, ``format`` "<encoding>; <codec> compressed bgr8".

    Args:
        codec: "jpeg" (lossy, ``quality`` 1..100) or "png" (lossless, ``png_level`` 0..9).
        encoding: the source Image's encoding named in ``format``.
    """
    if codec not in COLOR_CODECS:
        raise ValueError(f"color codec must be one of {', '.join(COLOR_CODECS)}, got {codec!r}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"encode_color needs (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if codec == "jpeg":
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    else:
        ok, data = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ValueError(
            f"OpenCV could not encode a {rgb.shape[1]}x{rgb.shape[0]} image as {codec}"
        )
    return f"{encoding}; {codec} compressed bgr8", data.tobytes()


def _depth_layout(fmt: str) -> tuple[str, str]:
    """(encoding, codec "png" or "rvl") from a compressedDepth ``format``; refuses the rest."""
    encoding, _, rest = (part.strip() for part in fmt.partition(";"))
    if "jpeg" in rest.lower() or "jpg" in rest.lower():
        raise CompressedImageError(
            LOSSY_DEPTH, f"depth coded as JPEG ({fmt!r}): its distances are lost"
        )
    words = rest.split() if ";" in fmt else [COMPRESSED_DEPTH]  # no ";": the oldest form, PNG
    if words[:1] != [COMPRESSED_DEPTH] or words[1:] not in ([], ["png"], ["rvl"]):
        raise CompressedImageError(
            UNSUPPORTED_COMPRESSION,
            f"depth format {fmt!r}: only compressedDepth (PNG or RVL) is read",
        )
    if encoding not in DEPTH_ENCODINGS:
        raise CompressedImageError(
            UNSUPPORTED_ENCODING,
            f"compressedDepth of {encoding!r}: expected {' or '.join(DEPTH_ENCODINGS)}",
        )
    return encoding, (words[1:] or ["png"])[0]


def _stored_depth(payload: bytes, codec: str, max_pixels: int) -> np.ndarray:
    """The (H, W) uint16 image after the ConfigHeader: a 16-bit PNG, or RVL (uint32 width,
    uint32 height, then the RVL words)."""
    if codec == "rvl":
        if len(payload) < RVL_SIZE.size:
            raise CompressedImageError(DECODE_FAILED, "compressedDepth rvl: no image size")
        width, height = RVL_SIZE.unpack_from(payload)
        _check_claimed_size(width, height, max_pixels)
        return rvl_decode(payload[RVL_SIZE.size :], width * height).reshape(height, width)
    if _codec(payload) != "png":
        raise CompressedImageError(DECODE_FAILED, "compressedDepth data: no PNG after the header")
    _check_size(payload, max_pixels)
    stored = _imdecode(payload, cv2.IMREAD_UNCHANGED, "compressedDepth")
    if stored.dtype != np.uint16 or stored.ndim != 2:
        raise CompressedImageError(
            DECODE_FAILED,
            f"compressedDepth holds a {stored.dtype} image of shape "
            f"{stored.shape}, not single-channel 16-bit",
        )
    return stored


def decode_depth(fmt: str, data, max_pixels: int) -> tuple[np.ndarray, str]:
    """A ``compressedDepth`` image (PNG or RVL) -> (pixels, encoding), the Image the plugin
    would give back.

    Returns:
        ((H, W) uint16 millimetres, "16UC1"), exactly as published; or ((H, W) float32 metres,
        "32FC1"), ``A / (q - B)`` in float32 as the plugin computes it, NaN where q = 0.
        ``runtime.depth.decode_ros_depth`` turns either into metres.

    Raises:
        CompressedImageError: ``lossy_depth`` (JPEG data or a format naming jpeg),
            ``unsupported_compression`` (plain ``compressed`` PNG, other codecs),
            ``unsupported_encoding``, ``decode_failed`` (no header, not a 16-bit PNG, damaged,
            quantisation parameters that are not finite), ``too_large``, ``empty_image``.
    """
    data = _as_bytes(data)
    if _codec(data) == "jpeg" or _codec(data[CONFIG_HEADER.size :]) == "jpeg":
        raise CompressedImageError(
            LOSSY_DEPTH, f"depth data coded as JPEG (format {fmt!r}): its distances are lost"
        )
    encoding, codec = _depth_layout(fmt)
    if len(data) <= CONFIG_HEADER.size:
        raise CompressedImageError(
            DECODE_FAILED,
            f"compressedDepth data of {len(data)} bytes: no room for the "
            f"{CONFIG_HEADER.size}-byte header and an image",
        )
    _, quant_a, quant_b = CONFIG_HEADER.unpack_from(data)
    stored = _stored_depth(data[CONFIG_HEADER.size :], codec, max_pixels)
    if encoding == "16UC1":
        return stored, encoding
    if not (np.isfinite(quant_a) and np.isfinite(quant_b)):
        raise CompressedImageError(
            DECODE_FAILED, f"compressedDepth quantisation parameters {quant_a}, {quant_b}"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        metres = np.float32(quant_a) / (stored.astype(np.float32) - np.float32(quant_b))
    metres[stored == 0] = np.nan
    return metres, encoding


def depth_quantization_params(
    depth_max_m: float = DEPTH_MAX_M, depth_quantization: float = DEPTH_QUANTIZATION
) -> tuple[np.float32, np.float32]:
    """The plugin's (A, B) for 32FC1, in float32 as it computes them: A = z0 (z0 + 1),
    B = 1 - A / depth_max."""
    z0, depth_max = np.float32(depth_quantization), np.float32(depth_max_m)
    quant_a = np.float32(z0 * (z0 + np.float32(1.0)))
    return quant_a, np.float32(np.float32(1.0) - quant_a / depth_max)


def _depth_to_store(
    pixels: np.ndarray, encoding: str, depth_max_m: float, depth_quantization: float
) -> tuple[np.ndarray, bytes]:
    """(the (H, W) uint16 image the plugin compresses, its ConfigHeader); see encode_depth."""
    if encoding == "16UC1":
        if pixels.dtype != np.uint16 or pixels.ndim != 2:
            raise ValueError(f"16UC1 needs (H, W) uint16, got {pixels.shape} {pixels.dtype}")
        limit_mm = int(depth_max_m * 1000.0)  # static_cast<unsigned short>(depth_max * 1000)
        stored = np.where(pixels > limit_mm, np.uint16(0), pixels)
        return stored, CONFIG_HEADER.pack(INV_DEPTH, 0.0, 0.0)  # A, B unused (Humble: unset)
    if encoding != "32FC1":
        raise ValueError(
            f"compressedDepth encodes {' or '.join(DEPTH_ENCODINGS)}, got {encoding!r}"
        )
    if pixels.dtype != np.float32 or pixels.ndim != 2:
        raise ValueError(f"32FC1 needs (H, W) float32, got {pixels.shape} {pixels.dtype}")
    quant_a, quant_b = depth_quantization_params(depth_max_m, depth_quantization)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse = quant_a / pixels + quant_b  # float32, as the plugin computes it
        valid = (pixels < np.float32(depth_max_m)) & (pixels > 0)
        stored = np.where(valid, np.minimum(inverse, 65535.0), 0.0).astype(np.uint16)  # truncates
    return stored, CONFIG_HEADER.pack(INV_DEPTH, float(quant_a), float(quant_b))


def encode_depth(
    pixels: np.ndarray,
    encoding: str,
    depth_max_m: float = DEPTH_MAX_M,
    depth_quantization: float = DEPTH_QUANTIZATION,
    png_level: int = PNG_LEVEL,
    name_codec: bool = False,
    codec: str = "png",
) -> tuple[str, bytes]:
    """A depth Image's pixels -> (format, data) as compressed_depth_image_transport publishes them.

    Args:
        pixels: "16UC1": (H, W) uint16 millimetres; values above depth_max_m become 0, as the
            plugin's max-depth filter does. "32FC1": (H, W) float32 metres, quantised as inverse
            depth; NaN and values >= depth_max_m become q = 0 (no measurement). Where the plugin's
            float-to-uint16 conversion is undefined (d <= 0 is written 0 here; depths nearer than
            about A / 65535 m, 0.15 m by default, are written 65535, the nearest it can store).
        depth_max_m, depth_quantization, png_level: the plugin's parameters (its defaults).
        name_codec: False: format "<encoding>; compressedDepth" (Humble); True:
            "<encoding>; compressedDepth png" (Iron and later).
        codec: "png", or "rvl" (Iron and later: "<encoding>; compressedDepth rvl").
    """
    stored, header = _depth_to_store(pixels, encoding, depth_max_m, depth_quantization)
    if codec == "rvl":
        height, width = stored.shape
        return f"{encoding}; {COMPRESSED_DEPTH} rvl", (
            header + RVL_SIZE.pack(width, height) + rvl_encode(stored)
        )
    if codec != "png":
        raise ValueError(f"compressedDepth codec must be png or rvl, got {codec!r}")
    ok, png = cv2.imencode(".png", stored, [cv2.IMWRITE_PNG_COMPRESSION, int(png_level)])
    if not ok:
        raise ValueError(f"OpenCV could not encode a {stored.shape[1]}x{stored.shape[0]} PNG")
    return f"{encoding}; {COMPRESSED_DEPTH}{' png' if name_codec else ''}", header + png.tobytes()


def quantization_error_bound_m(
    depth_m: np.ndarray,
    depth_max_m: float = DEPTH_MAX_M,
    depth_quantization: float = DEPTH_QUANTIZATION,
) -> np.ndarray:
    """The largest error 32FC1 compressedDepth makes at ``depth_m`` (metres, same shape).

    q = floor(A / d + B) lies in (A / d + B - 1, A / d + B], so the decoded A / (q - B) lies in
    [d, d A / (A - d)): too far by less than d^2 / (A - d) (0.0099 m at 10 m with z0 = 100).
    """
    quant_a, _ = depth_quantization_params(depth_max_m, depth_quantization)
    depth_m = np.asarray(depth_m, np.float64)
    return depth_m * depth_m / (float(quant_a) - depth_m)


# RVL (A. D. Wilson, "Fast Lossless Depth Image Compression", 2017), as the plugin codes it:
# per run, the number of zeros and of nonzeros, then each nonzero as the zigzag-coded difference
# from the previous nonzero; every number in 3-bit groups, lowest first, a nibble each with bit 3
# set when more follow; 8 nibbles per 32-bit word, first nibble in the top bits, words stored
# little-endian, the last word padded with zero nibbles. Written here with numpy: no Python
# package reads it.
_NIBBLE_SHIFTS = np.arange(28, -1, -4, dtype=np.uint32)


def _rvl_stream(flat: np.ndarray) -> np.ndarray:
    """(N,) uint16 -> the numbers RVL writes, in order: zeros, nonzeros, deltas..., per run."""
    nonzero = flat != 0
    edges = np.flatnonzero(np.diff(nonzero.astype(np.int8))) + 1
    lengths = np.diff(np.concatenate(([0], edges, [flat.size])))
    if nonzero[0]:  # runs alternate zeros, nonzeros, starting with zeros (maybe none)
        lengths = np.concatenate(([0], lengths))
    if lengths.size % 2:  # ends with zeros: no nonzeros after them
        lengths = np.concatenate((lengths, [0]))
    zeros, nonzeros = lengths[0::2], lengths[1::2]
    values = flat[nonzero].astype(np.int64)
    deltas = np.diff(values, prepend=0)
    zigzag = (deltas << 1) ^ (deltas >> 63)
    stream = np.empty(lengths.size + values.size, np.int64)
    heads = 2 * np.arange(zeros.size) + np.concatenate(([0], np.cumsum(nonzeros)[:-1]))
    stream[heads], stream[heads + 1] = zeros, nonzeros
    is_delta = np.ones(stream.size, bool)
    is_delta[heads], is_delta[heads + 1] = False, False
    stream[is_delta] = zigzag
    return stream


def rvl_encode(image: np.ndarray) -> bytes:
    """(H, W) uint16 -> RVL words (bytes), as the plugin's CompressRVL writes them."""
    if image.dtype != np.uint16 or image.size == 0:
        raise ValueError(f"RVL codes non-empty uint16 images, got {image.shape} {image.dtype}")
    stream = _rvl_stream(image.ravel())
    groups = np.ones(stream.size, np.int64)  # 3-bit groups per number (0 takes one)
    for k in range(1, 22):
        groups += (stream >> (3 * k)) > 0
    owner = np.repeat(np.arange(stream.size), groups)
    index = np.arange(owner.size) - np.repeat(np.cumsum(groups) - groups, groups)
    nibbles = (stream[owner] >> (3 * index)) & 7
    nibbles |= np.where(index < groups[owner] - 1, 8, 0)
    nibbles = np.concatenate((nibbles, np.zeros(-nibbles.size % 8, np.int64)))
    words = (nibbles.reshape(-1, 8).astype(np.uint32) << _NIBBLE_SHIFTS).sum(axis=1)
    return words.astype("<u4").tobytes()


def _rvl_numbers(data: bytes) -> np.ndarray:
    """The numbers of an RVL word stream (trailing padding reads as zeros)."""
    words = np.frombuffer(data[: len(data) // 4 * 4], "<u4")
    nibbles = ((words[:, None] >> _NIBBLE_SHIFTS) & 0xF).ravel().astype(np.int64)
    ends = np.flatnonzero(nibbles < 8)  # a number's last nibble has bit 3 clear
    if ends.size == 0:
        raise CompressedImageError(DECODE_FAILED, "compressedDepth rvl: no complete number")
    starts = np.concatenate(([0], ends[:-1] + 1))
    sizes = ends - starts + 1
    if sizes.max() > 21:  # more than 63 bits: not a number the encoder wrote
        raise CompressedImageError(DECODE_FAILED, "compressedDepth rvl: a number too long")
    index = np.arange(ends[-1] + 1) - np.repeat(starts, sizes)
    return np.add.reduceat((nibbles[: ends[-1] + 1] & 7) << (3 * index), starts)


def rvl_decode(data: bytes, pixels: int) -> np.ndarray:
    """RVL words -> (pixels,) uint16, as the plugin's DecompressRVL reads them; a stream that
    does not describe exactly ``pixels`` pixels raises CompressedImageError (decode_failed)."""
    if pixels > len(data) * 5:  # the plugin's own sanity check: RVL is at best ~4x smaller
        raise CompressedImageError(
            DECODE_FAILED,
            f"compressedDepth rvl: {len(data)} bytes cannot hold {pixels} pixels",
        )
    numbers = _rvl_numbers(data).tolist()
    runs, delta_starts, at, left = [], [], 0, pixels
    while left > 0:  # one step per run of zeros and nonzeros (the format is sequential)
        if at + 1 >= len(numbers):
            raise CompressedImageError(DECODE_FAILED, "compressedDepth rvl: cut short")
        zeros, nonzeros = numbers[at], numbers[at + 1]
        if zeros + nonzeros == 0 or zeros + nonzeros > left or at + 2 + nonzeros > len(numbers):
            raise CompressedImageError(DECODE_FAILED, "compressedDepth rvl: runs do not fit")
        runs += [zeros, nonzeros]
        delta_starts.append(at + 2)
        at, left = at + 2 + nonzeros, left - zeros - nonzeros
    counts = np.array(runs[1::2], np.int64)
    index = np.repeat(np.array(delta_starts) - np.cumsum(counts) + counts, counts)
    zigzag = np.array(numbers, np.int64)[index + np.arange(counts.sum())]
    deltas = (zigzag >> 1) ^ -(zigzag & 1)
    out = np.zeros(pixels, np.uint16)
    is_value = np.repeat(np.tile([False, True], len(runs) // 2), runs)
    out[is_value] = (np.cumsum(deltas) & 0xFFFF).astype(np.uint16)
    return out
