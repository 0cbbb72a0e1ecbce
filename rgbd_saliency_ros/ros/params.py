"""The node's parameters: one table of names, defaults and descriptions; declared, read, validated.

``config/saliency.yaml`` sets the same names (a test checks that every key there is declared here,
with the same type). Names follow the runtime's dataclass fields (``reset_timeout_s``,
``depth.max_depth_m``): a config field and its parameter share a name.

    params = read_parameters(declare_parameters(node))  # NodeParams; ValueError names a parameter
    params.saliency                           # SaliencyConfig for SaliencyRuntime
    stream_topics(params, "camera").mask      # "saliency/mask", resolved in the node's namespace
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidTopicNameException
from rclpy.node import Node
from rclpy.validate_topic_name import validate_topic_name
from rclpy.qos import QoSProfile

from ..runtime.backends import BACKENDS
from ..runtime.compressed import COLOR_TRANSPORTS, DEPTH_TRANSPORTS, RAW
from ..runtime.depth import DepthConversion
from ..runtime.depth_source import DEPTH_SOURCES
from ..runtime.qos import RELIABILITIES, keep_last_qos
from ..runtime.saliency import SaliencyConfig

AUTO = "auto"  # input reliability: follow the publishers (see ros/qos_matching.py)
DEPTH_PREFIX = "depth."  # the DepthConversion fields' parameters


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its name, default (which gives its type) and what it means."""

    name: str
    default: Any
    description: str
    # settable only while unconfigured (lifecycle); the threshold at any time
    read_only: bool = True
    type: int | None = None  # ParameterType; None: from the default


def _depth_param(field: str, description: str) -> ParamSpec:
    """``depth.<field>``: a DepthConversion field, with its default."""
    return ParamSpec(DEPTH_PREFIX + field, getattr(DepthConversion(), field), description)


PARAMS: tuple[ParamSpec, ...] = (
    # How the node starts (read once, at start-up).
    ParamSpec(
        "managed",
        False,
        "lifecycle-managed: wait unconfigured for configure/activate (unless autostart)",
    ),
    ParamSpec("autostart", True, "managed only: configure and activate at start-up"),
    # The model: files and where it runs.
    ParamSpec(
        "weights",
        "",
        "SAM-DAQ weights file (the reference's .pt or this project's .safetensors); torch backend",
    ),
    ParamSpec(
        "sam2_checkpoint", "", "Meta's SAM2.1 checkpoint (.pt) the weights build on; torch backend"
    ),
    ParamSpec(
        "model",
        "",
        "SAM2.1 size, e.g. sam2.1_hiera_t; empty: from the weights file, else sam2.1_hiera_t",
    ),
    ParamSpec(
        "input_size", 0, "square model input side, pixels; 0: from the weights file, else 1024"
    ),
    ParamSpec("backend", "torch", f"inference backend: {', '.join(BACKENDS)}"),
    ParamSpec("device", "cpu", "cpu, cuda, cuda:1, ..."),
    ParamSpec(
        "precision", "float32", "float32, float16 or bfloat16 (float16/bfloat16 on GPU only)"
    ),
    ParamSpec(
        "engine", "", "ONNX file from `rgbd-saliency export`; onnxruntime and tensorrt backends"
    ),
    # Where each frame's depth comes from (runtime/depth_source.py). The estimator runs with
    # torch on ``device`` whatever ``backend`` runs the saliency model.
    ParamSpec(
        "depth_source",
        "sensor",
        "sensor (the depth topic), estimated (from color alone by the depth estimator; no depth "
        "topic, no 3D outputs) or fill (the sensor's depth, its invalid pixels filled from the "
        "estimate)",
    ),
    ParamSpec(
        "depth_estimator_weights",
        "",
        "Depth Anything V2 weights (the official .pth or this project's .safetensors); "
        "needed unless depth_source is sensor",
    ),
    ParamSpec(
        "depth_estimator_input_size",
        0,
        "shorter side color frames are scaled to for the estimator, pixels (sides round to "
        "multiples of 14); 0: the weights' (518 for Depth Anything V2)",
    ),
    # Topics: per stream (camera namespace), inputs under it and outputs under output_namespace.
    # Relative names resolve in the node's namespace (ROS convention); a leading "/" makes one
    # absolute.
    ParamSpec(
        "streams",
        ["camera"],
        "camera namespaces, one query memory each",
        type=ParameterType.PARAMETER_STRING_ARRAY,
    ),
    ParamSpec(
        "color_topic", "color/image_raw", "color image topic, relative to each camera namespace"
    ),
    ParamSpec(
        "depth_topic",
        "aligned_depth_to_color/image_raw",
        "depth image aligned to color, relative to each camera namespace",
    ),
    ParamSpec(
        "camera_info_topic",
        "color/camera_info",
        "color CameraInfo, relative to each camera namespace; empty: none",
    ),
    # image_transport's names: color raw or compressed (<color_topic>/compressed, JPEG or PNG);
    # depth raw or compressedDepth (<depth_topic>/compressedDepth; 16UC1 lossless, 32FC1 lossy).
    ParamSpec("color_transport", RAW, f"color input transport: {', '.join(COLOR_TRANSPORTS)}"),
    ParamSpec("depth_transport", RAW, f"depth input transport: {', '.join(DEPTH_TRANSPORTS)}"),
    ParamSpec(
        "output_namespace",
        "saliency",
        "outputs: <ns>/mask for one stream, <ns>/<camera>/mask for several",
    ),
    # Processing.
    ParamSpec(
        "threshold",
        0.5,
        "probability at or above which a pixel is in the mask, in (0, 1)",
        read_only=False,
    ),
    ParamSpec("sync_slop_s", 0.02, "largest color/depth stamp difference of a pair, seconds"),
    ParamSpec("queue_size", 5, "frames of each kind kept per stream while waiting for a partner"),
    ParamSpec(
        "backward_jump_s",
        0.5,
        "a stamp this much older than the previous one is a clock jump (rosbag loop), seconds",
    ),
    ParamSpec(
        "reset_timeout_s",
        1.0,
        "a stream's memory restarts after a gap longer than this between processed frames, "
        "seconds",
    ),
    ParamSpec(
        "max_image_pixels", 3840 * 2160, "frames with more pixels (width x height) are refused"
    ),
    ParamSpec("diagnostics_period_s", 1.0, "period of /diagnostics, seconds"),
    ParamSpec(
        "max_stamp_ahead_s",
        10.0,
        "frames stamped further ahead of the node's clock are refused, s; 0: no bound",
    ),
    # Off by default: a bag played without --clock, or a camera stamping with its own clock, is
    # "behind" by days and must still work; zero and negative stamps are refused anyway.
    ParamSpec(
        "max_stamp_behind_s",
        0.0,
        "frames stamped further behind the node's clock are refused, seconds; 0: no bound",
    ),
    # Depth conversion (DepthConversion's fields, its defaults); weights that carry their own
    # convention override these.
    _depth_param("min_depth_m", "valid depth is clipped to [min_depth_m, max_depth_m], metres"),
    _depth_param("max_depth_m", "see depth.min_depth_m, metres"),
    _depth_param(
        "normalization",
        "per_frame (each frame's valid min..max -> 0..1) or fixed (min..max_depth_m -> 0..1)",
    ),
    _depth_param(
        "near_is_bright", "true: near is 1, far is 0; false: the reverse (the training data's)"
    ),
    _depth_param("invalid_value", "model depth value of invalid pixels, in [0, 1]"),
    # QoS. auto: subscribe reliable when every publisher of the topic is reliable, best effort when
    # one is not (as rosbag2 and `ros2 topic echo` do), again when publishers come or go.
    ParamSpec(
        "input_qos.reliability",
        AUTO,
        "auto, reliable or best_effort, for color, depth and CameraInfo",
    ),
    ParamSpec("input_qos.history_depth", 5, "history depth of the input subscriptions"),
    ParamSpec("output_qos.reliability", "reliable", "reliable or best_effort, for every output"),
    ParamSpec("output_qos.history_depth", 5, "history depth of the output publishers"),
)


RUNTIME_SETTABLE = frozenset(spec.name for spec in PARAMS if not spec.read_only)


@dataclass(frozen=True)
class NodeParams:
    """The node's parameters, validated; see ``PARAMS`` for each one's meaning."""

    weights: str
    sam2_checkpoint: str
    model: str
    input_size: int
    backend: str
    device: str
    precision: str
    engine: str
    depth_source: str  # one of DEPTH_SOURCES
    depth_estimator_weights: str  # "" with depth_source sensor
    depth_estimator_input_size: int  # 0: the estimator's own
    streams: tuple[str, ...]
    stream_prefixes: dict[
        str, str
    ]  # stream -> its topics' namespace, relative unless given with "/"
    color_topic: str
    depth_topic: str
    camera_info_topic: str
    color_transport: str  # raw or compressed
    depth_transport: str  # raw or compressedDepth
    output_namespace: str
    sync_slop_s: float
    queue_size: int
    backward_jump_s: float
    max_image_pixels: int
    diagnostics_period_s: float
    max_stamp_ahead_s: float
    max_stamp_behind_s: float
    saliency: SaliencyConfig  # threshold, reset_timeout_s, depth conversion, one memory per stream
    input_qos: QoSProfile  # its reliability is the starting point when input_reliability is auto
    input_reliability: str  # auto, reliable or best_effort
    output_qos: QoSProfile

    def backend_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``create_backend`` (empty strings and 0 become None: "not
        given")."""
        return {
            "sam2_checkpoint": self.sam2_checkpoint or None,
            "weights": self.weights or None,
            "model": self.model or None,
            "input_size": self.input_size or None,
            "device": self.device,
            "precision": self.precision,
            "engine": self.engine or None,
        }


@dataclass(frozen=True)
class StreamTopics:
    """Fully qualified topic and service names of one stream."""

    color: str
    depth: str
    camera_info: str | None
    mask: str
    probability: str
    overlay: str
    camera_info_out: str
    depth_estimate: str  # depth_source estimated or fill only
    reset_service: str  # relative to the node (~/<stream>/reset)


def declare_parameters(node: Node, specs: tuple[ParamSpec, ...] = PARAMS) -> dict[str, Any]:
    """Declares every parameter of ``specs`` on ``node``; returns their values by name (as set by
    overrides or a parameters file, else the defaults), not yet validated."""
    for spec in specs:
        # Never ROS-read-only: a managed node takes new values while unconfigured; the node's own
        # set-parameters callback refuses them afterwards (see ``RUNTIME_SETTABLE``).
        description = spec.description + (
            "" if not spec.read_only else " (set while unconfigured)"
        )
        descriptor = ParameterDescriptor(description=description)
        if spec.type is not None:
            descriptor.type = spec.type
        node.declare_parameter(spec.name, spec.default, descriptor)
    return {spec.name: node.get_parameter(spec.name).value for spec in specs}


def read_parameters(values: dict[str, Any]) -> NodeParams:
    """Parameter values by name -> NodeParams; raises ValueError naming a wrong parameter."""
    v = values
    backend, streams = (
        v["backend"],
        tuple(s.strip("/") for s in v["streams"]),
    )  # ids: diagnostics, outputs
    _check_values(v, streams)
    try:
        depth = DepthConversion.from_dict(
            {k[len(DEPTH_PREFIX) :]: x for k, x in v.items() if k.startswith(DEPTH_PREFIX)}
        )
    except ValueError as e:
        raise ValueError(f"parameters depth.*: {e}") from None
    params = NodeParams(
        weights=v["weights"],
        sam2_checkpoint=v["sam2_checkpoint"],
        model=v["model"],
        input_size=v["input_size"],
        backend=backend,
        device=v["device"],
        precision=v["precision"],
        engine=v["engine"],
        depth_source=v["depth_source"],
        depth_estimator_weights=v["depth_estimator_weights"],
        depth_estimator_input_size=v["depth_estimator_input_size"],
        streams=streams,
        stream_prefixes={s: _name(raw) for s, raw in zip(streams, v["streams"])},
        color_topic=v["color_topic"].strip("/"),
        depth_topic=v["depth_topic"].strip("/"),
        camera_info_topic=v["camera_info_topic"].strip("/"),
        color_transport=v["color_transport"],
        depth_transport=v["depth_transport"],
        output_namespace=_name(v["output_namespace"]),
        sync_slop_s=v["sync_slop_s"],
        queue_size=v["queue_size"],
        backward_jump_s=v["backward_jump_s"],
        max_image_pixels=v["max_image_pixels"],
        diagnostics_period_s=v["diagnostics_period_s"],
        max_stamp_ahead_s=v["max_stamp_ahead_s"],
        max_stamp_behind_s=v["max_stamp_behind_s"],
        saliency=SaliencyConfig(
            threshold=v["threshold"],
            reset_timeout_s=v["reset_timeout_s"],
            max_streams=len(streams),
            depth_conversion=depth,
            # the node steps the latest pair only, skipping frames while busy
            timeout_allows_step_time=True,
        ),
        input_qos=qos_profile(v, "input_qos", allow_auto=True),
        input_reliability=v["input_qos.reliability"],
        output_qos=qos_profile(v, "output_qos"),
    )
    _check_topic_names(params)
    return params


def qos_profile(values: dict[str, Any], prefix: str, allow_auto: bool = False) -> QoSProfile:
    """``<prefix>.reliability`` and ``<prefix>.history_depth`` -> a keep-last, volatile QoSProfile.

    With ``allow_auto``, ``auto`` is accepted and gives a reliable profile (what most drivers
    publish) that the node adapts to the publishers it finds."""
    reliability = values[f"{prefix}.reliability"]
    choices = (AUTO, *RELIABILITIES) if allow_auto else RELIABILITIES
    if reliability not in choices:
        raise ValueError(
            f"parameter {prefix}.reliability: {reliability!r} is not one of {', '.join(choices)}"
        )
    if reliability == AUTO:
        reliability = "reliable"
    depth = values[f"{prefix}.history_depth"]
    _require(values, f"{prefix}.history_depth", depth >= 1, "at least 1")
    return keep_last_qos(reliability, depth)


def stream_topics(params: NodeParams, stream: str) -> StreamTopics:
    """Topic names of ``stream`` (a camera namespace): inputs under it, outputs under the output
    namespace (directly for a single stream, under a folder named after the camera for several).

    Names are relative (resolved in the node's namespace) unless the stream or the output
    namespace was given with a leading "/"."""
    prefix = params.stream_prefixes[stream]
    out = params.output_namespace + ("" if len(params.streams) == 1 else "/" + stream)
    return StreamTopics(
        color=f"{prefix}/{params.color_topic}",
        depth=f"{prefix}/{params.depth_topic}",
        camera_info=f"{prefix}/{params.camera_info_topic}" if params.camera_info_topic else None,
        mask=f"{out}/mask",
        probability=f"{out}/probability",
        overlay=f"{out}/overlay",
        camera_info_out=f"{out}/camera_info",
        depth_estimate=f"{out}/depth_estimate",
        reset_service=f"~/{stream}/reset",
    )


def _check_values(v: dict[str, Any], streams: tuple[str, ...]) -> None:
    """Raises ValueError naming the first parameter whose value cannot work."""
    backend = v["backend"]
    if backend not in BACKENDS:
        raise ValueError(f"parameter backend: {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "torch":
        # whether the model also needs sam2_checkpoint, its weights file says (at configure)
        if not v["weights"]:
            raise ValueError("parameter weights is empty: the torch backend needs the file")
    elif not v["engine"]:
        raise ValueError(
            f"parameter engine is empty: the {backend} backend needs an exported ONNX file"
        )
    source = v["depth_source"]
    _require(v, "depth_source", source in DEPTH_SOURCES, f"one of {', '.join(DEPTH_SOURCES)}")
    if source != "sensor" and not v["depth_estimator_weights"]:
        raise ValueError(
            f"parameter depth_estimator_weights is empty: depth_source {source} needs a depth "
            "estimator's weights file (Depth Anything V2)"
        )
    _require(
        v,
        "depth_estimator_input_size",
        v["depth_estimator_input_size"] == 0 or v["depth_estimator_input_size"] >= 14,
        "0 (from the weights) or at least 14",
    )
    if not streams or any(not s for s in streams) or len(set(streams)) != len(streams):
        raise ValueError(
            "parameter streams: need distinct, non-empty camera namespaces, "
            f"got {list(v['streams'])}"
        )
    _require(
        v,
        "input_size",
        v["input_size"] == 0 or v["input_size"] >= 64,
        "0 (from the weights) or at least 64",
    )
    _require(v, "sync_slop_s", v["sync_slop_s"] >= 0, "at least 0")
    _require(v, "queue_size", v["queue_size"] >= 1, "at least 1")
    _require(v, "backward_jump_s", v["backward_jump_s"] > 0, "positive")
    _require(v, "reset_timeout_s", v["reset_timeout_s"] > 0, "positive")
    _require(v, "max_image_pixels", v["max_image_pixels"] >= 1, "at least 1")
    _require(v, "diagnostics_period_s", v["diagnostics_period_s"] > 0, "positive")
    for name in ("max_stamp_ahead_s", "max_stamp_behind_s"):
        _require(v, name, v[name] >= 0, "0 (no bound) or positive")
    _require(v, "threshold", 0 < v["threshold"] < 1, "in (0, 1)")
    for name in ("color_topic", "depth_topic", "output_namespace"):
        _require(v, name, bool(v[name].strip("/")), "a name")
    for name, allowed in (
        ("color_transport", COLOR_TRANSPORTS),
        ("depth_transport", DEPTH_TRANSPORTS),
    ):
        _require(v, name, v[name] in allowed, f"one of {', '.join(allowed)}")


def _check_topic_names(params: NodeParams) -> None:
    """Raises ValueError naming the parameter when a stream's topic name is not a valid ROS name
    (found here, at configure, rather than when subscribing)."""
    for stream in params.streams:
        topics = stream_topics(params, stream)
        for parameter, name in (
            ("color_topic", topics.color),
            ("depth_topic", topics.depth),
            ("camera_info_topic", topics.camera_info),
            ("output_namespace", topics.mask),
        ):
            if not name:
                continue
            try:
                validate_topic_name(name)
            except InvalidTopicNameException as e:
                reason = str(e).splitlines()[0]
                raise ValueError(
                    f"parameter {parameter} (with stream {stream!r}): {name!r} is not a valid "
                    f"topic name ({reason})"
                ) from None


def _name(value: str) -> str:
    """A namespace as given, without trailing slashes: relative, or absolute with one leading
    "/"."""
    stripped = value.strip("/")
    return "/" + stripped if value.startswith("/") else stripped


def _require(values: dict[str, Any], name: str, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"parameter {name}: must be {what}, got {values[name]!r}")
