"""The saliency node: color + aligned depth (or color alone) in, per-stream saliency masks out.

    .venv/bin/saliency_node --ros-args -p sam2_checkpoint:=S.pt -p weights:=W.pt
    ros2 run rgbd_saliency_ros saliency_node --ros-args --params-file config/saliency.yaml \\
        -p weights:=W.pt
    ros2 launch rgbd_saliency_ros saliency.launch.py weights:=W.pt sam2_checkpoint:=S.pt

ROS in, runtime call, ROS out. The node is a lifecycle shell over self-contained output groups,
each owning its publishers, its parameters and its "does anyone listen" check: per stream
``ImageOutputs`` (mask, probability, overlay, camera_info), ``ObjectOutputs`` (the 3D object) and,
with an estimated depth, ``DepthEstimateOutput``, and the node's ``DiagnosticsOutput``. Executor
callbacks only pair messages and put the newest pair of each stream in a slot (a stream nobody
listens to is not computed: its pairs are counted as ``unheard``); one worker thread takes every
filled slot, converts the messages (``conversions``), gives each frame its depth
(``runtime.depth_source``: the sensor's, the estimator's, or the sensor's with its holes filled),
runs them as one batched ``SaliencyRuntime.run`` and hands the results to the output groups. A
pair replaced in its slot before the worker took it is dropped and counted; nothing queues
without bound. With ``depth_source: estimated`` there is no depth topic: each color frame is a
"pair" (``ColorOnlyPairer``), and the 3D outputs, which need metric depth, are skipped.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import rclpy
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from std_srvs.srv import Trigger

from ..runtime.backends import (  # torch-free until a create_* function runs
    StepBackend,
    create_backend,
    create_estimator_backend,
)
from ..runtime.depth import InvalidDepthError
from ..runtime.depth_estimation import DepthEstimation
from ..runtime.depth_source import DepthSource, SourcedDepth
from ..runtime.images import UNREGISTERED_DEPTH
from ..runtime.object_status import DEPTH_NOT_REGISTERED
from ..runtime.object_status import NO_METRIC_DEPTH as NO_METRIC_DEPTH_STATUS
from ..runtime.saliency import FramePair, SaliencyResult, SaliencyRuntime
from ..runtime.versions import library_versions
from .compressed import input_transports
from .conversions import ImageError, frame_arrays, stamp_to_s
from .diagnostics import (
    BAD_INPUT_PREFIX,
    DEPTH_ERRORS,
    DEPTH_FALLBACKS,
    DROPPED_IN_BURST,
    INVALID_DEPTH,
    MALFORMED,
    RESET_PREFIX,
    UNHEARD,
    WORKER_ERRORS,
    DiagnosticsOutput,
    StreamStats,
)
from .depth_estimate_output import DepthEstimateOutput
from .image_outputs import ImageOutputs
from ..runtime.pairing import (
    CLOCK_JUMPS,
    DROPPED_KINDS,
    DUPLICATE_STAMP,
    OUT_OF_ORDER,
    STRAY_STAMP,
    UNPAIRED_COLOR,
    UNPAIRED_DEPTH,
    ColorOnlyPairer,
    Pair,
    StampPairer,
    check_stamp,
)
from .input_health import (
    LOST_BEFORE_NODE,
    WRONG_TYPE,
    CameraInfoGate,
    input_findings,
    transport_limit_note,
)
from .object_outputs import (
    NO_METRIC_DEPTH,
    OBJECT_PARAMS,
    TF_FAILURES,
    DepthRegistration,
    ObjectOutputs,
    read_object_parameters,
    tf_lookup,
)
from .params import (
    AUTO,
    PARAMS,
    RUNTIME_SETTABLE,
    NodeParams,
    declare_parameters,
    read_parameters,
    stream_topics,
)
from .qos_matching import AdaptiveSubscription

NODE_NAME = "saliency_node"
CONFIGURE_TIME = frozenset(spec.name for spec in PARAMS + OBJECT_PARAMS)  # read by configure
# The longest deactivate waits for a batch in flight (a step on a slow machine takes seconds).
DEACTIVATE_WAIT_S = 30.0
# How long an error out of rclpy.spin may precede the context's shutdown by a signal.
SIGNAL_SHUTDOWN_WAIT_S = 2.0
WARN_PERIOD_S = 5.0  # at most one warning per stream and kind of trouble in this time
QOS_CHECK_PERIOD_S = 1.0  # how often the input subscriptions look at their publishers' QoS
_PAIRER_COUNTERS = {
    UNPAIRED_COLOR: UNPAIRED_COLOR,
    UNPAIRED_DEPTH: UNPAIRED_DEPTH,
    CLOCK_JUMPS: CLOCK_JUMPS,
    DUPLICATE_STAMP: BAD_INPUT_PREFIX + DUPLICATE_STAMP,
    OUT_OF_ORDER: BAD_INPUT_PREFIX + OUT_OF_ORDER,
    STRAY_STAMP: BAD_INPUT_PREFIX + STRAY_STAMP,
}
# Errors that mean "this node cannot start as configured": reported in one line, exit status 1.
# RuntimeError covers CheckpointError; torch reports a CUDA device on a CPU-only build with an
# AssertionError.
STARTUP_ERRORS = (
    RuntimeError,
    AssertionError,
    FileNotFoundError,
    ImportError,
    ValueError,
    ParameterException,
    NameValidationException,
)


@dataclass
class _Frame:
    """One stream's frame in the worker, converted, with its depth."""

    rgb: np.ndarray  # (H, W, 3) uint8 RGB
    # (H, W) float32 metres, NaN invalid: the sensor's measured pixels only (never filled ones);
    # None without a depth topic (depth_source estimated)
    measured_m: np.ndarray | None
    sourced: SourcedDepth  # the model's depth input and how it was made


@dataclass
class _Ready:
    """A pair waiting in its stream's slot."""

    pair: Pair[Image]
    ready_s: float  # monotonic time the pair was completed
    input_ms: float  # color stamp to completion, node clock


def _return_freed_memory() -> None:
    """Gives freed heap memory back to the system (glibc only; a no-op elsewhere).

    The model's weights, once freed, stay in glibc's heap (its mmap threshold grows with large
    frees), so without this the process's resident memory does not drop after cleanup. Measured
    by test/test_ros_lifecycle.py (input 64, hiera_t): a first configure adds 332 MiB resident;
    cleanup gives 250 MiB of it back with this, none without it (README, "Managed (lifecycle)
    node", has the figures of a second configure too)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class StartupError(RuntimeError):
    """The node cannot be configured as its parameters say; the message is the one line to log."""


class SaliencyNode(LifecycleNode):
    """The saliency node, a managed (lifecycle) node that also runs on its own.

    Transitions and what they do (``ros2 lifecycle set /saliency_node configure``, ...):
    configure reads the parameters, creates the publishers and services, loads the model and runs a
    warm-up step; activate subscribes (answering starts); deactivate unsubscribes (the model stays
    loaded); cleanup frees the model and the publishers; shutdown does what is needed from any
    state.
    Parameters can change while unconfigured (e.g. corrected weights after a failed configure);
    afterwards only ``threshold`` can. ``start()`` runs configure and activate through the same
    transitions: the plain, unmanaged node.

    Args:
        context: rclpy context (tests give each node its own); None: the global one.
        parameter_overrides: parameters set before declaration (tests); the command line and
            parameter files work as for any node.
        cli_args: node-specific ROS arguments, e.g. ``["--ros-args", "-r", "__node:=other"]``.
    """

    def __init__(
        self, *, context=None, parameter_overrides=None, cli_args: list[str] | None = None
    ) -> None:
        super().__init__(
            NODE_NAME, context=context, parameter_overrides=parameter_overrides, cli_args=cli_args
        )
        declare_parameters(self)
        declare_parameters(self, OBJECT_PARAMS)
        self.object_params = None  # ObjectParams, read at configure as the others
        self.object_outputs: dict[str, ObjectOutputs] = {}  # the 3D outputs (object_outputs.py)
        self._registration: dict[str, DepthRegistration] = {}  # streams registering depth here
        self._tf_lookup = None  # made once, when a stream first registers depth with tf
        self.params: NodeParams | None = None
        self.runtime: SaliencyRuntime | None = None
        self.depth_source: DepthSource | None = None  # made at configure (depth_source parameter)
        self.stats: dict[str, StreamStats] = {}
        self._pairers: dict[str, StampPairer[Image]] = {}
        self._camera_info: dict[str, CameraInfoGate] = {}  # the latest of each stream, checked
        self._input_types: dict[str, dict[str, str]] = {}  # stream -> {input topic: message type}
        self._cond = threading.Condition()  # guards the slots, pending resets and stopping
        self._slots: dict[str, _Ready] = {}
        self._pending_resets: set[str | None] = set()  # None: every stream
        self._stop = threading.Event()  # the current worker's: set when it must end
        self._stepping = False  # the worker is converting, stepping or publishing a batch
        self._worker: threading.Thread | None = None
        self._last_warning: dict[tuple[str, str], float] = {}
        # unconfigured, inactive, active (the lifecycle's primary states)
        self._state = "unconfigured"
        self.image_outputs: dict[str, ImageOutputs] = {}  # mask, probability, overlay, info
        self.depth_outputs: dict[str, DepthEstimateOutput] = {}  # with an estimator only
        self._own_services: list = []
        self._inputs: list[AdaptiveSubscription] = []
        self._qos_timer = None
        self._backend_override: StepBackend | None = None
        self._configure_error: StartupError | None = None
        self._plain = False  # started by start(): errors are raised, not logged here
        self._worker_failed = False
        self._activate_error: StartupError | None = None
        self._diagnostics = DiagnosticsOutput(self)
        # One callback checks and applies: Humble has no post-set callback; nothing runs after it.
        self.add_on_set_parameters_callback(self._on_set_parameters)

    @property
    def state(self) -> str:
        """The lifecycle's primary state: unconfigured, inactive or active."""
        return self._state

    @property
    def configure_error(self) -> StartupError | None:
        """Why the last configure failed (None after a successful one)."""
        return self._configure_error

    def start(self, backend: StepBackend | None = None) -> None:
        """The plain node: configure (with ``backend`` if given, else one built from the
        parameters) and activate. Blocks for the loading time.

        Raises StartupError (one line: bad parameters, or the weights file and what is wrong).
        """
        self._backend_override, self._plain = backend, True
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise self._configure_error
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise self._activate_error

    # Lifecycle callbacks: each calls the one piece of code that does the work.

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._configure_error = None
        try:
            self._configure()
        except Exception as e:  # noqa: BLE001 - any failure leaves it unconfigured, with the reason
            self._configure_error = (
                e if isinstance(e, StartupError) else StartupError(f"{type(e).__name__}: {e}")
            )
            if not self._plain:  # the plain node's caller logs it, once
                self.get_logger().error(f"configure failed: {self._configure_error}")
            self._cleanup()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._activate()
        except Exception as e:  # noqa: BLE001 - rclpy would swallow it: say why, leave nothing half-made
            for subscription in self._inputs:
                self.destroy_subscription(subscription.subscription)
            self._inputs = []
            self._activate_error = StartupError(f"cannot subscribe: {type(e).__name__}: {e}")
            if not self._plain:
                self.get_logger().error(f"activate failed: {self._activate_error}")
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._deactivate()
        self._cleanup()
        return TransitionCallbackReturn.SUCCESS  # back to unconfigured

    def _configure(self) -> None:
        """Parameters, publishers, services, the model and its warm-up, the worker thread."""
        try:
            self.params = read_parameters(
                {spec.name: self.get_parameter(spec.name).value for spec in PARAMS}
            )
            self.object_params = read_object_parameters(
                {spec.name: self.get_parameter(spec.name).value for spec in OBJECT_PARAMS}
            )
        except ValueError as e:
            raise StartupError(f"bad parameters: {e}") from None
        p = self.params
        self.stats = {s: StreamStats() for s in p.streams}
        color_only = p.depth_source == "estimated"
        self._pairers = {
            s: ColorOnlyPairer(p.backward_jump_s)
            if color_only
            else StampPairer(p.sync_slop_s, p.queue_size, p.backward_jump_s)
            for s in p.streams
        }
        self._camera_info = {s: CameraInfoGate() for s in p.streams}
        for stream in p.streams:
            topics = stream_topics(p, stream)
            self.image_outputs[stream] = ImageOutputs(self, topics, p.output_qos)
            self._own_services.append(
                self.create_service(Trigger, topics.reset_service, partial(self._on_reset, stream))
            )
            self.object_outputs[stream] = ObjectOutputs(
                self, topics.mask, p.output_qos, self.object_params
            )
            if p.depth_source != "sensor":
                self.depth_outputs[stream] = DepthEstimateOutput(
                    self, topics.depth_estimate, p.output_qos
                )
        if self.object_params.depth_camera_info_topic and not color_only:
            if self.object_params.from_tf and self._tf_lookup is None:
                self._tf_lookup = tf_lookup(self)
            lookup = self._tf_lookup if self.object_params.from_tf else None
            self._registration = {
                s: DepthRegistration(self.object_params, lookup, partial(self._tf_failed, s))
                for s in p.streams
            }
        self._own_services.append(
            self.create_service(Trigger, "~/reset", partial(self._on_reset, None))
        )
        self._diagnostics.start(p.diagnostics_period_s, self.publish_diagnostics)
        try:
            self._load_model()
        except STARTUP_ERRORS as e:
            raise StartupError(f"cannot load the model: {e}") from e  # the cause names the file
        try:
            self.depth_source = self._load_depth_source()
        except STARTUP_ERRORS as e:
            raise StartupError(f"cannot load the depth estimator: {e}") from e  # names the file
        self._stop = threading.Event()  # its own: a worker that outlived a join never restarts
        self._worker = threading.Thread(
            target=self._work, args=(self._stop,), name="saliency_worker", daemon=True
        )
        self._worker.start()
        self._state = "inactive"

    def _load_model(self) -> None:
        p = self.params
        backend = self._backend_override or create_backend(p.backend, **p.backend_kwargs())
        self.runtime = SaliencyRuntime(backend, p.saliency)
        if self.runtime.depth_conversion != p.saliency.depth_conversion:
            self.get_logger().info(
                "the weights carry their own depth convention, used instead of depth.*: "
                f"{self.runtime.depth_conversion}"
            )
        backend.warmup(1)  # the first step is slow (lazy initialisation): timed apart below
        started = time.perf_counter()
        backend.warmup(len(p.streams))
        step_s = time.perf_counter() - started
        info = backend.info
        self.get_logger().info(
            f"ready: {info.name} on {info.device} ({info.precision}), "
            f"input {self.runtime.input_size}, step {step_s * 1e3:.0f} ms, "
            f"streams {', '.join(p.streams)}; {library_versions()}"
        )

    def _load_depth_source(self) -> DepthSource:
        """The depth source of the ``depth_source`` parameter; with an estimator, its weights
        loaded (torch, on ``device``) and warmed up on a blank frame."""
        p = self.params
        if p.depth_source == "sensor":
            return DepthSource("sensor")
        # int8 is the saliency engine's (TensorRT); the torch estimator runs float32 then
        precision = p.precision if p.precision in ("float16", "bfloat16") else "float32"
        backend = create_estimator_backend(p.depth_estimator_weights, p.device, precision)
        estimation = DepthEstimation(backend, p.depth_estimator_input_size or None)
        size = estimation.preprocessing.input_size
        started = time.perf_counter()
        estimation.estimate(np.zeros((size, size, 3), np.uint8))
        info = backend.info
        self.get_logger().info(
            f"depth source {p.depth_source}: {backend.name} on {info.device} ({info.precision}), "
            f"input {size}, first estimate {(time.perf_counter() - started) * 1e3:.0f} ms"
        )
        return DepthSource(p.depth_source, estimation, self.runtime.depth_conversion)

    def _activate(self) -> None:
        """Subscribes to every input: answering starts."""
        p = self.params
        adaptive = p.input_reliability == AUTO
        color_in, depth_in = input_transports(p.color_transport, p.depth_transport)
        for stream in p.streams:
            topics = stream_topics(p, stream)
            inputs = [
                (color_in.msg_type, color_in.topic(topics.color), partial(self._on_color, stream))
            ]
            if self.depth_source.needs_sensor_depth:
                inputs.append(
                    (
                        depth_in.msg_type,
                        depth_in.topic(topics.depth),
                        partial(self._on_depth, stream),
                    )
                )
            if topics.camera_info:
                inputs.append(
                    (CameraInfo, topics.camera_info, partial(self._on_camera_info, stream))
                )
            if stream in self._registration:
                prefix = topics.color[: -len(p.color_topic)]  # the stream's namespace, "/" ended
                inputs.append(
                    (
                        CameraInfo,
                        prefix + self.object_params.depth_camera_info_topic,
                        partial(setattr, self._registration[stream], "depth_info"),
                    )
                )
            lost = partial(self._on_message_lost, stream)
            subscriptions = [
                AdaptiveSubscription(self, *args, p.input_qos, adaptive, lost) for args in inputs
            ]
            self._inputs += subscriptions
            self._input_types[stream] = {
                sub.topic: _type_name(args[0]) for sub, args in zip(subscriptions, inputs)
            }
        if adaptive:
            self._qos_timer = self.create_timer(QOS_CHECK_PERIOD_S, self._follow_publishers)
        note = transport_limit_note(p.max_image_pixels)
        if p.input_reliability == "best_effort" and note:
            self.get_logger().warning(note)
        self._state = "active"

    def _deactivate(self) -> None:
        """Unsubscribes and forgets waiting pairs; the model and the memories stay."""
        if self._state != "active":
            return
        for subscription in self._inputs:
            self.destroy_subscription(subscription.subscription)
        self._inputs = []
        if self._qos_timer is not None:
            self.destroy_timer(self._qos_timer)
            self._qos_timer = None
        with self._cond:
            self._slots.clear()
            self._state = "inactive"
            # a batch already past its check publishes before deactivate returns, never after
            self._cond.wait_for(lambda: not self._stepping, timeout=DEACTIVATE_WAIT_S)

    def _cleanup(self) -> None:
        """Stops the worker, frees the model (and its GPU memory) and the outputs."""
        self._stop_worker()
        for group in (
            *self.image_outputs.values(),
            *self.object_outputs.values(),
            *self.depth_outputs.values(),
        ):
            group.destroy()
        for service in self._own_services:
            self.destroy_service(service)
        self._diagnostics.stop()
        self.image_outputs, self._own_services = {}, []
        self.object_outputs, self._registration = {}, {}
        self.depth_outputs = {}
        self.runtime = self.depth_source = None
        gc.collect()  # the model's tensors go now, not at some later collection
        if "torch" in sys.modules and sys.modules["torch"].cuda.is_initialized():
            sys.modules["torch"].cuda.empty_cache()  # hand the cached blocks back to the driver
        _return_freed_memory()
        self._state = "unconfigured"

    def _stop_worker(self) -> None:
        with self._cond:
            self._stop.set()
            self._slots.clear()
            self._cond.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=30.0)
        self._worker = None

    def input_reliability(self) -> dict[str, str]:
        """Each input topic (fully resolved) -> the reliability it is subscribed with now."""
        return {s.topic: s.reliability.name.lower() for s in self._inputs}

    def counters(self, stream: str) -> dict[str, float]:
        """Counters, rates and latency percentiles of ``stream`` (what /diagnostics reports)."""
        return self.stats[stream].snapshot(time.monotonic())

    @property
    def worker_failed(self) -> bool:
        """The worker thread ended on its own, which it never should: no more masks can come."""
        return self._worker_failed

    def publish_diagnostics(self) -> None:
        """One DiagnosticArray on /diagnostics: the node's state and backend, then each stream's
        figures.

        Also the worker's watchdog: a worker that died is reported (state ``error``) and the node
        shuts down, so that ``main`` exits with status 1 and a supervisor can restart it."""
        with self._cond:
            died = (
                self._worker is not None
                and not self._worker.is_alive()
                and not self._stop.is_set()
            )
        if died and not self._worker_failed:
            self._worker_failed = True
            self.get_logger().fatal(
                "the worker thread stopped: no more masks; shutting down (exit status 1)"
            )
        node_values = {
            "state": "error" if self._worker_failed else self._state,
            "streams": ",".join(self.params.streams),
        }
        if self.runtime is not None:
            info = self.runtime.backend.info
            node_values.update(
                backend=info.name,
                device=info.device,
                precision=info.precision,
                input_size=str(self.runtime.input_size),
                state_norm_bound=f"{self.runtime.state_norm_bound:.4g}",
            )
        if self.depth_source is not None:
            node_values["depth_source"] = self.depth_source.kind
            estimation = self.depth_source.estimation
            if estimation is not None:
                info = estimation.backend.info
                node_values.update(
                    depth_estimator=estimation.backend.name,
                    depth_estimator_device=info.device,
                    depth_estimator_input_size=str(estimation.preprocessing.input_size),
                )
        now = time.monotonic()
        snapshots = {s: stats.snapshot(now) for s, stats in self.stats.items()}
        if self._state == "active":
            self._report_input_findings(snapshots)
        self._diagnostics.publish(node_values, snapshots)
        if self._worker_failed:
            self.context.try_shutdown()  # spin returns; serve() sees worker_failed

    def destroy_node(self) -> None:
        self._stop_worker()
        super().destroy_node()

    # Executor thread: pairing.

    def _on_color(self, stream: str, msg: Image) -> None:
        self.stats[stream].count("color_frames")
        self.stats[stream].tick("color_in", time.monotonic())
        self._offer(stream, self._pairers[stream].add_color, msg)

    def _on_depth(self, stream: str, msg: Image) -> None:
        self.stats[stream].count("depth_frames")
        self.stats[stream].tick("depth_in", time.monotonic())
        self._offer(stream, self._pairers[stream].add_depth, msg)

    def _on_camera_info(self, stream: str, msg: CameraInfo) -> None:
        self._camera_info[stream].offer(msg)

    def _on_message_lost(self, stream: str, status, subscription) -> None:
        self.stats[stream].count(LOST_BEFORE_NODE, status.total_count_change)
        if subscription.reliability == ReliabilityPolicy.RELIABLE:
            # A reliable writer with a keep-last history drops what its readers have not yet
            # acknowledged once newer messages fill it: the larger image (more fragments) first.
            why = (
                "a reliable publisher's keep-last history overwrote messages before this node "
                "took them: the node's executor was busy"
            )
        else:
            why = "best effort with images too large for the transport?"
        self._warn(
            stream,
            LOST_BEFORE_NODE,
            f"DDS lost {status.total_count} messages on {subscription.topic} so far ({why} "
            "README, QoS)",
        )

    def _report_input_findings(self, snapshots: dict[str, dict[str, float]]) -> None:
        """Warns of one-sided input and wrong-type publishers; the latter also as a gauge."""
        wrong = dict.fromkeys(snapshots, 0)
        color_only = not self.depth_source.needs_sensor_depth
        for stream, kind, text, count in input_findings(
            snapshots, self._input_types, self.get_publishers_info_by_topic, color_only
        ):
            self._warn(stream, kind, text)
            wrong[stream] += count if kind == WRONG_TYPE else 0
        for stream, count in wrong.items():
            self.stats[stream].set_count(WRONG_TYPE, count)
            snapshots[stream][WRONG_TYPE] = count

    def _offer(self, stream: str, add, msg: Image) -> None:
        stamp, now_s = msg.header.stamp, self.get_clock().now().nanoseconds * 1e-9
        bad = check_stamp(
            stamp.sec,
            stamp.nanosec,
            now_s,
            self.params.max_stamp_ahead_s,
            self.params.max_stamp_behind_s,
        )
        if bad is not None:
            self._bad_input(
                stream, bad, f"{bad}: {stamp.sec} s {stamp.nanosec} ns, node clock {now_s:.3f} s"
            )
            return
        pairer = self._pairers[stream]
        before = pairer.counters.copy()
        pair = add(stamp_to_s(msg.header.stamp), msg)
        for name, counter in _PAIRER_COUNTERS.items():
            if pairer.counters[name] != before[name]:
                self.stats[stream].set_count(counter, pairer.counters[name])
        for kind in DROPPED_KINDS:
            if pairer.counters[kind] != before[kind]:
                self._warn(
                    stream,
                    kind,
                    f"{kind.replace('_', ' ')}: {stamp_to_s(msg.header.stamp):.3f} s, "
                    "frame dropped",
                )
        if pairer.counters[CLOCK_JUMPS] != before[CLOCK_JUMPS]:
            self.get_logger().info(
                f"{stream}: stamps jumped back (rosbag loop?): pairing restarted"
            )
        if pair is None:
            return
        self.stats[stream].count("pairs")
        if not self._listened(stream):  # as depth_image_proc: nobody listens, nothing computed
            self.stats[stream].count(UNHEARD)
            return
        with self._cond:
            if stream in self._slots:
                self.stats[stream].count("dropped")
                if (
                    not self._stepping
                ):  # not the model's fault: pairs came back to back (see README, QoS)
                    self.stats[stream].count(DROPPED_IN_BURST)
            input_ms = (self.get_clock().now().nanoseconds * 1e-9 - pair.stamp_s) * 1e3
            self._slots[stream] = _Ready(pair, time.monotonic(), input_ms)
            self._cond.notify()

    def _listened(self, stream: str) -> bool:
        """Whether anyone subscribes to one of the stream's outputs (image, 3D or the depth
        estimate) now."""
        return any(
            group is not None and group.listening()
            for group in (
                self.image_outputs[stream],
                self.object_outputs.get(stream),
                self.depth_outputs.get(stream),
            )
        )

    def _on_reset(
        self, stream: str | None, request: Trigger.Request, response: Trigger.Response
    ) -> Trigger.Response:
        with self._cond:
            self._pending_resets.add(stream)
        response.success = True
        response.message = f"memory of {stream or 'every stream'} restarts at the next frame"
        return response

    def _on_set_parameters(self, parameters) -> SetParametersResult:
        if self._state != "unconfigured":  # rclpy's own (use_sim_time, qos_overrides.*) stay free
            fixed = [
                p.name
                for p in parameters
                if p.name in CONFIGURE_TIME and p.name not in RUNTIME_SETTABLE
            ]
            if fixed:
                return SetParametersResult(
                    successful=False,
                    reason=(
                        f"{', '.join(fixed)}: can change only while unconfigured "
                        "(lifecycle cleanup first)"
                    ),
                )
        for p in parameters:
            if p.name == "threshold" and not 0.0 < p.value < 1.0:
                return SetParametersResult(successful=False, reason="threshold must be in (0, 1)")
        for p in parameters:  # all valid: apply
            if p.name == "threshold" and self.runtime is not None:
                self.runtime.config = dataclasses.replace(self.runtime.config, threshold=p.value)
        return SetParametersResult(successful=True)

    def _follow_publishers(self) -> None:
        for subscription in self._inputs:
            subscription.follow_publishers()

    # Worker thread: convert, run, publish.

    def _work(self, stop: threading.Event) -> None:
        """The worker loop: nothing that goes wrong in one round ends it, only ``stop``."""
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._slots or stop.is_set())
                if stop.is_set():
                    return
                batch, self._slots = self._slots, {}
                resets, self._pending_resets = self._pending_resets, set()
                self._stepping = True
            try:
                for stream in resets:
                    self.runtime.reset(stream)
                self._process(batch, time.monotonic())
            except Exception as e:  # noqa: BLE001 - counted and reported; the next pair may work
                if not self.context.ok():
                    return  # shutting down: publishers are gone, nothing to report
                for stream in batch:
                    self.stats[stream].count(WORKER_ERRORS)
                    self._warn(
                        stream,
                        WORKER_ERRORS,
                        f"frame lost to an unexpected error: {type(e).__name__}: {e}",
                    )
            finally:
                with self._cond:
                    self._stepping = False
                    self._cond.notify_all()  # a deactivate may be waiting for this batch

    def _process(self, batch: dict[str, _Ready], taken_s: float) -> None:
        prepared, frames = [], {}
        for stream, ready in batch.items():
            frame = self._frame(stream, ready.pair)
            if frame is None:
                continue
            depth = frame.sourced
            pair = FramePair(stream, ready.pair.stamp_s, frame.rgb, depth.depth, depth.is_metric)
            try:
                prepared.append(self.runtime.prepare(pair))
            except InvalidDepthError as e:
                self._bad_input(stream, INVALID_DEPTH, e)
                continue
            except ValueError as e:
                self._bad_input(stream, MALFORMED, e)
                continue
            frames[stream] = frame
        if not prepared:
            return
        try:
            results = self.runtime.run(prepared)
        except Exception as e:  # a failing step must not end the worker: the next frames may work
            for p in prepared:
                self.stats[p.pair.stream_id].count("step_errors")
                self._warn(p.pair.stream_id, "step_error", f"step failed: {type(e).__name__}: {e}")
            return
        if self._state != "active":  # deactivated during the step: answer nothing more
            return
        for result in results:
            stream, frame = result.stream_id, frames[result.stream_id]
            self._publish(result, batch[stream], frame.rgb, taken_s)
            header = batch[stream].pair.color.header
            if stream in self.depth_outputs:
                self.depth_outputs[stream].publish(header, frame.sourced.estimate.depth)
            # 3D outputs after the mask, for listeners only (object_outputs.py)
            self._publish_objects(stream, header, result, frame)

    def _frame(self, stream: str, pair: Pair[Image]) -> _Frame | None:
        """Decodes a pair (a color frame alone without a depth topic) and gives it its depth;
        None, counted and warned, when the frame cannot be used."""
        p = self.params
        decode_color, decode_depth = (
            t.decode for t in input_transports(p.color_transport, p.depth_transport)
        )
        try:
            if pair.depth is None:  # depth_source estimated
                rgb, measured_m = decode_color(pair.color, p.max_image_pixels), None
            else:
                registration = self._registration.get(stream)
                register = registration and registration.bind(
                    pair.color.header,
                    pair.depth.header.frame_id,
                    self._camera_info[stream].latest,
                )
                rgb, measured_m = frame_arrays(
                    pair.color,
                    pair.depth,
                    p.max_image_pixels,
                    decode_color,
                    decode_depth,
                    register=register,
                )
        except ImageError as e:
            self._bad_input(stream, e.kind, e)
            if e.kind == UNREGISTERED_DEPTH and stream in self.object_outputs:
                # said on the status, not left to silence (runtime.object_status)
                self.object_outputs[stream].publish_status(pair.color.header, DEPTH_NOT_REGISTERED)
            return None
        except ValueError as e:
            self._bad_input(stream, MALFORMED, e)
            return None
        try:
            sourced = self.depth_source.depth_for(rgb, measured_m)
        except Exception as e:  # noqa: BLE001 - one frame's estimate must not cost the batch
            self.stats[stream].count(DEPTH_ERRORS)
            self._warn(stream, DEPTH_ERRORS, f"frame dropped: no depth: {type(e).__name__}: {e}")
            return None
        if sourced.estimate is not None:
            stats = self.stats[stream]
            stats.record_depth(sourced.time_s * 1e3, sourced.estimate.model_time_s * 1e3)
            if sourced.source == "fill":
                stats.set_gauge("depth_filled_px", sourced.filled_pixels)
            if sourced.fallback:
                stats.count(DEPTH_FALLBACKS)
                self._warn(
                    stream, DEPTH_FALLBACKS, f"fill: the estimate alone ({sourced.fallback})"
                )
        return _Frame(rgb, measured_m, sourced)

    def _publish_objects(self, stream: str, header, result: SaliencyResult, frame: _Frame) -> None:
        """The 3D outputs of one frame, from the sensor's measured pixels only: none without a
        depth topic, where no metric scale is known (counted and warned if someone listens; the
        status says no_metric_depth)."""
        objects = self.object_outputs[stream]
        if frame.measured_m is None:
            objects.publish_status(header, NO_METRIC_DEPTH_STATUS)
            if objects.listening():
                self.stats[stream].count(NO_METRIC_DEPTH)
                self._warn(
                    stream,
                    NO_METRIC_DEPTH,
                    "no 3D outputs: depth_source estimated gives relative depth, no metres",
                )
            return
        height, width = frame.rgb.shape[:2]
        info, _ = self._camera_info[stream].for_image(width, height)
        registration = self._registration.get(stream)
        problem = objects.publish_frame(
            header,
            result.mask,
            frame.measured_m,
            frame.rgb,
            info,
            result.probability,
            registered=registration is None or not registration.fell_back,
        )
        if problem is not None:
            self.stats[stream].count(f"object.{problem[0]}")
            self._warn(stream, f"object.{problem[0]}", f"no 3D outputs: {problem[1]}")

    def _publish(self, result: SaliencyResult, ready: _Ready, rgb, taken_s: float) -> None:
        stream = result.stream_id
        info, error = self._camera_info[stream].for_image(rgb.shape[1], rgb.shape[0])
        if error is not None:
            self._bad_input(stream, error.kind, error)
        self.image_outputs[stream].publish(
            ready.pair.color.header, result.mask, result.probability, rgb, info
        )
        latency_ms = (self.get_clock().now().nanoseconds * 1e-9 - result.stamp_s) * 1e3
        stats = self.stats[stream]
        if (
            result.reset is not None
        ):  # before "published": a reader seeing that frame counted sees its reset too
            stats.count(RESET_PREFIX + result.reset.value)
        stats.set_gauge("query_norm", result.state_norm)
        if result.memory_warning:  # the runtime gives it once per stream
            self.get_logger().warning(f"{stream}: {result.memory_warning}")
        stats.record_frame(
            latency_ms,
            result.model_time_s * 1e3,
            ready.input_ms,
            (taken_s - ready.ready_s) * 1e3,
            time.monotonic(),
        )

    def _bad_input(self, stream: str, kind: str, error: Exception | str) -> None:
        self.stats[stream].count(BAD_INPUT_PREFIX + kind)
        self._warn(stream, kind, f"frame dropped: {error}")

    def _tf_failed(self, stream: str, reason: str) -> None:
        """A tf lookup of the depth-to-color transform failed: counted, warned (throttled)."""
        self.stats[stream].count(TF_FAILURES)
        self._warn(
            stream,
            TF_FAILURES,
            f"no depth-to-color transform in tf at the color stamp ({reason}): "
            "registered with the depth_to_color.* parameters",
        )

    def _warn(self, stream: str, kind: str, text: str) -> None:
        # Throttled per stream and kind (rclpy's own throttle is per call site: one kind would
        # hide the others).
        now = time.monotonic()
        if now - self._last_warning.get((stream, kind), -WARN_PERIOD_S) >= WARN_PERIOD_S:
            self._last_warning[(stream, kind)] = now
            self.get_logger().warning(f"{stream}: {text}")


def _type_name(msg_type) -> str:
    """A message class -> its ROS type name, e.g. "sensor_msgs/msg/Image"."""
    return f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"


def serve() -> int:
    """Builds the node and runs it until shutdown; 1 when the plain node cannot start (reason
    logged).

    Plain (``managed: false``): configure and activate now, exit 1 if that fails. Managed: stay
    unconfigured for a lifecycle manager, or with ``autostart`` go to active at once; a failed
    configure leaves it unconfigured, waiting for corrected parameters. SIGINT or SIGTERM at any
    point (loading included) ends it with 0 and no traceback."""
    try:
        node = SaliencyNode()
    except STARTUP_ERRORS as e:
        rclpy.logging.get_logger(NODE_NAME).fatal(f"bad parameters: {e}")
        return 1
    try:
        if not node.get_parameter("managed").value:
            try:
                node.start()
            except StartupError as e:
                if not node.context.ok():  # SIGTERM while loading: rclpy shut the context down
                    return 0
                node.get_logger().fatal(str(e))
                return 1
        elif node.get_parameter("autostart").value:
            if node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                node.trigger_activate()
        rclpy.spin(node)  # returns when the watchdog shuts the context down
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # A signal that lands while rclpy is in C++ (building the wait set, taking a message)
        # can surface as an RCLError or a pybind11 RuntimeError instead of KeyboardInterrupt;
        # rclpy shuts the context down from its own signal thread a moment later: a shutdown.
        if not _shuts_down(node.context, SIGNAL_SHUTDOWN_WAIT_S):
            raise
    finally:
        node.destroy_node()
    return 1 if node.worker_failed else 0


def _shuts_down(context, timeout_s: float) -> bool:
    """Whether ``context`` is or goes down within ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while context.ok():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _half_built_future(unraisable) -> bool:
    """Whether an unraisable exception is rclpy's ``Future.__del__`` on a Task that never got its
    attributes: Ctrl-C's KeyboardInterrupt can land inside ``Future.__init__`` while the executor
    builds a Task (seen once in about 60 Ctrl-C starts), and at exit that Task's ``__del__`` raises
    AttributeError. Nothing was lost: the node was stopping anyway."""
    return (
        isinstance(unraisable.exc_value, AttributeError)
        and getattr(unraisable.object, "__qualname__", "") == "Future.__del__"
        and getattr(unraisable.object, "__module__", "") == "rclpy.task"
    )


def _quiet_half_built_futures(hook):
    """``sys.unraisablehook`` that drops only ``_half_built_future`` reports."""

    def quiet(unraisable) -> None:
        if not _half_built_future(unraisable):
            hook(unraisable)

    return quiet


def main(args: list[str] | None = None) -> None:
    """Console script ``saliency_node``: exit status 0 after a clean shutdown, 1 when it cannot
    start."""
    sys.unraisablehook = _quiet_half_built_futures(sys.unraisablehook)
    rclpy.init(args=args)
    try:
        status = serve()
    except KeyboardInterrupt:  # SIGINT while the node was being built: nothing to clean up
        status = 0
    finally:
        rclpy.try_shutdown()
    sys.exit(status)


if __name__ == "__main__":
    main()
