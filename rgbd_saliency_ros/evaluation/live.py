"""A bag played to a running saliency node over real DDS, and what the node sends back, measured.

    .venv/bin/saliency_node --ros-args -p sam2_checkpoint:=S.pt -p weights:=W.safetensors &
    rgbd-saliency replay --live --bag seq_bag --out out/live [--rate-factor 0.5]

The bag's color, depth (and CameraInfo) messages are published on their own topics at the
recorded pace (times ``rate_factor``), restamped to the present with their spacing kept (divided
by ``rate_factor``), as a camera would stamp them. Compressed recordings are played as they are
(CompressedImage): start the node with ``color_transport:=compressed`` and
``depth_transport:=compressedDepth``. The node's masks and probability maps are
recorded as they arrive: latency is from the color stamp to the mask's arrival here, and frames
without a mask are the drops a robot would see (lost in transport, left unpaired, or replaced
by a newer pair while the model was busy). The node's own counters come from /diagnostics.
Quality metrics, the 3D centroids (from the received masks and the bag's depth and CameraInfo)
and the report are then made as for the offline replay, from 8-bit probability maps (as
toolboxes score saved maps).

Uses rclpy and the message packages directly (no code of the node's).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..runtime.images import image_array
from ..runtime.pairing import StampPairer
from ..runtime.qos import RELIABILITIES, keep_last_qos
from ..runtime.geometry import CameraModel
from .bags import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    BagError,
    BagMessage,
    bag_info,
    message_depth_m,
    message_rgb,
    read_bag,
    stamp_ns,
    split_ns,
)
from .replay import (
    GroundTruth,
    ReplayInputs,
    ReplayOptions,
    finish_replay,
    fit_mask,
    frame_centroids,
)
from .report import FrameRecord, ReplayRecorder


@dataclass(frozen=True)
class LiveOptions:
    """How to play the bag and where the node answers."""

    rate_factor: float = 1.0  # 2: twice the recorded pace
    mask_topic: str = "/saliency/mask"
    probability_topic: str = "/saliency/probability"
    publish_reliability: str = "reliable"  # reliable or best_effort, for what this publishes
    output_reliability: str = "reliable"  # must be compatible with the node's output_qos
    discovery_timeout_s: float = 120.0  # for the node to subscribe (it loads its model first)
    drain_timeout_s: float = 10.0  # after the last frame, how long to wait for late masks at most
    domain_id: int | None = None  # None: ROS_DOMAIN_ID or 0

    def __post_init__(self) -> None:
        if not self.rate_factor > 0:
            raise ValueError(f"rate factor must be positive, got {self.rate_factor}")
        for name in ("publish_reliability", "output_reliability"):
            if getattr(self, name) not in RELIABILITIES:
                raise ValueError(
                    f"{name} must be {' or '.join(RELIABILITIES)}, got {getattr(self, name)!r}"
                )


@dataclass
class _Received:
    arrival_ns: int = 0  # system time the mask arrived
    mask_png: bytes | None = None
    prob_png: bytes | None = None


@dataclass
class _Listener:
    """The node's answers: filled in by the executor thread's callbacks, read under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    # restamped color stamp ns -> outputs
    outputs: dict[int, _Received] = field(default_factory=dict)
    masks: int = 0
    node_status: dict[str, float] | None = None  # the latest per-stream /diagnostics values
    statuses: int = 0  # per-stream statuses received so far
    bad_outputs: int = 0  # masks or probabilities that did not decode

    def on_output(self, kind: str, msg: Any, arrival_ns: int) -> None:
        """A mask ("mask") or probability ("prob") Image, kept PNG-encoded (8-bit, as saved maps
        are scored)."""
        try:
            array = image_array(msg)
            if kind == "prob":
                array = np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
            png = cv2.imencode(".png", array)[1].tobytes()
        except (ValueError, cv2.error):
            with self.lock:
                self.bad_outputs += 1
            return
        with self.lock:
            entry = self.outputs.setdefault(stamp_ns(msg.header.stamp), _Received())
            if kind == "mask":
                entry.arrival_ns, entry.mask_png = arrival_ns, png
                self.masks += 1
            else:
                entry.prob_png = png

    def on_diagnostics(self, msg: Any) -> None:
        """A DiagnosticArray: keeps the values of a stream's status (not the node's own)."""
        for status in msg.status:
            values = _status_values(status)
            if "pairs" in values and "published" in values:
                with self.lock:
                    self.node_status = values
                    self.statuses += 1


@dataclass
class _Played:
    """What playing the bag to the node gave."""

    sent: dict[str, int]  # messages published: color, depth, camera_info
    stamps: dict[int, tuple[int, int]]  # new color stamp ns -> (index, original stamp ns)
    error: BagError | None  # what stopped the playing early
    before: dict[str, float]  # the node's per-stream /diagnostics values before playing
    after: dict[str, float]  # and after the last answer
    outputs: dict[int, _Received]  # new color stamp ns -> what came back
    bad_outputs: int


def _status_values(status) -> dict[str, float]:
    values = {}
    for kv in status.values:
        try:
            values[kv.key] = float(kv.value)
        except ValueError:
            pass
    return values


def live_replay(
    bag: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ReplayOptions | None = None,
    live: LiveOptions | None = None,
) -> dict[str, Any]:
    """Plays ``bag`` to a running node and writes the report into ``out_dir``.

    Returns:
        The metrics.json content (see ``report.ReplayRecorder.finish``), mode "live";
        ``bad_input`` and ``node_counters`` are the node's counts over the replay.

    Raises:
        TimeoutError: no node subscribed to the color and depth topics in time.
        BagError: the bag cannot be read (a damaged one after reporting what was played).
    """
    inputs = ReplayInputs.read(bag, options)
    options, live = inputs.options, live or LiveOptions()
    played = _play_to_node(bag, options, live, _message_classes(options, inputs.contents.topics))
    outputs = played.outputs
    answered = sorted(
        index
        for new, (index, _) in played.stamps.items()
        if new in outputs and outputs[new].mask_png
    )
    recorder = inputs.recorder(out_dir, "live", examples=answered)
    by_original = {original: new for new, (_, original) in played.stamps.items()}
    scorer = _Scorer(options, recorder, inputs.gt, outputs, by_original, inputs.camera)
    scorer.score(bag, played.error)
    counts, info = _counts_and_info(bag, played, live)
    counts.update({**scorer.counts, **inputs.counts()})
    return finish_replay(recorder, counts, info, played.error, "what was played")


def _counts_and_info(bag, played: _Played, live: LiveOptions) -> tuple[dict, dict]:
    """What was sent and received, the node's counters over the replay, and what ran."""
    masks = sum(1 for o in played.outputs.values() if o.mask_png is not None)
    counts = {
        "sent_color": played.sent["color"],
        "sent_depth": played.sent["depth"],
        "sent_camera_info": played.sent["camera_info"],
        "masks_received": masks,
        "frames_without_mask": played.sent["color"] - masks,
        "bad_outputs": played.bad_outputs,
        "rate_factor": live.rate_factor,
        **_node_counts(played.before, played.after),
    }
    info = {
        "bag": os.fspath(bag),
        "node": live.mask_topic,
        "publish_qos": live.publish_reliability,
    }
    if played.after:
        info["node_latency_ms_p50"] = played.after.get("latency_ms_p50")
        info["node_model_ms_p50"] = played.after.get("model_ms_p50")
    return counts, info


def _message_classes(options: ReplayOptions, topics: dict[str, tuple[str, int]]) -> dict:
    """topic -> rclpy message class of what is played: color and depth (Image or
    CompressedImage, as recorded) and every CameraInfo topic of the bag."""
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image

    kinds = {
        t: CompressedImage if topics[t][0] == COMPRESSED_TYPE else Image
        for t in (options.color_topic, options.depth_topic)
    }
    kinds.update({t: CameraInfo for t, (kind, _) in topics.items() if kind == CAMERA_INFO_TYPE})
    return kinds


def _play_to_node(bag, options: ReplayOptions, live: LiveOptions, kinds: dict) -> _Played:
    """Publishes the bag's ``kinds`` topics to the node from a private rclpy context, waits for
    its last answers and returns them."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.serialization import deserialize_message

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=live.domain_id)
    listener = _Listener()
    executor = SingleThreadedExecutor(context=context)
    spinner = threading.Thread(target=executor.spin, name="replay_listener", daemon=True)
    node = None
    try:
        node = rclpy.create_node("saliency_replay", context=context)
        publishers = _connect(node, listener, kinds, live)
        executor.add_node(node)
        spinner.start()
        _wait_for_node(publishers, options, live)
        with listener.lock:
            before = dict(listener.node_status or {})
        clock = node.get_clock()
        sent, stamps, error = _publish(
            bag, options, live, publishers, kinds, clock, deserialize_message
        )
        _drain(listener, sent["color"], live)
        _next_status(listener)
        with listener.lock:
            after, outputs = dict(listener.node_status or {}), dict(listener.outputs)
            return _Played(sent, stamps, error, before, after, outputs, listener.bad_outputs)
    finally:
        executor.shutdown(timeout_sec=5.0)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=context)
        if spinner.is_alive():
            spinner.join(timeout=5.0)


def _connect(node, listener: _Listener, kinds: dict, live: LiveOptions) -> dict:
    """Subscribes ``listener`` to the node's masks, probabilities and /diagnostics; returns a
    publisher for each topic of ``kinds``."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    clock = node.get_clock()
    out_qos = keep_last_qos(live.output_reliability, 50)
    for kind, topic in (("mask", live.mask_topic), ("prob", live.probability_topic)):
        node.create_subscription(
            Image,
            topic,
            lambda msg, kind=kind: listener.on_output(kind, msg, clock.now().nanoseconds),
            out_qos,
        )
    node.create_subscription(DiagnosticArray, "/diagnostics", listener.on_diagnostics, 10)
    return {
        topic: node.create_publisher(kind, topic, keep_last_qos(live.publish_reliability, 5))
        for topic, kind in kinds.items()
    }


def _wait_for_node(publishers: dict, options: ReplayOptions, live: LiveOptions) -> None:
    """Until the color and depth topics have a subscriber (the node subscribes once its model
    is loaded)."""
    deadline = time.monotonic() + live.discovery_timeout_s
    inputs = [publishers[options.color_topic], publishers[options.depth_topic]]
    while any(p.get_subscription_count() == 0 for p in inputs):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no subscriber on {options.color_topic} and {options.depth_topic} after "
                f"{live.discovery_timeout_s:.0f} s: is saliency_node running, on the same "
                "ROS_DOMAIN_ID?"
            )
        time.sleep(0.05)
    time.sleep(1.0)  # the node's side of the match can lag this side's


def _publish(
    bag,
    options: ReplayOptions,
    live: LiveOptions,
    publishers: dict,
    kinds: dict,
    clock,
    deserialize,
):
    """Publishes the bag at its pace; returns (sent counts, {new color stamp ns: (index, original
    stamp ns)}, the BagError that stopped it or None)."""
    sent = {"color": 0, "depth": 0, "camera_info": 0}
    stamps: dict[int, tuple[int, int]] = {}
    total = bag_info(bag).topics[options.color_topic][1]
    progress = tqdm(
        total=total if total > 0 else None, desc="live", unit="frame", disable=not options.progress
    )
    start_mono = time.monotonic()
    start_ros = clock.now().nanoseconds
    first_log = first_stamp = None
    error = None
    try:
        for message in read_bag(bag, list(publishers), options.distro):
            msg = deserialize(message.raw, kinds[message.topic])
            original = stamp_ns(msg.header.stamp)
            if first_log is None:
                first_log, first_stamp = message.log_time_ns, original
            due = start_mono + (message.log_time_ns - first_log) * 1e-9 / live.rate_factor
            time.sleep(max(0.0, due - time.monotonic()))
            new = start_ros + int(round((original - first_stamp) / live.rate_factor))
            msg.header.stamp.sec, msg.header.stamp.nanosec = split_ns(new)
            publishers[message.topic].publish(msg)
            if message.topic == options.color_topic:
                stamps[new] = (sent["color"], original)
                sent["color"] += 1
                progress.update(1)
            elif message.topic == options.depth_topic:
                sent["depth"] += 1
            else:
                sent["camera_info"] += 1
    except BagError as e:
        error = e
    finally:
        progress.close()
    return sent, stamps, error


def _drain(listener: _Listener, expected: int, live: LiveOptions) -> None:
    """Waits for late masks: until every frame has one, or none came for a while (bounded)."""
    deadline = time.monotonic() + live.drain_timeout_s
    last_count, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        with listener.lock:
            count = listener.masks
        if count >= expected:
            return
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > min(3.0, live.drain_timeout_s):
            return
        time.sleep(0.05)


def _next_status(listener: _Listener, timeout_s: float = 3.0) -> None:
    """Waits for a /diagnostics message sent after now (the node's counters include every
    frame)."""
    with listener.lock:
        seen = listener.statuses
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with listener.lock:
            if listener.statuses > seen:
                return
        time.sleep(0.05)


class _Scorer:
    """Second pass over the bag's color frames: each one that got a mask goes to the recorder,
    with the 3D centroids of its mask and ground truth from its depth (paired as the node pairs)
    when ``camera`` (the color CameraInfo's model) is known."""

    def __init__(
        self,
        options: ReplayOptions,
        recorder: ReplayRecorder,
        gt: GroundTruth | None,
        outputs: dict[int, _Received],
        by_original: dict[int, int],
        camera: CameraModel | None,
    ) -> None:
        self.options, self.recorder, self.gt, self.camera = options, recorder, gt, camera
        self.outputs, self.by_original = outputs, by_original  # original stamp -> new stamp
        self.counts = {"frames_without_gt": 0, "masks_without_probability": 0}

    def score(self, bag, error: BagError | None) -> None:
        """Every pair of the bag; damage is raised unless ``error`` (playing found it) is set."""
        options = self.options
        pairer: StampPairer = StampPairer(
            options.sync_slop_s, options.queue_size, options.backward_jump_s
        )
        index = 0
        try:
            for message in read_bag(
                bag, [options.color_topic, options.depth_topic], options.distro
            ):
                stamp_s = stamp_ns(message.msg.header.stamp) * 1e-9
                if message.topic == options.color_topic:
                    pair = pairer.add_color(stamp_s, (index, message))
                    index += 1
                else:
                    pair = pairer.add_depth(stamp_s, message)
                if pair is not None:
                    self._frame(*pair.color, pair.depth)
        except BagError:
            if error is None:
                raise

    def _frame(self, index: int, color: BagMessage, depth: BagMessage) -> None:
        """One color frame and its depth: to the recorder if the node answered it."""
        original = stamp_ns(color.msg.header.stamp)
        received = self.outputs.get(self.by_original.get(original, -1))
        if received is None or received.mask_png is None:
            return
        try:
            rgb = message_rgb(color)
        except ValueError:  # the node could not have used it either; counted by the node
            return
        mask = cv2.imdecode(np.frombuffer(received.mask_png, np.uint8), cv2.IMREAD_GRAYSCALE)
        if received.prob_png is not None:
            prob = cv2.imdecode(np.frombuffer(received.prob_png, np.uint8), cv2.IMREAD_GRAYSCALE)
        else:  # the probability was lost: score the mask itself
            self.counts["masks_without_probability"] += 1
            prob = mask
        truth = None
        if self.gt is not None:
            truth = fit_mask(self.gt.lookup(index, original), rgb.shape[:2])
            self.counts["frames_without_gt"] += truth is None
        latency_ms = (received.arrival_ns - self.by_original[original]) * 1e-6
        record = FrameRecord(index, original, latency_ms)
        try:
            depth_m = message_depth_m(depth)
        except ValueError:
            depth_m = None
        if depth_m is not None and depth_m.shape == mask.shape:
            record.centroid_m, record.gt_centroid_m = frame_centroids(
                mask, truth, depth_m, self.camera, self.options.geometry
            )
        self.recorder.add(record, rgb, prob.astype(np.float32) / 255.0, mask, truth)


def _node_counts(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The node's counters over this replay (its /diagnostics after minus before), None if
    unknown."""
    if not after:
        return {"node_counters": None, "bad_input": None}
    names = (
        "color_frames",
        "depth_frames",
        "pairs",
        "published",
        "dropped",
        "unpaired_color",
        "unpaired_depth",
        "clock_jumps",
        "step_errors",
    )
    delta = {name: int(after.get(name, 0) - before.get(name, 0)) for name in names}
    resets = {
        k.split(".", 1)[1]: int(after[k] - before.get(k, 0))
        for k in after
        if k.startswith("reset.")
    }
    bad = {
        k.split(".", 1)[1]: int(after[k] - before.get(k, 0))
        for k in after
        if k.startswith("bad_input.")
    }
    bad = {k: v for k, v in bad.items() if v}
    return {
        "pairs": delta["pairs"],
        "unpaired_color": delta["unpaired_color"],
        "unpaired_depth": delta["unpaired_depth"],
        "resets": sum(resets.values()),
        "resets_by_cause": {k: v for k, v in resets.items() if v},
        "bad_input": bad,  # the offline replay's kinds: the node's
        "node_counters": {**delta, "bad_input": bad},
    }
