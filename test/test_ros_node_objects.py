"""The node's 3D outputs live over real rclpy: cloud, centroid, box, markers with input stamps.

    .venv/bin/python -m pytest -q test/test_ros_node_objects.py

Two nodes on a random SAM-DAQ at input 64, in their own namespaces: ``/objects`` with depth
aligned to color, and ``/registered`` whose depth comes from its own 320x240 camera and is
registered into color by the node, its transform from tf (a stand-in: tf2 is not on PyPI). The
test process plays the camera (TUM RGB-D's real 640x480 frame) and listens, with the helpers of
test_ros_node.py.
"""

import math
import sys
import threading

import cv2
import numpy as np
import pytest
import conftest
from conftest import wait_for
from test_ros_node import DEADLINE_S, Timeline

K = [
    525.0,
    0.0,
    319.5,
    0.0,
    525.0,
    239.5,
    0.0,
    0.0,
    1.0,
]  # the ROS default, TUM's registered depth


class Camera:
    """Publishes color, depth and CameraInfo of one camera namespace from the test process.

    The CameraInfos set with ``set_info`` go out again with every frame, as drivers send them: a
    first one lost while DDS matches the subscription does not stall a test.
    """

    def __init__(self, node, namespace: str) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.color = node.create_publisher(Image, f"{namespace}/color/image_raw", qos)
        self.depth = node.create_publisher(
            Image, f"{namespace}/aligned_depth_to_color/image_raw", qos
        )
        self.info = node.create_publisher(CameraInfo, f"{namespace}/color/camera_info", qos)
        self.depth_info = node.create_publisher(CameraInfo, f"{namespace}/depth/camera_info", qos)
        self.infos = {}  # publisher -> CameraInfo sent with every frame
        wait_for(
            lambda: all(p.get_subscription_count() for p in (self.color, self.depth, self.info)),
            f"the node's subscriptions on {namespace}",
        )

    def send(self, stamp: float, rgb: np.ndarray, depth_mm: np.ndarray) -> None:
        from rgbd_saliency_ros.ros.conversions import image_message

        header = _header(stamp)
        for publisher, info in self.infos.items():
            info.header = header
            publisher.publish(info)
        self.color.publish(image_message(rgb, "rgb8", header))
        self.depth.publish(image_message(depth_mm, "16UC1", header))

    def set_info(
        self, width: int = 640, height: int = 480, scale: float = 1.0, depth: bool = False
    ) -> None:
        """The color (or depth) CameraInfo: TUM's K, scaled for a smaller image."""
        from sensor_msgs.msg import CameraInfo

        k = [v * scale for v in K[:8]] + [1.0]
        k[2], k[5] = (K[2] + 0.5) * scale - 0.5, (K[5] + 0.5) * scale - 0.5  # pixel centres too
        msg = CameraInfo(
            width=width, height=height, distortion_model="plumb_bob", d=[0.0] * 5, k=k
        )
        self.infos[self.depth_info if depth else self.info] = msg


class StandInTf:
    """A tf2_ros module as the node uses it, with Humble's API: ``Buffer()``,
    ``TransformListener(buffer, node)``, ``TransformException`` and
    ``Buffer.lookup_transform(target_frame, source_frame, time, timeout=...)``. Every lookup is
    kept in ``asked``; it answers the identity, or raises while ``failing``."""

    class TransformException(Exception):
        pass

    def __init__(self) -> None:
        self.asked = []  # (target_frame, source_frame, time, timeout)
        self.failing = False
        tf = self

        class Buffer:
            def lookup_transform(self, target_frame, source_frame, time, timeout=None):
                from geometry_msgs.msg import TransformStamped

                tf.asked.append((target_frame, source_frame, time, timeout))
                if tf.failing:
                    raise tf.TransformException("Lookup would require extrapolation")
                return TransformStamped()  # the identity

        self.Buffer = Buffer
        self.TransformListener = lambda buffer, node: (buffer, node)


def _header(stamp: float):
    from std_msgs.msg import Header

    header = Header(frame_id="tum_camera")
    header.stamp.sec, header.stamp.nanosec = divmod(round(stamp * 1e9), 10**9)
    return header


class Listener:
    """Collects a node's mask, probability and 3D outputs by stamp (reliable subscriptions)."""

    KINDS = (
        "mask",
        "probability",
        "object/points",
        "object/centroid",
        "object/box",
        "object/box_size",
        "object/markers",
        "object/status",
    )

    def __init__(self, probe, prefix: str) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped, PoseStamped, Vector3Stamped
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image, PointCloud2
        from visualization_msgs.msg import MarkerArray

        types = (
            Image,
            Image,
            PointCloud2,
            PointStamped,
            PoseStamped,
            Vector3Stamped,
            MarkerArray,
            DiagnosticArray,
        )
        self.lock = threading.Lock()
        self.received = {kind: {} for kind in self.KINDS}
        self.probe, self.prefix, self.subscriptions = probe, prefix, []
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for kind, msg_type in zip(self.KINDS, types):
            if kind.startswith("object/"):
                continue  # subscribed later: until then the node must compute nothing
            self._subscribe(kind, msg_type, qos)
        self._later = [(k, t, qos) for k, t in zip(self.KINDS, types) if k.startswith("object/")]

    def _subscribe(self, kind, msg_type, qos) -> None:
        def keep(msg, store=self.received[kind]):
            header = msg.markers[0].header if hasattr(msg, "markers") else msg.header
            with self.lock:
                store[round(header.stamp.sec + header.stamp.nanosec * 1e-9, 6)] = msg

        self.subscriptions.append(
            self.probe.create_subscription(msg_type, f"{self.prefix}/{kind}", keep, qos)
        )

    def listen_to_objects(self) -> None:
        for args in self._later:
            self._subscribe(*args)

    def get(self, kind: str, stamp: float):
        return wait_for(
            lambda: self.received[kind].get(round(stamp, 6)), f"{self.prefix}/{kind} at {stamp}"
        )


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    conftest.find_shared("data", "rgbd_encodings")
    import rclpy
    from rclpy.parameter import Parameter

    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.ros.node import SaliencyNode

    sam2_ckpt, weights = write_random_weights(tmp_path_factory.mktemp("weights"), input_size=64)
    tf = StandInTf()
    with (
        conftest.private_ros_context(conftest.private_domain(150)) as context,
        pytest.MonkeyPatch.context() as patch,
    ):
        patch.setitem(sys.modules, "tf2_ros", tf)  # what `import tf2_ros` gives the node
        common = conftest.node_parameters(sam2_ckpt, weights, reset_timeout_s=1.0)
        registering = [
            Parameter("depth_camera_info_topic", value="depth/camera_info"),
            Parameter("depth_to_color.tf_timeout_s", value=0.2),
        ]
        nodes = {
            "objects": SaliencyNode(
                context=context,
                parameter_overrides=common,
                cli_args=["--ros-args", "-r", "__ns:=/objects"],
            ),
            "registered": SaliencyNode(
                context=context,
                parameter_overrides=common + registering,
                cli_args=["--ros-args", "-r", "__ns:=/registered"],
            ),
        }
        for node in nodes.values():
            node.start()
        probe = rclpy.create_node("object_probe", context=context)
        rgb, depth_mm, _ = conftest.tum_rgbd()
        with conftest.spinning(context, *nodes.values(), probe):
            yield dict(
                nodes=nodes,
                probe=probe,
                rgb=rgb,
                depth_mm=depth_mm,
                time=Timeline(),
                cameras={ns: Camera(probe, f"/{ns}/camera") for ns in nodes},
                listeners={ns: Listener(probe, f"/{ns}/saliency") for ns in nodes},
                tf=tf,
            )


def send_until_mask(rig, ns: str, depth_mm=None, gap: bool = False) -> float:
    """Sends the frame until its mask comes back (DDS matching may lose the first); its stamp."""
    masks = rig["listeners"][ns].received["mask"]

    def send() -> float:
        stamp = rig["time"].gap() if gap else rig["time"].next()
        rig["cameras"][ns].send(
            stamp, rig["rgb"], rig["depth_mm"] if depth_mm is None else depth_mm
        )
        return stamp

    return conftest.send_until_received(send, masks, f"a mask of {ns}", DEADLINE_S / 4)


def status_of(msg) -> dict:
    """A status DiagnosticArray's one status: its values, message and level (an int)."""
    (status,) = msg.status
    values = {kv.key: kv.value for kv in status.values}
    level = status.level if isinstance(status.level, int) else ord(status.level)  # bytes in rclpy
    return {**values, "message": status.message, "level": level}


def cloud_points(msg) -> np.ndarray:
    """(N, 3) float32 x, y, z read through the message's own field table."""
    offsets = {f.name: f.offset for f in msg.fields}
    raw = np.frombuffer(bytes(msg.data), np.uint8).reshape(-1, msg.point_step)
    return np.stack(
        [raw[:, offsets[a] : offsets[a] + 4].copy().view("<f4")[:, 0] for a in "xyz"], 1
    )


def test_3d_outputs_cost_nothing_unheard_then_come_with_the_input_stamps(rig):
    """Over 60 lines: one scenario in time (unsubscribed, subscribed, each output checked
    against the same frame), which split tests would have to replay."""
    from rclpy.parameter import Parameter
    from visualization_msgs.msg import Marker

    node, camera, listener = (
        rig["nodes"]["objects"],
        rig["cameras"]["objects"],
        rig["listeners"]["objects"],
    )
    camera.set_info()
    first = send_until_mask(rig, "objects", gap=True)
    assert node.object_outputs["camera"].frames == 0  # nobody listens yet
    # Half of the frame in the mask: the threshold at the median probability of this fresh frame
    # (a fresh memory gives the same probabilities for the same frame again).
    prob = listener.get("probability", first)
    values = np.frombuffer(prob.data, np.float32)
    threshold = float(np.clip(np.median(values), 0.01, 0.99))
    assert node.set_parameters([Parameter("threshold", value=threshold)])[0].successful
    listener.listen_to_objects()
    publishers = node.object_outputs["camera"].publishers
    wait_for(
        lambda: all(
            publishers[k].get_subscription_count()
            for k in ("cloud", "centroid", "pose", "size", "markers", "status")
        ),
        "the 3D subscriptions",
    )
    try:
        stamp = send_until_mask(rig, "objects", gap=True)
        mask = np.frombuffer(listener.get("mask", stamp).data, np.uint8).reshape(480, 640)
        cloud, centroid = (
            listener.get("object/points", stamp),
            listener.get("object/centroid", stamp),
        )
        box, size = listener.get("object/box", stamp), listener.get("object/box_size", stamp)
        markers = listener.get("object/markers", stamp)
        for msg in (cloud, centroid, box, size, *markers.markers):
            assert msg.header.frame_id == "tum_camera"
            assert round(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9, 6) == round(
                stamp, 6
            )
        # Every cloud point lies on the ray of a mask pixel, at that pixel's depth.
        points = cloud_points(cloud)
        assert 0 < len(points) <= 20000
        u = K[0] * points[:, 0] / points[:, 2] + K[2]
        v = K[4] * points[:, 1] / points[:, 2] + K[5]
        pixels_u, pixels_v = np.rint(u).astype(int), np.rint(v).astype(int)
        assert np.abs(u - pixels_u).max() < 1e-2 and np.abs(v - pixels_v).max() < 1e-2
        assert np.all(mask[pixels_v, pixels_u] == 255)
        np.testing.assert_allclose(
            points[:, 2], rig["depth_mm"][pixels_v, pixels_u] / 1000.0, atol=1e-5
        )
        c = centroid.point
        under = rig["depth_mm"][(mask == 255) & (rig["depth_mm"] > 0)] / 1000.0
        assert under.min() <= c.z <= under.max()
        q = box.pose.orientation
        assert np.linalg.norm([q.x, q.y, q.z, q.w]) == pytest.approx(1.0)
        assert min(size.vector.x, size.vector.y, size.vector.z) > 0
        assert [m.type for m in markers.markers] == [Marker.CUBE, Marker.SPHERE]
        # A frame whose depth is valid in nine pixels only: no object, so nothing stale either.
        sparse = np.zeros_like(rig["depth_mm"])
        sparse[:3, :3] = 1500
        empty = send_until_mask(rig, "objects", depth_mm=sparse)
        assert [m.action for m in listener.get("object/markers", empty).markers] == [
            Marker.DELETEALL
        ]
        assert listener.get("object/points", empty).width == 0
        assert round(empty, 6) not in listener.received["object/centroid"]
        # Every answered pair has its status: found, then (the object gone less than
        # object.stale_after_s ago) stale, naming this frame's own status and the last good stamp.
        found = status_of(listener.get("object/status", stamp))
        assert found["message"] == "found" and 0 < int(found["point_count"]) <= len(under)
        assert 0 < float(found["valid_depth_fraction"]) <= 1
        assert 0 < float(found["centroid_std_z_m"]) < 0.001
        jitter = float(found["centroid_jitter_m"])  # NaN after a single found frame
        assert math.isnan(jitter) or 0 <= jitter < 0.05
        stale = status_of(listener.get("object/status", empty))
        assert stale["message"] == "stale" and stale["level"] == 1  # WARN
        assert stale["frame_status"] in ("no_valid_depth", "no_salient_object")
        assert stamp - 1e-6 <= float(stale["last_good_stamp_s"]) < empty
    finally:
        assert node.set_parameters([Parameter("threshold", value=0.5)])[0].successful
    assert node.object_outputs["camera"].frames >= 2


def test_depth_from_its_own_camera_is_registered_into_color(rig):
    """320x240 depth with its own CameraInfo: dropped (counted) until that CameraInfo comes, then
    registered into the 640x480 color camera, masks and 3D outputs following; the transform
    looked up in tf at the color image's stamp, a failed lookup counted and the parameters'
    transform used instead."""
    from rclpy.duration import Duration
    from rclpy.parameter import Parameter

    from rgbd_saliency_ros.ros.object_outputs import TF_FAILURES

    node, camera, listener = (
        rig["nodes"]["registered"],
        rig["cameras"]["registered"],
        rig["listeners"]["registered"],
    )
    small = cv2.resize(rig["depth_mm"], (320, 240), interpolation=cv2.INTER_NEAREST)
    camera.set_info()
    before = node.counters("camera")["bad_input.unregistered_depth"]
    for _ in range(10):  # DDS matching may lose the first pairs
        camera.send(rig["time"].next(), rig["rgb"], small)
        try:
            wait_for(
                lambda: node.counters("camera")["bad_input.unregistered_depth"] > before,
                "the unregistered pair",
                timeout_s=DEADLINE_S / 4,
            )
            break
        except AssertionError:
            continue
    assert node.counters("camera")["bad_input.unregistered_depth"] > before
    assert node.counters("camera")["published"] == 0  # nothing went through unregistered
    camera.set_info(320, 240, 0.5, depth=True)
    listener.listen_to_objects()
    wait_for(
        lambda: all(
            node.object_outputs["camera"].publishers[k].get_subscription_count()
            for k in ("cloud", "status")
        ),
        "subscription",
    )
    # most of the frame in the mask
    assert node.set_parameters([Parameter("threshold", value=0.01)])[0].successful
    try:
        stamp = send_until_mask(rig, "registered", depth_mm=small)
        points = cloud_points(listener.get("object/points", stamp))
    finally:
        assert node.set_parameters([Parameter("threshold", value=0.5)])[0].successful
    u = np.rint(K[0] * points[:, 0] / points[:, 2] + K[2]).astype(int)
    v = np.rint(K[4] * points[:, 1] / points[:, 2] + K[5]).astype(int)
    truth = rig["depth_mm"][v, u] / 1000.0
    # Each registered pixel carries the depth of the 320x240 sample covering it: the full frame's
    # own depth one pixel away at most, so equal but where that pixel is on another surface.
    close = np.abs(points[:, 2] - truth) < 0.02 * truth
    assert np.count_nonzero(close) >= 0.9 * len(points)

    tf = rig["tf"]
    asked = [(target, source, t.nanoseconds, timeout) for target, source, t, timeout in tf.asked]
    assert ("tum_camera", "tum_camera", round(stamp * 1e9), Duration(seconds=0.2)) in asked
    assert TF_FAILURES not in node.counters("camera")
    tf.failing = True
    try:
        stamp = send_until_mask(rig, "registered", depth_mm=small)
    finally:
        tf.failing = False
    assert node.counters("camera")[TF_FAILURES] >= 1
    assert tf.asked[-1][2].nanoseconds == round(stamp * 1e9)
    # registered with the parameters' fallback transform: the status says so
    status = status_of(listener.get("object/status", stamp))
    assert status["message"] == "depth_not_registered" and status["level"] == 1
