"""The node's parameters, config/saliency.yaml and start-up failures (the launch file:
test_launch.py).

.venv/bin/python -m pytest -q test/test_ros_params.py
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rclpy.parameter import Parameter
from conftest import private_domain, private_ros_context

from rgbd_saliency_ros.evaluation.node_process import private_ros_env
from rgbd_saliency_ros.ros.object_outputs import OBJECT_PARAMS
from rgbd_saliency_ros.ros.params import PARAMS, read_parameters, stream_topics

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "saliency.yaml"
DEFAULTS = {spec.name: spec.default for spec in (*PARAMS, *OBJECT_PARAMS)}
FILES = {"weights": "w.pt", "sam2_checkpoint": "s.pt"}


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested YAML keys -> ROS parameter names (``depth: {max_depth_m: 10}`` ->
    ``depth.max_depth_m``)."""
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(flatten(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def yaml_type(value) -> Parameter.Type:
    if isinstance(value, list):
        if value and all(isinstance(v, float) for v in value):
            return Parameter.Type.DOUBLE_ARRAY
        assert all(isinstance(v, str) for v in value)
        return Parameter.Type.STRING_ARRAY
    return {
        bool: Parameter.Type.BOOL,
        int: Parameter.Type.INTEGER,
        float: Parameter.Type.DOUBLE,
        str: Parameter.Type.STRING,
    }[type(value)]


@pytest.fixture
def context():
    with private_ros_context(private_domain(50)) as ctx:
        yield ctx


def test_every_config_key_is_a_declared_parameter_of_the_right_type(context):
    from rgbd_saliency_ros.ros.node import SaliencyNode

    values = flatten(yaml.safe_load(CONFIG.read_text())["/**"]["ros__parameters"])
    node = SaliencyNode(
        context=context,
        cli_args=[
            "--ros-args",
            "--params-file",
            str(CONFIG),
            "-p",
            "weights:=w.pt",
            "-p",
            "sam2_checkpoint:=s.pt",
        ],
    )
    try:
        for name, value in values.items():
            assert node.has_parameter(name), f"config key {name} is not a parameter of the node"
            parameter = node.get_parameter(name)
            assert parameter.type_ == yaml_type(value), name
            if name not in FILES:
                assert parameter.value == value, f"{name}: the file's value was not applied"
        # and the file shows every parameter, with the declared defaults
        assert set(values) == set(DEFAULTS)
        assert {k: v for k, v in values.items() if k not in FILES} == {
            k: v for k, v in DEFAULTS.items() if k not in FILES
        }
    finally:
        node.destroy_node()


def test_parameters_fill_the_runtime_configs():
    params = read_parameters(
        {
            **DEFAULTS,
            **FILES,
            "threshold": 0.7,
            "depth.max_depth_m": 4.0,
            "streams": ["/left/", "right"],
            "input_qos.reliability": "reliable",
        }
    )
    assert params.saliency.threshold == 0.7 and params.saliency.max_streams == 2
    assert params.saliency.depth_conversion.max_depth_m == 4.0
    assert params.streams == ("left", "right")
    assert params.input_qos.reliability.name == "RELIABLE" and params.output_qos.depth == 5
    assert params.backend_kwargs() == {
        "sam2_checkpoint": "s.pt",
        "weights": "w.pt",
        "model": None,
        "input_size": None,
        "device": "cpu",
        "precision": "float32",
        "engine": None,
    }


def test_default_input_qos_follows_the_publishers():
    params = read_parameters({**DEFAULTS, **FILES})
    assert params.input_reliability == "auto"
    assert params.input_qos.reliability.name == "RELIABLE"  # until a publisher says otherwise
    assert params.output_qos.reliability.name == "RELIABLE"  # matches either kind of subscriber


def test_topic_names_are_relative_to_the_node_namespace():
    one = stream_topics(read_parameters({**DEFAULTS, **FILES}), "camera")
    assert (one.color, one.depth, one.camera_info) == (
        "camera/color/image_raw",
        "camera/aligned_depth_to_color/image_raw",
        "camera/color/camera_info",
    )
    assert (one.mask, one.probability, one.overlay, one.camera_info_out) == (
        "saliency/mask",
        "saliency/probability",
        "saliency/overlay",
        "saliency/camera_info",
    )
    two = read_parameters(
        {
            **DEFAULTS,
            **FILES,
            "streams": ["front", "/rear/"],
            "camera_info_topic": "",
            "output_namespace": "/perception/saliency/",
        }
    )
    front, rear = stream_topics(two, "front"), stream_topics(two, "rear")
    assert (front.color, front.mask) == (
        "front/color/image_raw",
        "/perception/saliency/front/mask",
    )
    assert (rear.color, rear.mask, rear.camera_info, rear.reset_service) == (
        "/rear/color/image_raw",
        "/perception/saliency/rear/mask",
        None,
        "~/rear/reset",
    )


@pytest.mark.parametrize(
    "change, named",
    [
        ({"weights": ""}, "weights"),
        ({"backend": "onnxruntime"}, "engine"),
        ({"backend": "caffe"}, "backend"),
        ({"streams": ["a", "a"]}, "streams"),
        ({"streams": []}, "streams"),
        ({"output_namespace": "/"}, "output_namespace"),
        ({"depth_topic": "aligned depth"}, "depth_topic"),  # a space: no valid topic name
        ({"input_qos.reliability": "sometimes"}, "input_qos.reliability"),
        ({"threshold": 1.0}, "threshold"),
        ({"sync_slop_s": -0.01}, "sync_slop_s"),
        ({"input_size": 32}, "input_size"),
        ({"max_image_pixels": 0}, "max_image_pixels"),
        ({"depth.min_depth_m": 5.0, "depth.max_depth_m": 1.0}, "depth"),
        ({"depth.normalization": "log"}, "depth"),
        ({"input_qos.reliability": "sometimes"}, "input_qos.reliability"),
        ({"output_qos.history_depth": 0}, "output_qos.history_depth"),
        ({"color_transport": "compressedDepth"}, "color_transport"),
        ({"depth_transport": "compressed"}, "depth_transport"),  # JPEG depth: lossy, not offered
        ({"depth_source": "stereo"}, "depth_source"),
        ({"depth_source": "estimated"}, "depth_estimator_weights"),  # it needs the estimator
        (
            {
                "depth_source": "fill",
                "depth_estimator_weights": "d.pth",
                "depth_estimator_input_size": 7,
            },
            "depth_estimator_input_size",
        ),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameter(change, named):
    with pytest.raises(ValueError, match=named.replace(".", r"\.")):
        read_parameters({**DEFAULTS, **FILES, **change})


def run_node(*args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "saliency_node"
    env = private_ros_env(private_domain(75))
    return subprocess.run(
        [str(script), "--ros-args", *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_bad_weights_stop_the_node_naming_the_file(tmp_path):
    for name in ("broken_sam2.pt", "weights.pt"):
        (tmp_path / name).write_bytes(b"not a checkpoint")
    done = run_node(
        "-p",
        f"sam2_checkpoint:={tmp_path / 'broken_sam2.pt'}",
        "-p",
        f"weights:={tmp_path / 'weights.pt'}",
    )
    assert done.returncode == 1
    assert "cannot load the model: " + str(tmp_path / "broken_sam2.pt") + ":" in done.stderr
    done = run_node("-p", "sam2_checkpoint:=s.pt", "-p", f"weights:={tmp_path / 'absent.pt'}")
    assert done.returncode == 1 and "absent.pt: no such file" in done.stderr


def test_missing_weights_or_backbone_parameter_stops_the_node(tmp_path):
    from rgbd_saliency_ros.model.random_weights import write_random_weights

    done = run_node("-p", "sam2_checkpoint:=s.pt")
    assert done.returncode == 1 and "parameter weights is empty" in done.stderr
    _, weights = write_random_weights(tmp_path, input_size=64)  # SAM-DAQ's: needs SAM2.1 too
    done = run_node("-p", f"weights:={weights}")
    assert done.returncode == 1 and "parameter sam2_checkpoint" in done.stderr


def test_matching_reliability_receives_from_every_publisher():
    from rclpy.qos import ReliabilityPolicy

    from rgbd_saliency_ros.ros.qos_matching import matching_reliability

    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert matching_reliability([]) is None  # nothing to follow: keep what is subscribed
    assert matching_reliability([reliable, reliable]) == reliable
    assert (
        matching_reliability([reliable, best_effort]) == best_effort
    )  # a reliable one would miss it
    assert matching_reliability([best_effort]) == best_effort


def test_one_qos_builder_for_the_node_and_the_live_replay():
    """runtime/qos.py builds the keep-last profiles of the node's parameters and of the live
    replay's options (evaluation/ may not import ros/); no other module builds one (qos_matching
    copies a subscription's profile with another reliability)."""
    import ast

    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy

    from rgbd_saliency_ros.evaluation.live import LiveOptions
    from rgbd_saliency_ros.ros.params import qos_profile
    from rgbd_saliency_ros.runtime.qos import RELIABILITIES, keep_last_qos

    for reliability, policy in zip(
        RELIABILITIES, (ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT)
    ):
        values = {"output_qos.reliability": reliability, "output_qos.history_depth": 7}
        built = keep_last_qos(reliability, 7)
        assert qos_profile(values, "output_qos") == built
        assert (built.reliability, built.depth) == (policy, 7)
        assert (built.history, built.durability) == (
            HistoryPolicy.KEEP_LAST,
            DurabilityPolicy.VOLATILE,
        )
        LiveOptions(publish_reliability=reliability, output_reliability=reliability)
    with pytest.raises(ValueError, match="reliable, best_effort"):
        keep_last_qos("sometimes", 5)
    with pytest.raises(ValueError, match="publish_reliability"):
        LiveOptions(publish_reliability="sometimes")
    package = Path(__file__).resolve().parents[1] / "rgbd_saliency_ros"
    builders = sorted(
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "QoSProfile"
    )
    assert builders == ["ros/qos_matching.py", "runtime/qos.py"]


def test_default_stamp_bounds_accept_a_replayed_bag_and_refuse_the_impossible():
    from rgbd_saliency_ros.runtime.pairing import check_stamp

    params = read_parameters({**DEFAULTS, **FILES})
    now_s = 1.8e9
    bounds = (params.max_stamp_ahead_s, params.max_stamp_behind_s)
    assert (
        check_stamp(int(now_s) - 30 * 86400, 0, now_s, *bounds) is None
    )  # `ros2 bag play` without --clock
    assert check_stamp(1000, 0, now_s, *bounds) is None  # a camera stamping from its own boot
    assert check_stamp(0, 0, now_s, *bounds) == "stamp_zero"
    assert check_stamp(int(now_s) + 3600, 0, now_s, *bounds) == "stamp_future"
