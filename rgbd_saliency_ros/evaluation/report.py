"""What a replay leaves behind: masks, probability maps, an overlay video, metrics.json, report.md.

``ReplayRecorder`` is fed one frame at a time (by the offline replay and by the live one) and
writes as it goes, so an interrupted replay still leaves every frame it got to; ``finish`` writes
the summary files. The folder it fills:

    masks/000012.png           0/255 mask at the color frame's size, named by color frame index
    probabilities/000012.png   (optional) probability as 8-bit grey, value / 255
    overlay.mp4                color with the mask in red and the ground truth outlined in green
                               (overlay.avi, Motion JPEG, where OpenCV has no MP4 writer)
    frames.csv                 per frame: index, stamp, latencies, reset cause, S-measure, MAE, and
                               the object's 3D centroid from the mask and from the ground truth
                               (metres, color optical frame) with their distance
    metrics.json               metric values, latency and centroid error percentiles, counts
                               (see ``finish``)
    report.md + *.png          the same for people, with plots (``report_markdown``,
                               ``report_plots``)

    recorder = ReplayRecorder("out/replay", mode="offline", expected_frames=300)
    recorder.add(FrameRecord(index, stamp_ns, latency_ms=41.0), rgb, probability, mask, gt)
    recorder.finish(counts={"pairs": 300}, info={"bag": "seq_bag"})
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..runtime.images import overlay_rgb
from ..runtime.object_status import FIGURE_KEYS
from .metrics import FOREGROUND_ABOVE, RESULT_KEYS, SaliencyMetrics
from .report_markdown import report_markdown
from .report_plots import write_plots

EXAMPLE_FRAMES = 4  # frames shown in the report's picture
VIDEO_MAX_SIDE = 960  # overlay video frames are scaled down to this, pixels
MASK_COLOR = (255, 40, 40)  # RGB
GT_COLOR = (40, 220, 40)  # RGB


@dataclass
class FrameRecord:
    """One frame's bookkeeping (no pixels)."""

    index: int  # the color frame's position in the bag (0-based)
    stamp_ns: int  # its header stamp as recorded in the bag
    latency_ms: float  # offline: processing time of the pair; live: stamp to mask received
    model_ms: float = math.nan  # the model step alone (offline only)
    reset: str = ""  # why the query memory restarted at this frame, if it did
    smeasure: float = math.nan  # filled when the frame has ground truth
    mae: float = math.nan
    # The object's centroid (x, y, z), metres in the color optical frame, from the predicted mask
    # and from the ground truth; NaN where there is none (no CameraInfo, no valid depth under it).
    centroid_m: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    gt_centroid_m: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    # The node's object status (runtime.object_status; offline replay only, else "") and the
    # frame's confidence figures (None where not computed).
    object_status: str = ""
    object_figures: Any = None  # runtime.object_status.ObjectFigures

    @property
    def centroid_error_m(self) -> float:
        """Distance between the two centroids, metres (NaN when either is missing)."""
        return math.dist(self.centroid_m, self.gt_centroid_m)


@dataclass
class Example:
    """A frame shown in the report's overview picture."""

    index: int
    overlay: np.ndarray  # (h, w, 3) uint8 RGB, downscaled
    probability: np.ndarray  # (h, w) uint8


def overlay_image(rgb: np.ndarray, mask: np.ndarray, gt: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB with the mask (H, W) 0/255 tinted red and the ground truth (H, W)
    0/255, when given, outlined in green. A new array."""
    out = overlay_rgb(rgb, mask, MASK_COLOR, alpha=0.55)
    if gt is not None:
        contours, _ = cv2.findContours(
            (gt > FOREGROUND_ABOVE).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(out, contours, -1, GT_COLOR, max(1, round(max(rgb.shape[:2]) / 300)))
    return out


def _scaled(image: np.ndarray, max_side: int) -> np.ndarray:
    scale = max_side / max(image.shape[:2])
    if scale >= 1.0:
        return image
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def percentiles(values: list[float]) -> dict[str, float | None]:
    """{"p50", "p95", "mean", "max"} of the finite values (None when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return {"p50": None, "p95": None, "mean": None, "max": None}
    p50, p95 = np.percentile(finite, (50, 95))
    return {
        "p50": float(p50),
        "p95": float(p95),
        "mean": float(np.mean(finite)),
        "max": float(np.max(finite)),
    }


class ReplayRecorder:
    """Writes one replay's outputs into ``out_dir`` (created) as frames come in.

    Args:
        mode: "offline" or "live" (what latency means differs; stated in the report).
        expected_frames: frames the replay expects (for choosing the report's example frames,
            evenly spaced); 0 when unknown.
        example_indices: the frames to show instead (e.g. those the live node answered).
        probabilities: also write probability maps.
        video: write the overlay video; ``fps`` is its frame rate (the bag's).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        mode: str,
        expected_frames: int = 0,
        probabilities: bool = False,
        video: bool = True,
        fps: float = 30.0,
        example_indices: list[int] | None = None,
    ) -> None:
        self.out = Path(out_dir)
        self.mode = mode
        self.masks_dir = self.out / "masks"
        self.masks_dir.mkdir(parents=True, exist_ok=True)
        self.prob_dir = self.out / "probabilities" if probabilities else None
        if self.prob_dir is not None:
            self.prob_dir.mkdir(exist_ok=True)
        self.video_enabled, self.fps = video, fps
        self._video: cv2.VideoWriter | None = None
        self.video_path: Path | None = None
        self.metrics = SaliencyMetrics()
        self.frames: list[FrameRecord] = []
        self._scored: list[FrameRecord] = []  # frames with ground truth, in the metrics' order
        candidates = (
            example_indices
            if example_indices
            else list(range(max(expected_frames, EXAMPLE_FRAMES)))
        )
        picks = (
            np.linspace(0, len(candidates) - 1, min(EXAMPLE_FRAMES, len(candidates)))
            .round()
            .astype(int)
        )
        self._example_at = {candidates[i] for i in picks}
        self._examples: list[Example] = []

    def add(
        self,
        record: FrameRecord,
        rgb: np.ndarray,
        probability: np.ndarray,
        mask: np.ndarray,
        gt: np.ndarray | None,
    ) -> None:
        """One frame's outputs.

        Args:
            rgb: (H, W, 3) uint8 RGB, the color frame.
            probability: (H, W) float32 in [0, 1].
            mask: (H, W) uint8 0/255.
            gt: (H, W) uint8 0/255 ground truth, or None when the frame has none.
        """
        name = f"{record.index:06d}.png"
        cv2.imwrite(str(self.masks_dir / name), mask)
        prob8 = np.rint(np.clip(probability, 0.0, 1.0) * 255.0).astype(np.uint8)
        if self.prob_dir is not None:
            cv2.imwrite(str(self.prob_dir / name), prob8)
        if gt is not None and gt.shape != mask.shape:
            raise ValueError(
                f"frame {record.index}: ground truth {gt.shape} and color {mask.shape} differ "
                "in size"
            )
        if gt is not None:
            self.metrics.update(probability, gt)
            per_frame = self.metrics.per_frame()
            record.smeasure, record.mae = (
                float(per_frame["Smeasure"][-1]),
                float(per_frame["MAE"][-1]),
            )
            self._scored.append(record)
        overlay = overlay_image(rgb, mask, gt)
        if self.video_enabled:
            self._write_video(overlay)
        if record.index in self._example_at:
            self._examples.append(
                Example(record.index, _scaled(overlay, 320), _scaled(prob8, 320))
            )
        self.frames.append(record)

    def _write_video(self, overlay: np.ndarray) -> None:
        frame = cv2.cvtColor(_scaled(overlay, VIDEO_MAX_SIDE), cv2.COLOR_RGB2BGR)
        if self._video is None:
            height, width = frame.shape[:2]
            for name, codec in (("overlay.mp4", "mp4v"), ("overlay.avi", "MJPG")):
                writer = cv2.VideoWriter(
                    str(self.out / name), cv2.VideoWriter_fourcc(*codec), self.fps, (width, height)
                )
                if writer.isOpened():
                    self._video, self.video_path = writer, self.out / name
                    break
            else:
                self.video_enabled = False  # no codec here: masks and report still come out
                return
            self._video_size = (width, height)
        if (frame.shape[1], frame.shape[0]) != self._video_size:
            frame = cv2.resize(frame, self._video_size, interpolation=cv2.INTER_AREA)
        self._video.write(frame)

    def finish(
        self,
        counts: dict[str, Any],
        info: dict[str, Any],
        complete: bool = True,
        error: str | None = None,
    ) -> dict[str, Any]:
        """Closes the video and writes frames.csv, metrics.json, report.md and its plots.

        Args:
            counts: the replay's counters (pairs, unpaired_color, resets, ...), copied in.
            info: what was replayed with what (bag, backend, ...), copied in.
            complete: False when the replay stopped early (``error`` says why).

        Returns:
            The metrics.json content: every name of ``RESULT_KEYS`` (None without ground
            truth), ``latency_ms_p50`` / ``_p95`` (and ``model_ms_*`` offline), ``frames``,
            ``frames_scored``, the counts, ``complete``, ``error``, ``mode``, ``latency_means``
            and ``info``.
        """
        if self._video is not None:
            self._video.release()
            self._video = None
        summary = self._numbers()
        summary.update(counts)
        summary.update(
            {
                "complete": complete,
                "error": error,
                "mode": self.mode,
                "latency_means": LATENCY_MEANING[self.mode],
                "outputs": {
                    "masks": "masks/",
                    "probabilities": "probabilities/" if self.prob_dir else None,
                    "video": self.video_path.name if self.video_path else None,
                },
                "info": info,
            }
        )
        self._write_csv()
        (self.out / "metrics.json").write_text(
            json.dumps(summary, indent=2, default=_jsonable) + "\n"
        )
        curves = self.metrics.curves() if len(self.metrics) else None
        plots = write_plots(self.out, self.mode, self.frames, self._scored, curves, self._examples)
        (self.out / "report.md").write_text(report_markdown(summary, plots))
        return summary

    def _numbers(self) -> dict[str, Any]:
        """Metric values, latency and centroid error percentiles, frame counts."""
        scores = self.metrics.results() if len(self.metrics) else dict.fromkeys(RESULT_KEYS)
        latency = percentiles([f.latency_ms for f in self.frames])
        model = percentiles([f.model_ms for f in self.frames])
        centroid = percentiles([f.centroid_error_m for f in self.frames])
        numbers: dict[str, Any] = dict(scores)
        numbers.update({f"latency_ms_{k}": latency[k] for k in ("p50", "p95", "mean", "max")})
        if model["p50"] is not None:
            numbers.update({"model_ms_p50": model["p50"], "model_ms_p95": model["p95"]})
        numbers.update(
            {
                "centroid_error_m_p50": centroid["p50"],
                "centroid_error_m_p95": centroid["p95"],
                "frames_with_centroid_error": sum(
                    math.isfinite(f.centroid_error_m) for f in self.frames
                ),
                "frames": len(self.frames),
                "frames_scored": len(self._scored),
            }
        )
        return numbers

    def _write_csv(self) -> None:
        with open(self.out / "frames.csv", "w", newline="") as f:
            writer = csv.writer(f)
            centroids = [f"{kind}centroid_{axis}_m" for kind in ("", "gt_") for axis in "xyz"]
            writer.writerow(
                [
                    "index",
                    "stamp_s",
                    "latency_ms",
                    "model_ms",
                    "reset",
                    "Smeasure",
                    "MAE",
                    *centroids,
                    "centroid_error_m",
                    *OBJECT_COLUMNS,
                ]
            )
            for r in self.frames:
                writer.writerow(
                    [
                        r.index,
                        f"{r.stamp_ns * 1e-9:.9f}",
                        _num(r.latency_ms),
                        _num(r.model_ms),
                        r.reset,
                        _num(r.smeasure, 6),
                        _num(r.mae, 6),
                    ]
                    + [_num(v, 4) for v in (*r.centroid_m, *r.gt_centroid_m, r.centroid_error_m)]
                    + _object_cells(r)
                )


LATENCY_MEANING = {
    "offline": "per pair: message decoding, depth conversion and the model step, in this process "
    "(no transport)",
    "live": "per mask: from the color frame's stamp (set when it was published) to the mask's "
    "arrival here, through the node (transport, pairing, waiting, model, publishing)",
}


# frames.csv's columns of the object's status and confidence figures (runtime.object_status)
OBJECT_COLUMNS = ("object_status", *FIGURE_KEYS)


def _object_cells(r: FrameRecord) -> list[str]:
    if r.object_figures is None:
        return [r.object_status] + [""] * len(FIGURE_KEYS)
    cells = [r.object_status]
    for key, value in r.object_figures.values().items():
        if key == "point_count":
            cells.append(str(value))
        elif key.startswith("centroid_std_"):
            cells.append("" if not math.isfinite(value) else f"{value:.4g}")
        else:
            cells.append(_num(value, 4))
    return cells


def _num(value: float, digits: int = 3) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)
