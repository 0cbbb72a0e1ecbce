"""Throughput of several streams batched into one step versus stepped one at a time.

    rgbd-saliency bench-streams --model sam2.1_hiera_t --input-size 512 --streams 1 2 4

Random weights and frames (the work does not depend on the values), any backend.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from ..runtime.backends.base import StepBackend


@dataclass
class StreamsResult:
    """Frames per second for ``streams`` streams, batched and sequential (medians over repeats)."""

    streams: int
    batched_fps: float
    sequential_fps: float

    @property
    def speedup(self) -> float:
        return self.batched_fps / self.sequential_fps


def bench_streams(
    backend: StepBackend, stream_counts=(1, 2, 4), repeats: int = 3, warmup: int = 1
) -> list[StreamsResult]:
    """Times one frame of every stream, as one batched step and as separate steps."""
    s = backend.preprocessing.input_size
    rng = np.random.default_rng(0)
    results = []
    for n in stream_counts:
        rgb = rng.standard_normal((n, 3, s, s), dtype=np.float32)
        depth = rng.random((n, 1, s, s), dtype=np.float32)
        state = backend.initial_state(n)

        def batched():
            backend.step(rgb, depth, state)

        def sequential():
            for i in range(n):
                one = {name: array[i : i + 1] for name, array in state.items()}
                backend.step(rgb[i : i + 1], depth[i : i + 1], one)

        times = {}
        for name, fn in (("batched", batched), ("sequential", sequential)):
            runs = []
            for i in range(warmup + repeats):
                start = time.perf_counter()
                fn()
                if i >= warmup:
                    runs.append(time.perf_counter() - start)
            times[name] = statistics.median(runs)
        results.append(StreamsResult(n, n / times["batched"], n / times["sequential"]))
    return results


def report(results: list[StreamsResult], description: str) -> str:
    lines = [
        description,
        f"  {'streams':>7} {'batched fps':>12} {'one-by-one fps':>15} {'speed-up':>9}",
    ]
    for r in results:
        lines.append(
            f"  {r.streams:>7} {r.batched_fps:>12.3f} {r.sequential_fps:>15.3f} {r.speedup:>8.2f}x"
        )
    return "\n".join(lines)
