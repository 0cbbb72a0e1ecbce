"""What the input messages cannot say about themselves: one-sided input, publishers of the wrong
type on an input topic, messages lost before the node, frames too large for the transport.

The node asks these once per diagnostics period and warns (throttled) for each finding:

    publishers = node.get_publishers_info_by_topic
    for stream, kind, text, count in input_findings(snapshots, topics, publishers):
        node._warn(stream, kind, text)
    transport_limit_note(max_image_pixels, os.environ)   # once, at start-up

Losses before the node: DDS reports messages it knows it lost (``message_lost`` QoS events,
rclpy's ``SubscriptionEventCallbacks``, in Humble): a best-effort image lost in fragments, for
instance. A flood that overruns the subscription's history (keep-last) is not reported by DDS, and
Humble's rclpy does not hand the sequence numbers of a message's info to Python callbacks, so that
part shows only as ``color_in_hz`` below the camera's rate and in ``dropped_in_burst``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterable, Mapping

from .conversions import ImageError, check_camera_info

IMAGE_TYPE = "sensor_msgs/msg/Image"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"

# Findings (warning kinds; the counters of the last two are kept by the node's StreamStats)
ONE_SIDED = "one_sided_input"  # color without depth for a rate window, or the reverse
WRONG_TYPE = "wrong_type_publishers"  # publishers of another message type on an input topic
LOST_BEFORE_NODE = "lost_before_node"  # messages DDS reports lost on the way to the node

FASTDDS_DEFAULT_SEGMENT_BYTES = 512 * 1024  # Fast DDS's shared-memory segment without a profile
BYTES_PER_PIXEL_MAX = 4  # the widest input encodings: rgba8, bgra8, 32FC1


def one_sided(snapshot: Mapping[str, float]) -> str | None:
    """``"color"`` when color frames arrive and depth frames do not (over the rate window),
    ``"depth"`` for the reverse, else None. ``snapshot``: ``StreamStats.snapshot()``."""
    color, depth = snapshot["color_in_hz"] > 0, snapshot["depth_in_hz"] > 0
    if color != depth:
        return "color" if color else "depth"
    return None


def wrong_type_publishers(endpoints: Iterable, expected: str) -> list[str]:
    """The publishers in ``endpoints`` (rclpy TopicEndpointInfo, from
    ``Node.get_publishers_info_by_topic``) whose message type is not ``expected``, as
    ``"<node> (<type>)"``."""
    return [
        f"{e.node_namespace.rstrip('/')}/{e.node_name} ({e.topic_type})"
        for e in endpoints
        if e.topic_type != expected
    ]


def input_findings(
    snapshots: Mapping[str, Mapping[str, float]],
    topics: Mapping[str, Mapping[str, str]],
    publishers: Callable[[str], Iterable],
    color_only: bool = False,
) -> list[tuple[str, str, str, int]]:
    """(stream, kind, warning text, count) for each stream with one-sided input or a topic with
    publishers of another type (count: how many such publishers; 1 for one-sided input).

    Args:
        snapshots: stream -> ``StreamStats.snapshot()``.
        topics: stream -> {fully resolved input topic: expected message type}.
        publishers: ``Node.get_publishers_info_by_topic``.
        color_only: the streams take no depth (depth_source estimated): color alone is right.
    """
    found = []
    for stream, snapshot in snapshots.items():
        side = None if color_only else one_sided(snapshot)
        if side is not None:
            other = "depth" if side == "color" else "color"
            text = (
                f"{side} frames arrive but no {other} frames: nothing can pair (is the "
                f"{other} topic remapped right?)"
            )
            found.append((stream, ONE_SIDED, text, 1))
        for topic, expected in topics.get(stream, {}).items():
            wrong = wrong_type_publishers(publishers(topic), expected)
            if wrong:
                text = (
                    f"{topic}: publisher(s) of another type, never received: "
                    f"{', '.join(wrong)}; {expected} expected"
                )
                found.append((stream, WRONG_TYPE, text, len(wrong)))
    return found


def shm_segment_bytes(environ: Mapping[str, str]) -> int | None:
    """The shared-memory segment size of Fast DDS as this process is configured: the SHM
    transport's ``segment_size`` in the profile of ``FASTDDS_DEFAULT_PROFILES_FILE``, Fast DDS's
    default without one, None when another middleware is used or the profile has no SHM transport
    (the XML is read here: nothing else exposes the setting to Python)."""
    if environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") != "rmw_fastrtps_cpp":
        return None
    profile = environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    if not profile:
        return FASTDDS_DEFAULT_SEGMENT_BYTES
    try:
        root = ElementTree.parse(profile).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    for descriptor in root.iter():
        if descriptor.tag.endswith("transport_descriptor"):
            kind = next((c.text for c in descriptor if c.tag.endswith("type")), None)
            size = next((c.text for c in descriptor if c.tag.endswith("segment_size")), None)
            if kind == "SHM":
                return int(size) if size else FASTDDS_DEFAULT_SEGMENT_BYTES
    return None


def transport_limit_note(
    max_image_pixels: int, environ: Mapping[str, str] = os.environ
) -> str | None:
    """A start-up warning when frames the node accepts (``max_image_pixels``) are larger than the
    shared-memory segment of Fast DDS as configured: such frames go over UDP in fragments, where
    best effort loses them (README, "QoS"). None when they fit or it cannot tell."""
    segment = shm_segment_bytes(environ)
    largest = max_image_pixels * BYTES_PER_PIXEL_MAX
    if segment is None or largest <= segment // 2:  # two messages (a pair) must fit at once
        return None
    return (
        f"frames up to {max_image_pixels} pixels are accepted ({largest / 2**20:.1f} MiB at 4 "
        f"bytes per pixel), but Fast DDS's shared-memory segment is {segment / 2**20:.1f} "
        "MiB: "
        "larger frames go over UDP in fragments and best effort loses them (counted as "
        f"{LOST_BEFORE_NODE}); see README, QoS, for config/fastdds_large_images.xml"
    )


class CameraInfoGate:
    """The latest CameraInfo of a stream, checked once against each image size it is used with
    (``check_camera_info``), so that a bad one is counted once, never used nor republished.

        gate.offer(info_msg)                               # executor thread
        info, error = gate.for_image(width, height)        # worker thread, per published frame
    """

    def __init__(self) -> None:
        self._latest = None
        self._verdict: tuple[object, tuple[int, int], ImageError | None] | None = None

    def offer(self, info) -> None:
        """A new CameraInfo message (replaces the previous one)."""
        self._latest = info

    @property
    def latest(self):
        """The latest CameraInfo as received (unchecked), or None."""
        return self._latest

    def for_image(self, width: int, height: int) -> tuple[object | None, ImageError | None]:
        """(the CameraInfo, None) when it describes a ``width`` x ``height`` image; (None, the
        error) the first time one does not, (None, None) after that or when there is none."""
        info = self._latest
        if info is None:
            return None, None
        verdict = self._verdict
        if verdict is not None and verdict[0] is info and verdict[1] == (width, height):
            return (info, None) if verdict[2] is None else (None, None)
        try:
            check_camera_info(info, width, height)
            error = None
        except ImageError as e:
            error = e
        self._verdict = (info, (width, height), error)
        return (info, None) if error is None else (None, error)
