"""The node's 3D outputs of one stream, and the registration of depth that is not aligned to color.

The node builds one ``ObjectOutputs`` per stream beside its mask and, after publishing the mask,
calls ``publish_frame``: the object's points, centroid, box and markers (``object_messages``)
go out on

    <mask's namespace>/object/points       sensor_msgs/PointCloud2 (xyz + rgb, voxel-thinned)
    <mask's namespace>/object/centroid     geometry_msgs/PointStamped
    <mask's namespace>/object/box          geometry_msgs/PoseStamped (centre and axes)
    <mask's namespace>/object/box_size     geometry_msgs/Vector3Stamped (metres along the axes)
    <mask's namespace>/object/markers      visualization_msgs/MarkerArray
    <mask's namespace>/object/detections   vision_msgs/Detection3DArray (when importable)
    <mask's namespace>/object/status       diagnostic_msgs/DiagnosticArray (every answered pair)

all with the color frame's header, in its optical frame. Nothing is computed for a frame when
nobody subscribes to any of them; each has an ``object.<name>`` parameter to switch it off.
The status says, for every answered pair, found or why not (``runtime.object_status``: the
statuses, the stale rule, the confidence figures and the depth noise model; fields in
``object_messages.status_array``), so that the absence of a target is said, never implied by
silence.

``DepthRegistration`` re-renders depth from its own camera into the color camera
(``runtime.geometry.register_depth``) when ``depth_camera_info_topic`` is set: from the depth and
color CameraInfos and the depth-to-color transform, taken from tf when tf2_ros is importable (on a
robot), at the color image's stamp as depth_image_proc's register does, waiting at most
``depth_to_color.tf_timeout_s``; else, or when tf has no such transform (counted as
``depth_to_color.tf_failures``), from the ``depth_to_color.*`` parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped, PoseStamped, Vector3Stamped
from rclpy.node import Node
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, PointCloud2
from visualization_msgs.msg import MarkerArray

from ..runtime.geometry import (
    CameraModel,
    GeometryConfig,
    object_geometry,
    register_depth,
    rigid_transform,
)
from ..runtime.object_status import (
    DEPTH_NOT_REGISTERED,
    ERROR,
    NO_CAMERA_INFO,
    DepthNoise,
    CentroidJitter,
    StaleRule,
    object_figures,
)
from .conversions import check_camera_info
from .object_messages import (
    ObjectMessageOptions,
    object_messages,
    status_array,
    vision_msgs_available,
)
from .params import ParamSpec

# The node's counter of failed tf lookups (DepthRegistration's on_lookup_failure).
TF_FAILURES = "depth_to_color.tf_failures"
# The node's counter of frames whose 3D outputs were wanted but skipped: depth_source estimated
# has no metric scale, and a point in the estimator's units published as metres would be wrong.
NO_METRIC_DEPTH = "object.no_metric_depth"

# The switches: ObjectMessageOptions' fields, each an ``object.<name>`` parameter.
OUTPUTS = ("cloud", "centroid", "box", "markers", "detections", "status")

OBJECT_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("object.cloud", True, "publish the object's points (object/points)"),
    ParamSpec("object.centroid", True, "publish the object's centroid (object/centroid)"),
    ParamSpec(
        "object.box", True, "publish the object's oriented box (object/box and object/box_size)"
    ),
    ParamSpec(
        "object.markers", True, "publish RViz markers of the box and centroid (object/markers)"
    ),
    ParamSpec(
        "object.detections",
        True,
        "publish vision_msgs/Detection3DArray when vision_msgs is importable",
    ),
    ParamSpec(
        "object.status",
        True,
        "publish the object's status and confidence figures for every answered pair "
        "(object/status)",
    ),
    ParamSpec(
        "object.stale_after_s",
        1.0,
        "a frame without an object is 'stale' while the last one found is younger than this, "
        "seconds of input stamps (the target presumably hidden); 0: never stale",
    ),
    ParamSpec(
        "object.depth_noise.a_m",
        0.0012,
        "depth noise sigma_z(z) = a + b (z - c)^2: a, metres (default: Kinect v1, Nguyen 2012)",
    ),
    ParamSpec(
        "object.depth_noise.b_per_m", 0.0019, "depth noise: b, metres per square metre (1/m)"
    ),
    ParamSpec("object.depth_noise.c_m", 0.4, "depth noise: c, metres"),
    ParamSpec(
        "object.components",
        "largest",
        "largest: the largest depth-continuous part; all: every part",
    ),
    ParamSpec(
        "object.depth_step_ratio",
        0.05,
        "neighbours whose depths differ by more than this fraction: an edge",
    ),
    ParamSpec(
        "object.min_component_px",
        20,
        "components=all: parts smaller than this (pixels) are dropped",
    ),
    ParamSpec("object.min_points", 10, "fewer valid points than this: no object"),
    ParamSpec(
        "object.box_stride_px", 4, "the box is fitted to the rim and every n-th pixel inside"
    ),
    ParamSpec(
        "object.cloud_voxel_m",
        0.005,
        "one cloud point per cube of this side, metres; 0: every point",
    ),
    ParamSpec(
        "object.cloud_max_points", 20000, "at most this many cloud points (then every k-th)"
    ),
    ParamSpec(
        "depth_camera_info_topic",
        "",
        "depth CameraInfo, relative to each camera namespace; set it when depth is not "
        "registered to color (it is then registered here); empty: depth is aligned",
    ),
    ParamSpec(
        "depth_to_color.from_tf",
        True,
        "look the depth-to-color transform up in tf when tf2_ros is there",
    ),
    ParamSpec(
        "depth_to_color.tf_timeout_s",
        0.05,
        "how long to wait for tf to have the transform at the color image's stamp, seconds "
        "(then the parameters' transform is used); 0: no wait",
    ),
    ParamSpec(
        "depth_to_color.translation_m",
        [0.0, 0.0, 0.0],
        "depth optical frame's origin in the color optical frame, metres (without tf)",
    ),
    ParamSpec(
        "depth_to_color.rotation_xyzw",
        [0.0, 0.0, 0.0, 1.0],
        "depth optical frame's orientation in the "
        "color optical frame, quaternion x, y, z, w (without tf)",
    ),
)


@dataclass(frozen=True)
class ObjectParams:
    """The ``object.*``, ``depth_camera_info_topic`` and ``depth_to_color.*`` parameters."""

    geometry: GeometryConfig
    messages: ObjectMessageOptions
    depth_camera_info_topic: str
    from_tf: bool
    tf_timeout_s: float  # the longest wait for tf's transform at a frame's stamp
    color_from_depth: np.ndarray  # (4, 4), from the parameters
    stale_after_s: float = 1.0  # the status' stale rule (runtime.object_status.StaleRule)
    depth_noise: DepthNoise = DepthNoise()
    jitter_frames: int = 10  # found frames the centroid's jitter is taken over (CentroidJitter)


def read_object_parameters(values: dict) -> ObjectParams:
    """Parameter values by name -> ObjectParams; ValueError naming the parameter that is wrong."""
    fields = ("components", "depth_step_ratio", "min_component_px", "min_points", "box_stride_px")
    try:
        geometry = GeometryConfig(**{name: values[f"object.{name}"] for name in fields})
    except ValueError as e:
        raise ValueError(f"parameters object.*: {e}") from None
    if values["object.cloud_voxel_m"] < 0 or values["object.cloud_max_points"] < 0:
        raise ValueError(
            "parameters object.cloud_voxel_m and object.cloud_max_points must be at least 0"
        )
    if not values["object.stale_after_s"] >= 0:
        raise ValueError("parameter object.stale_after_s must be at least 0")
    try:
        noise = DepthNoise(
            *(values[f"object.depth_noise.{name}"] for name in ("a_m", "b_per_m", "c_m"))
        )
    except ValueError as e:
        raise ValueError(f"parameters object.depth_noise.*: {e}") from None
    if not values["depth_to_color.tf_timeout_s"] >= 0:
        raise ValueError("parameter depth_to_color.tf_timeout_s must be at least 0")
    translation = values["depth_to_color.translation_m"]
    rotation = values["depth_to_color.rotation_xyzw"]
    if len(translation) != 3 or len(rotation) != 4 or not np.linalg.norm(rotation) > 0:
        raise ValueError(
            "parameters depth_to_color.*: need 3 translation values and a non-zero "
            "quaternion x, y, z, w"
        )
    messages = ObjectMessageOptions(
        **{name: values[f"object.{name}"] for name in OUTPUTS},
        cloud_voxel_m=values["object.cloud_voxel_m"],
        cloud_max_points=values["object.cloud_max_points"],
    )
    return ObjectParams(
        geometry,
        messages,
        values["depth_camera_info_topic"].strip("/"),
        values["depth_to_color.from_tf"],
        values["depth_to_color.tf_timeout_s"],
        rigid_transform(translation, rotation),
        values["object.stale_after_s"],
        noise,
    )


def camera_model(info: CameraInfo) -> CameraModel:
    """A CameraInfo message -> CameraModel of the image it describes: binning and region of
    interest applied to K as image_geometry does (ValueError when unusable, e.g. K all zero)."""
    bin_x, bin_y = max(int(info.binning_x), 1), max(int(info.binning_y), 1)
    roi = info.roi
    width = (roi.width or info.width) // bin_x
    height = (roi.height or info.height) // bin_y
    k = [float(v) for v in info.k]
    k[0], k[2] = k[0] / bin_x, (k[2] - roi.x_offset) / bin_x
    k[4], k[5] = k[4] / bin_y, (k[5] - roi.y_offset) / bin_y
    return CameraModel.from_camera_info(width, height, k, info.d, info.distortion_model)


class ObjectOutputs:
    """One stream's 3D publishers, beside its mask topic (``mask_topic``: ``.../mask``)."""

    def __init__(self, node: Node, mask_topic: str, qos, params: ObjectParams) -> None:
        base = mask_topic.rsplit("/", 1)[0] + "/object" if "/" in mask_topic else "object"
        self._node = node
        self.params = params
        self.frames = 0  # frames whose 3D outputs were computed (someone listened)
        self.stale = StaleRule(params.stale_after_s)  # the status over time
        self.jitter = CentroidJitter(params.jitter_frames)  # the centroid's stability
        self._camera: tuple[tuple, CameraModel] | None = None  # (CameraInfo's fields, its model)
        kinds = {
            "cloud": ("points", PointCloud2),
            "centroid": ("centroid", PointStamped),
            "pose": ("box", PoseStamped),
            "size": ("box_size", Vector3Stamped),
            "markers": ("markers", MarkerArray),
        }
        if params.messages.detections and vision_msgs_available():
            from vision_msgs.msg import Detection3DArray

            kinds["detections"] = ("detections", Detection3DArray)
        kinds["status"] = ("status", DiagnosticArray)
        switch = {"pose": "box", "size": "box"}
        overrides = QoSOverridingOptions.with_default_policies()  # qos_overrides.* parameters
        self.publishers = {
            field: node.create_publisher(
                kind, f"{base}/{name}", qos, qos_overriding_options=overrides
            )
            for field, (name, kind) in kinds.items()
            if getattr(params.messages, switch.get(field, field))
        }

    def listening(self) -> bool:
        """Whether anyone subscribes to one of these outputs now."""
        return any(p.get_subscription_count() for p in self.publishers.values())

    def destroy(self) -> None:
        """Destroys the publishers (lifecycle cleanup)."""
        for publisher in self.publishers.values():
            self._node.destroy_publisher(publisher)

    def wanted(self) -> ObjectMessageOptions | None:
        """What to build for this frame: only what someone subscribes to; None when nothing."""
        listened = {
            field
            for field, publisher in self.publishers.items()
            if publisher.get_subscription_count()
        }
        if not listened:
            return None
        box = bool({"pose", "size"} & listened)
        return ObjectMessageOptions(
            cloud="cloud" in listened,
            centroid="centroid" in listened,
            box=box,
            markers="markers" in listened,
            detections="detections" in listened,
            status="status" in listened,
            cloud_voxel_m=self.params.messages.cloud_voxel_m,
            cloud_max_points=self.params.messages.cloud_max_points,
        )

    def publish_frame(
        self,
        header,
        mask: np.ndarray,
        depth_m: np.ndarray,
        rgb: np.ndarray,
        info: CameraInfo | None,
        probability: np.ndarray,
        registered: bool = True,
    ) -> tuple[str, str] | None:
        """Builds and publishes what is wanted for one frame (nothing when nobody listens).

        A mask without valid depth publishes the "no object" messages. The status goes out in
        every case (``registered`` False: depth_not_registered, the depth having been put in the
        color camera with a transform known to be a fallback). Returns None, or (kind, text) when
        nothing could be said: "no_camera_info", "bad_camera_info" (one that does not describe
        the image, or uncalibrated), "error" (anything raised: the 3D outputs never stop the
        masks).
        """
        options = self.wanted()
        if options is None:
            return None
        problem, figures = None, None
        if info is None:
            problem = "no_camera_info", "no color CameraInfo has come (camera_info_topic)"
        else:
            try:
                check_camera_info(info, mask.shape[1], mask.shape[0])
                camera = self._camera_for(info)
            except ValueError as e:  # ImageError is one
                problem = "bad_camera_info", str(e)
        if problem is None:
            try:
                figures = self._publish(header, mask, depth_m, rgb, camera, options, probability)
            except Exception as e:  # noqa: BLE001 - counted by the node; the next frame may work
                problem = "error", f"{type(e).__name__}: {e}"
        if options.status:
            if not registered:
                own = DEPTH_NOT_REGISTERED
            elif problem is not None:
                own = ERROR if problem[0] == "error" else NO_CAMERA_INFO
            else:
                own = figures.own_status()
            self._publish_status(header, own, figures)
        return problem

    def publish_status(self, header, status: str) -> None:
        """The status of a pair answered without 3D outputs (e.g. depth_not_registered for a
        pair whose depth could not be registered; no_metric_depth), if anyone listens to it."""
        publisher = self.publishers.get("status")
        if publisher is not None and publisher.get_subscription_count():
            self._publish_status(header, status, None)

    def _publish_status(self, header, own: str, figures) -> None:
        stamp_s = header.stamp.sec + header.stamp.nanosec * 1e-9
        status = self.stale.status(stamp_s, own)
        centroid = None if figures is None else figures.centroid_m
        jitter = self.jitter.update(stamp_s, status, centroid)
        self.publishers["status"].publish(
            status_array(header, status, own, figures, self.stale.last_good_s, jitter)
        )

    def _publish(self, header, mask, depth_m, rgb, camera: CameraModel, options, probability):
        self.frames += 1
        found = object_geometry(mask, depth_m, camera, self.params.geometry)
        figures = object_figures(mask, probability, depth_m, found, self.params.depth_noise)
        messages = object_messages(found, rgb, header, options, figures)
        for field, publisher in self.publishers.items():
            msg = getattr(messages, field, None)
            if msg is not None:
                publisher.publish(msg)
        return figures

    def _camera_for(self, info: CameraInfo) -> CameraModel:
        roi = info.roi
        key = (
            info.width,
            info.height,
            tuple(info.k),
            tuple(info.d),
            info.distortion_model,
            info.binning_x,
            info.binning_y,
            roi.x_offset,
            roi.y_offset,
            roi.width,
            roi.height,
        )
        if self._camera is None or self._camera[0] != key:
            self._camera = (key, camera_model(info))
        return self._camera[1]


class DepthRegistration:
    """Registers one stream's depth into its color camera; the node feeds it the depth CameraInfo.

    ``transform_lookup(color_frame, depth_frame, stamp, timeout_s)``: the (4, 4) color-from-depth
    transform at ``stamp`` (a builtin_interfaces/Time), from tf on a robot; raises LookupError,
    saying why, when there is none within ``timeout_s``. Without a lookup, or when it fails, the
    parameters' transform is used; ``on_lookup_failure(reason)`` hears of each failure (the node
    counts and warns).
    """

    def __init__(
        self, params: ObjectParams, transform_lookup=None, on_lookup_failure=None
    ) -> None:
        self.params = params
        self.depth_info: CameraInfo | None = None
        self._lookup = transform_lookup
        self._on_lookup_failure = on_lookup_failure
        self.fell_back = False  # the last registration used the parameters after a failed lookup

    def bind(self, color_header, depth_frame: str, color_info: CameraInfo | None):
        """``frame_arrays``' ``register`` for one pair: depth (h, w) metres -> color camera's,
        with the transform at the color header's stamp."""
        return lambda depth_m: self.register(
            depth_m, depth_frame, color_info, color_header.frame_id, color_header.stamp
        )

    def register(
        self,
        depth_m: np.ndarray,
        depth_frame: str,
        color_info: CameraInfo | None,
        color_frame: str,
        stamp,
    ) -> np.ndarray:
        """(h, w) float32 metres in the depth camera -> (H, W) in the color camera, ``stamp``
        the color image's (builtin_interfaces/Time; the lookup's time). Raises ValueError when a
        CameraInfo is missing or unusable."""
        if self.depth_info is None or color_info is None:
            missing = "depth" if self.depth_info is None else "color"
            raise ValueError(
                f"depth is not aligned to color and no {missing} CameraInfo has come yet"
            )
        return register_depth(
            depth_m,
            camera_model(self.depth_info),
            camera_model(color_info),
            self._transform(color_frame, depth_frame, stamp),
        )

    def _transform(self, color_frame: str, depth_frame: str, stamp) -> np.ndarray:
        self.fell_back = False
        if self._lookup is None:
            return self.params.color_from_depth
        try:
            return self._lookup(color_frame, depth_frame, stamp, self.params.tf_timeout_s)
        except LookupError as e:
            self.fell_back = True
            if self._on_lookup_failure is not None:
                self._on_lookup_failure(str(e))
            return self.params.color_from_depth


def tf_lookup(node: Node):
    """A ``transform_lookup`` (see DepthRegistration) from tf2_ros when it is importable (a
    robot's ROS install), else None. Thin on purpose: the tests run without tf2 (they give it a
    stand-in with Humble's ``Buffer.lookup_transform(target, source, time, timeout)``)."""
    try:
        import tf2_ros
    except ImportError:
        return None
    from rclpy.duration import Duration
    from rclpy.time import Time

    buffer = tf2_ros.Buffer()
    node._saliency_tf_listener = tf2_ros.TransformListener(
        buffer, node
    )  # kept alive with the node

    def lookup(color_frame: str, depth_frame: str, stamp, timeout_s: float) -> np.ndarray:
        try:
            t = buffer.lookup_transform(
                color_frame,
                depth_frame,
                Time.from_msg(stamp),
                timeout=Duration(seconds=timeout_s),
            ).transform
        except tf2_ros.TransformException as e:
            raise LookupError(f"{type(e).__name__}: {e}") from None
        return rigid_transform(
            [t.translation.x, t.translation.y, t.translation.z],
            [t.rotation.x, t.rotation.y, t.rotation.z, t.rotation.w],
        )

    return lookup
