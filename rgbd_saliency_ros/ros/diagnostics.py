"""Per-stream health: rates, latency percentiles and counters, and their diagnostic_msgs form.

``StreamStats`` is updated from the executor thread (inputs) and the worker thread (outputs), so it
locks; ``snapshot`` gives plain numbers (what tests and the benchmark read) and
``diagnostic_array`` turns snapshots into the DiagnosticArray the node publishes about once a
second.

    stats = StreamStats()
    stats.count(BAD_INPUT_PREFIX + "truncated_data")
    stats.tick("color_in", now_s)
    stats.record_frame(latency_ms=31.0, model_ms=24.0, input_ms=4.0, wait_ms=2.0, now_s=now_s)
    stats.set_gauge("query_norm", 8.9)
    stats.record_depth(source_ms=310.0, model_ms=290.0)   # depth_source estimated or fill
    streams = {"camera": stats.snapshot(now_s)}
    msg = diagnostic_array(stamp, "saliency_node", {"backend": "torch"}, streams)
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..runtime.compressed import COMPRESSED_ERROR_KINDS
from ..runtime.images import INVALID_DEPTH, MALFORMED  # frames the runtime refuses
from ..runtime.stream_memory import ResetCause
from .conversions import CAMERA_INFO_KINDS, IMAGE_ERROR_KINDS
from .input_health import LOST_BEFORE_NODE, WRONG_TYPE
from ..runtime.pairing import (
    CLOCK_JUMPS,
    DUPLICATE_STAMP,
    OUT_OF_ORDER,
    STAMP_KINDS,
    STRAY_STAMP,
    UNPAIRED_COLOR,
    UNPAIRED_DEPTH,
)

BAD_INPUT_PREFIX = "bad_input."
RESET_PREFIX = "reset."

BAD_INPUT_KINDS = (
    *IMAGE_ERROR_KINDS,
    *COMPRESSED_ERROR_KINDS,
    INVALID_DEPTH,
    DUPLICATE_STAMP,
    OUT_OF_ORDER,
    MALFORMED,
    *STAMP_KINDS,
    STRAY_STAMP,
    *CAMERA_INFO_KINDS,
)

# Every counter a stream reports (zeros included, so that readers can rely on the keys).
DROPPED_IN_BURST = "dropped_in_burst"
# any other exception in the worker loop (it goes on with the next pair)
WORKER_ERRORS = "worker_errors"
# pairs not computed: nobody subscribed to any of the stream's outputs then
UNHEARD = "unheard"
# depth_source fill: frames given the estimate alone (the sensor's depth too sparse to fit)
DEPTH_FALLBACKS = "depth.fallbacks"
# depth_source estimated or fill: frames lost because the depth source raised
DEPTH_ERRORS = "depth.errors"
COUNTERS = (
    "color_frames",  # color messages received
    "depth_frames",
    "pairs",  # color + depth pairs made
    "published",  # masks published
    "dropped",  # pairs replaced by a newer one before the worker took them
    UNHEARD,
    # of those, replaced while the worker was idle: the transport delivered them together
    DROPPED_IN_BURST,
    UNPAIRED_COLOR,  # frames that never found a partner
    UNPAIRED_DEPTH,
    CLOCK_JUMPS,  # pairing restarts after a stamp jumped back (rosbag loop)
    "step_errors",  # batched steps that raised (the frames get no output)
    WORKER_ERRORS,
    DEPTH_FALLBACKS,
    DEPTH_ERRORS,
    LOST_BEFORE_NODE,  # messages DDS reports lost on an input topic (message_lost events)
    WRONG_TYPE,  # publishers of another message type on an input topic now (from the graph)
    *(BAD_INPUT_PREFIX + kind for kind in BAD_INPUT_KINDS),
    *(RESET_PREFIX + cause.value for cause in ResetCause),
)

RATES = ("color_in", "depth_in", "output")
# Last values, NaN until set. query_norm: the largest row norm of the stream's state after its
# last frame (the model's memory health, StateSpec.health: SAM-DAQ's video queries; a state beyond
# the model's bound is reset, counted as reset.bad_state). depth_filled_px: depth_source fill,
# the sensor's invalid pixels the last frame filled from the estimate.
GAUGES = ("query_norm", "depth_filled_px")
# depth_ms and depth_model_ms: depth_source estimated or fill only (NaN with sensor depth).
LATENCIES = (
    "latency_ms",
    "model_ms",
    "overhead_ms",
    "input_ms",
    "wait_ms",
    "depth_ms",
    "depth_model_ms",
)


LATENCY_WINDOW = 300  # published masks whose latencies the p50s and p95s are taken over


class RateMeter:
    """Events per second over the last ``window_s`` seconds (0 when fewer than two)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now_s: float) -> None:
        """One event at ``now_s`` (monotonic seconds)."""
        self._times.append(now_s)
        self._forget(now_s)

    def rate_hz(self, now_s: float) -> float:
        """Events per second in the window ending at ``now_s``."""
        self._forget(now_s)
        if len(self._times) < 2 or self._times[-1] <= self._times[0]:
            return 0.0
        return (len(self._times) - 1) / (self._times[-1] - self._times[0])

    def _forget(self, now_s: float) -> None:
        while self._times and self._times[0] < now_s - self.window_s:
            self._times.popleft()


class StreamStats:
    """Counters, rates and latency windows of one stream; thread-safe.

    Latencies (milliseconds) per published frame: ``latency_ms`` color stamp to mask publish,
    ``model_ms`` the batched step, ``overhead_ms`` = latency - model (everything the node and the
    transport add), ``input_ms`` color stamp to the pair's completion in the node (transport and
    executor), ``wait_ms`` how long the pair then waited for the worker to finish the batch before.
    Per frame whose depth came from the estimator (``record_depth``): ``depth_ms`` the depth
    source's wall time (estimator, pre- and post-processing, fill's fit), ``depth_model_ms`` the
    estimator network's alone; both are part of ``latency_ms`` and ``overhead_ms``.
    """

    def __init__(self, window: int = LATENCY_WINDOW, rate_window_s: float = 5.0) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._rates = {name: RateMeter(rate_window_s) for name in RATES}
        self._latencies: dict[str, deque[float]] = {
            name: deque(maxlen=window) for name in LATENCIES
        }
        self._gauges = {name: float("nan") for name in GAUGES}

    def count(self, name: str, n: int = 1) -> None:
        """Adds ``n`` to counter ``name`` (any name: new kinds appear in the next snapshot)."""
        with self._lock:
            self.counters[name] += n

    def set_count(self, name: str, value: int) -> None:
        """For counters kept elsewhere (the pairer's) and copied in."""
        with self._lock:
            self.counters[name] = value

    def set_gauge(self, name: str, value: float) -> None:
        """The latest value of ``name`` (one of ``GAUGES``)."""
        with self._lock:
            self._gauges[name] = float(value)

    def tick(self, rate: str, now_s: float) -> None:
        """An event of ``rate`` (one of ``RATES``) at ``now_s`` (monotonic seconds)."""
        with self._lock:
            self._rates[rate].tick(now_s)

    def record_frame(
        self, latency_ms: float, model_ms: float, input_ms: float, wait_ms: float, now_s: float
    ) -> None:
        """A mask was published at ``now_s`` (monotonic seconds) with these latencies."""
        with self._lock:
            self.counters["published"] += 1
            self._rates["output"].tick(now_s)
            for name, value in (
                ("latency_ms", latency_ms),
                ("model_ms", model_ms),
                ("overhead_ms", latency_ms - model_ms),
                ("input_ms", input_ms),
                ("wait_ms", wait_ms),
            ):
                # A stamp ahead of this clock (another machine's, within max_stamp_ahead_s) gives
                # no latency: nothing from it enters the windows.
                if latency_ms >= 0 or name in ("model_ms", "wait_ms"):
                    self._latencies[name].append(value)

    def record_depth(self, source_ms: float, model_ms: float) -> None:
        """One frame's depth from the estimator: the source's and the network's wall times."""
        with self._lock:
            self._latencies["depth_ms"].append(source_ms)
            self._latencies["depth_model_ms"].append(model_ms)

    def snapshot(self, now_s: float) -> dict[str, float]:
        """Plain numbers: every counter, ``<rate>_hz``, ``<latency>_p50`` / ``_p95`` (NaN before
        the first frame) and the gauges."""
        with self._lock:
            out: dict[str, float] = dict(self.counters)
            out.update(self._gauges)
            for name, meter in self._rates.items():
                out[f"{name}_hz"] = meter.rate_hz(now_s)
            for name, values in self._latencies.items():
                p50, p95 = (
                    np.percentile(values, (50, 95)) if values else (float("nan"), float("nan"))
                )
                out[f"{name}_p50"], out[f"{name}_p95"] = float(p50), float(p95)
        return out


def stream_status(
    node_name: str, stream: str, snapshot: dict[str, float], hardware_id: str
) -> DiagnosticStatus:
    """One stream's DiagnosticStatus: OK while masks come out, WARN with no input or no output."""
    if snapshot["color_in_hz"] == 0 and snapshot["depth_in_hz"] == 0:
        level, message = DiagnosticStatus.WARN, "no input"
    elif snapshot["output_hz"] == 0:
        level, message = DiagnosticStatus.WARN, "input but no output"
    else:
        level = DiagnosticStatus.OK
        message = (
            f"{snapshot['output_hz']:.1f} Hz out, latency p50 {snapshot['latency_ms_p50']:.0f} ms"
        )
    values = [KeyValue(key=k, value=_format(v)) for k, v in snapshot.items()]
    return DiagnosticStatus(
        level=level,
        name=f"{node_name}: {stream}",
        message=message,
        hardware_id=hardware_id,
        values=values,
    )


def diagnostic_array(
    stamp, node_name: str, node_values: dict[str, str], snapshots: dict[str, dict[str, float]]
) -> DiagnosticArray:
    """The node's status (``node_values``: backend, device, ...) and one status per stream.

    Args:
        stamp: builtin_interfaces/Time of the message.
        node_name: prefix of every status name.
        node_values: shown as key/values of the node's own status.
        snapshots: stream -> ``StreamStats.snapshot()``.
    """
    hardware_id = node_values.get("device", "")
    node_status = DiagnosticStatus(
        level=DiagnosticStatus.OK,
        name=node_name,
        message=node_values.get("state", ""),
        hardware_id=hardware_id,
        values=[KeyValue(key=k, value=str(v)) for k, v in node_values.items()],
    )
    msg = DiagnosticArray()
    msg.header.stamp = stamp
    msg.status = [node_status] + [
        stream_status(node_name, s, snap, hardware_id) for s, snap in snapshots.items()
    ]
    return msg


def status_values(status: DiagnosticStatus) -> dict[str, float | str]:
    """A DiagnosticStatus's key/values back to numbers where they are numbers (for readers,
    tests)."""
    out: dict[str, float | str] = {}
    for kv in status.values:
        try:
            out[kv.key] = float(kv.value)
        except ValueError:
            out[kv.key] = kv.value
    return out


def _format(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}"


class DiagnosticsOutput:
    """The node's diagnostics output group: the ``/diagnostics`` publisher (for the node's life)
    and the timer that drives it while configured. Published whether or not anyone listens:
    aggregators and monitors join at any time, and the message is small."""

    TOPIC = "/diagnostics"  # absolute: where diagnostic_aggregator and rqt look

    def __init__(self, node) -> None:
        self._node = node
        self.publisher = node.create_publisher(DiagnosticArray, self.TOPIC, 10)
        self._timer = None

    def start(self, period_s: float, tick: Callable[[], None]) -> None:
        """Calls ``tick`` (which calls ``publish``) every ``period_s`` seconds (configure)."""
        self.stop()
        self._timer = self._node.create_timer(period_s, tick)

    def stop(self) -> None:
        """No more periodic reports (cleanup)."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None

    def publish(self, node_values: dict[str, str], snapshots: dict[str, dict[str, float]]) -> None:
        """One DiagnosticArray now: the node's status, then each stream's."""
        stamp = self._node.get_clock().now().to_msg()
        self.publisher.publish(
            diagnostic_array(stamp, self._node.get_name(), node_values, snapshots)
        )
