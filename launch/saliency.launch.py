"""Starts saliency_node with a parameters file (default: the installed config/saliency.yaml);
arguments given override the file, arguments left empty keep its values.

    ros2 launch rgbd_saliency_ros saliency.launch.py --show-args
    ros2 launch rgbd_saliency_ros saliency.launch.py sam2_checkpoint:=/w/sam2.1_hiera_large.pt \\
        weights:=/w/samdaq.pt namespace:=/robot1 threshold:=0.6
    ros2 launch rgbd_saliency_ros saliency.launch.py cameras:=front,rear device:=cuda \\
        backend:=tensorrt engine:=/w/samdaq.onnx precision:=float16
    ros2 launch rgbd_saliency_ros saliency.launch.py weights:=... sam2_checkpoint:=... \\
        depth_source:=estimated depth_estimator_weights:=/w/depth_anything_v2_vits.pth
    ros2 launch rgbd_saliency_ros saliency.launch.py ... color_topic:=/rgb/image_raw \\
        depth_topic:=/depth_to_rgb/image_raw remaps:='saliency/mask:=/perception/mask'

Topics are relative to ``namespace``: inputs ``<camera>/color/image_raw``,
``<camera>/aligned_depth_to_color/image_raw``, ``<camera>/color/camera_info``; outputs
``saliency/mask`` (``saliency/<camera>/mask`` with several cameras), ``saliency/probability``,
``saliency/overlay``, ``saliency/camera_info`` (and ``saliency/depth_estimate`` unless
``depth_source`` is sensor; with estimated, no depth topic is subscribed). ``color_topic`` ...
``overlay_topic`` remap those default names of a single camera; ``remaps`` takes any ``from:=to``
rules, separated by spaces or commas.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "rgbd_saliency_ros"

# Arguments that set the node parameter of the same name when not empty: name -> (type, text).
# Written here so that `ros2 launch --show-args` needs no import of the package; test_launch.py
# checks the names and types against the node's table (rgbd_saliency_ros/ros/params.py).
PARAMETER_ARGUMENTS = {
    "weights": (str, "SAM-DAQ weights file (torch backend)"),
    "sam2_checkpoint": (str, "Meta's SAM2.1 checkpoint (torch backend)"),
    "model": (str, "SAM2.1 size: sam2.1_hiera_t, _s, _b+, _l"),
    "input_size": (int, "model input side, pixels"),
    "backend": (str, "torch, onnxruntime or tensorrt"),
    "engine": (str, "ONNX file from `rgbd-saliency export` (onnxruntime, tensorrt)"),
    "device": (str, "cpu, cuda, cuda:1, ..."),
    "precision": (str, "float32, float16 or bfloat16 (GPU)"),
    "threshold": (float, "mask threshold on the probability, in (0, 1)"),
    "depth_source": (str, "sensor, estimated (color alone, no depth topic) or fill"),
    "depth_estimator_weights": (str, "Depth Anything V2 weights (.pth); needed unless sensor"),
    "depth_estimator_input_size": (int, "estimator input's shorter side, pixels (518, 266, ...)"),
    "managed": (bool, "true: a lifecycle node (ros2 lifecycle set ... configure, activate)"),
    "autostart": (bool, "managed only: true configures and activates at start-up"),
}
# The default input and output names of one camera, relative to the namespace: argument -> name
# (the same test checks them against the topics the parameters' defaults give).
SINGLE_CAMERA_REMAPS = {
    "color_topic": "{camera}/color/image_raw",
    "depth_topic": "{camera}/aligned_depth_to_color/image_raw",
    "camera_info_topic": "{camera}/color/camera_info",
    "mask_topic": "saliency/mask",
    "probability_topic": "saliency/probability",
    "overlay_topic": "saliency/overlay",
}
# Every argument: name -> (default, text); "" keeps the parameters file's value.
ARGUMENTS = {
    "namespace": ("", "namespace of the node and of its topics, e.g. /robot1"),
    "node_name": ("saliency_node", "the node's name"),
    "cameras": (
        "",
        "camera namespaces, e.g. front,rear or [front, rear]; empty: the file's streams",
    ),
    "params_file": ("", "parameters file; empty: the installed config/saliency.yaml"),
    **{
        name: ("", text + "; empty: the parameters file's")
        for name, (_, text) in PARAMETER_ARGUMENTS.items()
    },
    "use_sim_time": ("", "true: time from /clock (bag replay); empty: the parameters file's"),
    "log_level": ("info", "debug, info, warn, error"),
    **{
        name: ("", f"remap {topic} (one camera) to this topic")
        for name, topic in SINGLE_CAMERA_REMAPS.items()
    },
    "remaps": ("", "further remap rules 'from:=to', separated by spaces or commas"),
    "respawn": ("false", "true: start the node again whenever it exits"),
    "fastdds_profile": (
        "",
        "Fast DDS XML profile for the node, e.g. the installed "
        "config/fastdds_large_images.xml; empty: none",
    ),
}


def node_action(value: dict) -> Node:
    """The Node action for the arguments' values (strings by argument name); ValueError names a
    wrong argument."""
    params_file = value["params_file"] or os.path.join(
        _share_directory(), "config", "saliency.yaml"
    )
    fastdds = value["fastdds_profile"]
    return Node(
        package=PACKAGE,
        executable="saliency_node",
        name=value["node_name"],
        namespace=value["namespace"],
        output="screen",
        parameters=[params_file, parameter_overrides(value)],  # later entries win
        remappings=remappings(value),
        arguments=["--ros-args", "--log-level", value["log_level"]],
        respawn=_boolean("respawn", value["respawn"]),
        additional_env={"FASTDDS_DEFAULT_PROFILES_FILE": fastdds} if fastdds else None,
    )


def parameter_overrides(value: dict) -> dict:
    """Node parameters set by the arguments, typed; those left empty are absent (the file's
    values hold)."""
    overrides = {
        name: _typed(name, kind, value[name])
        for name, (kind, _) in PARAMETER_ARGUMENTS.items()
        if value[name]
    }
    if _cameras(value["cameras"]):
        overrides["streams"] = _cameras(value["cameras"])
    if value["use_sim_time"]:
        overrides["use_sim_time"] = _boolean("use_sim_time", value["use_sim_time"])
    return overrides


def _cameras(text: str) -> list[str]:
    """ "front,rear", "[front, rear]" or "front rear" -> ["front", "rear"]."""
    return [
        c.strip(" '\"")
        for c in text.strip().strip("[]").replace(",", " ").split()
        if c.strip(" '\"")
    ]


def _typed(name: str, kind: type, text: str):
    if kind is bool:
        return _boolean(name, text)
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"launch argument {name}: {text!r} is not {kind.__name__}") from None


def _boolean(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"launch argument {name}: {text!r} is not true or false")
    return text.lower() == "true"


def remappings(value: dict) -> list[tuple[str, str]]:
    """The single-camera remap arguments and the ``remaps`` rules, as (from, to) pairs."""
    cameras = _cameras(value["cameras"])
    given = {name: value[name] for name in SINGLE_CAMERA_REMAPS if value[name]}
    if given and len(cameras) > 1:
        raise ValueError(
            f"launch arguments {', '.join(given)}: for one camera; with several, "
            "use remaps:='front/color/image_raw:=... rear/color/image_raw:=...'"
        )
    camera = cameras[0] if cameras else "camera"
    rules = [
        (SINGLE_CAMERA_REMAPS[name].format(camera=camera), target)
        for name, target in given.items()
    ]
    for rule in value["remaps"].replace(",", " ").split():
        source, separator, target = rule.partition(":=")
        if not (source and separator and target):
            raise ValueError(f"launch argument remaps: {rule!r} is not from:=to")
        rules.append((source, target))
    return rules


def _share_directory() -> str:
    from ament_index_python.packages import get_package_share_directory

    return get_package_share_directory(PACKAGE)


def _node(context) -> list[Node]:
    return [node_action({name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS})]


def generate_launch_description() -> LaunchDescription:
    """The arguments of ``ARGUMENTS`` and the node, built once their values are known."""
    arguments = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in ARGUMENTS.items()
    ]
    return LaunchDescription(arguments + [OpaqueFunction(function=_node)])
