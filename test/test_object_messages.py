"""The object's 3D messages from arrays (no spinning): cloud layout, poses, markers, parameters.

.venv/bin/python -m pytest -q test/test_object_messages.py
"""

import numpy as np
import pytest
from scenes import Box, Pinhole, Plane, render, rotation
from sensor_msgs.msg import PointField
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from rgbd_saliency_ros.ros.object_messages import (
    ObjectMessageOptions,
    detection_array,
    object_messages,
    point_cloud,
    vision_msgs_available,
)
from rgbd_saliency_ros.ros.object_outputs import OBJECT_PARAMS, read_object_parameters
from rgbd_saliency_ros.runtime.geometry import CameraModel, matrix_from_quaternion, object_geometry

CAMERA = Pinhole(640, 480, 525.0, 525.0, 319.5, 239.5)


@pytest.fixture(scope="module")
def scene():
    axes = rotation((0, 1, 0), 30)
    box = Box((0.05, 0.02, 1.2), (0.15, 0.1, 0.05), axes)
    rendered = render(CAMERA, [Plane((0, 0, 2.5), (0, 0, -1)), box])
    rgb = np.zeros((480, 640, 3), np.uint8)
    rgb[rendered.ids == 1] = (200, 100, 50)
    model = CameraModel.pinhole(640, 480, CAMERA.fx, CAMERA.fy, CAMERA.cx, CAMERA.cy)
    return object_geometry(rendered.mask(1), rendered.depth_m, model), rgb, axes


def header(stamp_s: float = 12.5) -> Header:
    h = Header(frame_id="camera_color_optical_frame")
    h.stamp.sec, h.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
    return h


def decode_cloud(msg) -> np.ndarray:
    """The cloud's points as a structured array, read from its own field table."""
    sizes = {PointField.FLOAT32: "f4", PointField.UINT32: "u4"}
    dtype = np.dtype(
        {
            "names": [f.name for f in msg.fields],
            "offsets": [f.offset for f in msg.fields],
            "formats": [
                ("<" if not msg.is_bigendian else ">") + sizes[f.datatype] for f in msg.fields
            ],
            "itemsize": msg.point_step,
        }
    )
    return np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)


def test_point_cloud_layout_points_and_colours():
    points = np.array([[0.1, -0.2, 1.5], [0.0, 0.0, 0.5]], np.float32)
    colours = np.array([[255, 0, 10], [1, 2, 3]], np.uint8)
    msg = point_cloud(points, colours, header())
    assert (msg.height, msg.width, msg.point_step, msg.row_step) == (1, 2, 16, 32)
    assert [f.name for f in msg.fields] == ["x", "y", "z", "rgb"] and msg.is_dense
    cloud = decode_cloud(msg)
    np.testing.assert_array_equal(np.stack([cloud["x"], cloud["y"], cloud["z"]], 1), points)
    packed = cloud["rgb"].view(np.uint32)  # PCL packs 0x00RRGGBB into the float32 field
    assert list(packed) == [0xFF000A, 0x010203]
    assert (
        point_cloud(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), header()).width == 0
    )


def test_messages_of_an_object_share_the_header_and_describe_the_box(scene):
    found, rgb, axes = scene
    h = header()
    out = object_messages(
        found, rgb, h, ObjectMessageOptions(cloud_voxel_m=0.01, cloud_max_points=500)
    )
    for msg in (out.cloud, out.centroid, out.pose, out.size, *out.markers.markers):
        assert msg.header.stamp == h.stamp and msg.header.frame_id == "camera_color_optical_frame"
    assert 0 < out.cloud.width <= 500
    cloud = decode_cloud(out.cloud)
    assert set(cloud["rgb"].view(np.uint32)) == {(200 << 16) | (100 << 8) | 50}  # the box's colour
    c = out.centroid.point
    np.testing.assert_allclose([c.x, c.y, c.z], found.centroid_m)
    q = out.pose.pose.orientation
    rotation_m = matrix_from_quaternion([q.x, q.y, q.z, q.w])
    assert abs(rotation_m[:, 0] @ axes[:, 0]) > 0.99  # the pose's x is the box's longest edge
    s = out.size.vector
    np.testing.assert_allclose([s.x, s.y, s.z], [0.3, 0.2, 0.1], atol=0.006)
    cube, sphere = out.markers.markers
    assert (cube.type, sphere.type) == (Marker.CUBE, Marker.SPHERE)
    assert cube.pose == out.pose.pose and cube.scale.x == pytest.approx(s.x)


def test_no_object_clears_instead_of_leaving_stale_output(scene):
    _, rgb, _ = scene
    out = object_messages(None, rgb, header(), ObjectMessageOptions())
    assert out.centroid is None and out.pose is None and out.size is None
    assert out.cloud.width == 0
    assert [m.action for m in out.markers.markers] == [Marker.DELETEALL]
    if vision_msgs_available():
        assert out.detections.detections == []
    else:
        assert out.detections is None and detection_array(None, header()) is None


def test_switched_off_outputs_are_not_built(scene):
    found, rgb, _ = scene
    out = object_messages(
        found,
        rgb,
        header(),
        ObjectMessageOptions(cloud=False, box=False, markers=False, detections=False),
    )
    assert out.centroid is not None
    assert (out.cloud, out.pose, out.size, out.markers, out.detections) == (
        None,
        None,
        None,
        None,
        None,
    )


def test_object_parameters_are_checked():
    values = {spec.name: spec.default for spec in OBJECT_PARAMS}
    params = read_object_parameters(values)
    assert params.geometry.components == "largest" and params.messages.cloud_voxel_m == 0.005
    np.testing.assert_array_equal(params.color_from_depth, np.eye(4))
    for name, bad in (
        ("object.components", "biggest"),
        ("object.depth_step_ratio", 0.0),
        ("object.cloud_voxel_m", -1.0),
        ("depth_to_color.rotation_xyzw", [0.0, 0.0, 0.0, 0.0]),
    ):
        with pytest.raises(ValueError, match=name.split(".")[0]):
            read_object_parameters({**values, name: bad})
    turned = read_object_parameters(
        {
            **values,
            "depth_to_color.translation_m": [0.015, 0.0, 0.0],
            "depth_to_color.rotation_xyzw": [0.0, 0.0, np.sin(0.05), np.cos(0.05)],
        }
    )
    np.testing.assert_allclose(turned.color_from_depth[:3, 3], [0.015, 0.0, 0.0])
    np.testing.assert_allclose(
        turned.color_from_depth[:3, :3], rotation((0, 0, 1), np.degrees(0.1)), atol=1e-12
    )


def test_bench_geometry_command_times_every_part(capsys):
    from rgbd_saliency_ros.cli import main as cli_main

    assert cli_main(["bench-geometry", "--repeats", "2"]) == 0
    printed = capsys.readouterr().out
    for part in (
        "geometry, small object",
        "messages, large object",
        "registration, 320x240 depth",
    ):
        assert part in printed


def test_camera_model_of_a_binned_region_of_interest():
    """K refers to the full sensor (REP 104): binning and the region of interest scale and shift
    it to the image actually sent, as image_geometry does."""
    from sensor_msgs.msg import CameraInfo, RegionOfInterest

    from rgbd_saliency_ros.ros.object_outputs import camera_model

    info = CameraInfo(
        width=1280,
        height=960,
        k=[1050.0, 0, 639.0, 0, 1050.0, 479.0, 0, 0, 1],
        binning_x=2,
        binning_y=2,
        distortion_model="plumb_bob",
        d=[0.0] * 5,
        roi=RegionOfInterest(x_offset=100, y_offset=60, width=640, height=480),
    )
    model = camera_model(info)
    assert (model.width, model.height) == (320, 240)
    assert (model.fx, model.fy, model.cx, model.cy) == (525.0, 525.0, 269.5, 209.5)


def test_status_array_says_the_status_and_the_figures(scene):
    from diagnostic_msgs.msg import DiagnosticStatus

    from rgbd_saliency_ros.ros.object_messages import STATUS_KEYS, status_array
    from rgbd_saliency_ros.runtime.object_status import object_figures

    found, rgb, _ = scene
    mask = np.zeros((480, 640), np.uint8)
    u, v = found.pixels[:, 0], found.pixels[:, 1]
    mask[v, u] = 255
    depth = np.full((480, 640), np.nan, np.float32)
    depth[v, u] = found.points_m[:, 2]
    figures = object_figures(mask, np.where(mask > 0, 0.9, 0.0), depth, found)
    h = header()
    msg = status_array(h, "found", "found", figures, last_good_s=12.5, jitter_m=0.004)
    assert msg.header == h and len(msg.status) == 1
    status = msg.status[0]
    assert (status.name, status.message, status.level) == (
        "salient_object",
        "found",
        DiagnosticStatus.OK,
    )
    assert status.hardware_id == "camera_color_optical_frame"
    values = {kv.key: kv.value for kv in status.values}
    assert tuple(values) == STATUS_KEYS
    assert float(values["stamp_s"]) == 12.5 and float(values["last_good_age_s"]) == 0.0
    assert float(values["mask_confidence"]) == pytest.approx(0.9)
    assert float(values["valid_depth_fraction"]) == 1.0
    assert float(values["centroid_jitter_m"]) == 0.004
    assert int(values["point_count"]) == len(found.points_m)
    std = [float(values[f"centroid_std_{a}_m"]) for a in "xyz"]
    np.testing.assert_allclose(std, figures.centroid_std_m, rtol=1e-5)
    assert 0 < std[2] < 0.0001  # thousands of points: far below one pixel's 2.4 mm at 1.2 m

    stale = status_array(header(13.0), "stale", "no_valid_depth", None, last_good_s=12.5)
    status = stale.status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert (status.message, status.level) == ("stale", DiagnosticStatus.WARN)
    assert values["frame_status"] == "no_valid_depth"
    assert float(values["last_good_stamp_s"]) == 12.5
    assert float(values["last_good_age_s"]) == pytest.approx(0.5)
    assert values["point_count"] == "0" and values["mask_confidence"] == "nan"
    first = status_array(header(), "no_salient_object", "no_salient_object", None, None)
    assert {kv.key: kv.value for kv in first.status[0].values}["last_good_stamp_s"] == "nan"


def test_detection_carries_the_centroid_covariance(scene):
    if not vision_msgs_available():
        pytest.skip("vision_msgs is not importable (not among the PyPI wheels)")
    found, _, _ = scene
    covariance = np.diag([1e-8, 2e-8, 3e-8])
    pose = detection_array(found, header(), covariance).detections[0].results[0].pose
    full = np.array(pose.covariance).reshape(6, 6)
    np.testing.assert_allclose(full[:3, :3], covariance)
    assert not full[3:].any() and not full[:, 3:].any()
