"""RGB-D image folders (and ground truth) to a rosbag2 a robot's camera could have recorded.

    rgbd-saliency make-bag --rgb-dir seq/rgb --depth-dir seq/depth --gt-dir seq/gt --out seq_bag
    rgbd-saliency make-bag ... --depth-format tum --depth-encoding 32FC1 --storage mcap \
        --rate 15 --hfov-deg 69

Frames are matched by sorted file name (as ``predict`` does) and stamped ``start + i / rate``;
every message's log time is its stamp. What goes in, on the node's default topics:

- color: sensor_msgs/Image rgb8 on /camera/color/image_raw;
- depth: sensor_msgs/Image on /camera/aligned_depth_to_color/image_raw, REP 118: 16UC1 millimetres
  (0 = no measurement) or 32FC1 metres (NaN = no measurement). From metric files (``mm16``,
  ``tum``, ``sun``, ``nyu``) the values are the real distances. From the data sets' 8-bit
  relative depth (``relative8``, near = dark) there is no distance to recover: value v / 255 is
  written as the pseudo-distance ``min + v / 255 * (max - min)`` metres (``--relative-range-m``,
  by default the runtime's depth clip range, 0.1 to 10 m), which the runtime's default
  conversion (per-frame or fixed over that range) turns back into v / 255; the bag's
  metadata.yaml says so under custom_data;
- ground truth (``--gt-dir``): mono8 0/255 on /ground_truth/mask, stamped as its color frame;
- CameraInfo (``--camera-info calib.yaml`` or ``--hfov-deg``) on /camera/color/camera_info.

``--compressed jpeg|png``: color and depth as a camera's image_transport would record them, as
sensor_msgs/CompressedImage on ``<color topic>/compressed`` (JPEG at ``--jpeg-quality`` or PNG)
and ``<depth topic>/compressedDepth`` (compressed_depth_image_transport's PNG: 16UC1 lossless up to
``--depth-max-m``, 32FC1 quantised as inverse depth); the node reads them with
``color_transport:=compressed depth_transport:=compressedDepth``.

Color, depth, ground truth and CameraInfo of one frame share one header (stamp and frame id).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..runtime import compressed
from .metrics import binarize
from ..runtime.compressed import COLOR_CODECS, DEPTH_MAX_M, JPEG_QUALITY
from ..runtime.depth import (
    SUPPORTED_DEPTH_ENCODINGS,
    DepthConversion,
    decode_ros_depth,
    encode_ros_depth,
    read_depth_png,
    read_nyu_depth,
    read_sun_depth,
    read_tum_depth,
)
from ..runtime.sequence import image_files, list_frames, read_rgb
from .bags import BagWriter
from .calibration import CameraIntrinsics

DEPTH_FORMATS = ("relative8", "mm16", "tum", "sun", "nyu")
DEFAULT_START_S = 1_700_000_000.0  # a fixed start, so the same folders always give the same bag


@dataclass(frozen=True)
class BagTopics:
    """Topic names; the defaults are the node's (one camera named "camera")."""

    color: str = "/camera/color/image_raw"
    depth: str = "/camera/aligned_depth_to_color/image_raw"
    camera_info: str = "/camera/color/camera_info"
    gt: str = "/ground_truth/mask"


@dataclass(frozen=True)
class MakeBagOptions:
    """How folders become messages; see the module docstring."""

    depth_format: str = "relative8"  # one of DEPTH_FORMATS
    depth_encoding: str = "16UC1"  # one of SUPPORTED_DEPTH_ENCODINGS (REP 118)
    relative_range_m: tuple[float, float] = (
        DepthConversion().min_depth_m,
        DepthConversion().max_depth_m,
    )
    # the relative files' orientation (flipped to near = small)
    relative_near_is_bright: bool = False
    rate_hz: float = 30.0
    start_s: float = DEFAULT_START_S  # stamp of the first frame, seconds since the epoch
    frame_id: str = "camera_color_optical_frame"
    storage: str = "sqlite3"
    distro: str = "humble"
    topics: BagTopics = field(default_factory=BagTopics)
    compressed: str | None = None  # None: raw Images; "jpeg" or "png": compressed topics (color)
    jpeg_quality: int = JPEG_QUALITY  # compressed color, 1..100
    depth_max_m: float = DEPTH_MAX_M  # compressedDepth's depth_max: farther is no measurement

    def __post_init__(self) -> None:
        if self.depth_format not in DEPTH_FORMATS:
            raise ValueError(
                f"depth format {self.depth_format!r} is not one of {', '.join(DEPTH_FORMATS)}"
            )
        if self.depth_encoding not in SUPPORTED_DEPTH_ENCODINGS:
            raise ValueError(
                f"depth encoding {self.depth_encoding!r} is not one of "
                f"{', '.join(SUPPORTED_DEPTH_ENCODINGS)}"
            )
        low, high = self.relative_range_m
        if (
            not 0.0 < low < high <= 65.535
        ):  # 16UC1 holds at most 65.535 m, and 0 means no measurement
            raise ValueError(
                f"relative depth range must satisfy 0 < min < max <= 65.535 m, got {low}..{high}"
            )
        if not self.rate_hz > 0:
            raise ValueError(f"rate must be positive, got {self.rate_hz} Hz")
        if self.compressed not in (None, *COLOR_CODECS):
            raise ValueError(
                f"compressed color codec {self.compressed!r} is not one of "
                f"{', '.join(COLOR_CODECS)}"
            )


@dataclass
class MadeBag:
    """What ``make_bag`` wrote."""

    path: Path
    frames: int
    counts: dict[str, int]  # messages per topic
    depth_note: str  # how depth was encoded (also in the bag's custom_data)


def read_depth_m(path: Path, options: MakeBagOptions) -> np.ndarray:
    """A depth file -> (H, W) float32 metres (NaN = no measurement); pseudo-metres for
    relative8."""
    fmt = options.depth_format
    if fmt == "tum":
        return read_tum_depth(path)
    if fmt == "sun":
        return read_sun_depth(path)
    if fmt == "nyu":
        return read_nyu_depth(path)
    stored = read_depth_png(path)
    if fmt == "mm16":
        if stored.dtype != np.uint16:
            raise ValueError(f"{path}: mm16 depth must be a 16-bit image, got {stored.dtype}")
        return decode_ros_depth(stored, "16UC1")  # millimetres, 0 = no measurement
    if stored.dtype != np.uint8:
        raise ValueError(
            f"{path}: relative8 depth must be an 8-bit image, got {stored.dtype} "
            "(metric? try --depth-format mm16)"
        )
    relative = stored.astype(np.float32) / np.float32(255.0)
    if options.relative_near_is_bright:
        relative = 1.0 - relative
    low, high = options.relative_range_m
    return (np.float32(low) + relative * np.float32(high - low)).astype(np.float32)


def depth_note(options: MakeBagOptions) -> str:
    """One line on what the bag's depth values mean (stored in its custom_data)."""
    unit = (
        "millimetres, 0 = no measurement"
        if options.depth_encoding == "16UC1"
        else "metres, NaN = no measurement"
    )
    if options.compressed is not None:
        lossless = "lossless" if options.depth_encoding == "16UC1" else "inverse depth, quantised"
        unit += f"; compressedDepth PNG ({lossless}, none beyond {options.depth_max_m:g} m)"
    if options.depth_format != "relative8":
        return f"{options.depth_encoding} {unit}; metric depth from {options.depth_format} files"
    low, high = options.relative_range_m
    orientation = "near = bright" if options.relative_near_is_bright else "near = dark"
    return (
        f"{options.depth_encoding} {unit}; PSEUDO-metric: 8-bit relative depth v "
        f"({orientation}) written as {low:g} + v / 255 * {high - low:g} m (nearest = "
        f"{low:g} m), not real distances"
    )


def _write_frame(
    bag: BagWriter, options: MakeBagOptions, stamp: int, rgb: np.ndarray, depth: np.ndarray
) -> None:
    """One frame's color and depth: raw Images, or CompressedImages on the transports' topics."""
    topics, frame_id, encoding = options.topics, options.frame_id, options.depth_encoding
    if options.compressed is None:
        bag.write_image(topics.color, stamp, rgb, "rgb8", frame_id)
        bag.write_image(topics.depth, stamp, depth, encoding, frame_id)
        return
    color = compressed.encode_color(rgb, options.compressed, quality=options.jpeg_quality)
    color_topic = compressed.transport_topic(topics.color, compressed.COMPRESSED)
    bag.write_compressed(color_topic, stamp, *color, frame_id)
    depth_msg = compressed.encode_depth(depth, encoding, depth_max_m=options.depth_max_m)
    depth_topic = compressed.transport_topic(topics.depth, compressed.COMPRESSED_DEPTH)
    bag.write_compressed(depth_topic, stamp, *depth_msg, frame_id)


def read_gt(path: Path) -> np.ndarray:
    """A ground-truth image -> (H, W) uint8 0/255 (foreground where the grey value is above
    128, ``metrics.binarize``)."""
    grey = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise ValueError(f"{path}: not a readable image")
    return binarize(grey)


def make_bag(
    rgb_dir: str | os.PathLike,
    depth_dir: str | os.PathLike,
    out: str | os.PathLike,
    gt_dir: str | os.PathLike | None = None,
    options: MakeBagOptions | None = None,
    camera: CameraIntrinsics | None = None,
    hfov_deg: float | None = None,
    progress: bool = True,
) -> MadeBag:
    """Writes the bag ``out`` (a new folder) from the folders; see the module docstring.

    Args:
        camera: CameraInfo to publish with every frame; ``hfov_deg`` makes one from the first
            frame's size instead. Neither: no CameraInfo.

    Raises:
        ValueError: ``out`` exists, folders whose counts differ, unreadable files, depth of the
            wrong kind.
    """
    options = options or MakeBagOptions()
    frames = list_frames(rgb_dir, depth_dir)
    gts = image_files(gt_dir) if gt_dir is not None else None
    if gts is not None and len(gts) != len(frames):
        raise ValueError(f"{gt_dir} has {len(gts)} images but {rgb_dir} has {len(frames)}")
    topics, note = options.topics, depth_note(options)
    period_ns = 1e9 / options.rate_hz
    start_ns = int(round(options.start_s * 1e9))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with BagWriter(out, options.storage, options.distro) as bag:
        bag.set_custom_data("rgbd_saliency.depth", note)
        for i, (rgb_path, depth_path) in enumerate(
            tqdm(frames, desc="make-bag", unit="frame", disable=not progress)
        ):
            stamp = start_ns + int(round(i * period_ns))
            rgb = read_rgb(rgb_path)
            depth_m = read_depth_m(depth_path, options)
            if depth_m.shape != rgb.shape[:2]:
                # Aligned depth has the color frame's pixels; nearest keeps holes as holes.
                depth_m = cv2.resize(
                    depth_m, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_NEAREST
                )
            _write_frame(
                bag, options, stamp, rgb, encode_ros_depth(depth_m, options.depth_encoding)
            )
            if gts is not None:
                gt = read_gt(gts[i])
                if gt.shape != rgb.shape[:2]:
                    raise ValueError(
                        f"{gts[i]} is {gt.shape[1]}x{gt.shape[0]}, its color frame "
                        f"{rgb.shape[1]}x{rgb.shape[0]}"
                    )
                bag.write_image(topics.gt, stamp, gt, "mono8", options.frame_id)
            if camera is None and hfov_deg is not None:
                camera = CameraIntrinsics.from_hfov(rgb.shape[1], rgb.shape[0], hfov_deg)
            if camera is not None:
                bag.write_camera_info(topics.camera_info, stamp, camera, options.frame_id)
        counts = dict(bag.counts)
    return MadeBag(Path(out), len(frames), counts, note)
