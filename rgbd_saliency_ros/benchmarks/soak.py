"""Soak: the node's memory growth and latency drift over many pairs, real DDS between processes.

    rgbd-saliency bench-soak --pairs 1000 --rate 20      # random weights, input 64: about 2 min
    rgbd-saliency bench-soak --pairs 10000 --rate 20     # the issue's run: about 9 minutes

``bench-node``'s three processes (publisher of TUM's 640x480 pair stamped at send time, the node,
a receiver), run long. Every second the node's resident memory (``VmRSS`` of /proc: Linux) is
sampled beside its ``published`` count; every mask received gives a latency (stamp to mask
received). The first tenth is warm-up (allocator pools, lazy initialisation); growth and drift are
measured after it: RSS at the end against RSS at the end of warm-up, and the latency of the last
tenth of masks against the second tenth, with least-squares slopes per 1000 masks. With a model
slower than the rate, the node answers the newest pair and drops the others (counted): that is
the load it must stand for hours.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .node import NodeBench, bench_node

WARMUP_FRACTION = 0.1


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (Linux /proc; 0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(x for x in f if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


@dataclass
class SoakResult:
    """One soak run: the bench-node figures and the memory samples."""

    bench: NodeBench
    samples: list[tuple[int, int]] = field(default_factory=list)  # (masks published, RSS bytes)

    def summary(self) -> dict[str, float]:
        """RSS in MiB and its growth in % after warm-up, latency p50 in ms early and late, their
        drift and least-squares slopes per 1000 masks; NaN where a run is too short to tell."""
        out: dict[str, float] = {
            "pairs sent": self.bench.frames,
            "rate Hz": self.bench.rate_hz,
            "masks received": len(self.bench.received_latency_ms),
        }
        out.update(_rss_figures(self.samples))
        out.update(_latency_figures(np.asarray(self.bench.received_latency_ms)))
        return out

    def report(self) -> str:
        s, n = self.summary(), self.bench.node
        return "\n".join(
            [
                f"soak: {s['pairs sent']:.0f} pairs of 640x480 rgb8 + 16UC1 "
                f"at {s['rate Hz']:g} Hz, "
                f"model input {self.bench.input_size}, node input QoS {self.bench.input_qos}; "
                f"first {WARMUP_FRACTION:.0%} is warm-up",
                f"  node RSS   {s['rss start MiB']:8.1f} MiB -> {s['rss end MiB']:8.1f} MiB   "
                f"growth {s['rss growth %']:+.2f} %   "
                f"slope {s['rss slope MiB/1000 masks']:+.3f} MiB per 1000 masks",
                f"  latency    p50 {s['latency early p50 ms']:8.1f} ms (2nd tenth) -> "
                f"{s['latency late p50 ms']:8.1f} ms (last tenth)   "
                f"drift {s['latency drift ms']:+.1f} ms   "
                f"slope {s['latency slope ms/1000 masks']:+.2f} ms per 1000 masks",
                f"  masks received {s['masks received']:.0f}; "
                f"node: {int(n.get('color_frames', 0))} color, "
                f"{int(n.get('depth_frames', 0))} depth, {int(n.get('pairs', 0))} pairs, "
                f"{int(n.get('published', 0))} published, {int(n.get('dropped', 0))} dropped for "
                f"newer ones, {int(n.get('step_errors', 0))} step errors",
            ]
        )


def _rss_figures(samples: list[tuple[int, int]]) -> dict[str, float]:
    published = max((n for n, _ in samples), default=0)
    after = [(n, rss / 2**20) for n, rss in samples if n >= WARMUP_FRACTION * published and rss]
    if len(after) < 2 or after[0][0] == after[-1][0]:
        return dict.fromkeys(
            ("rss start MiB", "rss end MiB", "rss growth %", "rss slope MiB/1000 masks"),
            float("nan"),
        )
    start, end = after[0][1], after[-1][1]
    slope = np.polyfit([n for n, _ in after], [mib for _, mib in after], 1)[0] * 1000
    return {
        "rss start MiB": start,
        "rss end MiB": end,
        "rss growth %": 100 * (end / start - 1),
        "rss slope MiB/1000 masks": float(slope),
    }


def _latency_figures(latency: np.ndarray) -> dict[str, float]:
    tenth = len(latency) // 10
    if tenth < 2:
        return dict.fromkeys(
            (
                "latency early p50 ms",
                "latency late p50 ms",
                "latency drift ms",
                "latency slope ms/1000 masks",
            ),
            float("nan"),
        )
    early, late = float(np.median(latency[tenth : 2 * tenth])), float(np.median(latency[-tenth:]))
    slope = np.polyfit(np.arange(len(latency) - tenth), latency[tenth:], 1)[0] * 1000
    return {
        "latency early p50 ms": early,
        "latency late p50 ms": late,
        "latency drift ms": late - early,
        "latency slope ms/1000 masks": float(slope),
    }


def bench_soak(
    pairs: int = 1000,
    rate_hz: float = 20.0,
    input_size: int = 64,
    input_qos: str = "auto",
    sample_period_s: float = 1.0,
    **node_kwargs,
) -> SoakResult:
    """Runs ``bench_node`` for ``pairs`` pairs at ``rate_hz``, sampling the node's RSS every
    ``sample_period_s`` seconds; ``node_kwargs`` go to ``bench_node`` (weights, device, ...)."""
    result = SoakResult(NodeBench(pairs, rate_hz, input_qos, input_size))
    last = [0.0]

    def monitor(pid: int, status: dict) -> None:
        now = time.monotonic()
        if now - last[0] >= sample_period_s:
            last[0] = now
            published = int(status.get("saliency_node: camera", {}).get("published", 0))
            result.samples.append((published, rss_bytes(pid)))

    result.bench = bench_node(
        frames=pairs,
        rate_hz=rate_hz,
        input_qos=input_qos,
        input_size=input_size,
        timeout_s=pairs / rate_hz + 300.0,
        monitor=monitor,
        **node_kwargs,
    )
    return result
