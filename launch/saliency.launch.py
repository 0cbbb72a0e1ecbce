"""Starts saliency_node with config/saliency.yaml; arguments override the file.

    ros2 launch rgbd_saliency_ros saliency.launch.py sam2_checkpoint:=/w/sam2.1_hiera_large.pt weights:=/w/samdaq.pt
    ros2 launch rgbd_saliency_ros saliency.launch.py camera:=front device:=cuda backend:=tensorrt engine:=/w/samdaq.onnx
    ros2 launch rgbd_saliency_ros saliency.launch.py color_topic:=/kinect/rgb depth_topic:=/kinect/depth_registered \\
        mask_topic:=/kinect/saliency

Remaps rename the default topics of the camera namespace (``/<camera>/color/image_raw``, ...) and
of the outputs (``/saliency/mask``, ...); an empty argument keeps the name.
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "rgbd_saliency_ros"

# name -> (default, description); those in NODE_PARAMETERS set the node parameter of that name
ARGUMENTS = {
    "weights": ("", "SAM-DAQ weights file (torch backend)"),
    "sam2_checkpoint": ("", "Meta's SAM2.1 checkpoint (torch backend)"),
    "model": ("", "SAM2.1 size, e.g. sam2.1_hiera_l; empty: from the weights file"),
    "backend": ("", "torch, onnxruntime or tensorrt; empty: as in the parameters file"),
    "device": ("", "cpu, cuda, cuda:1, ...; empty: as in the parameters file"),
    "engine": ("", "ONNX file from `rgbd-saliency export` (onnxruntime, tensorrt)"),
    "camera": ("camera", "camera namespace: inputs /<camera>/color/image_raw, /<camera>/aligned_depth_to_color/image_raw"),
    "color_topic": ("", "remap the color input to this topic"),
    "depth_topic": ("", "remap the aligned depth input to this topic"),
    "camera_info_topic": ("", "remap the color CameraInfo input to this topic"),
    "mask_topic": ("", "remap /saliency/mask to this topic"),
    "probability_topic": ("", "remap /saliency/probability to this topic"),
    "overlay_topic": ("", "remap /saliency/overlay to this topic"),
    "params_file": ("", "parameters file; empty: the installed config/saliency.yaml"),
    "log_level": ("info", "debug, info, warn, error"),
}
NODE_PARAMETERS = ("weights", "sam2_checkpoint", "model", "backend", "device", "engine")


def _node(context):
    """The Node action, built once the arguments' values are known."""
    value = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENTS}
    camera = value["camera"].strip("/")
    overrides = {name: value[name] for name in NODE_PARAMETERS if value[name]}
    overrides["streams"] = [camera]
    params_file = value["params_file"] or os.path.join(_share_directory(), "config", "saliency.yaml")
    renames = {
        f"/{camera}/color/image_raw": value["color_topic"],
        f"/{camera}/aligned_depth_to_color/image_raw": value["depth_topic"],
        f"/{camera}/color/camera_info": value["camera_info_topic"],
        "/saliency/mask": value["mask_topic"],
        "/saliency/probability": value["probability_topic"],
        "/saliency/overlay": value["overlay_topic"],
    }
    return [
        Node(
            package=PACKAGE,
            executable="saliency_node",
            name="saliency_node",
            output="screen",
            parameters=[params_file, overrides],  # later entries win
            remappings=[(source, target) for source, target in renames.items() if target],
            arguments=["--ros-args", "--log-level", value["log_level"]],
        )
    ]


def _share_directory() -> str:
    from ament_index_python.packages import get_package_share_directory

    return get_package_share_directory(PACKAGE)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, (default, text) in ARGUMENTS.items()]
        + [OpaqueFunction(function=_node)]
    )
