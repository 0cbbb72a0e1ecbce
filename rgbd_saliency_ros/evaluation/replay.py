"""A rosbag through the model, every color + depth pair in order: masks, metrics and a report.

    rgbd-saliency replay --bag seq_bag --out out/replay --sam2-checkpoint S.pt \
        --weights W.safetensors
    rgbd-saliency replay --bag robot.mcap_folder --out out/r --engine step.onnx \
        --backend onnxruntime --color-topic /cam/color/image_raw \
        --depth-topic /cam/depth/image_rect_raw --gt-dir labels/ --gt-match stamp

Deterministic: the bag is read in log-time order, color and depth are paired by header stamp as
the node pairs them (same slop, same handling of loops and gaps), and every pair is run, none
dropped, through one ``SaliencyRuntime`` stream whose query memory carries over from frame to frame
and resets where the node's would (a backward jump or a gap in the stamps). Depth is decoded per
REP 118 (16UC1 mm, 32FC1 m) and converted with the weights' own depth convention. Compressed
recordings (image_transport's ``compressed`` color and ``compressedDepth`` depth, as
sensor_msgs/CompressedImage) are decoded as the node decodes them; where the bag has no raw topic
of the given name, ``<topic>/compressed`` and ``<topic>/compressedDepth`` are read.

Ground truth, when there is any: a mono8 / 8UC1 mask topic in the bag (``--gt-topic``, matched to
the color frame with the same stamp, within the slop), or a folder of masks matched by color frame
index (sorted names) or by stamp (file names are stamps in seconds, e.g.
``1700000000.033333.png``).

3D: with the color CameraInfo in the bag (``--camera-info-topic``, the first one is used), each
frame's object is placed in 3D from its mask and the depth (``runtime.geometry``), and so is the
ground truth's: frames.csv gets both centroids and their distance, metrics.json its median and
95th percentile. Without a CameraInfo the columns stay empty and the report says why.

A damaged bag (truncated, corrupt) stops the replay with ``BagError``; everything processed before
the damage is written first, with ``"complete": false`` in metrics.json.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from ..runtime.backends import StepBackend
from ..runtime.compressed import (
    COMPRESSED,
    COMPRESSED_DEPTH,
    DEFAULT_MAX_PIXELS,
    transport_topic,
)
from ..runtime.depth import InvalidDepthError
from ..runtime.depth_estimation import DepthEstimation
from ..runtime.depth_source import DEPTH_SOURCES, DepthSource
from ..runtime.geometry import CameraModel, GeometryConfig, ObjectGeometry, object_geometry
from ..runtime.object_status import (
    NO_CAMERA_INFO,
    NO_METRIC_DEPTH,
    DepthNoise,
    ObjectFigures,
    StaleRule,
    object_figures,
)
from ..runtime.images import INVALID_DEPTH, MALFORMED, ImageError, frame_arrays, image_array

# The node's own pairing: a pure module (no rclpy), so the replay pairs exactly as the node does.
from ..runtime.pairing import (
    CLOCK_JUMPS,
    DROPPED_KINDS,
    PAIRS,
    UNPAIRED_COLOR,
    UNPAIRED_DEPTH,
    ColorOnlyPairer,
    StampPairer,
    check_stamp,
)
from ..runtime.saliency import FramePair, SaliencyConfig, SaliencyRuntime
from ..runtime.sequence import image_files
from .bags import (
    CAMERA_INFO_TYPE,
    COMPRESSED_TYPE,
    IMAGE_TYPE,
    BagError,
    BagInfo,
    BagMessage,
    bag_info,
    message_depth_m,
    message_rgb,
    read_bag,
    stamp_ns,
)
from .make_bag import BagTopics, read_gt
from .metrics import binarize
from .report import FrameRecord, ReplayRecorder

STREAM = "camera"  # the runtime's stream id for the bag's one camera
GT_MATCHES = ("index", "stamp")


@dataclass(frozen=True)
class ReplayOptions:
    """Topics, pairing and outputs; pairing defaults are the node's (config/saliency.yaml)."""

    color_topic: str = BagTopics.color
    depth_topic: str = BagTopics.depth
    gt_topic: str | None = BagTopics.gt  # used when the bag has it
    gt_dir: str | None = None  # a folder of masks instead of the topic
    # folder masks by color frame "index" or by "stamp" (file name, seconds)
    gt_match: str = "index"
    camera_info_topic: str | None = BagTopics.camera_info  # color camera's; None: no 3D centroids
    geometry: GeometryConfig = field(default_factory=GeometryConfig)  # the object's points
    # the object's status and confidence figures, as the node's object.* parameters
    depth_noise: DepthNoise = field(default_factory=DepthNoise)
    stale_after_s: float = 1.0
    sync_slop_s: float = 0.02  # largest color/depth stamp difference of a pair, seconds
    queue_size: int = 5
    backward_jump_s: float = 0.5
    saliency: SaliencyConfig = field(
        default_factory=SaliencyConfig
    )  # threshold, reset_timeout_s, ...
    probabilities: bool = False  # also write probability maps
    video: bool = True
    distro: str = "humble"  # message definitions to decode with
    progress: bool = True
    # The node's depth_source (offline replay): estimated reads color alone (the bag needs no
    # depth) and gives no 3D centroids; fill's centroids use the measured pixels only.
    depth_source: str = "sensor"

    def __post_init__(self) -> None:
        if self.gt_match not in GT_MATCHES:
            raise ValueError(
                f"gt_match must be one of {', '.join(GT_MATCHES)}, got {self.gt_match!r}"
            )
        if self.depth_source not in DEPTH_SOURCES:
            choices = ", ".join(DEPTH_SOURCES)
            raise ValueError(f"depth_source must be one of {choices}, got {self.depth_source!r}")

    @property
    def input_topics(self) -> list[str]:
        """The topics the replay reads frames from: color, and depth unless estimated."""
        if self.depth_source == "estimated":
            return [self.color_topic]
        return [self.color_topic, self.depth_topic]


class GroundTruth:
    """Ground-truth masks by color frame: (H, W) uint8 0/255, or None where a frame has none.

    Masks are kept PNG-encoded in memory (a few kB each), so long bags fit.
    """

    def __init__(self, slop_s: float) -> None:
        self.slop_ns = int(round(slop_s * 1e9))
        self._by_stamp: dict[int, Any] = {}  # stamp ns -> encoded PNG or a file path
        self._stamps: list[int] = []
        self._by_index: list[Path] | None = None

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, match: str, slop_s: float) -> GroundTruth:
        """Masks in ``folder`` matched by sorted position ("index") or by file name in seconds
        ("stamp")."""
        files = image_files(folder)
        if not files:
            raise ValueError(f"{folder}: no ground-truth images")
        gt = cls(slop_s)
        if match == "index":
            gt._by_index = files
            return gt
        for path in files:
            try:
                stamp = int(round(float(path.stem) * 1e9))
            except ValueError as e:
                raise ValueError(
                    f"{path.name}: --gt-match stamp needs file names that are stamps in seconds "
                    "(e.g. 1700000000.033333.png)"
                ) from e
            gt._by_stamp[stamp] = path
        gt._stamps = sorted(gt._by_stamp)
        return gt

    def add_message(self, stamp: int, mask: np.ndarray) -> None:
        """A mask message's pixels (H, W) uint8 at ``stamp`` ns."""
        self._by_stamp[stamp] = cv2.imencode(".png", binarize(mask))[1]
        bisect.insort(self._stamps, stamp)

    def __len__(self) -> int:
        return len(self._by_index) if self._by_index is not None else len(self._stamps)

    def lookup(self, index: int, stamp: int) -> np.ndarray | None:
        """The mask of color frame ``index`` stamped ``stamp`` ns, or None."""
        if self._by_index is not None:
            return read_gt(self._by_index[index]) if index < len(self._by_index) else None
        i = bisect.bisect_left(self._stamps, stamp)
        near = [s for s in self._stamps[max(0, i - 1) : i + 1] if abs(s - stamp) <= self.slop_ns]
        if not near:
            return None
        found = self._by_stamp[min(near, key=lambda s: abs(s - stamp))]
        if isinstance(found, Path):
            return read_gt(found)
        return cv2.imdecode(found, cv2.IMREAD_GRAYSCALE)


def fit_mask(mask: np.ndarray | None, frame_hw: tuple[int, int]) -> np.ndarray | None:
    """A ground-truth mask (h, w) uint8 at the color frame's size (H, W), nearest-neighbour: labels
    made at another resolution still score against the frame."""
    if mask is None or mask.shape == frame_hw:
        return mask
    return cv2.resize(mask, (frame_hw[1], frame_hw[0]), interpolation=cv2.INTER_NEAREST)


def bag_topics(info: BagInfo, options: ReplayOptions) -> ReplayOptions:
    """``options`` with the transports' topics where the bag has no raw color or depth topic but
    ``<topic>/compressed`` or ``<topic>/compressedDepth`` (image_transport's names)."""
    found = {}
    for name, transport in (("color_topic", COMPRESSED), ("depth_topic", COMPRESSED_DEPTH)):
        topic = getattr(options, name)
        if topic not in info.topics and transport_topic(topic, transport) in info.topics:
            found[name] = transport_topic(topic, transport)
    return dataclasses.replace(options, **found) if found else options


def check_topics(path: str | os.PathLike, options: ReplayOptions) -> BagInfo:
    """The bag's contents; raises BagError when color or depth is missing or not an Image or
    CompressedImage topic. ``options`` should come from ``bag_topics``."""
    info = bag_info(path)
    topics = info.topics
    for what, topic in zip(("color", "depth"), options.input_topics):
        if topic not in topics:
            listed = (
                "\n  ".join(f"{t} ({kind})" for t, (kind, _) in sorted(topics.items())) or "(none)"
            )
            raise BagError(
                f"{path}: no {what} topic {topic!r}; the bag has:\n  {listed}\n"
                f"(choose with --{what}-topic)"
            )
        if topics[topic][0] not in (IMAGE_TYPE, COMPRESSED_TYPE):
            raise BagError(
                f"{path}: {what} topic {topic} carries {topics[topic][0]}, not "
                f"{IMAGE_TYPE} or {COMPRESSED_TYPE}"
            )
    return info


def load_ground_truth(
    path: str | os.PathLike, options: ReplayOptions, topics: dict[str, tuple[str, int]]
) -> GroundTruth | None:
    """The replay's ground truth: the folder if given, else the bag's mask topic if present,
    else None.

    Reading the mask topic stops quietly at damage: the main pass reports it.
    """
    if options.gt_dir:
        return GroundTruth.from_folder(options.gt_dir, options.gt_match, options.sync_slop_s)
    if not options.gt_topic or options.gt_topic not in topics:
        return None
    gt = GroundTruth(options.sync_slop_s)
    try:
        for message in read_bag(path, [options.gt_topic], options.distro):
            mask = image_array(message.msg)
            gt.add_message(
                stamp_ns(message.msg.header.stamp), mask if mask.ndim == 2 else mask[:, :, 0]
            )
    except BagError:
        pass
    return gt


def load_camera(
    path: str | os.PathLike, options: ReplayOptions, topics: dict[str, tuple[str, int]]
) -> tuple[CameraModel | None, str]:
    """The color camera from the bag's first CameraInfo, and a line saying where it came from or
    why there is none (then the replay has no 3D centroids). Damage stops the search quietly."""
    topic = options.camera_info_topic
    if not topic:
        return None, "no CameraInfo topic given"
    if topic not in topics or topics[topic][0] != CAMERA_INFO_TYPE:
        return None, f"no CameraInfo on {topic} in the bag (choose it with --camera-info-topic)"
    try:
        for message in read_bag(path, [topic], options.distro):
            info = message.msg
            try:
                camera = CameraModel.from_camera_info(
                    info.width, info.height, info.k, info.d, info.distortion_model
                )
            except ValueError as e:
                return None, f"the CameraInfo on {topic} is unusable: {e}"
            undone = f"{camera.distortion_model} undone" if camera.distorted else "no distortion"
            return camera, f"the CameraInfo on {topic} ({camera.width}x{camera.height}, {undone})"
    except BagError:
        pass
    return None, f"no readable CameraInfo on {topic}"


def frame_centroids(
    mask: np.ndarray,
    truth: np.ndarray | None,
    depth_m: np.ndarray,
    camera: CameraModel | None,
    config: GeometryConfig,
    found: ObjectGeometry | None = None,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Centroids (x, y, z) in metres of the object under the mask and under the ground truth
    (NaN where a mask has no valid depth, there is no camera, or its size is not the frame's).
    ``found``: the mask's object when already computed (``frame_object``)."""
    missing = (np.nan, np.nan, np.nan)
    if camera is None or (camera.width, camera.height) != (mask.shape[1], mask.shape[0]):
        return missing, missing
    if found is None:
        found = object_geometry(mask, depth_m, camera, config)
    gt = object_geometry(truth, depth_m, camera, config) if truth is not None else None
    pair = (found, gt)
    return tuple(tuple(map(float, g.centroid_m)) if g is not None else missing for g in pair)


def frame_object(
    mask: np.ndarray,
    probability: np.ndarray,
    depth_m: np.ndarray | None,
    camera: CameraModel | None,
    config: GeometryConfig,
    noise: DepthNoise,
) -> tuple[str, ObjectGeometry | None, ObjectFigures | None]:
    """The mask's object as the node's status sees it: (this frame's own status, the object or
    None, its confidence figures or None when it could not be placed in 3D), from the same
    runtime functions as the node (runtime.object_status)."""
    if depth_m is None:
        return NO_METRIC_DEPTH, None, None
    if camera is None or (camera.width, camera.height) != (mask.shape[1], mask.shape[0]):
        return NO_CAMERA_INFO, None, None
    found = object_geometry(mask, depth_m, camera, config)
    figures = object_figures(mask, probability, depth_m, found, noise)
    return figures.own_status(), found, figures


def bag_rate_hz(info: BagInfo, color_topic: str) -> float:
    """Color frames per second over the bag's duration (30 when it cannot tell)."""
    count, duration_s = info.topics[color_topic][1], info.duration_ns * 1e-9
    return (count - 1) / duration_s if count > 1 and duration_s > 0 else 30.0


def model_info(backend: StepBackend, weights: str | None = None) -> dict[str, Any]:
    """What ran, for the report."""
    info = backend.info
    return {
        "backend": info.name,
        "device": info.device,
        "precision": info.precision,
        "model": " ".join(filter(None, (backend.name, getattr(backend.config, "backbone", "")))),
        "input_size": backend.preprocessing.input_size,
        "weights": weights,
    }


@dataclass
class ReplayInputs:
    """What both replays (offline, live) read from the bag before its frames."""

    options: ReplayOptions  # with the transports' topics where the bag has only those
    contents: BagInfo
    gt: GroundTruth | None
    camera: CameraModel | None  # the color camera, for 3D centroids
    camera_source: str  # where the camera came from, or why there is none

    @classmethod
    def read(cls, bag: str | os.PathLike, options: ReplayOptions | None) -> ReplayInputs:
        """Raises BagError (no such bag, missing topics), ValueError (ground-truth folder)."""
        options = bag_topics(bag_info(bag), options or ReplayOptions())
        contents = check_topics(bag, options)
        camera, camera_source = load_camera(bag, options, contents.topics)
        gt = load_ground_truth(bag, options, contents.topics)
        return cls(options, contents, gt, camera, camera_source)

    @property
    def color_count(self) -> int:
        """Color messages in the bag (-1: unknown, a damaged MCAP file)."""
        return self.contents.topics[self.options.color_topic][1]

    def recorder(
        self, out_dir: str | os.PathLike, mode: str, examples: list[int] | None = None
    ) -> ReplayRecorder:
        """The recorder of this bag's replay (frame count, outputs, the bag's frame rate)."""
        options = self.options
        return ReplayRecorder(
            out_dir,
            mode,
            max(self.color_count, 0),
            options.probabilities,
            options.video,
            bag_rate_hz(self.contents, options.color_topic),
            example_indices=examples,
        )

    def counts(self) -> dict[str, Any]:
        """Where ground truth and the camera came from, for metrics.json."""
        return {
            "gt_source": _gt_source(self.options, self.gt),
            "centroid_source": self.camera_source,
            "centroid_camera": self.camera is not None,
        }


def finish_replay(
    recorder: ReplayRecorder,
    counts: dict[str, Any],
    info: dict[str, Any],
    error: BagError | None,
    done: str,
) -> dict[str, Any]:
    """Writes the replay's summary files and returns metrics.json's content; a bag damaged part
    way (``error``) is raised after them, saying that ``done`` (what the replay got to) is
    written."""
    summary = recorder.finish(
        counts, info, complete=error is None, error=str(error) if error else None
    )
    if error is not None:
        raise BagError(
            f'{error}\n{done} before it: written to {recorder.out} (metrics.json: "complete": '
            "false)",
            error.messages_read,
        ) from error
    return summary


def replay_bag(
    bag: str | os.PathLike,
    out_dir: str | os.PathLike,
    backend: StepBackend,
    options: ReplayOptions | None = None,
    weights_name: str | None = None,
    estimation: DepthEstimation | None = None,
) -> dict[str, Any]:
    """Replays ``bag`` offline through ``backend``; writes into ``out_dir`` (see ``report``).
    ``estimation``: the depth estimator ``options.depth_source`` estimated or fill needs.

    Returns:
        The metrics.json content (metric names, latency p50/p95, counts, ...); ``bad_input``
        counts refused frames by the node's kinds (``runtime.images``, ``runtime.compressed``,
        ``runtime.pairing``).

    Raises:
        BagError: the bag cannot be opened, lacks the topics, or is damaged part way (then after
            writing the outputs of everything processed before the damage).
        ValueError: ground-truth folder problems.
    """
    inputs = ReplayInputs.read(bag, options)
    recorder = inputs.recorder(out_dir, "offline")
    # The first step initialises lazily: it would count as the first frame's latency.
    backend.warmup(1)
    runtime = SaliencyRuntime(backend, inputs.options.saliency)
    source = DepthSource(inputs.options.depth_source, estimation, runtime.depth_conversion)
    run = _OfflineRun(runtime, source, recorder, inputs.gt, inputs.camera, inputs.options)
    error = run.play(bag, inputs.color_count)
    counts = {
        **run.counts(),
        # MCAP chunks failing their CRC
        "damaged_chunks": error.damaged_chunks if error is not None else 0,
        **inputs.counts(),
    }
    info = {"bag": os.fspath(bag), **model_info(backend, weights_name)}
    done = f"the {counts['processed']} pairs processed"
    return finish_replay(recorder, counts, info, error, done)


class _OfflineRun:
    """One offline replay's pass over the bag: pairs as the node pairs, runs every pair through
    one runtime stream, and counts what it could not use (``bad_input``, the node's kinds)."""

    def __init__(
        self,
        runtime: SaliencyRuntime,
        source: DepthSource,
        recorder: ReplayRecorder,
        gt: GroundTruth | None,
        camera: CameraModel | None,
        options: ReplayOptions,
    ) -> None:
        self.runtime, self.recorder, self.gt, self.camera = runtime, recorder, gt, camera
        self.source, self.options = source, options
        self.pairer: StampPairer[tuple[int, BagMessage]] = (
            StampPairer(options.sync_slop_s, options.queue_size, options.backward_jump_s)
            if source.needs_sensor_depth
            else ColorOnlyPairer(options.backward_jump_s)
        )
        self.frames = {"color": 0, "depth": 0}
        self.stale = StaleRule(options.stale_after_s)  # the status over time, as the node's
        self.processed = self.without_gt = self.depth_fallbacks = 0
        self.bad_input: Counter[str] = Counter()

    def play(self, bag: str | os.PathLike, color_count: int) -> BagError | None:
        """Every color and depth message of ``bag`` in log-time order; the BagError that stopped
        it early, or None."""
        options = self.options
        progress = tqdm(
            total=color_count if color_count > 0 else None,
            desc="replay",
            unit="frame",
            disable=not options.progress,
        )
        try:
            for message in read_bag(bag, options.input_topics, options.distro):
                is_color = message.topic == options.color_topic
                self._add(message, "color" if is_color else "depth")
                progress.update(1 if is_color else 0)
        except BagError as e:
            return e
        finally:
            progress.close()
        return None

    def _add(self, message: BagMessage, kind: str) -> None:
        """One message to the pairer; a completed pair is run. A bad stamp is counted, and the
        frame keeps its index (ground truth by index)."""
        stamp = message.msg.header.stamp
        bad_stamp = check_stamp(stamp.sec, stamp.nanosec)
        item = (self.frames[kind], message)
        self.frames[kind] += 1
        if bad_stamp:
            self.bad_input[bad_stamp] += 1
            return
        add = self.pairer.add_color if kind == "color" else self.pairer.add_depth
        pair = add(stamp_ns(stamp) * 1e-9, item)
        if pair is not None:
            self._run_pair(*pair.color, pair.depth and pair.depth[1])

    def _run_pair(self, index: int, color: BagMessage, depth: BagMessage | None) -> None:
        """Runs one pair (a color frame alone with an estimated depth) and hands its outputs to
        the recorder, or counts why it could not."""
        outcome = _process(self.runtime, self.source, index, color, depth)
        if isinstance(outcome, str):
            self.bad_input[outcome] += 1
            return
        record, rgb, sourced, measured_m, result = outcome
        self.depth_fallbacks += bool(sourced.fallback)
        truth = None
        if self.gt is not None:
            truth = fit_mask(self.gt.lookup(index, record.stamp_ns), rgb.shape[:2])
            self.without_gt += truth is None
        # as the node's 3D outputs: the sensor's measured pixels only; none without them
        camera = self.camera if measured_m is not None else None
        own, found, figures = frame_object(
            result.mask,
            result.probability,
            measured_m,
            self.camera,
            self.options.geometry,
            self.options.depth_noise,
        )
        record.object_status = self.stale.status(record.stamp_ns * 1e-9, own)
        record.object_figures = figures
        record.centroid_m, record.gt_centroid_m = frame_centroids(
            result.mask, truth, measured_m, camera, self.options.geometry, found
        )
        self.recorder.add(record, rgb, result.probability, result.mask, truth)
        self.processed += 1

    def counts(self) -> dict[str, Any]:
        """The pass's counters for metrics.json."""
        pairer, resets = self.pairer, self.runtime.memory.resets
        dropped = {kind: pairer.counters[kind] for kind in DROPPED_KINDS if pairer.counters[kind]}
        return {
            "color_frames": self.frames["color"],
            "depth_frames": self.frames["depth"],
            "processed": self.processed,
            "frames_without_gt": self.without_gt,
            "pairs": pairer.counters[PAIRS],
            # Frames still waiting for a partner at the end never got one.
            "unpaired_color": pairer.counters[UNPAIRED_COLOR] + pairer.queued("color"),
            "unpaired_depth": pairer.counters[UNPAIRED_DEPTH] + pairer.queued("depth"),
            "clock_jumps": pairer.counters[CLOCK_JUMPS],
            "resets": sum(resets.values()),
            "resets_by_cause": dict(resets),
            "depth_source": self.source.kind,
            "depth_fallbacks": self.depth_fallbacks,
            "bad_input": {**self.bad_input, **dropped},
        }


def _gt_source(options: ReplayOptions, gt: GroundTruth | None) -> str | None:
    if gt is None:
        return None
    if options.gt_dir:
        return f"folder {options.gt_dir} by {options.gt_match} ({len(gt)} masks)"
    return f"topic {options.gt_topic} ({len(gt)} masks)"


def _process(
    runtime: SaliencyRuntime,
    source: DepthSource,
    index: int,
    color: BagMessage,
    depth: BagMessage | None,
):
    """Runs one pair (``depth`` None: color alone, its depth estimated); returns (FrameRecord,
    rgb, SourcedDepth, the sensor's depth in metres or None, SaliencyResult), or the kind of bad
    input (str), named as the node names it."""
    stamp = stamp_ns(color.msg.header.stamp)
    started = time.perf_counter()
    try:
        if depth is None:
            rgb, measured_m = message_rgb(color, DEFAULT_MAX_PIXELS), None
        else:
            rgb, measured_m = frame_arrays(
                color, depth, DEFAULT_MAX_PIXELS, message_rgb, message_depth_m
            )
        sourced = source.depth_for(rgb, measured_m)
        pair = FramePair(STREAM, stamp * 1e-9, rgb, sourced.depth, sourced.is_metric)
        prepared = runtime.prepare(pair)
    except ImageError as e:  # compressed transports' errors too
        return e.kind
    except InvalidDepthError:
        return INVALID_DEPTH
    except ValueError:
        return MALFORMED
    [result] = runtime.run([prepared])
    latency_ms = (time.perf_counter() - started) * 1e3
    record = FrameRecord(
        index,
        stamp,
        latency_ms,
        result.model_time_s * 1e3,
        result.reset.value if result.reset is not None else "",
    )
    return record, rgb, sourced, measured_m, result
