"""What the node says about its inputs beyond the messages: pure checks, without spinning.

.venv/bin/python -m pytest -q test/test_input_health.py
"""

from types import SimpleNamespace

from sensor_msgs.msg import CameraInfo

from rgbd_saliency_ros.ros import input_health as health
from rgbd_saliency_ros.ros.conversions import CAMERA_INFO_SIZE

PROFILE = health.__file__.rsplit("/rgbd_saliency_ros/", 1)[0] + "/config/fastdds_large_images.xml"


def test_one_sided_input_and_wrong_type_publishers_are_found():
    snapshots = {
        "front": {"color_in_hz": 30.0, "depth_in_hz": 0.0},
        "rear": {"color_in_hz": 30.0, "depth_in_hz": 29.0},
    }
    topics = {
        "front": {"/front/color/image_raw": health.IMAGE_TYPE},
        "rear": {"/rear/color/image_raw": health.IMAGE_TYPE},
    }
    endpoint = SimpleNamespace(
        node_namespace="/", node_name="talker", topic_type="std_msgs/msg/String"
    )
    good = SimpleNamespace(node_namespace="/cam", node_name="driver", topic_type=health.IMAGE_TYPE)
    graph = {"/front/color/image_raw": [good], "/rear/color/image_raw": [good, endpoint]}
    found = health.input_findings(snapshots, topics, lambda topic: graph[topic])
    assert [(s, k, n) for s, k, _, n in found] == [
        ("front", health.ONE_SIDED, 1),
        ("rear", health.WRONG_TYPE, 1),
    ]
    assert "no depth frames" in found[0][2] and "/talker (std_msgs/msg/String)" in found[1][2]
    # depth_source estimated: color alone is what the node subscribes to, nothing one-sided
    color_only = health.input_findings(snapshots, topics, lambda topic: graph[topic], True)
    assert [(s, k) for s, k, _, _ in color_only] == [("rear", health.WRONG_TYPE)]
    assert health.one_sided({"color_in_hz": 0.0, "depth_in_hz": 2.0}) == "depth"
    assert health.one_sided({"color_in_hz": 0.0, "depth_in_hz": 0.0}) is None


def test_segment_size_of_the_configured_transport():
    assert health.shm_segment_bytes({}) == 512 * 1024  # Fast DDS's default
    assert health.shm_segment_bytes({"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE}) == 64 * 2**20
    assert health.shm_segment_bytes({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}) is None
    # 4K frames need the profile; 640x480 fits a 64 MiB segment, not the default one
    profile = {"FASTDDS_DEFAULT_PROFILES_FILE": PROFILE}
    assert health.transport_limit_note(3840 * 2160, profile) is None
    note = health.transport_limit_note(640 * 480, {})
    assert note is not None and "0.5 MiB" in note and health.LOST_BEFORE_NODE in note


def test_camera_info_gate_counts_a_bad_one_once_and_never_hands_it_out():
    gate = health.CameraInfoGate()
    assert gate.for_image(640, 480) == (None, None)
    bad = CameraInfo(width=99999, height=3)
    gate.offer(bad)
    info, error = gate.for_image(640, 480)
    assert info is None and error.kind == CAMERA_INFO_SIZE
    assert gate.for_image(640, 480) == (None, None)  # the same message again: not counted twice
    good = CameraInfo(width=640, height=480)
    gate.offer(good)
    assert gate.for_image(640, 480) == (good, None)
    info, error = gate.for_image(320, 240)  # the images changed size: the same info no longer fits
    assert info is None and error.kind == CAMERA_INFO_SIZE
