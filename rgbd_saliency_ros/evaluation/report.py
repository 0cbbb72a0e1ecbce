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
    report.md + *.png          the same for people, with plots

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
from .metrics import FOREGROUND_ABOVE, RESULT_KEYS, SaliencyMetrics

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

    @property
    def centroid_error_m(self) -> float:
        """Distance between the two centroids, metres (NaN when either is missing)."""
        return math.dist(self.centroid_m, self.gt_centroid_m)


@dataclass
class _Example:
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
        self._examples: list[_Example] = []

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
                f"frame {record.index}: ground truth {gt.shape} and color {mask.shape} differ in size"
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
                _Example(record.index, _scaled(overlay, 320), _scaled(prob8, 320))
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
            The metrics.json content: every name of ``RESULT_KEYS`` (None without ground truth),
            ``latency_ms_p50`` / ``_p95`` (and ``model_ms_*`` offline), ``frames``, ``frames_scored``,
            the counts, ``complete``, ``error``, ``mode``, ``latency_means`` and ``info``.
        """
        if self._video is not None:
            self._video.release()
            self._video = None
        scores = self.metrics.results() if len(self.metrics) else dict.fromkeys(RESULT_KEYS)
        latency = percentiles([f.latency_ms for f in self.frames])
        model = percentiles([f.model_ms for f in self.frames])
        centroid = percentiles([f.centroid_error_m for f in self.frames])
        summary: dict[str, Any] = dict(scores)
        summary.update(
            {
                "latency_ms_p50": latency["p50"],
                "latency_ms_p95": latency["p95"],
                "latency_ms_mean": latency["mean"],
                "latency_ms_max": latency["max"],
            }
        )
        if model["p50"] is not None:
            summary.update({"model_ms_p50": model["p50"], "model_ms_p95": model["p95"]})
        summary.update(
            {
                "centroid_error_m_p50": centroid["p50"],
                "centroid_error_m_p95": centroid["p95"],
                "frames_with_centroid_error": sum(
                    math.isfinite(f.centroid_error_m) for f in self.frames
                ),
            }
        )
        summary.update({"frames": len(self.frames), "frames_scored": len(self._scored)})
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
        plots = self._plots()
        (self.out / "report.md").write_text(_report_markdown(summary, plots))
        return summary

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
                )

    def _plots(self) -> dict[str, str]:
        """Writes the report's PNG plots; returns {what: file name} of those written."""
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on robots and CI machines
        import matplotlib.pyplot as plt

        written: dict[str, str] = {}
        curves = self.metrics.curves() if len(self.metrics) else None
        t0 = self.frames[0].stamp_ns if self.frames else 0

        def save(fig, name: str, what: str, palette: bool = False) -> None:
            fig.savefig(self.out / name, dpi=90)
            plt.close(fig)
            if palette:  # 256 colours: a third of the size, for a picture people pass around
                from PIL import Image

                with Image.open(self.out / name) as image:
                    image.convert("RGB").quantize(256).save(self.out / name, optimize=True)
            written[what] = name

        if curves is not None:
            fig, ax = plt.subplots(figsize=(4.5, 4), layout="constrained")
            _plot_pr(ax, curves)
            save(fig, "pr_curve.png", "pr")
            fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
            _plot_thresholds(ax, curves)
            save(fig, "thresholds.png", "thresholds")
            fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
            _plot_smeasure(ax, self._scored, t0)
            save(fig, "smeasure_over_time.png", "smeasure")
        if self.frames:
            fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
            _plot_latency(ax, self.frames, self.mode)
            save(fig, "latency.png", "latency")
        if any(math.isfinite(f.centroid_error_m) for f in self.frames):
            fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
            _plot_centroid_error(ax, self.frames, t0)
            save(fig, "centroid_error_over_time.png", "centroid")
        if self._examples:
            examples = sorted(self._examples, key=lambda e: e.index)
            columns = max(len(examples), 4)
            fig = plt.figure(figsize=(3.0 * columns, 7.2), layout="constrained")
            grid = fig.add_gridspec(3, columns, height_ratios=(1.0, 1.0, 1.25))
            for i, example in enumerate(examples):
                ax = fig.add_subplot(grid[0, i])
                ax.imshow(example.overlay)
                ax.set_title(f"frame {example.index}: mask (red), GT (green)", fontsize=8)
                ax.axis("off")
                ax = fig.add_subplot(grid[1, i])
                # Stretched to its own min..max, as the metrics score it: a weak model's map is
                # faint but still shows where it looks. The range is in the title.
                low, high = int(example.probability.min()), int(example.probability.max())
                ax.imshow(example.probability, cmap="magma", vmin=low, vmax=max(high, low + 1))
                ax.set_title(
                    f"probability {low / 255:.2f}..{high / 255:.2f} (stretched)", fontsize=8
                )
                ax.axis("off")
            panels = [(_plot_pr, curves), (_plot_thresholds, curves)] if curves is not None else []
            bottom = grid[2, :].subgridspec(
                1,
                3 if curves is not None else 1,
                width_ratios=(1, 1.2, 1.8)[: 3 if curves is not None else 1],
            )
            for j, (plot, data) in enumerate(panels):
                plot(fig.add_subplot(bottom[0, j]), data)
            ax = fig.add_subplot(bottom[0, len(panels)])
            if curves is not None:
                _plot_smeasure(ax, self._scored, t0)
            else:
                _plot_latency(ax, self.frames, self.mode)
            save(fig, "overview.png", "overview", palette=True)
        return written


LATENCY_MEANING = {
    "offline": "per pair: message decoding, depth conversion and the model step, in this process (no transport)",
    "live": "per mask: from the color frame's stamp (set when it was published) to the mask's arrival here, "
    "through the node (transport, pairing, waiting, model, publishing)",
}


def _plot_pr(ax, curves: dict[str, np.ndarray]) -> None:
    ax.plot(curves["recall"], curves["precision"], color="C0")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title("precision-recall (256 thresholds)", fontsize=9)
    ax.grid(alpha=0.3)


def _plot_thresholds(ax, curves: dict[str, np.ndarray]) -> None:
    t = curves["threshold"] / 255.0
    ax.plot(t, curves["fmeasure"], label="F-measure (β²=0.3)", color="C1")
    ax.plot(t, curves["emeasure"], label="E-measure", color="C2")
    ax.set_xlabel("threshold on the normalised prediction")
    ax.set_ylim(0, 1.02)
    ax.set_title("F and E against threshold", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)


def _plot_smeasure(ax, scored: list[FrameRecord], t0_ns: int) -> None:
    times = [(r.stamp_ns - t0_ns) * 1e-9 for r in scored]
    ax.plot(times, [r.smeasure for r in scored], marker=".", color="C0", lw=1)
    # The first frame always starts afresh: only later restarts are worth a line.
    resets = [(r.stamp_ns - t0_ns) * 1e-9 for r in scored if r.reset and r.reset != "new_stream"]
    for i, t in enumerate(resets):
        ax.axvline(t, color="C3", lw=0.8, ls="--", label="memory reset" if i == 0 else None)
    ax.set_xlabel("time in the bag (s)")
    ax.set_ylabel("S-measure")
    ax.set_ylim(0, 1.02)
    ax.set_title("per-frame S-measure", fontsize=9)
    if resets:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)


def _plot_centroid_error(ax, frames: list[FrameRecord], t0_ns: int) -> None:
    shown = [f for f in frames if math.isfinite(f.centroid_error_m)]
    times = [(f.stamp_ns - t0_ns) * 1e-9 for f in shown]
    errors_cm = [100 * f.centroid_error_m for f in shown]
    ax.plot(times, errors_cm, marker=".", color="C0", lw=1)
    for q, style in ((50, "-"), (95, "--")):
        ax.axhline(float(np.percentile(errors_cm, q)), color="k", lw=0.8, ls=style, label=f"p{q}")
    ax.set_xlabel("time in the bag (s)")
    ax.set_ylabel("centroid error (cm)")
    ax.set_ylim(bottom=0)
    ax.set_title("3D centroid of the mask against the ground truth's", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


def _plot_latency(ax, frames: list[FrameRecord], mode: str) -> None:
    latency = [f.latency_ms for f in frames if math.isfinite(f.latency_ms)]
    ax.hist(
        latency,
        bins=min(40, max(5, len(latency) // 3)),
        color="C0",
        alpha=0.8,
        label="stamp to mask received" if mode == "live" else "per pair",
    )
    model = [f.model_ms for f in frames if math.isfinite(f.model_ms)]
    if model:
        ax.hist(
            model, bins=min(40, max(5, len(model) // 3)), color="C1", alpha=0.6, label="model step"
        )
    for q, style in ((50, "-"), (95, "--")):
        ax.axvline(float(np.percentile(latency, q)), color="k", lw=0.8, ls=style, label=f"p{q}")
    ax.set_xlabel("milliseconds")
    ax.set_ylabel("frames")
    ax.set_title(f"latency ({mode})", fontsize=9)
    ax.legend(fontsize=7)


def _num(value: float, digits: int = 3) -> str:
    return "" if not math.isfinite(value) else f"{value:.{digits}f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def _report_markdown(summary: dict[str, Any], plots: dict[str, str]) -> str:
    info = summary.get("info", {})
    lines = [f"# Saliency replay report ({summary['mode']})", ""]
    if not summary["complete"]:
        lines += [
            f"**Incomplete**: {summary['error']}",
            "",
            "Everything below covers the frames processed before that.",
            "",
        ]
    for key in ("bag", "backend", "device", "model", "input_size", "weights", "node"):
        if info.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: `{info[key]}`")
    lines += ["", "## Mask quality", ""]
    if summary["frames_scored"]:
        lines += [
            f"Over {summary['frames_scored']} frames with ground truth (frame-averaged, each probability map "
            "min-max normalised as the published toolboxes do; MAE: lower is better).",
            "",
            "| " + " | ".join(RESULT_KEYS) + " |",
            "|" + "---|" * len(RESULT_KEYS),
            "| " + " | ".join(_fmt(summary[k]) for k in RESULT_KEYS) + " |",
            "",
        ]
    else:
        lines += ["No ground truth in this replay: no quality metrics.", ""]
    lines += _centroid_markdown(summary)
    lines += [
        "## Latency",
        "",
        f"{summary['latency_means']}.",
        "",
        "| | p50 | p95 | mean | max |",
        "|---|---|---|---|---|",
        f"| latency (ms) | {_fmt(summary['latency_ms_p50'])} | {_fmt(summary['latency_ms_p95'])} | "
        f"{_fmt(summary['latency_ms_mean'])} | {_fmt(summary['latency_ms_max'])} |",
    ]
    if "model_ms_p50" in summary:
        lines.append(
            f"| model step (ms) | {_fmt(summary['model_ms_p50'])} | {_fmt(summary['model_ms_p95'])} | | |"
        )
    lines += ["", "## Counts", "", "| | |", "|---|---|"]
    skip = set(RESULT_KEYS) | {
        "complete",
        "error",
        "mode",
        "latency_means",
        "outputs",
        "info",
        "centroid_source",
        "centroid_camera",
        "frames_with_centroid_error",
    }
    for key, value in summary.items():
        if key in skip or key.startswith(("latency_ms", "model_ms", "centroid_error_m")):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    lines.append("")
    titles = {
        "overview": "Overview",
        "pr": "Precision-recall",
        "thresholds": "F- and E-measure against threshold",
        "smeasure": "S-measure over time",
        "latency": "Latency",
        "centroid": "Centroid error over time",
    }
    if plots:
        lines += ["## Plots", ""]
        for what in ("overview", "pr", "thresholds", "smeasure", "centroid", "latency"):
            if what in plots:
                lines += [f"### {titles[what]}", "", f"![{titles[what]}]({plots[what]})", ""]
    outputs = summary["outputs"]
    lines += [
        "## Files",
        "",
        f"- masks: `{outputs['masks']}` (0/255 PNG, named by color frame index; frames.csv "
        "gives each one's stamp)",
    ]
    if outputs["probabilities"]:
        lines.append(f"- probabilities: `{outputs['probabilities']}` (8-bit PNG, value / 255)")
    if outputs["video"]:
        lines.append(
            f"- overlay video: `{outputs['video']}` (mask red, ground truth outlined green)"
        )
    lines += ["- per frame: `frames.csv`; all numbers: `metrics.json`", ""]
    return "\n".join(lines)


def _centroid_markdown(summary: dict[str, Any]) -> list[str]:
    if "centroid_source" not in summary:  # a replay that does not place objects in 3D (live)
        return []
    lines = ["## 3D centroid", ""]
    source = summary["centroid_source"]
    if summary.get("frames_with_centroid_error"):
        lines += [
            f"The object's centroid in the color optical frame, from the mask and from the "
            f"ground truth, each from the aligned depth through {source} (`frames.csv` has "
            f"both per frame). Distance between them over "
            f"{summary['frames_with_centroid_error']} frames:",
            "",
            "| | p50 | p95 |",
            "|---|---|---|",
            f"| centroid error (m) | {_fmt(summary['centroid_error_m_p50'])} | "
            f"{_fmt(summary['centroid_error_m_p95'])} |",
            "",
        ]
    elif not summary.get("centroid_camera"):
        lines += [f"No 3D centroids: {source or 'no CameraInfo'}.", ""]
    else:
        lines += [
            "No centroid error: no frame had both a centroid and a ground-truth centroid (no "
            "ground truth, or no valid depth under the masks).",
            "",
        ]
    return lines


def summary_text(summary: dict[str, Any], out_dir: str | os.PathLike) -> str:
    """A few lines for the terminal: the metrics, latency, counts and where the report is."""
    lines = []
    if summary.get("frames_scored"):
        lines.append(f"metrics over {summary['frames_scored']} frames with ground truth:")
        lines.append("  " + "  ".join(f"{k} {summary[k]:.4f}" for k in RESULT_KEYS))
    else:
        lines.append("no ground truth: no quality metrics")
    if summary.get("centroid_error_m_p50") is not None:
        lines.append(
            f"3D centroid error p50 {100 * summary['centroid_error_m_p50']:.1f} cm, "
            f"p95 {100 * summary['centroid_error_m_p95']:.1f} cm"
        )
    if summary.get("latency_ms_p50") is not None:
        lines.append(
            f"latency ({summary['mode']}) p50 {summary['latency_ms_p50']:.1f} ms, p95 {summary['latency_ms_p95']:.1f} ms"
        )
    counts = [
        f"{summary.get('frames', 0)} masks",
        f"{summary.get('pairs')} pairs",
        f"unpaired color {summary.get('unpaired_color')} / depth {summary.get('unpaired_depth')}",
        f"resets {summary.get('resets')}",
    ]
    if summary["mode"] == "live":
        counts.insert(
            0,
            f"{summary.get('sent_color')} color frames sent, {summary.get('frames_without_mask')} without a mask",
        )
    lines.append(", ".join(counts))
    if not summary.get("complete", True):
        lines.append(f"INCOMPLETE: {summary.get('error')}")
    lines.append(f"report: {Path(out_dir) / 'report.md'}")
    return "\n".join(lines)
