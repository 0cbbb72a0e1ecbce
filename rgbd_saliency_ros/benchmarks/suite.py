"""``rgbd-saliency bench``: every benchmark, written to bench.json and a markdown table.

    rgbd-saliency bench --quick --out out/bench        # minutes on a 2-core CPU, small settings
    rgbd-saliency bench --device cuda --out out/bench  # the paper's settings, for GPUs

Measures: the step and its breakdown, multi-stream batching, training-step peak memory and time
per adapter variant (parallel / serial / LoRA), the temporal part (QTM / SAM2 memory bank) and
step time over a long sequence, and the node's overhead where rclpy is available.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model import SamDaq, SamDaqConfig
from ..runtime.backends.torch_backend import TorchBackend
from .step import PARTS, bench_step
from .streams import bench_streams
from .temporal import bench_temporal
from .training_step import measure_in_subprocess


@dataclass(frozen=True)
class SuiteSettings:
    """Sizes of each benchmark; ``quick`` is for CPUs, ``full`` the paper's setting (GPU)."""

    backbone: str
    step_input: int
    streams_input: int
    train_backbone: str
    train_input: int
    train_clip: int
    temporal_input: int
    temporal_frames: int


QUICK = SuiteSettings("sam2.1_hiera_t", 512, 256, "sam2.1_hiera_t", 256, 2, 128, 1000)
FULL = SuiteSettings("sam2.1_hiera_t", 1024, 1024, "sam2.1_hiera_l", 1024, 10, 1024, 1000)


def machine_info(device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "device": device,
        "python": platform.python_version(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def run_suite(st: SuiteSettings, device: str, node: bool = True, progress=print) -> dict:
    """Runs every benchmark with settings ``st`` and returns the results as one JSON-ready dict."""
    name = {QUICK: "quick", FULL: "full"}.get(st, "custom")
    return {
        "settings": name,
        "machine": machine_info(device),
        "step": _step(st, device, progress),
        "streams": _streams(st, device, progress),
        "training": _training(st, device, progress),
        "temporal": _temporal(st, device, progress),
        "node": _node_overhead(progress) if node else {"skipped": "not requested"},
    }


def _step(st: SuiteSettings, device: str, progress) -> dict:
    progress(f"step breakdown: {st.backbone}, input {st.step_input}")
    timings = bench_step(
        SamDaqConfig(backbone=st.backbone, input_size=st.step_input), repeats=3, device=device
    )
    return {
        "model": st.backbone,
        "input": st.step_input,
        "median_s": timings.median_s,
        "parts_s": {p: timings.part_median_s(p) for p in PARTS},
    }


def _streams(st: SuiteSettings, device: str, progress) -> dict:
    progress(f"multi-stream batching: input {st.streams_input}, 1/2/4 streams")
    backend = TorchBackend(
        SamDaq(SamDaqConfig(backbone=st.backbone, input_size=st.streams_input)).to(device)
    )
    return {
        "input": st.streams_input,
        "rows": [
            {
                "streams": r.streams,
                "batched_fps": r.batched_fps,
                "sequential_fps": r.sequential_fps,
                "speedup": r.speedup,
            }
            for r in bench_streams(backend, (1, 2, 4), repeats=2)
        ],
    }


def _training(st: SuiteSettings, device: str, progress) -> dict:
    rows = []
    for adapter in ("parallel", "serial", "lora"):
        progress(
            f"training step: {adapter} adapters, {st.train_backbone}, input {st.train_input}, "
            f"clip {st.train_clip}"
        )
        cfg = SamDaqConfig(backbone=st.train_backbone, input_size=st.train_input, adapter=adapter)
        rows.append(measure_in_subprocess(cfg, st.train_clip, device))
    serial = next(r for r in rows if r["adapter"] == "serial")
    for r in rows:
        r["peak_vs_serial"] = r["peak_bytes"] / serial["peak_bytes"]
        r["time_vs_serial"] = r["step_s"] / serial["step_s"]
    return {
        "model": st.train_backbone,
        "input": st.train_input,
        "clip": st.train_clip,
        "peak_memory": "cuda max_memory_allocated"
        if device.startswith("cuda")
        else "rise of peak resident memory (CPU)",
        "rows": rows,
    }


def _temporal(st: SuiteSettings, device: str, progress) -> dict:
    rows = []
    for temporal in ("qtm", "memory_bank"):
        progress(
            f"temporal part: {temporal}, input {st.temporal_input}, {st.temporal_frames} frames"
        )
        cfg = SamDaqConfig(backbone=st.backbone, input_size=st.temporal_input, temporal=temporal)
        probe = tuple(sorted({1, min(10, st.temporal_frames), st.temporal_frames}))
        rows.append(bench_temporal(cfg, frames=st.temporal_frames, probe=probe, device=device))
    return {
        "input": st.temporal_input,
        "rows": rows,
        "qtm_vs_memory_bank": rows[0]["temporal_median_s"] / rows[1]["temporal_median_s"],
    }


def _node_overhead(progress) -> dict:
    try:
        from .node import bench_node_overhead
    except ImportError as e:  # no rclpy on this machine, or no node benchmark
        return {"skipped": f"node benchmark unavailable: {e}"}
    progress("node overhead: 640x480, publisher and node in separate processes")
    return bench_node_overhead()


def write_reports(results: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Writes ``bench.json`` and ``bench.md`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=2))
    (out / "bench.md").write_text(markdown(results))
    return out / "bench.json", out / "bench.md"


def markdown(r: dict) -> str:
    """The results as markdown tables."""
    m = r["machine"]
    lines = [
        f"Benchmarks ({r['settings']} settings) on {m['cpu']}, {m['cores']} cores, "
        f"{m.get('gpu', 'no GPU')}, torch {m['torch']}, {m['threads']} threads, "
        f"device {m['device']}.",
    ]
    for section in (_md_step, _md_streams, _md_training, _md_temporal, _md_node):
        lines += ["", *section(r)]
    return "\n".join(lines) + "\n"


def _md_step(r: dict) -> list[str]:
    s = r["step"]
    return [
        f"**Step** ({s['model']}, input {s['input']}): median {s['median_s']:.3f} s",
        "",
        "| part | s | % |",
        "|---|---:|---:|",
        *(f"| {p} | {t:.3f} | {100 * t / s['median_s']:.1f} |" for p, t in s["parts_s"].items()),
    ]


def _md_streams(r: dict) -> list[str]:
    st = r["streams"]
    return [
        f"**Streams** (input {st['input']})",
        "",
        "| streams | batched fps | one-by-one fps | speed-up |",
        "|---:|---:|---:|---:|",
        *(
            f"| {x['streams']} | {x['batched_fps']:.2f} | {x['sequential_fps']:.2f} "
            f"| {x['speedup']:.2f}x |"
            for x in st["rows"]
        ),
    ]


def _md_training(r: dict) -> list[str]:
    tr = r["training"]
    return [
        f"**Training step** ({tr['model']}, input {tr['input']}, clip {tr['clip']}; peak memory: "
        f"{tr['peak_memory']})",
        "",
        "| adapters | trainable params | peak MiB | vs serial | step s | vs serial |",
        "|---|---:|---:|---:|---:|---:|",
        *(
            f"| {x['adapter']} | {x['trainable_params']:,} | {x['peak_bytes'] / 2**20:.0f} "
            f"| {x['peak_vs_serial']:.2f} | {x['step_s']:.2f} | {x['time_vs_serial']:.2f} |"
            for x in tr["rows"]
        ),
    ]


def _md_temporal(r: dict) -> list[str]:
    tp = r["temporal"]
    frames = tp["rows"][0]["step_at_frame_s"]
    lines = [
        f"**Temporal part** (input {tp['input']}; QTM / memory bank time: "
        f"{tp['qtm_vs_memory_bank']:.2f})",
        "",
        "| temporal | state floats | temporal ms | step after encoder ms | "
        + " | ".join(f"frame {k} ms" for k in frames)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(frames),
    ]
    for x in tp["rows"]:
        at = " | ".join(f"{v * 1000:.1f}" for v in x["step_at_frame_s"].values())
        lines.append(
            f"| {x['temporal']} | {x['state_floats']:,} | {x['temporal_median_s'] * 1000:.1f} | "
            f"{x['step_after_encoder_median_s'] * 1000:.1f} | {at} |"
        )
    return lines


def _md_node(r: dict) -> list[str]:
    node = r["node"]
    if "skipped" in node:
        return [f"**Node overhead**: {node['skipped']}"]
    figures = (f"{k} {v:.1f} ms" if isinstance(v, float) else f"{k} {v}" for k, v in node.items())
    return ["**Node overhead**: " + ", ".join(figures)]
