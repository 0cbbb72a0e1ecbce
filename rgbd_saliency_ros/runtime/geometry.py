"""The salient object in 3D: mask + metric depth + intrinsics -> points, centroid, oriented box.

No ROS, no torch: numpy and OpenCV. Everything is in the color camera's optical frame (x right,
y down, z forward, metres), the frame of the mask.

    camera = CameraModel.from_camera_info(msg.width, msg.height, msg.k, msg.d,
                                          msg.distortion_model)
    found = object_geometry(mask, depth_m, camera, GeometryConfig(components="largest"))
    if found is not None:  # None: no valid point under the mask (never a stale result)
        found.centroid_m, found.box.center_m, found.box.size_m, found.box.quaternion_xyzw()
    depth_in_color = register_depth(depth_m, depth_camera, color_camera, color_from_depth)

Back-projection: a pixel (u, v) with depth z (REP 118: z along the optical axis, not the range)
becomes z * (x, y, 1), where (x, y) is the pixel's normalised ray. Without distortion (all of D
zero, the usual case for aligned RealSense and Kinect color) the ray is K^-1 (u, v, 1). With a
non-zero D the pixel is first undistorted (``cv2.undistortPointsIter`` for plumb_bob and
rational_polynomial, ``cv2.fisheye.undistortPoints`` for equidistant), so points from a raw
(unrectified) image land where the lens saw them; other models with a non-zero D are refused.
The rays of a camera are computed once and cached.

Borders: depth sensors report "flying pixels" between an object and what is behind it, with depths
in between, and a mask that spills a pixel or two past the object reaches them and the background.
Both are handled by depth-discontinuity rejection followed by connected parts: of two 4-neighbours
whose depths differ by more than ``depth_step_ratio`` of the nearer one, the farther is dropped
(flying pixels are always farther than the object they border, so the object's own rim survives);
the remaining mask pixels are split into 4-connected, hence depth-continuous, parts; ``components``
keeps the largest part (the object, cut from background that the mask spilled onto) or every part
of at least ``min_component_px`` pixels (several objects; specks of noise are dropped). A
statistical outlier filter was not chosen because it needs neighbour searches in 3D (too slow for a
few milliseconds per frame without a KD-tree library) and it keeps whole background patches that
are dense; eroding the mask was not chosen because it loses thin objects and biases the rim.
Holes (NaN) are simply absent points.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

COMPONENTS = ("largest", "all")
# Models whose non-zero D this module undoes; zero D of any model is a plain pinhole.
DISTORTION_MODELS = ("plumb_bob", "rational_polynomial", "equidistant")
_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-9)
SEAM_PX = 0.25  # registration: margin of each depth pixel's footprint, color pixels
MAX_SPLAT_PX = 8  # registration: a depth pixel covers at most this many color pixels per side


@dataclass(frozen=True)
class CameraModel:
    """A camera as sensor_msgs/CameraInfo describes it (K, D and the distortion model).

    Frozen and hashable: its pixel rays are cached per camera (``pixel_rays``).
    """

    width: int  # pixels
    height: int
    k: tuple[float, ...]  # 3x3 row-major: fx 0 cx / 0 fy cy / 0 0 1, pixels
    d: tuple[float, ...] = ()
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if len(self.k) != 9 or not all(np.isfinite(self.k)):
            raise ValueError(f"K must hold 9 finite values, got {self.k}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(
                f"focal lengths must be positive, got fx {self.fx}, fy {self.fy} "
                "(an uncalibrated CameraInfo?)"
            )
        if self.distorted and self.distortion_model not in DISTORTION_MODELS:
            raise ValueError(
                f"distortion model {self.distortion_model!r} with non-zero D is not supported "
                f"(supported: {', '.join(DISTORTION_MODELS)}); rectify the image first"
            )

    @classmethod
    def from_camera_info(
        cls, width, height, k, d=(), distortion_model: str = "plumb_bob"
    ) -> CameraModel:
        """From CameraInfo's fields (any sequences of numbers). Raises ValueError."""
        return cls(
            int(width),
            int(height),
            tuple(float(x) for x in k),
            tuple(float(x) for x in d),
            distortion_model or "plumb_bob",
        )

    @classmethod
    def pinhole(
        cls, width: int, height: int, fx: float, fy: float, cx: float, cy: float
    ) -> CameraModel:
        """A camera without distortion."""
        return cls(width, height, (fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0))

    fx = property(lambda self: self.k[0])
    fy = property(lambda self: self.k[4])
    cx = property(lambda self: self.k[2])
    cy = property(lambda self: self.k[5])

    @property
    def matrix(self) -> np.ndarray:
        """K as (3, 3) float64."""
        return np.array(self.k, np.float64).reshape(3, 3)

    @property
    def distorted(self) -> bool:
        return any(x != 0.0 for x in self.d)


@functools.lru_cache(maxsize=8)
def pixel_rays(camera: CameraModel) -> np.ndarray:
    """(H, W, 2) float32 normalised rays (x, y) of every pixel centre: the point at depth z is
    z * (x, y, 1). Distortion undone when D is non-zero (see the module docstring). Cached."""
    u, v = np.meshgrid(
        np.arange(camera.width, dtype=np.float64), np.arange(camera.height, dtype=np.float64)
    )
    rays = undistort_pixels(np.stack([u, v], axis=-1).reshape(-1, 2), camera)
    rays = rays.reshape(camera.height, camera.width, 2).astype(np.float32)
    rays.flags.writeable = False  # shared by every caller through the cache
    return rays


def undistort_pixels(pixels: np.ndarray, camera: CameraModel) -> np.ndarray:
    """(N, 2) pixel coordinates (u, v) -> (N, 2) float64 normalised rays (x, y)."""
    pixels = np.asarray(pixels, np.float64).reshape(-1, 2)
    if not camera.distorted:
        return (pixels - (camera.cx, camera.cy)) / (camera.fx, camera.fy)
    d = np.array(camera.d, np.float64)
    src = pixels.reshape(-1, 1, 2)
    if camera.distortion_model == "equidistant":
        return cv2.fisheye.undistortPoints(src, camera.matrix, d[:4]).reshape(-1, 2)
    return cv2.undistortPointsIter(src, camera.matrix, d, None, None, _UNDISTORT_CRITERIA).reshape(
        -1, 2
    )


def project_points(points_m: np.ndarray, camera: CameraModel) -> np.ndarray:
    """(N, 3) points in the camera's optical frame (z > 0) -> (N, 2) float64 pixels (u, v), with
    the camera's distortion applied when D is non-zero."""
    points_m = np.asarray(points_m, np.float64).reshape(-1, 3)
    if not camera.distorted:
        z = points_m[:, 2]
        return np.stack(
            [
                camera.fx * points_m[:, 0] / z + camera.cx,
                camera.fy * points_m[:, 1] / z + camera.cy,
            ],
            1,
        )
    zero = np.zeros(3)
    d = np.array(camera.d, np.float64)
    if camera.distortion_model == "equidistant":
        out, _ = cv2.fisheye.projectPoints(
            points_m.reshape(-1, 1, 3), zero, zero, camera.matrix, d[:4]
        )
    else:
        out, _ = cv2.projectPoints(points_m, zero, zero, camera.matrix, d)
    return out.reshape(-1, 2)


@dataclass(frozen=True)
class GeometryConfig:
    """How the object's points are chosen (the node's ``geometry.*`` parameters)."""

    components: Literal["largest", "all"] = "largest"
    # Two 4-neighbours whose depths differ by more than this fraction of the nearer one: an edge,
    # and the farther is dropped. A surface tilted by an angle a from facing the camera steps by
    # about z tan(a) / f per pixel: 0.05 keeps surfaces up to 87 degrees whole at f = 525 px, above
    # the noise of structured-light and stereo sensors (1-2 %), below any object/background gap.
    depth_step_ratio: float = 0.05
    min_component_px: int = 20  # "all": depth-continuous parts smaller than this are specks
    min_points: int = 10  # fewer points than this in the kept parts: no result
    # The box is fitted to the rim of the kept parts and every box_stride_px-th pixel inside (in
    # both directions), which bounds its cost; normals span 2 box_stride_px pixels.
    box_stride_px: int = 4

    def __post_init__(self) -> None:
        if self.components not in COMPONENTS:
            raise ValueError(
                f"components must be one of {', '.join(COMPONENTS)}, got {self.components!r}"
            )
        if not self.depth_step_ratio > 0:
            raise ValueError(f"depth_step_ratio must be positive, got {self.depth_step_ratio}")
        if self.box_stride_px < 1:
            raise ValueError(f"box_stride_px must be at least 1, got {self.box_stride_px}")
        if self.min_component_px < 1 or self.min_points < 3:
            raise ValueError(
                "need min_component_px >= 1 and min_points >= 3 (a box needs three points)"
            )


@dataclass(frozen=True)
class OrientedBox:
    """A 3D box: centre, size along its own axes, and those axes in the camera frame."""

    center_m: np.ndarray  # (3,) float64, metres
    size_m: np.ndarray  # (3,) float64, metres, along rotation's columns, longest first
    rotation: np.ndarray  # (3, 3) float64, columns: the box axes (a right-handed rotation)

    def quaternion_xyzw(self) -> np.ndarray:
        """The rotation as a unit quaternion (x, y, z, w), w >= 0 (geometry_msgs order)."""
        return quaternion_from_matrix(self.rotation)


@dataclass(frozen=True)
class ObjectGeometry:
    """The object's 3D description in the color optical frame."""

    points_m: np.ndarray  # (N, 3) float32, metres
    pixels: np.ndarray  # (N, 2) int32 (u, v): each point's pixel in the color image
    centroid_m: np.ndarray  # (3,) float64: mean of the points, metres
    box: OrientedBox
    components: int  # depth-continuous parts kept
    edge_px: int  # valid mask pixels dropped as the far side of a depth discontinuity


def object_geometry(
    mask: np.ndarray,
    depth_m: np.ndarray,
    camera: CameraModel,
    config: GeometryConfig | None = None,
) -> ObjectGeometry | None:
    """The object under ``mask``: its points, centroid and oriented box.

    Args:
        mask: (H, W) nonzero inside (uint8 0/255 or bool), the color image's size.
        depth_m: (H, W) float32 metres aligned to the color image; NaN, inf and <= 0 invalid.
        camera: the color camera (its size must be (W, H)).
        config: edge rejection and which parts to keep.

    Returns:
        None when fewer than ``min_points`` valid points remain, else ObjectGeometry.

    Raises:
        ValueError: shapes that disagree with each other or with the camera.
    """
    config = config or GeometryConfig()
    if mask.shape != depth_m.shape or mask.ndim != 2:
        raise ValueError(f"mask {mask.shape} and depth {depth_m.shape} must be the same (H, W)")
    if (camera.width, camera.height) != (mask.shape[1], mask.shape[0]):
        raise ValueError(
            f"camera is {camera.width}x{camera.height}, the images {mask.shape[1]}x{mask.shape[0]}"
        )
    roi = _mask_roi(mask, depth_m)
    if roi is None:
        return None
    depth, valid, (x, y) = roi
    keep = valid & ~far_side_of_edges(depth, config.depth_step_ratio)
    chosen, parts = _choose_components(keep, config)
    if chosen is None or np.count_nonzero(chosen) < config.min_points:
        return None
    rays = pixel_rays(camera).reshape(-1, 2)

    def points_at(v: np.ndarray, u: np.ndarray) -> np.ndarray:  # (N, 3) float32 of ROI pixels
        z = depth[v, u]
        out = np.empty((len(v), 3), np.float32)
        np.multiply(
            rays.take((v + y) * camera.width + (u + x), axis=0), z[:, None], out=out[:, :2]
        )
        out[:, 2] = z
        return out

    v, u = np.nonzero(chosen)
    points = points_at(v, u)
    samples, normals = _box_samples(points_at, chosen, config.box_stride_px)
    return ObjectGeometry(
        points,
        np.stack([u + x, v + y], 1).astype(np.int32),
        _mean(points),
        oriented_box(samples, normals),
        parts,
        int(np.count_nonzero(valid & ~keep)),
    )


def _mask_roi(
    mask: np.ndarray, depth_m: np.ndarray
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """The mask's bounding box, where all the work is: (depth (h, w) float32 metres with NaN
    where invalid, valid (h, w) bool: inside the mask with valid depth, (x, y) of the box's
    corner in the image); None for an empty mask."""
    inside = np.ascontiguousarray(mask, dtype=np.uint8)
    x, y, w, h = cv2.boundingRect(inside)
    if w == 0:
        return None
    rows, cols = slice(y, y + h), slice(x, x + w)
    with np.errstate(invalid="ignore"):
        depth = np.where(depth_m[rows, cols] > 0, depth_m[rows, cols], np.nan).astype(
            np.float32, copy=False
        )
    return depth, np.isfinite(depth) & (inside[rows, cols] > 0), (x, y)


def _mean(points: np.ndarray) -> np.ndarray:
    """(3,) float64 mean of (N, 3) points (a product with ones: 10x numpy's strided mean)."""
    return np.ones(len(points)) @ points.astype(np.float64) / len(points)


def far_side_of_edges(depth_m: np.ndarray, ratio: float) -> np.ndarray:
    """(H, W) bool: pixels with a 4-neighbour nearer than themselves by more than ``ratio`` of the
    neighbour's depth. ``depth_m``: (H, W) float32 metres, NaN invalid (never an edge)."""
    far = np.zeros(depth_m.shape, bool)
    with np.errstate(invalid="ignore"):
        for a, b, far_a, far_b in (
            (depth_m[:, :-1], depth_m[:, 1:], far[:, :-1], far[:, 1:]),
            (depth_m[:-1], depth_m[1:], far[:-1], far[1:]),
        ):
            step = np.abs(a - b) > ratio * np.fmin(a, b)  # NaN compares False
            far_a |= step & (a > b)
            far_b |= step & (b > a)
    return far


def _choose_components(keep: np.ndarray, config: GeometryConfig) -> tuple[np.ndarray | None, int]:
    """The 4-connected parts of ``keep`` chosen by ``config``: (bool mask, how many parts)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(keep.view(np.uint8), connectivity=4)
    if count <= 1:
        return None, 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    if config.components == "largest":
        return labels == 1 + int(np.argmax(areas)), 1
    wanted = 1 + np.flatnonzero(areas >= config.min_component_px)
    if wanted.size == 0:
        return None, 0
    lookup = np.zeros(count, bool)
    lookup[wanted] = True
    return lookup[labels], int(wanted.size)


def _box_samples(points_at, chosen: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """The points a box needs, and surface normals.

    Points: every pixel on the rim of the chosen parts (where the extremes are) and every
    ``stride``-th pixel inside, in both directions: the box of a large object costs what a small
    one does. Normals: at those inside pixels whose neighbours ``stride`` away on all four sides
    are chosen too, from the cross product of the central differences (a ``2 stride`` baseline
    averages the sensor's depth steps). Returns (N, 3) float64 points, (M, 3) float64 unit normals.
    """
    rim = chosen & ~cv2.erode(
        chosen.view(np.uint8), np.ones((3, 3), np.uint8), borderValue=0
    ).view(bool)
    grid = np.zeros_like(chosen)
    grid[::stride, ::stride] = True
    v, u = np.nonzero(rim | (grid & chosen))
    samples = points_at(v, u).astype(np.float64)
    h, w = chosen.shape
    v, u = np.nonzero(grid & chosen)
    ok = (v >= stride) & (v < h - stride) & (u >= stride) & (u < w - stride)
    v, u = v[ok], u[ok]
    ok = (
        chosen[v - stride, u]
        & chosen[v + stride, u]
        & chosen[v, u - stride]
        & chosen[v, u + stride]
    )
    v, u = v[ok], u[ok]
    centre = points_at(v, u).astype(np.float64)
    steps = [
        points_at(v + dv, u + du) - centre
        for dv, du in ((0, stride), (0, -stride), (stride, 0), (-stride, 0))
    ]
    # A pixel whose two sides do not continue each other straddles an edge: its normal would be
    # a mix of two faces' and tilt the box.
    flat = (np.einsum("ij,ij->i", _unit(steps[0]), -_unit(steps[1])) > STRAIGHT_COS) & (
        np.einsum("ij,ij->i", _unit(steps[2]), -_unit(steps[3])) > STRAIGHT_COS
    )
    normals = _unit(np.cross(steps[0] - steps[1], steps[2] - steps[3]))[flat]
    return samples, normals[np.isfinite(normals).all(axis=1)]


STRAIGHT_COS = np.cos(np.radians(20.0))  # sides within 20 degrees of each other: on one face


def _unit(vectors: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def oriented_box(points_m: np.ndarray, normals: np.ndarray | None = None) -> OrientedBox:
    """A tight oriented box around (N, 3) points (N >= 1), metres.

    Third axis: the dominant surface normal, the eigenvector of the largest eigenvalue of the sum
    of n n^T over ``normals`` ((M, 3) unit vectors; for a box whose faces are seen, exactly the
    normal of the face seen most; for a sphere, the line of sight). Without three normals, the
    points' direction of least variance. The other two axes: the minimum-area rectangle
    (``cv2.minAreaRect``) of the points projected across the third. Unlike a box from the
    principal axes of the points, this follows neither the point density (which perspective makes
    uneven) nor the shape of the visible part (an L of two faces): a card or a box gets its edges.
    """
    points = np.asarray(points_m, np.float64)
    mean = _mean(points)
    centred = points - mean
    if normals is not None and len(normals) >= 3:
        _, vectors = np.linalg.eigh(normals.T @ normals)
        normal = vectors[:, 2]
    else:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        normal = vectors[:, 0]
    helper = np.eye(3)[np.argmin(np.abs(normal))]  # any direction not along the normal
    plane = np.stack([np.cross(normal, helper), np.cross(normal, np.cross(normal, helper))], 1)
    plane /= np.linalg.norm(plane, axis=0)
    (cu, cv), (su, sv), angle = cv2.minAreaRect((centred @ plane).astype(np.float32))
    a = np.radians(angle)
    first = plane @ np.array([np.cos(a), np.sin(a)])
    second = plane @ np.array([-np.sin(a), np.cos(a)])
    along = centred @ normal
    low, high = along.min(), along.max()
    centre = mean + plane @ np.array([cu, cv]) + normal * (low + high) / 2
    return _canonical_box(
        centre, np.array([su, sv, high - low], np.float64), np.stack([first, second, normal], 1)
    )


def _canonical_box(centre: np.ndarray, size: np.ndarray, rotation: np.ndarray) -> OrientedBox:
    """Axes ordered longest first, the first two pointing where their largest component is
    positive, the third completing a right-handed frame: one box, one description."""
    order = np.argsort(-size, kind="stable")
    size, rotation = size[order], rotation[:, order]
    for j in range(2):
        if rotation[np.argmax(np.abs(rotation[:, j])), j] < 0:
            rotation[:, j] = -rotation[:, j]
    rotation[:, 2] = np.cross(rotation[:, 0], rotation[:, 1])
    return OrientedBox(centre, np.maximum(size, 0.0), rotation)


def quaternion_from_matrix(rotation: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) unit quaternion (x, y, z, w) with w >= 0.

    Written here (Shepperd's method, the largest diagonal term first for precision) rather than
    taking scipy for these lines.
    """
    m = np.asarray(rotation, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = s / 4, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    q = np.array(q) / np.linalg.norm(q)
    return -q if q[3] < 0 else q


def matrix_from_quaternion(xyzw) -> np.ndarray:
    """(4,) quaternion (x, y, z, w), normalised here -> (3, 3) rotation matrix."""
    x, y, z, w = np.asarray(xyzw, np.float64) / np.linalg.norm(xyzw)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rigid_transform(translation_m, rotation_xyzw) -> np.ndarray:
    """(4, 4) float64 transform from a translation (metres) and a quaternion (x, y, z, w),
    as a tf2 geometry_msgs/Transform gives them."""
    transform = np.eye(4)
    transform[:3, :3] = matrix_from_quaternion(rotation_xyzw)
    transform[:3, 3] = np.asarray(translation_m, np.float64)
    return transform


def voxel_downsample(points_m: np.ndarray, voxel_m: float, max_points: int) -> np.ndarray:
    """Indices of a subset of (N, 3) points for a cloud of bounded size.

    One point per ``voxel_m`` cube (the first in the input's order; ``voxel_m`` <= 0: every point),
    then every k-th of those so that at most ``max_points`` remain. Returns (M,) int64, sorted.
    """
    index = np.arange(len(points_m))
    if voxel_m > 0 and len(points_m):
        # One integer per cube (21 bits a coordinate: +-1e6 cubes): sorting integers is far faster
        # than numpy's unique over rows.
        cells = np.floor(points_m / np.float32(voxel_m)).astype(np.int64) + (1 << 20)
        keys = (cells[:, 0] << 42) | (cells[:, 1] << 21) | cells[:, 2]
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        first = np.ones(len(keys), bool)
        first[1:] = ordered[1:] != ordered[:-1]
        chosen = np.zeros(len(keys), bool)
        chosen[order[first]] = True
        index = np.flatnonzero(chosen)  # in input order, without sorting again
    if max_points > 0 and len(index) > max_points:
        index = index[:: -(-len(index) // max_points)]
    return index


def register_depth(
    depth_m: np.ndarray,
    depth_camera: CameraModel,
    color_camera: CameraModel,
    color_from_depth: np.ndarray,
    fill_upsampling_holes: bool = True,
) -> np.ndarray:
    """Depth from its own camera re-rendered in the color camera, as depth_image_proc's register.

    Every valid depth pixel is back-projected with the depth camera's K (and D), moved into the
    color optical frame by ``color_from_depth`` and projected with the color camera's K (and D);
    where several land on one color pixel the nearest wins (a z-buffer), so surfaces hidden from
    the color camera do not show through. With ``fill_upsampling_holes`` each depth pixel covers
    the color pixels its footprint projects onto (as depth_image_proc's option of that name), so
    depth of lower resolution than color leaves no holes between its samples.

    Args:
        depth_m: (h, w) float32 metres in the depth camera, NaN / <= 0 invalid.
        depth_camera, color_camera: their models; ``depth_camera`` must be (w, h).
        color_from_depth: (4, 4) transform taking depth-frame points into the color frame (the tf
            of the depth optical frame expressed in the color optical frame).

    Returns:
        (H, W) float32 metres of the color camera, NaN where nothing projects.
    """
    if depth_m.shape != (depth_camera.height, depth_camera.width):
        raise ValueError(
            f"depth {depth_m.shape[1]}x{depth_m.shape[0]} does not match its camera "
            f"{depth_camera.width}x{depth_camera.height}"
        )
    with np.errstate(invalid="ignore"):
        flat = np.flatnonzero(np.isfinite(depth_m) & (depth_m > 0))
    z = depth_m.reshape(-1)[flat].astype(np.float32)
    rays = pixel_rays(depth_camera).reshape(-1, 2)[flat]
    r = np.asarray(color_from_depth, np.float32)
    # R (x z, y z, z) + t, column by column: (N, 3) stacks and mixed-type products cost more here.
    x, y = rays[:, 0], rays[:, 1]
    moved = [z * (r[i, 0] * x + r[i, 1] * y + r[i, 2]) + r[i, 3] for i in range(3)]
    ahead = moved[2] > 0
    moved, z = [m[ahead] for m in moved], z[ahead]
    centre = np.rint(_project_columns(*moved, color_camera))
    if fill_upsampling_holes:
        # The footprint's corners, at the same depth (as depth_image_proc does), half a pixel
        # along the depth camera's rays (taken locally linear, which holds within a pixel).
        half = r[:3, :2] @ (0.5 / np.array([depth_camera.fx, depth_camera.fy], np.float32))
        corners = [
            _project_columns(*(m + sign * half[i] * z for i, m in enumerate(moved)), color_camera)
            for sign in (-1.0, 1.0)
        ]
        # Neighbours at different depths project their shared corner a little apart: a quarter
        # pixel of margin closes those seams, through which what is behind would show.
        low = np.minimum(np.ceil(np.minimum(*corners) - SEAM_PX), centre)
        high = np.maximum(np.ceil(np.maximum(*corners) + SEAM_PX) - 1, centre)
    else:
        low = high = centre
    return _splat_nearest(low, high, moved[2], color_camera.width, color_camera.height)


def _project_columns(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, camera: CameraModel
) -> np.ndarray:
    """``project_points`` for coordinates given as three (N,) columns; (2, N) pixels (u, v)."""
    if camera.distorted:
        return project_points(np.stack([x, y, z], 1), camera).T
    return np.stack([camera.fx * x / z + camera.cx, camera.fy * y / z + camera.cy])


def _splat_nearest(
    low: np.ndarray, high: np.ndarray, z: np.ndarray, width: int, height: int
) -> np.ndarray:
    """Z-buffer: the rectangles [low, high] ((2, N) pixels u, v, inclusive) take the smallest ``z``
    covering them. Returns (height, width) float32, NaN where none."""
    inside = (high[0] >= 0) & (low[0] < width) & (high[1] >= 0) & (low[1] < height)
    low = np.maximum(low[:, inside], 0).astype(np.int64)
    high = np.minimum(high[:, inside], [[width - 1], [height - 1]]).astype(np.int64)
    span = np.minimum(high - low, MAX_SPLAT_PX - 1)  # (2, N) extra pixels along u and v
    z = z[inside]
    base = low[1] * width + low[0]
    buffer = np.full(width * height, np.inf, np.float32)
    # Depth pixels of one footprint size together: one scatter per size, not per covered pixel.
    shape = span[0] * MAX_SPLAT_PX + span[1]
    for key in np.flatnonzero(np.bincount(shape)):
        extra_u, extra_v = divmod(int(key), MAX_SPLAT_PX)
        offsets = (np.arange(extra_v + 1)[:, None] * width + np.arange(extra_u + 1)).ravel()
        same = shape == key
        covered = (base[same, None] + offsets).ravel()
        np.minimum.at(buffer, covered, np.repeat(z[same], offsets.size))
    buffer[np.isinf(buffer)] = np.nan
    return buffer.reshape(height, width)
