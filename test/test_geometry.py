"""The object in 3D against exact geometry: rendered scenes, flying pixels, registration, data.

    .venv/bin/python -m pytest -q test/test_geometry.py

Scenes come from ``scenes.py`` (an analytic ray caster, independent of the code under test). The
tolerances follow from the pixel footprint, the distance between neighbouring samples on a surface
at depth z seen at angle a from its normal: s = z / (f cos a). A mean over the object's pixels is
within a fraction of s of the surface's (holes and the pixels kept or dropped at the rim are a few
per cent of the samples); an extent is found to within one footprint at each end (2 s); a box's
centre to within one.
"""

import cv2
import numpy as np
import pytest
from scenes import Box, Pinhole, Plane, Sphere, add_flying_pixels, render, rotation

from rgbd_saliency_ros.runtime.geometry import (
    CameraModel,
    GeometryConfig,
    matrix_from_quaternion,
    object_geometry,
    pixel_rays,
    project_points,
    quaternion_from_matrix,
    register_depth,
    rigid_transform,
    voxel_downsample,
)

CAMERA = Pinhole(640, 480, 525.0, 525.0, 319.5, 239.5)
MODEL = CameraModel.from_camera_info(640, 480, CAMERA.k(), [0.0] * 5, "plumb_bob")
WALL = Plane((0.0, 0.0, 2.5), (0.05, -0.1, -1.0))  # slightly turned, 2.5 m away


def footprint(z_m: float, cos_angle: float = 1.0) -> float:
    """Metres between neighbouring samples on a surface at depth z seen at that angle."""
    return z_m / (CAMERA.fx * cos_angle)


def with_holes(depth: np.ndarray, seed: int, fraction: float = 0.03) -> np.ndarray:
    """Depth with random small holes (NaN blobs of 1-9 pixels), as real sensors have."""
    gen = np.random.default_rng(seed)
    holes = np.zeros(depth.shape, np.uint8)
    holes[gen.random(depth.shape) < fraction / 5] = 1
    holes = cv2.dilate(holes, np.ones((2, 2), np.uint8))
    out = depth.copy()
    out[holes > 0] = np.nan
    return out


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two lines (sign ignored), degrees."""
    return float(
        np.degrees(np.arccos(min(1.0, abs(a @ b) / np.linalg.norm(a) / np.linalg.norm(b))))
    )


def test_rays_undo_plumb_bob_and_equidistant_distortion():
    """Back-projected pixels, projected forward again by OpenCV's own distortion model, return to
    the same pixels; without distortion the ray is K^-1 (u, v, 1)."""
    k = [600.0, 0.0, 330.0, 0.0, 590.0, 250.0, 0.0, 0.0, 1.0]
    pixels = np.array([[0, 0], [639, 0], [320, 240], [100, 400], [639, 479]], np.float64)
    for model, d in (
        ("plumb_bob", [-0.28, 0.09, 0.001, -0.002, -0.01]),
        ("rational_polynomial", [0.3, -0.1, 0.001, 0.001, 0.02, 0.6, -0.05, 0.01]),
        ("equidistant", [0.05, -0.01, 0.002, -0.001]),
    ):
        camera = CameraModel.from_camera_info(640, 480, k, d, model)
        rays = pixel_rays(camera)[pixels[:, 1].astype(int), pixels[:, 0].astype(int)].astype(
            np.float64
        )
        points = np.column_stack([rays * 1.7, np.full(len(rays), 1.7)])
        if model == "equidistant":
            back, _ = cv2.fisheye.projectPoints(
                points.reshape(-1, 1, 3),
                np.zeros(3),
                np.zeros(3),
                np.array(k).reshape(3, 3),
                np.array(d),
            )
        else:
            back, _ = cv2.projectPoints(
                points, np.zeros(3), np.zeros(3), np.array(k).reshape(3, 3), np.array(d)
            )
        np.testing.assert_allclose(back.reshape(-1, 2), pixels, atol=0.05, err_msg=model)
        np.testing.assert_allclose(
            project_points(points, camera), pixels, atol=0.05, err_msg=model
        )
    plain = pixel_rays(MODEL)
    assert plain[7, 600] == pytest.approx([(600 - 319.5) / 525.0, (7 - 239.5) / 525.0], abs=1e-6)
    with pytest.raises(ValueError, match="not supported"):
        CameraModel.from_camera_info(640, 480, k, [0.1, 0, 0, 0, 0], "some_model")
    with pytest.raises(ValueError, match="focal"):
        CameraModel.from_camera_info(640, 480, [0.0] * 9)  # an uncalibrated CameraInfo


def test_tilted_card_gives_its_centre_edges_and_normal():
    axes = rotation((1, 0, 0), 35) @ rotation((0, 0, 1), 25)
    card = Box((-0.05, 0.03, 1.1), (0.12, 0.07, 0.001), axes)
    scene = render(CAMERA, [WALL, card])
    found = object_geometry(scene.mask(1), with_holes(scene.depth_m, 1), MODEL)
    s = footprint(1.1 + 0.12, np.cos(np.radians(35)))
    assert np.linalg.norm(found.centroid_m - scene.visible_mean(1)) < s / 2
    np.testing.assert_allclose(found.box.size_m, [0.24, 0.14, 0.002], atol=2 * s)
    assert np.linalg.norm(found.box.center_m - card.center) < s
    assert angle_deg(found.box.rotation[:, 2], axes[:, 2]) < np.degrees(np.arctan(2 * s / 0.14))
    assert angle_deg(found.box.rotation[:, 0], axes[:, 0]) < np.degrees(np.arctan(2 * s / 0.24))
    assert np.linalg.det(found.box.rotation) == pytest.approx(1.0)
    np.testing.assert_allclose(
        matrix_from_quaternion(found.box.quaternion_xyzw()), found.box.rotation, atol=1e-9
    )


def test_box_with_three_faces_seen_gives_its_pose_and_size():
    axes = rotation((1, 1, 0), 20)
    box = Box((0.05, 0.02, 1.2), (0.15, 0.1, 0.05), axes)
    scene = render(CAMERA, [WALL, box])
    found = object_geometry(scene.mask(1), with_holes(scene.depth_m, 2), MODEL)
    # The most oblique face seen, and the farthest corner, set the footprint.
    sight = np.asarray(box.center) / np.linalg.norm(box.center)
    s = footprint(1.2 + 0.2, min(abs(axes[:, i] @ sight) for i in range(3)))
    assert np.linalg.norm(found.centroid_m - scene.visible_mean(1)) < s / 2
    np.testing.assert_allclose(found.box.size_m, [0.3, 0.2, 0.1], atol=2 * s)
    assert np.linalg.norm(found.box.center_m - box.center) < s
    for i, length in enumerate((0.3, 0.2, 0.1)):
        assert (
            angle_deg(found.box.rotation[:, i], axes[:, i])
            < np.degrees(np.arctan(2 * s / length)) + 0.5
        )


def test_sphere_gives_its_visible_cap():
    sphere = Sphere((0.1, -0.05, 1.0), 0.1)
    scene = render(CAMERA, [WALL, sphere])
    found = object_geometry(scene.mask(1), with_holes(scene.depth_m, 3), MODEL)
    d = np.linalg.norm(sphere.center)
    s = footprint(d)
    assert np.linalg.norm(found.centroid_m - scene.visible_mean(1)) < s / 2
    limb = 0.1 * np.sqrt(1 - (0.1 / d) ** 2)  # radius of the circle where the sight lines touch
    np.testing.assert_allclose(found.box.size_m[:2], 2 * limb, atol=2 * s)
    # The axis is the line of sight to the centre within 3 degrees (perspective samples the cap
    # unevenly, holes remove normals), which tilts the limb's circle by up to r sin 3 deg.
    tilt = angle_deg(found.box.rotation[:, 2], np.asarray(sphere.center))
    assert tilt < 3.0
    # At the limb the surface runs along the line of sight: the last pixel in is sqrt(2 r s)
    # nearer than the limb itself.
    cap = 0.1 - 0.1**2 / d
    slack = 0.1 * np.sin(np.radians(3.0)) + s
    assert cap - np.sqrt(2 * 0.1 * s) - slack <= found.box.size_m[2] <= cap + slack
    assert np.all(
        np.abs(np.linalg.norm(found.points_m - np.asarray(sphere.center), axis=1) - 0.1) < 1e-4
    )


@pytest.mark.parametrize("target", ["sphere", "box"])
def test_flying_pixels_and_a_spilling_mask_do_not_move_the_centroid(target):
    """Flying pixels two wide all around the object, and a mask grown by three pixels over them
    and onto the wall: the centroid stays within the clean one's tolerance; a plain mean of the
    mask's valid pixels would be far off (the test can fail)."""
    obj = (
        Sphere((0.1, -0.05, 1.0), 0.1)
        if target == "sphere"
        else Box((0.0, 0.05, 1.3), (0.1, 0.08, 0.06), rotation((0, 1, 0), 30))
    )
    scene = render(CAMERA, [WALL, obj])
    depth = add_flying_pixels(scene, 1, np.random.default_rng(4))
    assert np.count_nonzero(depth != scene.depth_m) > 300
    mask = cv2.dilate(scene.mask(1), np.ones((7, 7), np.uint8))
    found = object_geometry(mask, depth, MODEL)
    s = footprint(float(np.nanmax(np.where(scene.ids == 1, scene.depth_m, np.nan))))
    assert np.linalg.norm(found.centroid_m - scene.visible_mean(1)) < s / 2
    assert found.edge_px > 300
    v, u = np.nonzero((mask > 0) & np.isfinite(depth))
    rays = np.column_stack(
        [(u - CAMERA.cx) / CAMERA.fx, (v - CAMERA.cy) / CAMERA.fy, np.ones(len(u))]
    )
    plain = (rays * depth[v, u, None]).mean(axis=0)
    assert np.linalg.norm(plain - scene.visible_mean(1)) > 10 * s


def test_several_blobs_largest_or_all():
    near, far = Sphere((-0.15, 0.0, 0.9), 0.08), Box((0.2, 0.05, 1.4), (0.05, 0.05, 0.05))
    scene = render(CAMERA, [WALL, near, far])
    mask = np.maximum(scene.mask(1), scene.mask(2))
    largest = object_geometry(mask, scene.depth_m, MODEL, GeometryConfig(components="largest"))
    both = object_geometry(mask, scene.depth_m, MODEL, GeometryConfig(components="all"))
    assert (largest.components, both.components) == (1, 2)
    np.testing.assert_allclose(largest.centroid_m, scene.visible_mean(1), atol=footprint(0.9) / 2)
    expected = scene.points_m[(scene.ids == 1) | (scene.ids == 2)].mean(axis=0)
    np.testing.assert_allclose(both.centroid_m, expected, atol=footprint(1.4) / 2)
    assert len(both.points_m) == np.count_nonzero(mask)
    # the points carry their pixels: the cloud can take the image's colours
    assert np.all(scene.ids[both.pixels[:, 1], both.pixels[:, 0]] >= 1)


def test_no_valid_point_gives_no_result():
    scene = render(CAMERA, [WALL, Sphere((0.0, 0.0, 1.0), 0.1)])
    empty = np.zeros((480, 640), np.uint8)
    assert object_geometry(empty, scene.depth_m, MODEL) is None
    assert object_geometry(scene.mask(1), np.full((480, 640), np.nan, np.float32), MODEL) is None
    assert (
        object_geometry(scene.mask(1), np.zeros((480, 640), np.float32), MODEL) is None
    )  # 0 = invalid
    few = np.zeros_like(empty)
    few[240, 320:325] = 255  # five pixels: fewer than min_points
    assert object_geometry(few, scene.depth_m, MODEL) is None
    with pytest.raises(ValueError):
        object_geometry(empty[:, :320], scene.depth_m, MODEL)
    with pytest.raises(ValueError):
        object_geometry(
            empty[:240, :320], scene.depth_m[:240, :320], MODEL
        )  # not the camera's size


def test_quaternions_and_voxel_downsampling():
    for axis, degrees in (
        ((1, 0, 0), 0),
        ((0, 0, 1), 90),
        ((1, 2, 3), 170),
        ((0, 1, 0), 180),
        ((1, -1, 0), 33),
    ):
        r = rotation(axis, degrees)
        q = quaternion_from_matrix(r)
        assert np.linalg.norm(q) == pytest.approx(1.0) and q[3] >= 0
        np.testing.assert_allclose(matrix_from_quaternion(q), r, atol=1e-12)
    half = np.sin(np.radians(45))
    np.testing.assert_allclose(
        quaternion_from_matrix(rotation((0, 0, 1), 90)), [0, 0, half, half], atol=1e-12
    )
    transform = rigid_transform([0.1, 0.2, 0.3], [0, 0, half, half])
    np.testing.assert_allclose(transform @ [1, 0, 0, 1], [0.1, 1.2, 0.3, 1], atol=1e-12)
    grid = np.stack(np.meshgrid(*[np.arange(0, 0.1, 0.001)] * 3), -1).reshape(-1, 3)
    assert len(voxel_downsample(grid, 0.01, 0)) == 1000  # one point per 1 cm cube
    assert len(voxel_downsample(grid, 0.0, 5000)) <= 5000
    assert len(voxel_downsample(grid, 0.0, 0)) == len(grid)


def test_registration_reproduces_the_depth_rendered_in_the_color_camera():
    """Depth at 320x240 from a camera 5 cm to the side and turned 3 degrees, registered into the
    640x480 color camera: where the color camera sees a surface (away from depth edges) the
    registered depth is that surface's; the nearer object hides what is behind it."""
    depth_cam = Pinhole(
        320, 240, 240.0, 242.0, 161.0, 118.0
    )  # wider than color: it sees all of it
    depth_model = CameraModel.from_camera_info(320, 240, depth_cam.k())
    turn = rotation((0, 1, 0), 3) @ rotation((1, 0, 0), -1)
    color_from_depth = np.eye(4)
    color_from_depth[:3, :3], color_from_depth[:3, 3] = turn, [-0.05, 0.004, 0.002]
    scene = [
        WALL,
        Box((0.1, 0.05, 1.3), (0.2, 0.15, 0.1), rotation((0, 1, 0), 25)),
        Sphere((-0.05, 0.0, 0.9), 0.1),
    ]
    color = render(CAMERA, scene)
    # The primitives are given in the color frame; the depth camera sees p_d = R^T (p_c - t).
    seen = render(depth_cam, scene, turn.T, -turn.T @ color_from_depth[:3, 3])
    registered = register_depth(seen.depth_m, depth_model, MODEL, color_from_depth)
    sparse = register_depth(
        seen.depth_m, depth_model, MODEL, color_from_depth, fill_upsampling_holes=False
    )
    away_from_edges = (
        cv2.erode(
            (np.abs(cv2.Laplacian(np.nan_to_num(color.depth_m), cv2.CV_32F)) < 0.02).astype(
                np.uint8
            ),
            np.ones((7, 7), np.uint8),
        )
        > 0
    )
    compare = away_from_edges & np.isfinite(color.depth_m)
    # Depth samples land up to half a color pixel away; on the most tilted surface here that
    # changes depth by under 1 %.
    close = np.abs(registered - color.depth_m) < 0.01 * color.depth_m
    assert np.count_nonzero(close & compare) >= 0.98 * np.count_nonzero(compare)
    assert np.count_nonzero(np.isfinite(sparse) & compare) < 0.5 * np.count_nonzero(
        compare
    )  # the filling matters
    ball = (color.ids == 2) & compare
    assert (
        np.nanmax(np.abs(registered[ball] - color.depth_m[ball])) < 0.01
    )  # not the box or wall behind it
    # The part of the wall the depth camera cannot see from its side stays empty, not filled.
    assert np.isnan(registered).any()


@pytest.fixture(scope="module")
def tum():
    from conftest import tum_rgbd

    rgb, _, metres = tum_rgbd()
    # TUM RGB-D freiburg3: depth registered to color, images undistorted; its published K.
    camera = CameraModel.from_camera_info(640, 480, [535.4, 0, 320.1, 0, 539.2, 247.6, 0, 0, 1])
    return rgb, metres, camera


def test_real_frame_globe_is_a_sphere_cap(tum):
    """TUM's frame: the inflated globe on the shelf (a disc mask inside its outline) gives a cap
    of a sphere: points that fit a sphere to a centimetre, the box of a cap seen from the front."""
    rgb, depth, camera = tum
    mask = np.zeros((480, 640), np.uint8)
    cv2.circle(mask, (110, 57), 48, 255, -1)
    found = object_geometry(mask, depth, camera)
    assert 0.8 * np.count_nonzero(mask & np.isfinite(depth)) <= len(found.points_m)
    # least-squares sphere |p|^2 = 2 c.p + (r^2 - |c|^2), linear in c and that constant
    p = found.points_m.astype(np.float64)
    solution, *_ = np.linalg.lstsq(
        np.column_stack([2 * p, np.ones(len(p))]), (p**2).sum(1), rcond=None
    )
    centre = solution[:3]
    radius = np.sqrt(solution[3] + centre @ centre)
    residual = np.abs(np.linalg.norm(p - centre, axis=1) - radius)
    assert 0.12 < radius < 0.25 and np.sqrt(np.mean(residual**2)) < 0.01
    width, height, depth_extent = found.box.size_m
    assert abs(width - height) < 0.15 * width and 0.3 * width < depth_extent < 0.7 * width
    assert angle_deg(found.box.rotation[:, 2], found.centroid_m) < 15
    u, v = project_points(found.centroid_m[None], camera)[0]
    assert np.hypot(u - 110, v - 57) < 48


def test_real_frame_dice_and_a_mask_spilling_off_it(tum):
    """The yellow foam dice on the desk, by its colour: a cube-like box of 10 to 30 cm, 1.5 to 3 m
    away. A mask grown 4 pixels past it reaches the partition behind (cut off at the depth jump)
    and the desk it stands on (depth-continuous with it, so kept): the centroid moves, but less
    than a plain mean of the grown mask does."""
    rgb, depth, camera = tum
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    mask = np.zeros((480, 640), np.uint8)
    mask[180:260, 100:200] = np.where((r > 150) & (g > 150) & (b < 90), 255, 0)[180:260, 100:200]
    found = object_geometry(mask, depth, camera)
    assert np.all((0.1 < found.box.size_m) & (found.box.size_m < 0.3))
    assert found.box.size_m[0] / found.box.size_m[2] < 1.6
    assert 1.5 < found.centroid_m[2] < 3.0
    grown = cv2.dilate(mask, np.ones((9, 9), np.uint8))
    spilled = object_geometry(grown, depth, camera)
    assert spilled.edge_px > found.edge_px
    v, u = np.nonzero((grown > 0) & np.isfinite(depth))
    plain = (pixel_rays(camera)[v, u] * depth[v, u, None]).mean(axis=0)
    plain_z = depth[v, u].mean()
    moved = np.linalg.norm(spilled.centroid_m - found.centroid_m)
    assert moved < np.linalg.norm(np.append(plain, plain_z) - found.centroid_m)
