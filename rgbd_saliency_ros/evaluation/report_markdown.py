"""The replay report for people: report.md from metrics.json's content, and a few lines for the
terminal.

    text = report_markdown(summary, {"pr": "pr_curve.png"})
    print(summary_text(summary, "out/replay"))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .metrics import RESULT_KEYS


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


# Summary keys the counts table leaves out: shown elsewhere in the report, or not counts.
_NOT_COUNTS = set(RESULT_KEYS) | {
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
PLOT_TITLES = {  # in the report's order
    "overview": "Overview",
    "pr": "Precision-recall",
    "thresholds": "F- and E-measure against threshold",
    "smeasure": "S-measure over time",
    "centroid": "Centroid error over time",
    "latency": "Latency",
}


def report_markdown(summary: dict[str, Any], plots: dict[str, str]) -> str:
    """report.md: what ran, mask quality, 3D centroid error, latency, counts, plots (``plots``:
    {what: file name}, see ``report_plots.write_plots``) and the files written."""
    sections = (
        _head_markdown(summary),
        _quality_markdown(summary),
        _centroid_markdown(summary),
        _latency_markdown(summary),
        _counts_markdown(summary),
        _plots_markdown(plots),
        _files_markdown(summary["outputs"]),
    )
    return "\n".join(line for section in sections for line in section)


def _head_markdown(summary: dict[str, Any]) -> list[str]:
    lines = [f"# Saliency replay report ({summary['mode']})", ""]
    if not summary["complete"]:
        lines += [
            f"**Incomplete**: {summary['error']}",
            "",
            "Everything below covers the frames processed before that.",
            "",
        ]
    info = summary.get("info", {})
    for key in ("bag", "backend", "device", "model", "input_size", "weights", "node"):
        if info.get(key) is not None:
            lines.append(f"- {key.replace('_', ' ')}: `{info[key]}`")
    return lines + [""]


def _quality_markdown(summary: dict[str, Any]) -> list[str]:
    lines = ["## Mask quality", ""]
    if not summary["frames_scored"]:
        return lines + ["No ground truth in this replay: no quality metrics.", ""]
    return lines + [
        f"Over {summary['frames_scored']} frames with ground truth (frame-averaged, each "
        "probability map min-max normalised as the published toolboxes do; MAE: lower is "
        "better).",
        "",
        "| " + " | ".join(RESULT_KEYS) + " |",
        "|" + "---|" * len(RESULT_KEYS),
        "| " + " | ".join(_fmt(summary[k]) for k in RESULT_KEYS) + " |",
        "",
    ]


def _latency_markdown(summary: dict[str, Any]) -> list[str]:
    lines = [
        "## Latency",
        "",
        f"{summary['latency_means']}.",
        "",
        "| | p50 | p95 | mean | max |",
        "|---|---|---|---|---|",
        f"| latency (ms) | {_fmt(summary['latency_ms_p50'])} | "
        f"{_fmt(summary['latency_ms_p95'])} | {_fmt(summary['latency_ms_mean'])} | "
        f"{_fmt(summary['latency_ms_max'])} |",
    ]
    if "model_ms_p50" in summary:
        lines.append(
            f"| model step (ms) | {_fmt(summary['model_ms_p50'])} | "
            f"{_fmt(summary['model_ms_p95'])} | | |"
        )
    return lines + [""]


def _counts_markdown(summary: dict[str, Any]) -> list[str]:
    lines = ["## Counts", "", "| | |", "|---|---|"]
    for key, value in summary.items():
        if key in _NOT_COUNTS or key.startswith(("latency_ms", "model_ms", "centroid_error_m")):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        lines.append(f"| {key.replace('_', ' ')} | {value} |")
    return lines + [""]


def _plots_markdown(plots: dict[str, str]) -> list[str]:
    if not plots:
        return []
    lines = ["## Plots", ""]
    for what, title in PLOT_TITLES.items():
        if what in plots:
            lines += [f"### {title}", "", f"![{title}]({plots[what]})", ""]
    return lines


def _files_markdown(outputs: dict[str, Any]) -> list[str]:
    lines = [
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
    return lines + ["- per frame: `frames.csv`; all numbers: `metrics.json`", ""]


def _centroid_markdown(summary: dict[str, Any]) -> list[str]:
    if "centroid_source" not in summary:  # a summary without 3D centroids
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
            f"latency ({summary['mode']}) p50 {summary['latency_ms_p50']:.1f} ms, "
            f"p95 {summary['latency_ms_p95']:.1f} ms"
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
            f"{summary.get('sent_color')} color frames sent, "
            f"{summary.get('frames_without_mask')} without a mask",
        )
    lines.append(", ".join(counts))
    if not summary.get("complete", True):
        lines.append(f"INCOMPLETE: {summary.get('error')}")
    lines.append(f"report: {Path(out_dir) / 'report.md'}")
    return "\n".join(lines)
