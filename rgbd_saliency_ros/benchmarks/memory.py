"""Whether a model's memory stays healthy over a long stream: state norms and S-measure over
thousands of steps of trained weights on a real (or synthetic) RGB-D sequence.

    python -m training.synthetic --out data/long --videos 1 --frames 300 --size 96 --seed 77
    rgbd-saliency bench-memory --sam2-checkpoint S.pt --weights W.safetensors \
        --rgb-dir data/long/video_000/rgb --depth-dir data/long/video_000/depth \
        --gt-dir data/long/video_000/gt --steps 10000 [--json out/bench_memory.json]

The sequence is played forwards, backwards, forwards... (no jump in the scene at the turns) for
``steps`` steps with the state carried throughout, as a robot's stream would run for hours. Every
step goes through ``SaliencyRuntime`` (the node's path: preprocessing, the model's state health
check, the threshold), so what is measured is what the node would do.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np

from ..evaluation.metrics import SaliencyMetrics
from ..runtime.backends.base import StepBackend
from ..runtime.saliency import FramePair, SaliencyConfig, SaliencyRuntime
from ..runtime.sequence import frame_stamp_s, list_frames, read_frame

PROBES = (10, 100, 1000, 10000)
STREAM = "sequence"


def ping_pong(frames: int, steps: int) -> list[int]:
    """Frame index of each step: 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... (``steps`` of them)."""
    if frames == 1:
        return [0] * steps
    period = list(range(frames)) + list(range(frames - 2, 0, -1))
    return [period[i % len(period)] for i in range(steps)]


def load_sequence(
    rgb_dir, depth_dir, gt_dir
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(rgb (H, W, 3) uint8, depth (H, W) float32 relative in [0, 1], gt (H, W) uint8 or None)
    per frame, matched by sorted name as ``predict`` does."""
    pairs = list_frames(rgb_dir, depth_dir)
    gts: list[Path | None] = [None] * len(pairs)
    if gt_dir is not None:
        found = sorted(p for p in Path(gt_dir).iterdir() if p.suffix.lower() == ".png")
        if len(found) != len(pairs):
            raise ValueError(f"{gt_dir} has {len(found)} masks for {len(pairs)} frames")
        gts = found
    out = []
    for (rgb_path, depth_path), gt_path in zip(pairs, gts):
        rgb, depth = read_frame(rgb_path, depth_path)
        gt = None if gt_path is None else cv2.imread(os.fspath(gt_path), cv2.IMREAD_GRAYSCALE)
        out.append((rgb, depth, gt))
    return out


def _score(prob: np.ndarray, gt: np.ndarray) -> float:
    metrics = SaliencyMetrics()
    metrics.update(cv2.resize(prob, gt.shape[::-1], interpolation=cv2.INTER_LINEAR), gt)
    return float(metrics.per_frame()["Smeasure"][0])


def bench_memory(backend: StepBackend, sequence: list, steps: int = 10000) -> dict:
    """Steps ``backend``'s model over ``sequence`` (from ``load_sequence``) in ping-pong order for
    ``steps`` steps, state carried, through ``SaliencyRuntime``.

    Returns the state's health norm (``StateSpec.health``: the largest row norm) at the probe
    steps and over the run, with the model's bound; with ground truth, the mean S-measure over the
    frames at their first visit (``S_first_pass``), at their last visit (``S_last_pass``: the same
    frames, thousands of steps later) and run from a fresh state (``S_fresh_state``: the model
    without memory).
    """
    # The stamps are made up and close together: the memory must never time out here.
    runtime = SaliencyRuntime(backend, SaliencyConfig(reset_timeout_s=1.0))

    def step(stream: str, stamp_s: float, i: int):
        rgb, depth, _ = sequence[i]
        return runtime.run([runtime.prepare(FramePair(stream, stamp_s, rgb, depth, False))])[0]

    scored = [i for i, item in enumerate(sequence) if item[2] is not None]
    fresh = [_score(step(f"fresh_{i}", 0.0, i).probability, sequence[i][2]) for i in scored]
    norms, first, last, resets = [], {}, {}, 0
    start = time.perf_counter()
    order = ping_pong(len(sequence), steps)
    final_pass = steps - max(1, 2 * len(sequence) - 2)  # steps from here on visit every frame last
    for n, i in enumerate(order):
        result = step(STREAM, frame_stamp_s(n), i)
        resets += n > 0 and result.reset is not None
        norms.append(result.state_norm)
        # Scoring is the slow part of a step here: only the first and the final visits are scored.
        if sequence[i][2] is not None and (i not in first or n >= final_pass):
            last[i] = _score(result.probability, sequence[i][2])
            first.setdefault(i, last[i])
    elapsed = time.perf_counter() - start
    finite = np.asarray(norms)[np.isfinite(norms)]
    initial = runtime.state_spec.unstack(backend.initial_state(1))[0]
    result = {
        "steps": steps,
        "frames": len(sequence),
        "step_ms": 1e3 * elapsed / steps,
        "query_norm_bound": runtime.state_norm_bound,
        "query_norm_initial": runtime.state_spec.health(initial).norm,
        "query_norm_max": float(finite.max()) if finite.size else float("nan"),
        "non_finite_states": len(norms) - int(finite.size),
        "memory_restarts": int(resets),  # bad states the runtime dropped after the first step
        **{f"query_norm_at_{p}": norms[p - 1] for p in PROBES if p <= steps},
    }
    if first:
        result.update(
            S_first_pass=float(np.mean(list(first.values()))),
            S_last_pass=float(np.mean([last[i] for i in first])),
            S_fresh_state=float(np.mean(fresh)),
        )
    return result


def report(result: dict) -> str:
    """Lines for people: the norms and, with ground truth, S at the start and the end."""
    lines = [
        f"{result['steps']} steps over {result['frames']} frames (ping-pong), "
        f"{result['step_ms']:.1f} ms per step (frame in, mask out), "
        f"{result['memory_restarts']} memory restarts",
        f"largest query norm: initial {result['query_norm_initial']:.3f}, "
        + ", ".join(
            f"step {p} {result[f'query_norm_at_{p}']:.3f}"
            for p in PROBES
            if f"query_norm_at_{p}" in result
        )
        + f"; max {result['query_norm_max']:.3f} "
        f"(model's bound {result['query_norm_bound']:.3f}); "
        f"non-finite states {result['non_finite_states']}",
    ]
    if "S_first_pass" in result:
        change = result["S_last_pass"] - result["S_first_pass"]
        lines.append(
            f"S-measure over the frames: first visit {result['S_first_pass']:.4f}, last visit "
            f"{result['S_last_pass']:.4f} ({change:+.4f}); each from a fresh state "
            f"{result['S_fresh_state']:.4f}"
        )
    return "\n".join(lines)
