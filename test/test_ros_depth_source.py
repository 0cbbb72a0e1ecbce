"""The node's depth sources over real rclpy: ``estimated`` (color alone) and ``fill``.

    .venv/bin/python -m pytest -q test/test_ros_depth_source.py

Two nodes on a random SAM-DAQ at input 64 with the Depth Anything V2 parity fixture's random
ViT-S (official format) at estimator input 28 (28 x 42 for 640 x 480: fast), each in its own
namespace: ``/estimated`` (depth_source estimated: no depth topic) and ``/filled`` (depth_source
fill). TUM RGB-D's real 640x480 frame comes from another process (test_ros_node's publisher); the
fill node gets its depth with the left half invalid. Random weights say nothing about quality:
these tests are about the plumbing (what is subscribed, published, skipped and counted).
"""

import threading

import numpy as np
import pytest
import conftest
from conftest import wait_for
from test_ros_node import DEADLINE_S, Camera, Timeline
from test_ros_node_objects import K, cloud_points

from rgbd_saliency_ros.evaluation.node_process import private_ros_env

ESTIMATOR_INPUT = 28
NODES = {"estimated": "estimated", "filled": "fill"}  # namespace -> depth_source


class Topics:
    """Collects messages of a node's outputs by stamp (reliable subscriptions)."""

    def __init__(self, probe, prefix: str, kinds: dict) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        self.lock = threading.Lock()
        self.received = {kind: {} for kind in kinds}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for kind, msg_type in kinds.items():
            probe.create_subscription(
                msg_type, f"{prefix}/{kind}", lambda msg, k=kind: self._keep(k, msg), qos
            )

    def _keep(self, kind: str, msg) -> None:
        header = msg.markers[0].header if hasattr(msg, "markers") else msg.header
        with self.lock:
            self.received[kind][round(header.stamp.sec + header.stamp.nanosec * 1e-9, 6)] = msg

    def get(self, kind: str, stamp: float):
        return wait_for(lambda: self.received[kind].get(round(stamp, 6)), f"{kind} at {stamp}")


@pytest.fixture(scope="module")
def rig(tmp_path_factory, depth_anything_vits):
    conftest.find_shared("data", "rgbd_encodings")
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import Image, PointCloud2

    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.ros.node import SaliencyNode

    sam2, weights = write_random_weights(tmp_path_factory.mktemp("weights"), input_size=64)
    domain = conftest.private_domain(180)
    with conftest.private_ros_context(domain) as context:
        nodes = {
            ns: SaliencyNode(
                context=context,
                parameter_overrides=conftest.node_parameters(
                    sam2,
                    weights,
                    max_image_pixels=640 * 480,
                    diagnostics_period_s=0.5,
                    depth_source=source,
                    depth_estimator_weights=str(depth_anything_vits),
                    depth_estimator_input_size=ESTIMATOR_INPUT,
                ),
                cli_args=["--ros-args", "-r", f"__ns:=/{ns}", "-r", f"__node:={ns}_node"],
            )
            for ns, source in NODES.items()
        }
        for node in nodes.values():
            node.start()
        probe = rclpy.create_node("depth_probe", context=context)
        kinds = {
            "mask": Image,
            "probability": Image,
            "depth_estimate": Image,
            "object/points": PointCloud2,
            "object/centroid": PointStamped,
        }
        topics = {ns: Topics(probe, f"/{ns}/saliency", kinds) for ns in nodes}
        diagnostics = {}
        probe.create_subscription(
            DiagnosticArray,
            "/diagnostics",
            lambda msg: diagnostics.update({s.name: s for s in msg.status}),
            10,
        )
        with conftest.spinning(context, *nodes.values(), probe):
            camera = Camera(private_ros_env(domain))
            try:
                yield dict(
                    context=context,
                    model_files=(sam2, weights),
                    nodes=nodes,
                    topics=topics,
                    diagnostics=diagnostics,
                    camera=camera,
                    time=Timeline(),
                    estimator=depth_anything_vits,
                )
            finally:
                camera.close()


def send(rig, ns: str, stamp: float, depth: str | None) -> None:
    """The color frame (with CameraInfo) to ``/<ns>/camera``, and ``depth`` if not None."""
    camera = rig["camera"]
    camera.send(f"/{ns}/camera/color/camera_info", "info", stamp)
    camera.send(f"/{ns}/camera/color/image_raw", "color", stamp)
    if depth is not None:
        camera.send(f"/{ns}/camera/aligned_depth_to_color/image_raw", depth, stamp)


def send_until_mask(rig, ns: str, depth: str | None = None) -> float:
    """Sends frames until one's mask comes back (DDS matching may lose the first); its stamp."""
    masks = rig["topics"][ns].received["mask"]

    def send_one() -> float:
        stamp = rig["time"].gap()  # a fresh memory: the same frame gives the same mask
        send(rig, ns, stamp, depth)
        return stamp

    return conftest.send_until_received(send_one, masks, f"a mask of {ns}", DEADLINE_S / 4)


def half_in_the_mask(rig, ns: str, stamp: float) -> None:
    """Sets the threshold at the median probability of that frame: half of it in the mask."""
    from rclpy.parameter import Parameter

    msg = rig["topics"][ns].get("probability", stamp)
    threshold = float(np.clip(np.median(np.frombuffer(msg.data, np.float32)), 0.01, 0.99))
    assert rig["nodes"][ns].set_parameters([Parameter("threshold", value=threshold)])[0].successful


def image(msg) -> np.ndarray:
    dtype = np.float32 if msg.encoding == "32FC1" else np.uint8
    return np.frombuffer(msg.data, dtype).reshape(msg.height, msg.width)


def test_estimated_answers_color_alone_with_its_estimate(rig):
    """No depth topic is subscribed; each color frame is a pair, the latest one answered (a
    burst drops and counts the others, as pairs do); the estimate goes out with the color
    header and equals the runtime's; diagnostics say which source ran and its cost."""
    from rgbd_saliency_ros.runtime.backends import create_estimator_backend
    from rgbd_saliency_ros.runtime.depth_estimation import DepthEstimation
    from rgbd_saliency_ros.ros.diagnostics import status_values

    node, topics = rig["nodes"]["estimated"], rig["topics"]["estimated"]
    subscribed = node.input_reliability()
    assert "/estimated/camera/color/image_raw" in subscribed
    assert not any("depth" in topic for topic in subscribed)  # no depth topic at all
    stamps = [send_until_mask(rig, "estimated")]
    for _ in range(4):  # back to back: faster than the worker
        stamps.append(rig["time"].next())
        send(rig, "estimated", stamps[-1], None)
    rgb, _, _ = conftest.tum_rgbd()
    offline = DepthEstimation(create_estimator_backend(str(rig["estimator"])), ESTIMATOR_INPUT)
    expected = offline.estimate(rgb).depth
    for stamp in (stamps[0], stamps[-1]):  # the first and the latest; others may be dropped
        mask, estimate = topics.get("mask", stamp), topics.get("depth_estimate", stamp)
        for msg in (mask, estimate):
            assert msg.header.frame_id == "tum_camera"
            assert (msg.height, msg.width) == (480, 640)
        assert mask.encoding == "mono8" and set(np.unique(image(mask))) <= {0, 255}
        assert estimate.encoding == "32FC1"
        np.testing.assert_allclose(image(estimate), expected, rtol=1e-5, atol=1e-5)

    def settled():
        counts = node.counters("camera")
        return counts["published"] + counts["dropped"] == counts["pairs"] and counts

    counts = wait_for(settled, "every pair answered or dropped")
    assert counts["pairs"] == counts["color_frames"] >= len(stamps)
    assert counts["depth_frames"] == 0 and counts["unpaired_color"] == 0
    assert counts["depth.errors"] == 0 and counts["bad_input.invalid_depth"] == 0
    assert 0 < counts["depth_model_ms_p50"] <= counts["depth_ms_p50"]
    diagnostics = rig["diagnostics"]
    values = status_values(wait_for(lambda: diagnostics.get("estimated_node"), "diagnostics"))
    assert values["depth_source"] == "estimated"
    assert values["depth_estimator"] == "depth_anything_v2"
    assert values["depth_estimator_input_size"] == ESTIMATOR_INPUT
    wait_for(
        lambda: (
            (status := diagnostics.get("estimated_node: camera"))
            and status_values(status)["depth_model_ms_p50"] > 0
        ),
        "the stream's depth model time in /diagnostics",
    )


def test_estimated_publishes_no_3d_outputs(rig):
    """No metric scale: a listener of the 3D outputs gets masks but no points or centroid, and
    the skipped frames are counted (the fill node, given the same CameraInfo, does publish)."""
    node, topics = rig["nodes"]["estimated"], rig["topics"]["estimated"]
    before = node.counters("camera").get("object.no_metric_depth", 0)
    stamp = send_until_mask(rig, "estimated")
    half_in_the_mask(rig, "estimated", stamp)
    stamp = send_until_mask(rig, "estimated")
    assert np.any(image(topics.get("mask", stamp)))
    wait_for(
        lambda: node.counters("camera").get("object.no_metric_depth", 0) >= before + 2,
        "the skipped 3D outputs counted",
    )
    assert not topics.received["object/points"] and not topics.received["object/centroid"]


def test_fill_answers_half_invalid_depth_with_3d_from_the_measured_half(rig):
    node, topics = rig["nodes"]["filled"], rig["topics"]["filled"]
    subscribed = node.input_reliability()
    assert "/filled/camera/aligned_depth_to_color/image_raw" in subscribed
    stamp = send_until_mask(rig, "filled", "depth_left_invalid")
    half_in_the_mask(rig, "filled", stamp)
    stamp = send_until_mask(rig, "filled", "depth_left_invalid")
    mask = image(topics.get("mask", stamp))
    estimate = topics.get("depth_estimate", stamp)
    assert estimate.header.frame_id == "tum_camera"
    assert (estimate.height, estimate.width) == (480, 640)
    _, mm, _ = conftest.tum_rgbd()
    counts = node.counters("camera")
    invalid = int((mm[:, :320] == 0).size + (mm[:, 320:] == 0).sum())
    assert 0 < counts["depth_filled_px"] <= invalid
    assert counts["depth.fallbacks"] == 0 and counts["bad_input.invalid_depth"] == 0
    # 3D from the sensor's pixels only: every point on the measured (right) half, at its depth.
    points = cloud_points(topics.get("object/points", stamp))
    assert len(points) > 0
    u = np.rint(K[0] * points[:, 0] / points[:, 2] + K[2]).astype(int)
    v = np.rint(K[4] * points[:, 1] / points[:, 2] + K[5]).astype(int)
    assert u.min() >= 320 and np.all(mask[v, u] == 255)
    np.testing.assert_allclose(points[:, 2], mm[v, u] / 1000.0, atol=1e-5)
    # No valid pixel at all: the estimate alone (counted), still a mask, and no 3D object.
    empty = send_until_mask(rig, "filled", "depth_zero")
    assert topics.get("object/points", empty).width == 0
    assert round(empty, 6) not in topics.received["object/centroid"]
    counts = node.counters("camera")
    assert counts["depth.fallbacks"] >= 1 and counts["bad_input.invalid_depth"] == 0


def test_bad_estimator_weights_stop_configure_in_one_line_naming_the_file(rig, tmp_path):
    from rgbd_saliency_ros.ros.node import SaliencyNode, StartupError

    broken = tmp_path / "depth_anything_v2_vits.pth"
    broken.write_bytes(b"not a checkpoint")
    node = SaliencyNode(
        context=rig["context"],
        parameter_overrides=conftest.node_parameters(
            *rig["model_files"], depth_source="estimated", depth_estimator_weights=str(broken)
        ),
        cli_args=["--ros-args", "-r", "__ns:=/broken"],
    )
    try:
        with pytest.raises(StartupError) as refused:
            node.start()
        message = str(refused.value)
        assert message.startswith(f"cannot load the depth estimator: {broken}: ")
        assert "\n" not in message and node.state == "unconfigured"
    finally:
        node.destroy_node()
