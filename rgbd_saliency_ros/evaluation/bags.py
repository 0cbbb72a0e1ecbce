"""rosbag2 files without a ROS install, through ``rosbags``: images and CameraInfo in, arrays out.

Writing and reading both go through rosbags' own message classes (its ROS 2 Humble or Jazzy
typestore; sensor_msgs/Image and CameraInfo are the same in both), so nothing here needs rclpy.

    with BagWriter("out/seq.bag", storage="mcap") as bag:
        bag.write_image("/camera/color/image_raw", stamp_ns, rgb, "rgb8", "camera_optical")
    for message in read_bag("out/seq.bag", ["/camera/color/image_raw"]):
        rgb = message_rgb(message)          # (H, W, 3) uint8, from an Image or CompressedImage

Reading is strict about damage: a bag that ends early or holds a corrupt record raises
``BagError`` after yielding every message before the damage, so callers keep what they did. An
MCAP file cut short (a recorder killed before it wrote its summary) is read record by record from
the start, as far as it goes (``mcap_files``). CameraInfo comes from ``calibration``'s
``CameraIntrinsics``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.compressed import DEFAULT_MAX_PIXELS, decode_color, decode_depth
from ..runtime.depth import decode_ros_depth
from ..runtime.images import color_rgb, depth_metres, image_fields
from .calibration import CameraIntrinsics
from .mcap_files import McapError, McapScanner, damaged_chunks, fill_chunk_crcs

STORAGES = ("sqlite3", "mcap")
DISTROS = ("humble", "jazzy")
BAG_VERSION = 8  # rosbag2 metadata version written (Jazzy's); rosbags reads 1 to 9

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"  # transports compressed, compressedDepth
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"


class BagError(ValueError):
    """A bag that cannot be read (to its end): missing, not a bag, truncated or corrupt.

    ``messages_read`` counts the messages yielded before the damage was found.
    """

    def __init__(self, message: str, messages_read: int = 0, damaged_chunks: int = 0) -> None:
        super().__init__(message)
        self.messages_read = messages_read
        self.damaged_chunks = damaged_chunks  # MCAP chunks failing their CRC or size check


def typestore(distro: str = "humble"):
    """rosbags' typestore of a ROS 2 distribution ("humble" or "jazzy")."""
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise ValueError(
            f"unknown ROS distribution {distro!r}; expected one of {', '.join(DISTROS)}"
        )
    return get_typestore(stores[distro])


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """Nanoseconds -> (sec, nanosec) of a builtin_interfaces/Time."""
    return stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rosbags' or rclpy's) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def message_rgb(message: BagMessage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A bag's color Image or ``compressed`` CompressedImage -> (H, W, 3) uint8 RGB.

    Raises ImageError (with its ``kind``, as the node counts it)."""
    if message.msgtype == COMPRESSED_TYPE:
        return decode_color(message.msg.format, message.msg.data, max_pixels)
    return color_rgb(message.msg, max_pixels)


def message_depth_m(message: BagMessage, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A bag's REP 118 depth Image or ``compressedDepth`` CompressedImage -> (H, W) float32
    metres, NaN invalid. Raises ImageError (with its ``kind``)."""
    if message.msgtype == COMPRESSED_TYPE:
        return decode_ros_depth(*decode_depth(message.msg.format, message.msg.data, max_pixels))
    return depth_metres(message.msg, max_pixels)


class BagWriter:
    """Writes Image and CameraInfo messages into a new rosbag2 (a folder with metadata.yaml).

    The log time of each message is its header stamp, as if recorded without delay.

    Args:
        path: the bag folder to create; ValueError if it exists.
        storage: "sqlite3" (.db3) or "mcap".
        distro: message definitions stored in the bag: "humble" or "jazzy".
    """

    def __init__(
        self, path: str | os.PathLike, storage: str = "sqlite3", distro: str = "humble"
    ) -> None:
        from rosbags.rosbag2 import StoragePlugin, Writer

        plugins = {"sqlite3": StoragePlugin.SQLITE3, "mcap": StoragePlugin.MCAP}
        if storage not in plugins:
            raise ValueError(f"unknown storage {storage!r}; expected one of {', '.join(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise ValueError(
                f"{self.path} exists: a bag is written into a new folder (remove it or choose "
                "another)"
            )
        self.typestore = typestore(distro)
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugins[storage])
        self._connections: dict[str, Any] = {}
        self._custom: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> BagWriter:
        self._writer.open()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            for key, text in self._custom.items():
                self._writer.set_custom_data(key, text)
        self._writer.close()
        if kind is None:
            for mcap in self.path.glob("*.mcap"):
                fill_chunk_crcs(mcap)

    def set_custom_data(self, key: str, value: str) -> None:
        """A key/value stored in metadata.yaml's custom_data (e.g. the depth convention)."""
        self._custom[key] = value

    def _connection(self, topic: str, msgtype: str):
        if topic not in self._connections:
            self._connections[topic] = self._writer.add_connection(
                topic, msgtype, typestore=self.typestore
            )
            self.counts[topic] = 0
        return self._connections[topic]

    def _header(self, stamp: int, frame_id: str):
        types = self.typestore.types
        sec, nanosec = split_ns(stamp)
        return types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
        )

    def _write(self, topic: str, msgtype: str, stamp: int, msg: Any) -> None:
        self._writer.write(
            self._connection(topic, msgtype), stamp, self.typestore.serialize_cdr(msg, msgtype)
        )
        self.counts[topic] += 1

    def write_image(
        self, topic: str, stamp: int, array: np.ndarray, encoding: str, frame_id: str
    ) -> None:
        """One sensor_msgs/Image stamped ``stamp`` (integer nanoseconds); ``array`` as
        ``runtime.images.image_fields`` takes it."""
        msg = self.typestore.types[IMAGE_TYPE](
            header=self._header(stamp, frame_id), **image_fields(array, encoding)
        )
        self._write(topic, IMAGE_TYPE, stamp, msg)

    def write_compressed(
        self, topic: str, stamp: int, fmt: str, data: bytes, frame_id: str
    ) -> None:
        """One sensor_msgs/CompressedImage (``format``, ``data`` from ``runtime.compressed``'s
        encoders) stamped ``stamp`` (integer nanoseconds)."""
        header = self._header(stamp, frame_id)
        msg = self.typestore.types[COMPRESSED_TYPE](
            header=header, format=fmt, data=np.frombuffer(data, np.uint8)
        )
        self._write(topic, COMPRESSED_TYPE, stamp, msg)

    def write_camera_info(
        self, topic: str, stamp: int, camera: CameraIntrinsics, frame_id: str
    ) -> None:
        """One sensor_msgs/CameraInfo of a camera without rectification (R identity,
        P = [K | 0])."""
        types = self.typestore.types
        k = np.array([camera.fx, 0.0, camera.cx, 0.0, camera.fy, camera.cy, 0.0, 0.0, 1.0])
        p = np.array(
            [camera.fx, 0.0, camera.cx, 0.0, 0.0, camera.fy, camera.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        )
        roi = types["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
        )
        msg = types[CAMERA_INFO_TYPE](
            header=self._header(stamp, frame_id),
            height=camera.height,
            width=camera.width,
            distortion_model=camera.distortion_model,
            d=np.array(camera.d, dtype=np.float64),
            k=k,
            r=np.eye(3).reshape(-1),
            p=p,
            binning_x=0,
            binning_y=0,
            roi=roi,
        )
        self._write(topic, CAMERA_INFO_TYPE, stamp, msg)


@dataclass
class BagMessage:
    """One message read from a bag."""

    topic: str
    msgtype: str  # e.g. "sensor_msgs/msg/Image"
    log_time_ns: int  # when it was recorded (the bag's own timestamp)
    raw: bytes  # CDR-serialised, as stored
    msg: Any  # rosbags' deserialised message


@dataclass(frozen=True)
class BagInfo:
    """What a bag holds: topic -> (message type, message count); counts may be unknown (-1) for
    a damaged MCAP file read without its summary."""

    path: Path
    storage: str
    topics: dict[str, tuple[str, int]]
    duration_ns: int  # from the first message's log time to the last's (0 when unknown)
    salvaged: bool  # True: the normal reader refused the file and it is read record by record


def bag_info(path: str | os.PathLike) -> BagInfo:
    """Topics, types and counts of a bag, without reading its messages. Raises BagError."""
    with _open(Path(path)) as (info, _):
        return info


def read_bag(
    path: str | os.PathLike, topics: Sequence[str] | None = None, distro: str = "humble"
) -> Iterator[BagMessage]:
    """Messages of ``topics`` (all when None) in log-time order, deserialised with rosbags.

    Raises:
        BagError: the bag is missing or unreadable (before the first message), or damaged part
            way (after yielding every message before the damage; ``messages_read`` says how many).
    """
    store = typestore(distro)
    read = 0
    with _open(Path(path)) as (info, source):
        wanted = set(info.topics) if topics is None else set(topics)
        try:
            for topic, msgtype, log_time, raw in source(wanted):
                msg = store.deserialize_cdr(raw, msgtype)
                yield BagMessage(topic, msgtype, log_time, raw, msg)
                read += 1
        except Exception as e:  # rosbags, sqlite3 and CDR decoding each raise their own kinds
            damaged, total = damaged_chunks(path) if info.storage == "mcap" else (0, 0)
            chunks = f"; {damaged} of its {total} MCAP chunks fail their CRC or size check"
            chunks = chunks if damaged else ""
            cause = (
                str(e) if isinstance(e, (BagError, McapError)) else f"({type(e).__name__}: {e})"
            )
            raise BagError(
                f"{path}: damaged after {read} messages: {cause}: "
                f"the bag is truncated or corrupt{chunks}",
                read,
                damaged,
            ) from e


class _open:
    """Context manager: (BagInfo, source(topics) -> iterator of (topic, type, log time, raw))."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader = None
        self._file = None

    def __enter__(self):
        from rosbags.rosbag2 import Reader

        path = self.path
        if not path.exists():
            raise BagError(f"{path}: no such bag")
        if not path.is_dir():
            raise BagError(
                f"{path}: a rosbag2 is a folder (with metadata.yaml and a .db3 or .mcap file)"
            )
        mcaps = sorted(path.glob("*.mcap"))
        metadata = path / "metadata.yaml"
        if not metadata.is_file() and len(mcaps) != 1:
            # rosbags names the folder here; the file is what is missing.
            raise BagError(
                f"{metadata}: missing: a rosbag2 folder needs its metadata.yaml (a "
                f"recording cut short? `ros2 bag reindex {path}` may recreate it)"
            )
        try:
            self._reader = Reader(path)
            self._reader.open()
        except Exception as e:
            self._reader = None
            if len(mcaps) == 1:
                return self._salvage_mcap(mcaps[0], e)
            raise BagError(
                f"{path}: cannot open the bag ({type(e).__name__}: {e}); if it is a recording "
                "that was cut short, `ros2 bag reindex` may recover its metadata"
            ) from e
        reader = self._reader
        storage = "mcap" if any(path.glob("*.mcap")) else "sqlite3"
        topics = {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}

        def source(wanted):
            connections = [c for c in reader.connections if c.topic in wanted]
            for connection, log_time, raw in reader.messages(connections=connections):
                yield connection.topic, connection.msgtype, log_time, raw

        return BagInfo(path, storage, topics, int(reader.duration or 0), False), source

    def _salvage_mcap(self, file: Path, cause: Exception):
        try:
            self._file = file.open("rb")
            scanner = McapScanner(self._file)
            channels = scanner.channels_ahead()
        except (OSError, McapError, struct.error) as e:
            if self._file is not None:
                self._file.close()  # __exit__ does not run when __enter__ raises
            raise BagError(
                f"{self.path}: cannot open the bag ({type(cause).__name__}: {cause}), "
                f"and reading it record by record failed too ({e})"
            ) from e
        if not channels:
            self._file.close()
            raise BagError(
                f"{self.path}: cannot open the bag ({type(cause).__name__}: {cause}); no topic "
                "found in it"
            )
        topics = {topic: (msgtype, -1) for topic, msgtype in channels.values()}

        def source(wanted):
            scanner.rewind()
            yield from scanner.messages(wanted)

        return BagInfo(self.path, "mcap", topics, 0, True), source

    def __exit__(self, *exc) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._file is not None:
            self._file.close()
