"""Node overhead: color stamp to mask publish, minus the model step, with real DDS between
processes.

    rgbd-saliency bench-node           # random weights, input 64, 120 frames at 4 Hz
    rgbd-saliency bench-node --rate 30 --frames 300 --publisher-qos best_effort  # node defaults
    rgbd-saliency bench-node --rate 30 --input-qos best_effort --frames 300 \\
        --fastdds-profile config/fastdds_large_images.xml
    rgbd-saliency bench-node --sam2-checkpoint S.pt --weights W.pt --rate 1
    rgbd-saliency bench-node --rate 30 --frames 300 --transport compressed  # JPEG, compressedDepth
    rgbd-saliency bench-node --rate 1 --frames 20 --depth-source estimated \
        --depth-estimator-weights depth_anything_v2_vits.pth --depth-estimator-input-size 266

Three processes: a publisher sending 640x480 rgb8 color and 16UC1 depth (TUM RGB-D frames from
../shared/data when present, random ones otherwise; ``--transport compressed``: as JPEG and
compressedDepth, which the node decodes; color alone with ``--depth-source estimated``) stamped
at send time, as a camera driver does;
the node (``python -m rgbd_saliency_ros.ros.node``); and this one, which reads the node's own
per-frame figures from /diagnostics and times the masks it receives. The node's overhead includes
the transport of the inputs, pairing, message conversion, resizing, thresholding and publishing,
and the time a pair waits while the previous step finishes (reported apart: zero when the model
keeps up with the rate: keep the rate below the model's, 4 Hz for the default input 64 on a loaded
2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..evaluation.node_process import (
    node_command,
    private_domain_id,
    private_ros_env,
    stop_process,
)

# TUM RGB-D's frames in the project's shared data, relative to the working directory: the bench
# commands run from a clone's root, beside ../shared (an installed package has no such folder).
TUM_DIR = Path("..", "shared", "data", "rgbd_encodings")
COLOR_TOPIC = "/camera/color/image_raw"
DEPTH_TOPIC = "/camera/aligned_depth_to_color/image_raw"
MASK_TOPIC = "/saliency/mask"
PUBLISHER_DEPTH = 5  # the camera process's keep-last history, as a driver's default
QOS_QUERY_MASKS = 50  # the receiver reads the inputs' QoS from the graph over the first masks
TRANSPORT_NAMES = {"raw": "rgb8 + 16UC1", "compressed": "JPEG (q95) + compressedDepth 16UC1 PNG"}


def tum_frames(folder: str | os.PathLike = TUM_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(480, 640, 3) uint8 RGB and (480, 640) uint16 millimetres (0 invalid): TUM RGB-D's pair
    from ``folder`` (TUM_color.png, TUM_depth.png), or random frames of that size when it is
    absent."""
    folder = Path(folder)
    if (folder / "TUM_color.png").exists():
        import cv2

        from ..runtime.depth import encode_ros_depth, read_tum_depth

        rgb = cv2.cvtColor(cv2.imread(str(folder / "TUM_color.png")), cv2.COLOR_BGR2RGB)
        return rgb, encode_ros_depth(read_tum_depth(folder / "TUM_depth.png"), "16UC1")
    gen = np.random.default_rng(0)
    return gen.integers(0, 256, (480, 640, 3), np.uint8), gen.integers(
        300, 5000, (480, 640)
    ).astype(np.uint16)


def camera_topics(transport: str) -> tuple[str, str]:
    """The bench camera's (color, depth) topics for ``transport`` (raw or compressed)."""
    if transport == "raw":
        return COLOR_TOPIC, DEPTH_TOPIC
    from ..runtime import compressed

    return (
        compressed.transport_topic(COLOR_TOPIC, compressed.COMPRESSED),
        compressed.transport_topic(DEPTH_TOPIC, compressed.COMPRESSED_DEPTH),
    )


def camera_messages(transport: str, header) -> list:
    """The bench camera's (topic, message) pairs sharing ``header``: raw rgb8 + 16UC1 Images, or
    (``compressed``) JPEG color (quality 95, compressed_image_transport's default) on
    <color>/compressed and 16UC1 compressedDepth PNG on <depth>/compressedDepth. Encoded once:
    a camera's encoding cost is not the node's."""
    from ..ros.compressed import compressed_message
    from ..ros.conversions import image_message
    from ..runtime import compressed

    rgb, depth_mm = tum_frames()
    if transport == "raw":
        color = image_message(rgb, "rgb8", header)
        depth = image_message(depth_mm, "16UC1", header)
    else:
        color = compressed_message(*compressed.encode_color(rgb, "jpeg"), header)
        depth = compressed_message(*compressed.encode_depth(depth_mm, "16UC1"), header)
    return list(zip(camera_topics(transport), (color, depth)))


def publish(
    frames: int,
    rate_hz: float,
    reliability: str,
    discovery_timeout_s: float = 60.0,
    transport: str = "raw",
    color_only: bool = False,
) -> dict:
    """The publisher process: ``frames`` color + depth pairs at ``rate_hz``, stamped at send time,
    raw or ``compressed`` (see ``camera_messages``); ``color_only``: an RGB camera, no depth.

    Waits for a subscriber on every topic first. Returns {"sent": n, "seconds": duration}.
    """
    import rclpy
    from std_msgs.msg import Header

    from ..ros.params import keep_last_qos

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    qos = keep_last_qos(reliability, PUBLISHER_DEPTH)
    header = Header(frame_id="camera_color_optical_frame")
    messages = camera_messages(transport, header)  # both messages share this header
    if color_only:
        messages = messages[:1]
    pubs = [node.create_publisher(type(msg), topic, qos) for topic, msg in messages]
    deadline = time.monotonic() + discovery_timeout_s
    while any(p.get_subscription_count() == 0 for p in pubs):
        if time.monotonic() > deadline:
            raise TimeoutError("no subscriber on the camera topics: is the node running?")
        time.sleep(0.05)
    time.sleep(1.0)  # the node's side of the match may lag the publisher's
    period, start = 1.0 / rate_hz, time.monotonic()
    for i in range(frames):
        time.sleep(max(0.0, start + i * period - time.monotonic()))
        header.stamp = node.get_clock().now().to_msg()
        for publisher, (_, msg) in zip(pubs, messages):
            publisher.publish(msg)
    seconds = time.monotonic() - start
    time.sleep(1.0)  # let reliable retransmissions finish before the writers go
    node.destroy_node()
    rclpy.shutdown()
    return {"sent": frames, "seconds": seconds}


@dataclass
class NodeBench:
    """What one run measured; milliseconds unless named otherwise."""

    frames: int
    rate_hz: float
    input_qos: str
    input_size: int
    fastdds_profile: str | None = None
    publisher_qos: str = "reliable"
    transport: str = "raw"  # raw, or compressed (JPEG color + compressedDepth PNG depth)
    depth_source: str = "sensor"  # the node's; estimated: the camera sends color alone
    node: dict[str, float] = field(
        default_factory=dict
    )  # the node's last /diagnostics of the stream
    received_latency_ms: list[float] = field(default_factory=list)  # stamp -> mask received here
    # Each camera topic's reliability on both sides, read from the ROS graph when the first mask
    # came (the graph does not carry history): "<topic>" -> "publisher reliable, node reliable"
    qos: dict[str, str] = field(default_factory=dict)
    decode_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # input -> p50, p95

    def report(self) -> str:
        n = self.node
        received = (
            np.percentile(self.received_latency_ms, (50, 95))
            if self.received_latency_ms
            else (np.nan, np.nan)
        )
        count = {k: int(n.get(k, 0)) for k in COUNTS}
        lost_color = 1.0 - count["color_frames"] / self.frames
        lost_depth = 1.0 - count["depth_frames"] / self.frames
        depth = (
            "no depth sent (estimated)"
            if self.depth_source == "estimated"
            else f"{count['depth_frames']} depth ({100 * lost_depth:.0f} % lost)"
        )
        profile = Path(self.fastdds_profile).name if self.fastdds_profile else "none"
        figures = FIGURES + (DEPTH_FIGURES if self.depth_source != "sensor" else ())
        return "\n".join(
            [
                f"node overhead, 640x480 {TRANSPORT_NAMES[self.transport]}, "
                f"{self.frames} pairs at {self.rate_hz:g} Hz, "
                f"publisher QoS {self.publisher_qos}, node input QoS {self.input_qos}, "
                f"model input {self.input_size}, depth source {self.depth_source}, "
                f"publisher / node / receiver in three processes, Fast DDS profile {profile}",
                *(_row(label, n[f"{key}_p50"], n[f"{key}_p95"]) for label, key in figures),
                _row("  stamp -> mask received by another process", *received),
                f"  masks answered {count['published']} of {self.frames} pairs sent "
                f"({100 * count['published'] / self.frames:.0f} %)",
                f"  node received {count['color_frames']} color ({100 * lost_color:.0f} % lost), "
                f"{depth}; "
                f"{count['pairs']} pairs, {count['published']} masks published, "
                f"{count['dropped']} pairs dropped for newer ones ({count['dropped_in_burst']} of "
                "them arrived back to back while the worker was idle), "
                f"{count['unpaired_color']} color / {count['unpaired_depth']} depth unpaired",
                *(
                    _row(f"  decoding the {name} alone (this process)", p50, p95)
                    for name, (p50, p95) in self.decode_ms.items()
                ),
            ]
        )


# The node's per-frame figures in the report: label, /diagnostics key (its _p50 and _p95 values).
FIGURES = (
    ("  overhead (stamp -> mask publish - model)", "overhead_ms"),
    ("    of which stamp -> pair complete in node", "input_ms"),
    ("    of which waiting for the previous step", "wait_ms"),
    ("  model step", "model_ms"),
    ("  stamp -> mask publish", "latency_ms"),
)
# With a depth estimator: its part of the overhead.
DEPTH_FIGURES = (
    ("  depth source (estimator and fit; overhead)", "depth_ms"),
    ("    of which the estimator's network", "depth_model_ms"),
)
# The node's counters in the report (/diagnostics keys; 0 when absent).
COUNTS = (
    "color_frames",
    "depth_frames",
    "pairs",
    "published",
    "dropped",
    "dropped_in_burst",
    "unpaired_color",
    "unpaired_depth",
)


def _row(label: str, p50: float, p95: float) -> str:
    return f"{label:<44}p50 {p50:7.1f} ms   p95 {p95:7.1f} ms"


def decode_times_ms(repeats: int = 30) -> dict[str, tuple[float, float]]:
    """(p50, p95) milliseconds of decoding the bench camera's compressed color and depth with the
    node's decoders, in this process (the first run left out)."""
    from std_msgs.msg import Header

    from ..ros.compressed import input_transports

    messages = [msg for _, msg in camera_messages("compressed", Header())]
    decoders = [t.decode for t in input_transports("compressed", "compressedDepth")]
    out = {}
    for name, msg, decode in zip(("color", "depth"), messages, decoders):
        times = []
        for _ in range(repeats + 1):
            started = time.perf_counter()
            decode(msg, 640 * 480)
            times.append((time.perf_counter() - started) * 1e3)
        p50, p95 = np.percentile(times[1:], (50, 95))
        out[name] = (float(p50), float(p95))
    return out


def bench_node(
    frames: int = 120,
    rate_hz: float = 4.0,
    input_qos: str = "auto",
    sam2_checkpoint: str | None = None,
    weights: str | None = None,
    input_size: int = 64,
    device: str = "cpu",
    fastdds_profile: str | None = None,
    timeout_s: float = 300.0,
    publisher_qos: str = "reliable",
    node_fastdds_profile: str | None = None,
    monitor=None,
    transport: str = "raw",
    depth_source: str = "sensor",
    depth_estimator_weights: str | None = None,
    depth_estimator_input_size: int = 0,
) -> NodeBench:
    """Runs node and publisher as subprocesses on a private ROS domain and measures the node.

    Without ``weights``, random weights for ``input_size`` are written to a temporary folder.
    ``fastdds_profile``: a Fast DDS XML profile for all three processes (e.g.
    config/fastdds_large_images.xml); ``node_fastdds_profile``: one for the node's process only
    (what a launch file can set when the camera driver runs with its own defaults).
    ``monitor(node pid, latest /diagnostics values by status name)``: called about every 0.1 s
    while the pairs go out (the soak benchmark samples the node's memory with it).
    ``transport``: "raw" Images, or "compressed" (JPEG color, compressedDepth depth: the node's
    overhead then includes decoding them). ``depth_source``, ``depth_estimator_weights`` and
    ``depth_estimator_input_size``: the node's parameters (estimated: the camera sends color
    alone).
    """
    if transport not in TRANSPORT_NAMES:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORT_NAMES)}: {transport!r}")
    result = NodeBench(
        frames,
        rate_hz,
        input_qos,
        input_size,
        fastdds_profile,
        publisher_qos,
        transport,
        depth_source,
    )
    depth = {"depth_source": depth_source}
    if depth_source != "sensor":
        depth.update(
            depth_estimator_weights=str(depth_estimator_weights),
            depth_estimator_input_size=depth_estimator_input_size,
        )
    domain = private_domain_id()  # parallel runs do not see each other
    env = _process_env(domain, fastdds_profile)
    with tempfile.TemporaryDirectory() as tmp:
        if weights is None:
            from ..model.random_weights import write_random_weights

            sam2_checkpoint, weights = map(str, write_random_weights(tmp, input_size))
        node = subprocess.Popen(
            _node_command(sam2_checkpoint, weights, device, input_qos, transport, depth),
            env=_process_env(domain, node_fastdds_profile or fastdds_profile),
        )
        result.node = _drive(
            node,
            _Receiver(domain, result),
            _publisher_command(
                frames, rate_hz, publisher_qos, transport, depth_source == "estimated"
            ),
            env,
            time.monotonic() + timeout_s,
            monitor,
        )
    if not result.node:
        raise RuntimeError("no diagnostics from the node")
    if transport == "compressed":
        result.decode_ms = decode_times_ms()
    return result


def _drive(node, receiver, publisher_command: list, env: dict, deadline: float, monitor) -> dict:
    """Waits for the ``node`` process to be active, runs the publisher to its end and lets the
    last masks and diagnostics arrive; returns the node's last /diagnostics values of the
    stream. The receiver is closed and both processes stopped however it ends."""
    publisher = None
    try:
        while receiver.status.get("saliency_node", {}).get("state") != "active":
            receiver.spin_a_while(node, deadline)
        publisher = subprocess.Popen(publisher_command, env=env)
        while publisher.poll() is None:
            receiver.spin_a_while(node, deadline)
            if monitor is not None:
                monitor(node.pid, receiver.status)
        if publisher.returncode != 0:
            raise RuntimeError(f"the publisher failed (exit status {publisher.returncode})")
        settle = time.monotonic() + 3.0  # the last masks and one more diagnostics message
        while time.monotonic() < settle:
            receiver.spin_a_while(node, deadline)
        return receiver.status.get("saliency_node: camera", {})
    finally:
        receiver.close()
        for process in (publisher, node):
            if process is not None:
                stop_process(process)


def _process_env(domain: int, fastdds_profile: str | None) -> dict[str, str]:
    """The environment of a child process (node or publisher): private ROS domain ``domain``
    (``private_ros_env``) and the Fast DDS ``fastdds_profile`` when given. Only the children get
    it: this process's own environment is left as it is."""
    env = private_ros_env(domain)
    if fastdds_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(fastdds_profile).resolve())
    return env


def _publisher_command(
    frames: int, rate_hz: float, reliability: str, transport: str, color_only: bool
) -> list:
    return [
        sys.executable,
        "-m",
        "rgbd_saliency_ros.benchmarks.node",
        "publish",
        "--frames",
        str(frames),
        "--rate",
        str(rate_hz),
        "--reliability",
        reliability,
        "--transport",
        transport,
        *(["--color-only"] if color_only else []),
    ]


def _node_command(
    sam2_checkpoint: str,
    weights: str,
    device: str,
    input_qos: str,
    transport: str,
    depth: dict[str, object],
) -> list[str]:
    color_in, depth_in = (
        ("compressed", "compressedDepth") if transport == "compressed" else ("raw", "raw")
    )
    params = {
        "device": device,
        "input_qos.reliability": input_qos,
        "diagnostics_period_s": 0.5,
        "camera_info_topic": "''",
        "color_transport": color_in,
        "depth_transport": depth_in,
        **depth,
    }
    return node_command(sam2_checkpoint, weights, params, log_level="warn")


class _Receiver:
    """This process's side, on its own rclpy context: the node's masks (timed) and /diagnostics."""

    def __init__(self, domain: int, result: NodeBench) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image

        from ..ros.params import keep_last_qos

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.probe = rclpy.create_node("bench_receiver", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.probe)
        self.status: dict = {}  # the latest /diagnostics values by status name
        self._result = result
        self.probe.create_subscription(
            Image,
            MASK_TOPIC,
            self._on_mask,
            keep_last_qos("reliable", 10),
        )
        self.probe.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_mask(self, msg) -> None:
        from ..ros.conversions import stamp_to_s

        now_s = self.probe.get_clock().now().nanoseconds * 1e-9
        self._result.received_latency_ms.append((now_s - stamp_to_s(msg.header.stamp)) * 1e3)
        # the graph gains both sides of each topic soon after the first masks; asked no longer
        if len(self._result.received_latency_ms) <= QOS_QUERY_MASKS and (
            not self._result.qos or "none" in str(self._result.qos)
        ):
            self._result.qos = self.input_qos()

    def input_qos(self) -> dict[str, str]:
        """Each camera topic -> the reliability its publisher and its subscriber (the node) use,
        from the ROS graph."""

        def describe(infos) -> str:
            return " / ".join(i.qos_profile.reliability.name.lower() for i in infos)

        out = {}
        for topic in camera_topics(self._result.transport):
            publishers = self.probe.get_publishers_info_by_topic(topic)
            subscribers = self.probe.get_subscriptions_info_by_topic(topic)
            if publishers or subscribers:
                out[topic] = (
                    f"publisher {describe(publishers) or 'none'}, "
                    f"node {describe(subscribers) or 'none'}"
                )
        return out

    def _on_diagnostics(self, msg) -> None:
        from ..ros.diagnostics import status_values

        for s in msg.status:
            self.status[s.name] = status_values(s)

    def spin_a_while(self, node_process: subprocess.Popen, deadline: float) -> None:
        if node_process.poll() is not None:
            raise RuntimeError(f"the node exited (status {node_process.returncode})")
        if time.monotonic() > deadline:
            raise TimeoutError("bench-node ran out of time")
        self.executor.spin_once(timeout_sec=0.1)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown()
        self.probe.destroy_node()
        rclpy.try_shutdown(context=self.context)


def bench_node_overhead(**kwargs) -> dict[str, float | str]:
    """``bench_node``'s headline figures, milliseconds, as a flat dict (the benchmark suite's
    report)."""
    result = bench_node(**kwargs)
    n = result.node
    out: dict[str, float | str] = {
        "setup": f"{TRANSPORT_NAMES[result.transport]}, "
        f"{result.frames} pairs at {result.rate_hz:g} Hz, "
        f"publisher QoS {result.publisher_qos}, "
        f"node input QoS {result.input_qos}, model input {result.input_size}",
        "answered %": 100.0 * n.get("published", 0) / result.frames,
    }
    for name in ("overhead", "input", "wait", "model", "latency"):
        out[f"{name} p50"], out[f"{name} p95"] = n[f"{name}_ms_p50"], n[f"{name}_ms_p95"]
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m rgbd_saliency_ros.benchmarks.node publish ...``: the publisher process."""
    parser = argparse.ArgumentParser(
        description="bench-node's camera: publishes 640x480 color + depth pairs"
    )
    parser.add_argument("role", choices=["publish"])
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--rate", type=float, default=4.0)
    parser.add_argument("--reliability", choices=["reliable", "best_effort"], default="reliable")
    parser.add_argument("--transport", choices=list(TRANSPORT_NAMES), default="raw")
    parser.add_argument("--color-only", action="store_true", help="an RGB camera: no depth")
    args = parser.parse_args(argv)
    sent = publish(
        args.frames,
        args.rate,
        args.reliability,
        transport=args.transport,
        color_only=args.color_only,
    )
    print(json.dumps(sent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
