"""The hostile-input probe: every class of bad input to the real node over real rclpy and DDS.

    .venv/bin/python -m pytest -q test/test_ros_probe.py

A publisher in another process (this file run as a script) sends what a broken driver, a careless
user or a flood would: malformed images of every kind, impossible stamps, a lone stray stamp,
CameraInfo that does not describe its image, a publisher of another message type on the color
topic, a burst of pairs faster than the model. After each class the node must have counted it under
its own key and still answer a valid pair with a mask (random weights at input 64, TUM RGB-D's
640x480 frame, the node's default stamp bounds against its clock).
"""

import array
import json
import sys
import time

import numpy as np
import pytest
import test_ros_node
import conftest
from conftest import wait_for

from rgbd_saliency_ros.evaluation.node_process import private_ros_env

DEADLINE_S = 60.0  # the publisher's wait for the node's subscriptions
INFO_REPAIR_S = 20.0  # several heartbeat periods of a reliable writer (3 s each)
COLOR, DEPTH = "camera/color/image_raw", "camera/aligned_depth_to_color/image_raw"
INFO = "camera/color/camera_info"


# The publisher process ---------------------------------------------------------------------------


def _frames():
    """name -> (array, encoding): the TUM pair and the depth variants the classes need."""
    import cv2

    rgb, mm, metres = conftest.tum_rgbd()
    return {
        "color": (rgb, "rgb8"),
        "depth": (mm, "16UC1"),
        "color_small": (cv2.resize(rgb, (320, 240)), "rgb8"),
        "depth_small": (cv2.resize(mm, (320, 240), interpolation=cv2.INTER_NEAREST), "16UC1"),
        "depth_zero": (np.zeros_like(mm), "16UC1"),
        "depth_nan": (np.full(mm.shape, np.nan, np.float32), "32FC1"),
        "depth_inf": (np.full(mm.shape, np.inf, np.float32), "32FC1"),
        "depth_negative": (np.full(mm.shape, -1.5, np.float32), "32FC1"),
    }


def publisher_main() -> None:
    """Reads JSON commands from stdin, publishes, answers "ok" on stdout. A command:

    {"topic": T, "frame": name | "info", "stamp": [sec, nanosec], "fields": {field: value},
     "data": {"keep": n bytes}, "flood": n pairs (stamps 1/30 s apart from "stamp")}
    {"wrong_type": true | false}: a std_msgs/String publisher on the color topic, from a second
    participant of this process (a participant cannot hold one topic with two types).
    """
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy._rclpy_pybind11 import RCLError
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header, String

    from rgbd_saliency_ros.ros.conversions import image_message

    frames = _frames()
    rclpy.init()
    node = rclpy.create_node("probe_camera")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    publishers = {
        topic: node.create_publisher(kind, topic, qos)
        for topic, kind in ((COLOR, Image), (DEPTH, Image), (INFO, CameraInfo))
    }
    deadline = time.monotonic() + DEADLINE_S
    matched = lambda: all(p.get_subscription_count() for p in publishers.values())  # noqa: E731
    while time.monotonic() < deadline and not matched():
        time.sleep(0.05)
    time.sleep(0.5)  # the subscriber's side of the match may lag ours
    other = None
    for line in sys.stdin:
        command = json.loads(line)
        if "wrong_type" in command:
            if command["wrong_type"] and other is None:
                context = rclpy.Context()
                rclpy.init(context=context)
                other = (context, rclpy.create_node("wrong_type_camera", context=context))
                other[1].create_publisher(String, "/" + COLOR, 10)
            elif not command["wrong_type"] and other is not None:
                other[1].destroy_node()
                rclpy.shutdown(context=other[0])
                other = None
            print("ok", flush=True)
            continue
        sec, nanosec = command["stamp"]
        for i in range(command.get("flood", 1)):
            header = Header(frame_id="tum_camera")
            total = sec * 10**9 + nanosec + i * 33_333_333 if "flood" in command else None
            stamp = divmod(total, 10**9) if total else (sec, nanosec)
            header.stamp.sec, header.stamp.nanosec = stamp
            topics = [COLOR, DEPTH] if "flood" in command else [command["topic"]]
            for topic in topics:
                frame = command.get("frame", "color" if topic == COLOR else "depth")
                msg = _message(frames, frame, header, command, CameraInfo, image_message)
                try:
                    publishers[topic].publish(msg)
                except RCLError:
                    # A flood can fill the reliable writer's history past Fast DDS's blocking
                    # time (seen once under load): that pair never reaches the node, which the
                    # test counts as not received (pairs - taken). Anything else still fails.
                    if "flood" not in command:
                        raise
        print("ok", flush=True)
    node.destroy_node()
    rclpy.shutdown()


def _message(frames, frame, header, command, camera_info_type, image_message):
    if frame == "info":
        msg = camera_info_type(header=header, width=640, height=480, distortion_model="plumb_bob")
        msg.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
        msg.d = [0.0] * 5
    else:
        msg = image_message(*frames[frame], header)
        if "data" in command:
            msg.data = array.array("B", bytes(msg.data)[: command["data"]["keep"]])
    for field, value in command.get("fields", {}).items():
        setattr(msg, field, value)
    return msg


class Camera(test_ros_node.Camera):
    """Test-side handle of this file's publisher process (started and closed as
    test_ros_node's is)."""

    SCRIPT = __file__

    def command(self, **command) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        assert answer == "ok", f"publisher: {answer!r} (exit status {self.process.poll()})"

    def send(self, topic: str, stamp: tuple[int, int], frame: str | None = None, **extra) -> None:
        if frame:
            extra["frame"] = frame
        self.command(topic=topic, stamp=list(stamp), **extra)


# The classes -------------------------------------------------------------------------------------

BIG = 2**32 - 1  # the largest uint32 a field can hold
UNSUPPORTED = "unsupported_encoding"

# (class name, counter that must grow, what to send: color / depth / info overrides)
IMAGE_CLASSES = [
    ("color encoding bgr16", UNSUPPORTED, {"color": {"fields": {"encoding": "bgr16"}}}),
    ("color encoding of depth", UNSUPPORTED, {"color": {"fields": {"encoding": "16UC1"}}}),
    ("color encoding empty", UNSUPPORTED, {"color": {"fields": {"encoding": ""}}}),
    ("color encoding 100 kB", UNSUPPORTED, {"color": {"fields": {"encoding": "rgb8" * 25_000}}}),
    ("color encoding yuv422", UNSUPPORTED, {"color": {"fields": {"encoding": "yuv422"}}}),
    ("color encoding 8UC3", UNSUPPORTED, {"color": {"fields": {"encoding": "8UC3"}}}),
    ("depth encoding rgb8", UNSUPPORTED, {"depth": {"fields": {"encoding": "rgb8"}}}),
    ("depth encoding mono16", UNSUPPORTED, {"depth": {"fields": {"encoding": "mono16"}}}),
    ("depth encoding 16SC1", UNSUPPORTED, {"depth": {"fields": {"encoding": "16SC1"}}}),
    ("depth encoding 64FC1", UNSUPPORTED, {"depth": {"fields": {"encoding": "64FC1"}}}),
    ("color width 0", "empty_image", {"color": {"fields": {"width": 0, "step": 0}}}),
    ("color height 0", "empty_image", {"color": {"fields": {"height": 0}}}),
    ("depth width 0", "empty_image", {"depth": {"fields": {"width": 0, "step": 0}}}),
    ("depth height 0", "empty_image", {"depth": {"fields": {"height": 0}}}),
    ("color one row more than allowed", "too_large", {"color": {"fields": {"height": 481}}}),
    ("color width 2^32-1", "too_large", {"color": {"fields": {"width": BIG}}}),
    ("depth height 2^32-1", "too_large", {"depth": {"fields": {"height": BIG}}}),
    ("color 65536 x 65536", "too_large", {"color": {"fields": {"width": 65536, "height": 65536}}}),
    ("color step 100", "step_too_small", {"color": {"fields": {"step": 100}}}),
    ("color step 0", "step_too_small", {"color": {"fields": {"step": 0}}}),
    ("color step one byte short", "step_too_small", {"color": {"fields": {"step": 640 * 3 - 1}}}),
    ("color rgba8 with rgb8 rows", "step_too_small", {"color": {"fields": {"encoding": "rgba8"}}}),
    ("depth step 1", "step_too_small", {"depth": {"fields": {"step": 1}}}),
    (
        "depth 32FC1 label, 16-bit rows",
        "step_too_small",
        {"depth": {"fields": {"encoding": "32FC1"}}},
    ),
    ("color step 2^32-1", "truncated_data", {"color": {"fields": {"step": BIG}}}),
    ("color data cut to 1000 bytes", "truncated_data", {"color": {"data": {"keep": 1000}}}),
    ("color data empty", "truncated_data", {"color": {"data": {"keep": 0}}}),
    ("color data one byte short", "truncated_data", {"color": {"data": {"keep": 921_599}}}),
    ("color padded step, no padding", "truncated_data", {"color": {"fields": {"step": 1984}}}),
    ("depth data one byte short", "truncated_data", {"depth": {"data": {"keep": 614_399}}}),
    ("depth data empty", "truncated_data", {"depth": {"data": {"keep": 0}}}),
    ("depth data half", "truncated_data", {"depth": {"data": {"keep": 640 * 480}}}),
    ("depth data cut to 1 byte", "truncated_data", {"depth": {"data": {"keep": 1}}}),
    ("depth smaller than color", "size_mismatch", {"depth": {"frame": "depth_small"}}),
    ("color smaller than depth", "size_mismatch", {"color": {"frame": "color_small"}}),
    ("depth one row less", "size_mismatch", {"depth": {"fields": {"height": 479}}}),
    ("color one column less", "size_mismatch", {"color": {"fields": {"width": 639}}}),
    ("depth 16UC1 all zero", "invalid_depth", {"depth": {"frame": "depth_zero"}}),
    ("depth 32FC1 all NaN", "invalid_depth", {"depth": {"frame": "depth_nan"}}),
    ("depth 32FC1 all inf", "invalid_depth", {"depth": {"frame": "depth_inf"}}),
    ("depth 32FC1 all negative", "invalid_depth", {"depth": {"frame": "depth_negative"}}),
    (
        "depth big-endian zeros",
        "invalid_depth",
        {"depth": {"frame": "depth_zero", "fields": {"is_bigendian": 1}}},
    ),
]

# (class name, counter, stamp (sec, nanosec) given the node clock's whole seconds)
STAMP_CLASSES = [
    ("stamp zero", "stamp_zero", lambda now: (0, 0)),
    ("stamp negative", "stamp_negative", lambda now: (-5, 0)),
    ("stamp nanosec 1e9", "stamp_nanosec", lambda now: (now, 1_000_000_000)),
    ("stamp nanosec 2^32-1", "stamp_nanosec", lambda now: (now, BIG)),
    ("stamp 2038", "stamp_future", lambda now: (2**31 - 1, 0)),
    ("stamp a minute ahead", "stamp_future", lambda now: (now + 60, 0)),
    ("stamp seconds since boot", "stamp_past", lambda now: (1000, 0)),
    ("stamp two days old", "stamp_past", lambda now: (now - 2 * 86400, 0)),
]

CAMERA_INFO_CLASSES = [
    ("camera info 99999x3", "camera_info_size", {"width": 99999, "height": 3}),
    ("camera info NaN K", "camera_info_matrix", {"k": [float("nan")] * 9}),
    ("camera info inf P", "camera_info_matrix", {"p": [float("inf")] * 12}),
    ("camera info model 100 kB", "camera_info_model", {"distortion_model": "x" * 100_000}),
    ("camera info 2 coefficients for plumb_bob", "camera_info_distortion", {"d": [0.1, 0.2]}),
]

# The classes with a test of their own below: (class name, counter).
OTHER_CLASSES = [
    ("stray color stamp", "stray_stamp"),
    ("stray depth stamp", "stray_stamp"),
    ("publisher of std_msgs/String on the color topic", "wrong_type_publishers"),
    ("flood of pairs", "dropped"),
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory, random_weights_64):
    conftest.find_shared("data", "rgbd_encodings")
    import rclpy
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image

    from rgbd_saliency_ros.ros.node import SaliencyNode

    domain = conftest.private_domain(150)
    env = private_ros_env(domain)
    with conftest.private_ros_context(domain) as context:
        node = SaliencyNode(
            context=context,
            parameter_overrides=conftest.node_parameters(
                *random_weights_64,
                max_image_pixels=640 * 480,
                diagnostics_period_s=0.25,
                max_stamp_behind_s=86400.0,
            ),
        )  # off by default; the "past" classes need it
        node.start()
        listener = rclpy.create_node("probe_listener", context=context)
        masks, infos = {}, {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic, kind, store in (
            ("/saliency/mask", Image, masks),
            ("/saliency/camera_info", CameraInfo, infos),
        ):

            def keep(msg, store=store):  # keyed by the exact stamp: a float key can round apart
                store[(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

            listener.create_subscription(kind, topic, keep, qos)
        executor = MultiThreadedExecutor(num_threads=3, context=context)
        with conftest.spinning(context, node, listener, executor=executor):
            camera = Camera(env)
            rig = {
                "node": node,
                "camera": camera,
                "masks": masks,
                "infos": infos,
                "t": int(time.time()) * 10**9,
            }
            try:
                _valid_pair(rig)  # each class starts after a mask came back
                yield rig
            finally:
                camera.close()


def _next_stamp(rig) -> tuple[int, int]:
    # near the node's clock, never ahead of it
    rig["t"] = max(rig["t"] + 33_333_333, time.time_ns() - 5 * 10**9)
    return divmod(rig["t"], 10**9)


def _valid_pair(rig) -> None:
    """A good pair; returns once its mask came back and was counted (the node still answers)."""
    stamp = _next_stamp(rig)
    published = rig["node"].counters("camera")["published"]
    rig["camera"].send(COLOR, stamp)
    rig["camera"].send(DEPTH, stamp)
    wait_for(lambda: stamp in rig["masks"], f"the mask at {stamp}")
    wait_for(lambda: rig["node"].counters("camera")["published"] > published, "published")


def _grows(rig, key: str, before: dict) -> None:
    counter = f"bad_input.{key}"
    wait_for(lambda: rig["node"].counters("camera")[counter] > before[counter], key)


@pytest.mark.parametrize("name, key, sends", IMAGE_CLASSES, ids=[c[0] for c in IMAGE_CLASSES])
def test_image_classes(rig, name, key, sends):
    before = rig["node"].counters("camera")
    stamp = _next_stamp(rig)
    rig["camera"].send(COLOR, stamp, **sends.get("color", {}))
    rig["camera"].send(DEPTH, stamp, **sends.get("depth", {}))
    _grows(rig, key, before)
    _valid_pair(rig)
    assert stamp not in rig["masks"]  # one writer, in order: it would have come before


@pytest.mark.parametrize("name, key, make", STAMP_CLASSES, ids=[c[0] for c in STAMP_CLASSES])
def test_stamp_classes(rig, name, key, make):
    before = rig["node"].counters("camera")
    stamp = make(int(time.time()))
    rig["camera"].send(COLOR, stamp)
    rig["camera"].send(DEPTH, stamp)
    _grows(rig, key, before)
    _valid_pair(rig)
    after = rig["node"].counters("camera")
    assert after["bad_input.stray_stamp"] == before["bad_input.stray_stamp"]
    assert after["clock_jumps"] == before["clock_jumps"]
    assert after["reset.backward_jump"] == before["reset.backward_jump"]


@pytest.mark.parametrize("kind", ["color", "depth"])
def test_a_lone_stray_stamp_is_dropped_without_a_reset(rig, kind):
    _valid_pair(rig)
    before = rig["node"].counters("camera")
    sec, nanosec = _next_stamp(rig)
    topic = COLOR if kind == "color" else DEPTH
    rig["camera"].send(topic, (sec - 50, nanosec))  # one message, 50 s back
    _valid_pair(rig)
    _valid_pair(rig)
    after = rig["node"].counters("camera")
    assert after["bad_input.stray_stamp"] == before["bad_input.stray_stamp"] + 1
    for name in ("clock_jumps", "reset.backward_jump"):
        assert after[name] == before[name], name


def _pairs_until(rig, done, what: str) -> tuple[int, int]:
    """Valid pairs until ``done()`` holds after one; returns that pair's stamp.

    Pairs go on for a while, not for a count: a CameraInfo is one message of its writer, and
    when its datagram (or a fragment of a large one) is lost the reliable writer repairs it at
    its next heartbeat, up to 3 s later (Fast DDS's default period), while the pairs on the
    other topics go on being answered.
    """
    deadline = time.monotonic() + INFO_REPAIR_S
    while time.monotonic() < deadline:
        _valid_pair(rig)
        if done():
            return divmod(rig["t"], 10**9)
    raise AssertionError(f"no pair within {INFO_REPAIR_S} s after which {what}")


@pytest.mark.parametrize(
    "name, key, fields", CAMERA_INFO_CLASSES, ids=[c[0] for c in CAMERA_INFO_CLASSES]
)
def test_camera_info_classes(rig, name, key, fields):
    before = rig["node"].counters("camera")
    rig["camera"].send(INFO, _next_stamp(rig), frame="info", fields=fields)
    counter = f"bad_input.{key}"
    node = rig["node"]
    # counted before that pair's "published": no race with the listener
    counted = _pairs_until(
        rig, lambda: node.counters("camera")[counter] > before[counter], f"{key} was counted"
    )
    good = _next_stamp(rig)
    rig["camera"].send(INFO, good, frame="info")  # a good one is used again
    # the republished info may reach the listener after its pair's mask: any later one will do
    _pairs_until(
        rig, lambda: any(stamp > good for stamp in rig["infos"]), "a good CameraInfo came back"
    )
    # the output info has one writer, so every info published before the good one is here now
    republished = [stamp for stamp in rig["infos"] if counted <= stamp < good]
    assert not republished, f"a bad CameraInfo was republished at {republished}"


def test_a_publisher_of_another_type_on_an_input_topic_is_seen(rig):
    node = rig["node"]
    rig["camera"].command(wrong_type=True)
    wait_for(lambda: node.counters("camera")["wrong_type_publishers"] == 1, "it counted")
    rig["camera"].command(wrong_type=False)
    wait_for(lambda: node.counters("camera")["wrong_type_publishers"] == 0, "the publisher gone")
    _valid_pair(rig)


def test_a_flood_is_survived_and_its_drops_counted(rig):
    _valid_pair(rig)
    before = rig["node"].counters("camera")
    pairs = 150  # stamps 1/30 s apart: 5 s, from 5 s behind the clock (within the stamp bounds)
    rig["camera"].command(stamp=list(_next_stamp(rig)), flood=pairs)
    rig["t"] += pairs * 33_333_333
    _valid_pair(rig)
    after = rig["node"].counters("camera")
    taken = after["color_frames"] - before["color_frames"] - 1
    answered = after["published"] - before["published"] - 1
    assert answered < pairs
    # every pair that was not answered is accounted for: replaced in the slot, unpaired, or never
    # received (the subscription's history overflowed: not reported by DDS, see input_health)
    dropped = after["dropped"] - before["dropped"]
    unpaired = after["unpaired_color"] - before["unpaired_color"]
    assert answered + dropped + unpaired + (pairs - taken) >= pairs
    assert dropped + unpaired + (pairs - taken) > 0


def test_every_class_is_counted_under_a_key_the_node_reports(rig):
    """At least 45 classes, each under a key the node reports from its start (each class's own
    test checks that its key grows). From the tables, not from what the tests above recorded,
    so that it holds when run alone or in any order."""
    classes = [c[:2] for c in IMAGE_CLASSES + STAMP_CLASSES + CAMERA_INFO_CLASSES]
    classes += OTHER_CLASSES
    assert len(classes) >= 45
    counters = rig["node"].counters("camera")
    unreported = [
        c for c in classes if c[1] not in counters and f"bad_input.{c[1]}" not in counters
    ]
    assert unreported == []


if __name__ == "__main__" and sys.argv[1:] == ["--publisher"]:
    publisher_main()
