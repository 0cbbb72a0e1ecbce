"""The salient object in 3D as ROS messages: pure functions, arrays in, messages out.

    found = object_geometry(mask, depth_m, camera)          # runtime.geometry; None: no object
    out = object_messages(found, rgb, header, ObjectMessageOptions(), figures)
    out.cloud, out.centroid, out.pose, out.size, out.markers, out.detections
    status = status_array(header, "found", "found", figures, last_good_s=None)

Every message takes the color frame's header (its stamp and optical frame). A frame without an
object gives an empty cloud, markers that delete the previous ones and an empty detection array,
so that nothing stale stays on screen or in a consumer's last message; it gives no centroid, pose
or size (those messages cannot say "none": their absence does). ``vision_msgs`` (not among the
PyPI wheels) is imported only when a detection array is asked for; without it ``detections`` is
None.

The status (``status_array``) is a diagnostic_msgs/DiagnosticArray of one DiagnosticStatus, a
standard message with documented fields (an ament_python package cannot define its own):
``name`` "salient_object", ``hardware_id`` the camera frame, ``message`` the status
(``runtime.object_status.STATUSES``), ``level`` OK when found, ERROR on ``error``, WARN otherwise,
and ``values`` (``STATUS_KEYS``, always all of them, numbers as text, "nan" where undefined).
"""

from __future__ import annotations

import array
import math
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import (
    Point,
    PointStamped,
    Pose,
    PoseStamped,
    Quaternion,
    Vector3,
    Vector3Stamped,
)
from sensor_msgs.msg import PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from ..runtime.geometry import ObjectGeometry, OrientedBox, voxel_downsample
from ..runtime.object_status import ERROR, FIGURE_KEYS, FOUND, ObjectFigures

CLASS_ID = "salient_object"  # the class of every Detection3D
# x, y, z float32 and PCL's packed colour: 0x00RRGGBB stored in a float32 field named "rgb".
CLOUD_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
BOX_COLOR = (1.0, 0.55, 0.0, 0.35)  # RGBA, translucent orange
CENTROID_DIAMETER_M = 0.03
CENTROID_COLOR = (1.0, 0.1, 0.1, 1.0)  # RGBA, opaque red
STATUS_NAME = "salient_object"  # the DiagnosticStatus' name
# The status' values: this frame's input stamp (s); frame_status: what this frame alone says (it
# differs from the message only when stale); last_good_stamp_s and last_good_age_s: the last frame
# found (nan: none yet); then the figures of runtime.object_status.ObjectFigures.
STATUS_KEYS = (
    "stamp_s",
    "frame_status",
    "last_good_stamp_s",
    "last_good_age_s",
    *FIGURE_KEYS,
    "centroid_jitter_m",
)


@dataclass(frozen=True)
class ObjectMessageOptions:
    """Which messages to build (the rest cost nothing) and how large the cloud may get."""

    cloud: bool = True
    centroid: bool = True
    box: bool = True  # the pose and the size
    markers: bool = True
    detections: bool = True
    status: bool = True  # the status array (status_array; object_messages does not build it)
    cloud_voxel_m: float = 0.005  # one point per cube of this side; 0: every point
    cloud_max_points: int = 20000  # then every k-th point, so that at most this many remain
    marker_namespace: str = "salient_object"
    marker_lifetime_s: float = 1.0  # RViz drops the markers after this if no newer frame came


@dataclass
class ObjectMessages:
    """The messages of one frame; None where not asked for (or no object, or no vision_msgs)."""

    cloud: PointCloud2 | None = None
    centroid: PointStamped | None = None
    pose: PoseStamped | None = None
    size: Vector3Stamped | None = None
    markers: MarkerArray | None = None
    detections: Any = None  # vision_msgs/Detection3DArray


def object_messages(
    found: ObjectGeometry | None,
    rgb: np.ndarray,
    header: Header,
    options: ObjectMessageOptions,
    figures: ObjectFigures | None = None,
) -> ObjectMessages:
    """Messages of one frame's object (``found``, None when there is none).

    Args:
        rgb: (H, W, 3) uint8 RGB color frame, for the cloud's colours.
        header: the color frame's header (referenced, not copied).
        figures: the frame's confidence figures: the detection's pose covariance (else zero).
    """
    out = ObjectMessages()
    if options.cloud:
        if found is None:
            out.cloud = point_cloud(
                np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), header
            )
        else:
            keep = voxel_downsample(
                found.points_m, options.cloud_voxel_m, options.cloud_max_points
            )
            u, v = found.pixels[keep, 0], found.pixels[keep, 1]
            out.cloud = point_cloud(found.points_m[keep], rgb[v, u], header)
    if found is not None and options.centroid:
        out.centroid = PointStamped(header=header, point=Point(**_xyz(found.centroid_m)))
    if found is not None and options.box:
        out.pose = PoseStamped(header=header, pose=box_pose(found.box))
        out.size = Vector3Stamped(header=header, vector=Vector3(**_xyz(found.box.size_m)))
    if options.markers:
        out.markers = marker_array(
            found, header, options.marker_namespace, options.marker_lifetime_s
        )
    if options.detections:
        covariance = None if figures is None else figures.centroid_covariance_m2
        out.detections = detection_array(found, header, covariance)
    return out


def _xyz(values) -> dict[str, float]:
    return {"x": float(values[0]), "y": float(values[1]), "z": float(values[2])}


def box_pose(box: OrientedBox) -> Pose:
    """The box's centre and orientation (its axes, longest first, as the pose's x, y, z)."""
    qx, qy, qz, qw = box.quaternion_xyzw()
    return Pose(
        position=Point(**_xyz(box.center_m)),
        orientation=Quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
    )


def point_cloud(points_m: np.ndarray, rgb: np.ndarray, header: Header) -> PointCloud2:
    """(N, 3) float32 metres and (N, 3) uint8 RGB -> an unorganised, dense PointCloud2 (height 1)
    with fields x, y, z (FLOAT32) and rgb (FLOAT32 holding 0x00RRGGBB, PCL's and RViz's
    convention)."""
    cloud = np.empty(len(points_m), CLOUD_DTYPE)
    cloud["x"], cloud["y"], cloud["z"] = points_m[:, 0], points_m[:, 1], points_m[:, 2]
    colours = rgb.astype(np.uint32)
    cloud["rgb"] = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    msg = PointCloud2(
        header=header,
        height=1,
        width=len(cloud),
        is_dense=True,
        is_bigendian=sys.byteorder == "big",
        point_step=CLOUD_DTYPE.itemsize,
    )
    msg.fields = [
        PointField(
            name=name, offset=CLOUD_DTYPE.fields[name][1], datatype=PointField.FLOAT32, count=1
        )
        for name in ("x", "y", "z", "rgb")
    ]
    msg.row_step = msg.point_step * msg.width
    data = array.array("B")
    data.frombytes(cloud.astype(CLOUD_DTYPE.newbyteorder("=")).tobytes())  # one copy, native order
    msg.data = data
    return msg


def marker_array(
    found: ObjectGeometry | None, header: Header, namespace: str, lifetime_s: float
) -> MarkerArray:
    """For RViz: the box (a translucent CUBE) and the centroid (a SPHERE); without an object, one
    DELETEALL marker that clears the previous frame's."""
    if found is None:
        return MarkerArray(markers=[Marker(header=header, ns=namespace, action=Marker.DELETEALL)])
    lifetime = _duration(lifetime_s)

    def marker(number: int, kind: int, pose: Pose, scale, rgba) -> Marker:
        return Marker(
            header=header,
            ns=namespace,
            id=number,
            type=kind,
            action=Marker.ADD,
            pose=pose,
            scale=Vector3(**_xyz(scale)),
            lifetime=lifetime,
            color=ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3]),
        )

    centre = Pose(position=Point(**_xyz(found.centroid_m)), orientation=Quaternion(w=1.0))
    return MarkerArray(
        markers=[
            marker(
                0, Marker.CUBE, box_pose(found.box), np.maximum(found.box.size_m, 1e-3), BOX_COLOR
            ),
            marker(1, Marker.SPHERE, centre, [CENTROID_DIAMETER_M] * 3, CENTROID_COLOR),
        ]
    )


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration

    whole = int(seconds)
    return Duration(sec=whole, nanosec=int(round((seconds - whole) * 1e9)))


def vision_msgs_available() -> bool:
    """Whether vision_msgs imports (on a robot's ROS install; not among the PyPI wheels)."""
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def detection_array(
    found: ObjectGeometry | None, header: Header, covariance_m2: np.ndarray | None = None
):
    """vision_msgs/Detection3DArray with the object's box (empty without an object), or None when
    vision_msgs is not importable. Class ``CLASS_ID``, score 1 (the mask is the decision); the
    hypothesis' pose is the centroid, its covariance's position block ``covariance_m2`` ((3, 3)
    m^2, the centroid's), the rest zero (no orientation is claimed)."""
    try:
        from vision_msgs.msg import (
            BoundingBox3D,
            Detection3D,
            Detection3DArray,
            ObjectHypothesisWithPose,
        )
    except ImportError:
        return None
    out = Detection3DArray(header=header)
    if found is None:
        return out
    detection = Detection3D(header=header)
    detection.bbox = BoundingBox3D(
        center=box_pose(found.box), size=Vector3(**_xyz(found.box.size_m))
    )
    hypothesis = ObjectHypothesisWithPose()
    hypothesis.hypothesis.class_id = CLASS_ID
    hypothesis.hypothesis.score = 1.0
    hypothesis.pose.pose.position = Point(**_xyz(found.centroid_m))
    hypothesis.pose.pose.orientation.w = 1.0
    if covariance_m2 is not None and np.all(np.isfinite(covariance_m2)):
        full = np.zeros((6, 6))
        full[:3, :3] = covariance_m2
        hypothesis.pose.covariance = [float(v) for v in full.ravel()]
    detection.results = [hypothesis]
    out.detections = [detection]
    return out


def status_array(
    header: Header,
    status: str,
    frame_status: str,
    figures: ObjectFigures | None,
    last_good_s: float | None,
    jitter_m: float = math.nan,
) -> DiagnosticArray:
    """The frame's status as a DiagnosticArray (the module docstring's fields).

    Args:
        header: the color frame's (its stamp is the input stamp; its frame the hardware id).
        status: the frame's status (after the stale rule); frame_status: this frame's own.
        figures: its confidence figures; None where none were computed (all "nan", count 0).
        last_good_s: the stamp of the last frame found, seconds; None: none yet.
        jitter_m: the centroid's jitter over recent frames (``CentroidJitter``), metres.
    """
    stamp_s = header.stamp.sec + header.stamp.nanosec * 1e-9
    last = math.nan if last_good_s is None else last_good_s
    if figures is None:  # nothing computed: no point, every figure undefined
        numbers = dict.fromkeys(FIGURE_KEYS, math.nan) | {"point_count": 0}
    else:
        numbers = figures.values()
    values = {
        "stamp_s": f"{stamp_s:.9f}",
        "frame_status": frame_status,
        "last_good_stamp_s": f"{last:.9f}",
        "last_good_age_s": _number(stamp_s - last),
        **{k: str(v) if k == "point_count" else _number(v) for k, v in numbers.items()},
        "centroid_jitter_m": _number(jitter_m),
    }
    level = {FOUND: DiagnosticStatus.OK, ERROR: DiagnosticStatus.ERROR}.get(
        status, DiagnosticStatus.WARN
    )
    return DiagnosticArray(
        header=header,
        status=[
            DiagnosticStatus(
                level=level,
                name=STATUS_NAME,
                message=status,
                hardware_id=header.frame_id,
                values=[KeyValue(key=k, value=values[k]) for k in STATUS_KEYS],
            )
        ],
    )


def _number(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{float(value):.6g}"
