"""Compressed inputs as the node sees them: real sensor_msgs/CompressedImage messages (serialised
and back, as DDS delivers them) through the transports' decoders.

    .venv/bin/python -m pytest -q test/test_ros_compressed.py
"""

import time

import cv2
import numpy as np
import pytest
import conftest
from conftest import wait_for

from rgbd_saliency_ros.runtime.compressed import COMPRESSED_ERROR_KINDS, encode_color, encode_depth

MAX_PIXELS = 640 * 480


@pytest.fixture(scope="module")
def tum():
    return conftest.tum_rgbd()


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
    color_in, depth_in = (
        input_transport("color", "compressed"),
        input_transport("depth", "compressedDepth"),
    )
    assert (color_in.msg_type, color_in.topic("cam/color")) == (
        CompressedImage,
        "cam/color/compressed",
    )
    assert (depth_in.msg_type, depth_in.topic("cam/depth")) == (
        CompressedImage,
        "cam/depth/compressedDepth",
    )
    raw_color, raw_depth = input_transport("color", "raw"), input_transport("depth", "raw")
    assert (raw_color.msg_type, raw_color.topic("cam/color"), raw_depth.msg_type) == (
        Image,
        "cam/color",
        Image,
    )
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
        ("depth", "16UC1; compressedDepth zstd", png, "unsupported_compression"),
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


# The node over real rclpy and DDS ----------------------------------------------------------------

DEADLINE_S = 60.0
COLOR, DEPTH = "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw"


@pytest.fixture(scope="module")
def rig(tmp_path_factory, tum):
    """Two nodes at input 64 with the same random weights on a private domain: ``compressed``
    (color_transport compressed, depth_transport compressedDepth) and ``raw`` (namespace /raw),
    and a camera node publishing to both (reliable, as drivers do) and collecting probabilities.
    Over 60 lines: one module-wide set-up, kept whole so that its teardown mirrors it."""
    import threading

    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CompressedImage, Image

    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.ros.node import SaliencyNode

    sam2, weights = write_random_weights(tmp_path_factory.mktemp("weights"), input_size=64)
    with conftest.private_ros_context(conftest.private_domain(140)) as context:
        common = conftest.node_parameters(
            sam2, weights, max_image_pixels=MAX_PIXELS, diagnostics_period_s=0.5
        )
        compressed = SaliencyNode(
            context=context,
            parameter_overrides=common
            + [
                Parameter("color_transport", value="compressed"),
                Parameter("depth_transport", value="compressedDepth"),
            ],
        )
        raw = SaliencyNode(
            context=context,
            parameter_overrides=common,
            cli_args=["--ros-args", "-r", "__ns:=/raw"],
        )
        for node in (compressed, raw):
            node.start()
        camera = rclpy.create_node("camera", context=context)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        publishers = {
            topic: camera.create_publisher(kind, topic, qos)
            for topic, kind in (
                (COLOR + "/compressed", CompressedImage),
                (DEPTH + "/compressedDepth", CompressedImage),
                ("/raw" + COLOR, Image),
                ("/raw" + DEPTH, Image),
            )
        }
        received = {"/saliency": {}, "/raw/saliency": {}}
        lock = threading.Lock()

        def keep(prefix, msg):
            with lock:
                received[prefix][(msg.header.stamp.sec, msg.header.stamp.nanosec)] = msg

        for prefix in received:
            camera.create_subscription(
                Image, prefix + "/probability", lambda m, p=prefix: keep(p, m), qos
            )
        with conftest.spinning(context, compressed, raw, camera):
            wait_for(
                lambda: all(p.get_subscription_count() for p in publishers.values()),
                "the nodes to subscribe",
            )
            yield dict(
                compressed=compressed, raw=raw, publishers=publishers, received=received, tum=tum
            )


class Stamps:
    sec = int(time.time()) - 3600  # behind the node's clock, as a replayed bag's

    @classmethod
    def next(cls):
        cls.sec += 5  # far apart: every frame starts a fresh memory (reset by timeout)
        return cls.sec


def send(rig, prefix: str, color, depth, sec: int) -> None:
    """Publishes a pair stamped ``sec`` on the compressed ("") or raw ("/raw") topics."""
    suffixes = ("/compressed", "/compressedDepth") if prefix == "" else ("", "")
    for topic, msg in ((COLOR + suffixes[0], color), (DEPTH + suffixes[1], depth)):
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, 0
        msg.header.frame_id = "tum_camera"
        rig["publishers"][prefix + topic].publish(msg)


def probability(rig, prefix: str, sec: int) -> np.ndarray:
    msg = wait_for(lambda: rig["received"][prefix].get((sec, 0)), f"{prefix} probability at {sec}")
    return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)


def test_node_answers_compressed_inputs_as_their_raw_twin(rig):
    from rgbd_saliency_ros.ros.compressed import compressed_message
    from rgbd_saliency_ros.ros.conversions import image_message
    from std_msgs.msg import Header

    rgb, mm, depth_m = rig["tum"]
    header = Header()
    # lossless: PNG color and 16UC1 compressedDepth give the raw twin's probabilities exactly
    sec = Stamps.next()
    send(
        rig,
        "",
        compressed_message(*encode_color(rgb, "png"), Header()),
        compressed_message(*encode_depth(mm, "16UC1"), Header()),
        sec,
    )
    send(
        rig, "/raw", image_message(rgb, "rgb8", header), image_message(mm, "16UC1", Header()), sec
    )
    np.testing.assert_array_equal(
        probability(rig, "/saliency", sec), probability(rig, "/raw/saliency", sec)
    )
    # JPEG color and 32FC1 compressedDepth (Iron's format string) come back too
    sec = Stamps.next()
    send(
        rig,
        "",
        compressed_message(*encode_color(rgb, "jpeg"), Header()),
        compressed_message(*encode_depth(depth_m, "32FC1", name_codec=True), Header()),
        sec,
    )
    assert probability(rig, "/saliency", sec).shape == (480, 640)
    assert rig["compressed"].counters("camera")["published"] >= 2


def test_node_counts_lossy_and_broken_compressed_inputs_and_goes_on(rig):
    from std_msgs.msg import Header

    from rgbd_saliency_ros.ros.compressed import compressed_message

    rgb, mm, _ = rig["tum"]
    node = rig["compressed"]
    color = encode_color(rgb, "jpeg")
    depth_fmt, depth = encode_depth(mm, "16UC1")
    bad = [
        (
            "lossy_depth",
            color,
            ("16UC1; jpeg compressed mono8", cv2.imencode(".jpg", (mm >> 4).astype(np.uint8))[1]),
        ),
        ("decode_failed", color, (depth_fmt, depth[:5000])),
        ("decode_failed", (color[0], color[1][:3000]), (depth_fmt, depth)),
        ("unsupported_compression", color, ("16UC1; compressedDepth zstd", depth)),
    ]
    for kind, (cfmt, cdata), (dfmt, ddata) in bad:
        before = node.counters("camera")
        sec = Stamps.next()
        send(
            rig,
            "",
            compressed_message(cfmt, bytes(cdata), Header()),
            compressed_message(dfmt, bytes(ddata), Header()),
            sec,
        )
        wait_for(
            lambda: (
                node.counters("camera")[f"bad_input.{kind}"] == before[f"bad_input.{kind}"] + 1
            ),
            f"bad_input.{kind}",
        )
        good = Stamps.next()
        send(
            rig,
            "",
            compressed_message(*color, Header()),
            compressed_message(depth_fmt, depth, Header()),
            good,
        )
        probability(rig, "/saliency", good)  # and it goes on
        assert (sec, 0) not in rig["received"]["/saliency"]


def test_bench_camera_sends_what_image_transport_would():
    from std_msgs.msg import Header

    from rgbd_saliency_ros.benchmarks.node import camera_messages, decode_times_ms, tum_frames
    from rgbd_saliency_ros.ros.compressed import input_transport

    header = Header(frame_id="cam")
    raw = dict(camera_messages("raw", header))
    sent = dict(camera_messages("compressed", header))
    assert sorted(sent) == sorted(
        t + s for t, s in zip(sorted(raw), ("/compressedDepth", "/compressed"))
    )
    rgb, mm = tum_frames()
    color = sent[COLOR + "/compressed"]
    assert color.format == "rgb8; jpeg compressed bgr8" and color.header is header
    depth_m = input_transport("depth", "compressedDepth").decode(
        sent[DEPTH + "/compressedDepth"], 640 * 480
    )
    np.testing.assert_array_equal(np.nan_to_num(depth_m * 1000, nan=0).round(), mm)
    times = decode_times_ms(repeats=2)  # what bench-node --transport compressed reports
    assert sorted(times) == ["color", "depth"] and all(
        0 < p50 <= p95 for p50, p95 in times.values()
    )
