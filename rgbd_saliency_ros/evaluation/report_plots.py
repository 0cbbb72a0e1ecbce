"""The replay report's plots, drawn on matplotlib Figures of their own (no pyplot: nothing changes
matplotlib's process-wide backend or figure list) and written as PNG files.

    plots = write_plots(out_dir, "offline", frames, scored, metrics.curves(), examples)
    # {"pr": "pr_curve.png", "overview": "overview.png", ...}: those written
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .report import Example, FrameRecord


def write_plots(
    out: Path,
    mode: str,
    frames: list[FrameRecord],
    scored: list[FrameRecord],
    curves: dict[str, np.ndarray] | None,
    examples: list[Example],
) -> dict[str, str]:
    """Writes the report's PNG plots into ``out``; returns {what: file name} of those written.

    Args:
        mode: "offline" or "live" (what latency means).
        frames: every frame's record; ``scored``: those with ground truth, in the metrics' order.
        curves: ``SaliencyMetrics.curves()``, None without ground truth.
        examples: the frames for the overview picture.
    """
    written: dict[str, str] = {}
    t0 = frames[0].stamp_ns if frames else 0
    simple = []  # (file, what, figure size, plot(ax))
    if curves is not None:
        simple += [
            ("pr_curve.png", "pr", (4.5, 4), lambda ax: _plot_pr(ax, curves)),
            ("thresholds.png", "thresholds", (5.5, 4), lambda ax: _plot_thresholds(ax, curves)),
            (
                "smeasure_over_time.png",
                "smeasure",
                (7, 3.5),
                lambda ax: _plot_smeasure(ax, scored, t0),
            ),
        ]
    if frames:
        simple.append(
            ("latency.png", "latency", (5.5, 3.5), lambda ax: _plot_latency(ax, frames, mode))
        )
    if any(math.isfinite(f.centroid_error_m) for f in frames):
        simple.append(
            (
                "centroid_error_over_time.png",
                "centroid",
                (7, 3.5),
                lambda ax: _plot_centroid_error(ax, frames, t0),
            )
        )
    for name, what, size, plot in simple:
        figure = _figure(size)
        plot(figure.subplots())
        _save(figure, out / name)
        written[what] = name
    if examples:
        figure = _overview(sorted(examples, key=lambda e: e.index), curves, frames, scored, mode)
        _save(figure, out / "overview.png", palette=True)
        written["overview"] = "overview.png"
    return written


def _figure(size: tuple[float, float]):
    """A Figure with its own Agg canvas (what pyplot would make, without registering it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path, palette: bool = False) -> None:
    figure.savefig(path, dpi=90)
    if palette:  # 256 colours: a third of the size, for a picture people pass around
        from PIL import Image

        with Image.open(path) as image:
            image.convert("RGB").quantize(256).save(path, optimize=True)


def _overview(examples: list[Example], curves, frames, scored, mode: str):
    """The overview picture: each example's overlay and probability, and below them the PR and
    threshold curves with the S-measure over time (or the latency, without ground truth)."""
    columns = max(len(examples), 4)
    figure = _figure((3.0 * columns, 7.2))
    grid = figure.add_gridspec(3, columns, height_ratios=(1.0, 1.0, 1.25))
    for i, example in enumerate(examples):
        ax = figure.add_subplot(grid[0, i])
        ax.imshow(example.overlay)
        ax.set_title(f"frame {example.index}: mask (red), GT (green)", fontsize=8)
        ax.axis("off")
        ax = figure.add_subplot(grid[1, i])
        # Stretched to its own min..max, as the metrics score it: a weak model's map is faint but
        # still shows where it looks. The range is in the title.
        low, high = int(example.probability.min()), int(example.probability.max())
        ax.imshow(example.probability, cmap="magma", vmin=low, vmax=max(high, low + 1))
        ax.set_title(f"probability {low / 255:.2f}..{high / 255:.2f} (stretched)", fontsize=8)
        ax.axis("off")
    panels = [(_plot_pr, curves), (_plot_thresholds, curves)] if curves is not None else []
    widths = (1, 1.2, 1.8)[: len(panels) + 1]
    bottom = grid[2, :].subgridspec(1, len(widths), width_ratios=widths)
    for j, (plot, data) in enumerate(panels):
        plot(figure.add_subplot(bottom[0, j]), data)
    ax = figure.add_subplot(bottom[0, len(panels)])
    if curves is not None:
        _plot_smeasure(ax, scored, frames[0].stamp_ns if frames else 0)
    else:
        _plot_latency(ax, frames, mode)
    return figure


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
