"""Whether the query memory stays healthy over a long stream: state norms and S-measure over
thousands of steps of trained weights on a real (or synthetic) RGB-D sequence.

    python -m training.synthetic --out data/long --videos 1 --frames 300 --size 96 --seed 77
    rgbd-saliency bench-memory --sam2-checkpoint S.pt --weights W.safetensors \
        --rgb-dir data/long/video_000/rgb --depth-dir data/long/video_000/depth \
        --gt-dir data/long/video_000/gt --steps 10000 [--json out/bench_memory.json]

The sequence is played forwards, backwards, forwards... (no jump in the scene at the turns) for
``steps`` steps with the state carried throughout, as a robot's stream would run for hours. Each
distinct frame is encoded once: the encoder does not depend on the state, so only the decoder and
the temporal part run per step, which makes 10,000 steps cheap at the demo's input size.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from ..evaluation.metrics import SaliencyMetrics
from ..model import SamDaq
from ..runtime.depth import read_relative_depth_png
from ..runtime.frames import resize_probability
from ..runtime.sequence import list_frames, prepare_inputs, read_rgb
from ..runtime.stream_memory import query_norm

PROBES = (10, 100, 1000, 10000)


def ping_pong(frames: int, steps: int) -> list[int]:
    """Frame index of each step: 0, 1, ..., n-1, n-2, ..., 1, 0, 1, ... (``steps`` of them)."""
    if frames == 1:
        return [0] * steps
    period = list(range(frames)) + list(range(frames - 2, 0, -1))
    return [period[i % len(period)] for i in range(steps)]


def load_sequence(
    rgb_dir, depth_dir, gt_dir, size: int
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(rgb (1, 3, S, S), depth (1, 1, S, S), gt (H, W) uint8 or None) per frame, matched by sorted
    name as ``predict`` does; depth in the data sets' relative convention."""
    pairs = list_frames(rgb_dir, depth_dir)
    gts: list[Path | None] = [None] * len(pairs)
    if gt_dir is not None:
        found = sorted(p for p in Path(gt_dir).iterdir() if p.suffix.lower() == ".png")
        if len(found) != len(pairs):
            raise ValueError(f"{gt_dir} has {len(found)} masks for {len(pairs)} frames")
        gts = found
    out = []
    for (rgb_path, depth_path), gt_path in zip(pairs, gts):
        rgb, depth = prepare_inputs(read_rgb(rgb_path), read_relative_depth_png(depth_path), size)
        gt = None if gt_path is None else cv2.imread(os.fspath(gt_path), cv2.IMREAD_GRAYSCALE)
        out.append((rgb, depth, gt))
    return out


def _score(prob: torch.Tensor, gt: np.ndarray) -> float:
    metrics = SaliencyMetrics()
    metrics.update(resize_probability(prob[0, 0].numpy(), gt.shape), gt)
    return float(metrics.per_frame()["Smeasure"][0])


@torch.inference_mode()
def bench_memory(model: SamDaq, sequence: list, steps: int = 10000) -> dict:
    """Steps ``model`` over ``sequence`` (from ``load_sequence``) in ping-pong order for ``steps``
    steps, state carried.

    Returns the largest query norm (``query_norm``) at the probe steps and over the run, with the
    model's bound; with ground truth, the mean S-measure over the frames at their first visit
    (``S_first_pass``), at their last visit (``S_last_pass``: the same frames, thousands of steps
    later) and run from a fresh state (``S_fresh_state``: the model without memory).
    """
    model.eval()
    features = [
        model.encode(torch.from_numpy(rgb), torch.from_numpy(depth)) for rgb, depth, _ in sequence
    ]
    scored = [i for i, item in enumerate(sequence) if item[2] is not None]
    fresh = [
        _score(model.step_features(features[i], model.initial_state(1))[0], sequence[i][2])
        for i in scored
    ]
    state = model.initial_state(1)
    norms, first, last = [], {}, {}
    start = time.perf_counter()
    order = ping_pong(len(sequence), steps)
    final_pass = steps - max(1, 2 * len(sequence) - 2)  # steps from here on visit every frame last
    for step, i in enumerate(order):
        prob, state = model.step_features(features[i], state)
        norms.append(query_norm(state[0].numpy()))
        # Scoring is the slow part of a step here: only the first and the final visits are scored.
        if sequence[i][2] is not None and (i not in first or step >= final_pass):
            last[i] = _score(prob, sequence[i][2])
            first.setdefault(i, last[i])
    elapsed = time.perf_counter() - start
    finite = np.asarray(norms)[np.isfinite(norms)]
    result = {
        "steps": steps,
        "frames": len(sequence),
        "step_ms": 1e3 * elapsed / steps,
        "query_norm_bound": model.state_norm_bound(),
        "query_norm_initial": query_norm(model.initial_state(1)[0].numpy()),
        "query_norm_max": float(finite.max()) if finite.size else float("nan"),
        "non_finite_states": len(norms) - int(finite.size),
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
        f"{result['step_ms']:.1f} ms per step after encoding",
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
