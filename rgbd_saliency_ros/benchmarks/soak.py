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

Where the time goes, per tenth of the run: the node's own figures (its /diagnostics, p50 over its
last 300 masks, sampled with the memory) split the latency into input (stamp to pair complete:
the camera's transport and the node's executor), wait (for the worker's previous step), model
(the step) and the node's rest (step end to publish); the output transport is the receiver's
latency minus the node's stamp-to-publish. A drift is then attributed to a part, not guessed.
The node's p50s cover its last 300 masks: in a short run the parts are rough (the output's can
come out negative); over 10,000 pairs a tenth holds about 360 masks.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np

from ..ros.diagnostics import LATENCY_WINDOW
from .node import PUBLISHER_DEPTH, NodeBench, bench_node

WARMUP_FRACTION = 0.1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used, seconds (Linux /proc; NaN once gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, stolen) CPU seconds of the whole machine since boot, all cores (Linux /proc/stat):
    busy is everything but idle and I/O wait; stolen is what a hypervisor gave other guests."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan"), float("nan")
    ticks += [0] * (8 - len(ticks))
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / hz, ticks[7] / hz


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes (Linux /proc; 0 once it has gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            line = next(x for x in f if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


# The node's windowed p50s the soak samples (its /diagnostics keys) and the parts they give.
NODE_P50S = ("latency_ms_p50", "model_ms_p50", "input_ms_p50", "wait_ms_p50")
PARTS = (
    ("input", "stamp -> pair complete in the node (camera transport, executor)"),
    ("wait", "waiting for the worker's previous step"),
    ("model", "the model step"),
    ("node rest", "step end -> mask published"),
    ("output", "mask published -> received by another process"),
)


# Beside the parts, per tenth: the node's resident memory, its CPU use (100 % = one core), the
# inputs DDS reported lost on the way to it, and the whole machine's busy and stolen CPU (what
# else ran: the publisher and this process are part of it).
EXTRA = ("rss MiB", "node CPU %", "lost", "machine CPU %", "stolen %")


@dataclass
class SoakResult:
    """One soak run: the bench-node figures and the memory samples."""

    bench: NodeBench
    samples: list[tuple[int, int]] = field(default_factory=list)  # (masks published, RSS bytes)
    # (masks published, {NODE_P50S key: ms, and "t_s", "cpu_s", "lost"}) sampled with the
    # memory: the time, the node's CPU seconds and its count of messages DDS reported lost
    node_p50s: list[tuple[int, dict[str, float]]] = field(default_factory=list)

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
                f"model input {self.bench.input_size}, node input QoS {self.bench.input_qos}, "
                f"Fast DDS profile {self.bench.fastdds_profile or 'none'}; "
                f"first {WARMUP_FRACTION:.0%} is warm-up",
                f"  node RSS   {s['rss start MiB']:8.1f} MiB -> {s['rss end MiB']:8.1f} MiB   "
                f"growth {s['rss growth %']:+.2f} %   "
                f"slope {s['rss slope MiB/1000 masks']:+.3f} MiB per 1000 masks",
                f"  latency    p50 {s['latency early p50 ms']:8.1f} ms (2nd tenth) -> "
                f"{s['latency late p50 ms']:8.1f} ms (last tenth)   "
                f"drift {s['latency drift ms']:+.1f} ms   "
                f"slope {s['latency slope ms/1000 masks']:+.2f} ms per 1000 masks",
                *self._parts_table(),
                f"  QoS: the camera publishes {self.bench.publisher_qos}, keep-last "
                f"{PUBLISHER_DEPTH}; from the graph:",
                *(f"    {topic}: {qos}" for topic, qos in self.bench.qos.items()),
                f"  masks received {s['masks received']:.0f}; "
                f"node: {int(n.get('color_frames', 0))} color, "
                f"{int(n.get('depth_frames', 0))} depth, {int(n.get('pairs', 0))} pairs, "
                f"{int(n.get('published', 0))} published, {int(n.get('dropped', 0))} dropped for "
                f"newer ones, {int(n.get('step_errors', 0))} step errors",
            ]
        )

    def tenths(self) -> list[dict[str, float]]:
        """Per tenth of the masks received: the received latency's p50, each of ``PARTS``' p50
        (ms) and the node's RSS (MiB) at the tenth's end; NaN where no sample fell in it."""
        latency = np.asarray(self.bench.received_latency_ms)
        total = len(latency)
        published = max((n for n, _ in self.node_p50s), default=0)
        rows = []
        for i in range(10):
            row = {"received": _median(latency[i * total // 10 : (i + 1) * total // 10])}
            low, high = i * published / 10, (i + 1) * published / 10
            # a sample's p50s cover the node's last LATENCY_WINDOW masks: placed at their middle
            inside = [
                v
                for n, v in self.node_p50s
                if low <= n - min(n, LATENCY_WINDOW) / 2 < high or (i == 9 and n == high)
            ]
            node = {key: _median([v.get(key, np.nan) for v in inside]) for key in NODE_P50S}
            row["input"], row["wait"] = node["input_ms_p50"], node["wait_ms_p50"]
            row["model"] = node["model_ms_p50"]
            row["node rest"] = (
                node["latency_ms_p50"] - node["input_ms_p50"] - node["wait_ms_p50"] - row["model"]
            )
            row["output"] = row["received"] - node["latency_ms_p50"]
            # the node's CPU use and the inputs DDS lost, over the samples taken in this tenth
            taken = [v for n, v in self.node_p50s if low <= n < high or (i == 9 and n == high)]
            for name in EXTRA[1:]:
                row[name] = float("nan")
            if len(taken) >= 2 and taken[-1].get("t_s", 0) > taken[0].get("t_s", 0):
                first, last = taken[0], taken[-1]
                seconds = last["t_s"] - first["t_s"]
                row["node CPU %"] = 100 * (last["cpu_s"] - first["cpu_s"]) / seconds
                row["lost"] = last["lost"] - first["lost"]
                for name, key in (("machine CPU %", "machine_s"), ("stolen %", "stolen_s")):
                    row[name] = 100 * (last.get(key, np.nan) - first.get(key, np.nan)) / seconds
            rss = [r for n, r in self.samples if n <= high and r]
            row["rss MiB"] = rss[-1] / 2**20 if rss else float("nan")
            rows.append(row)
        return rows

    def _parts_table(self) -> list[str]:
        names = [name for name, _ in PARTS]
        lines = [
            "  p50 per tenth of the run, ms (parts add up to the received latency; see PARTS):",
            "    tenth " + "".join(f"{n:>14}" for n in ["received", *names, *EXTRA]),
        ]
        for i, row in enumerate(self.tenths()):
            values = [row["received"], *(row[n] for n in names), *(row[n] for n in EXTRA)]
            lines.append(f"    {i + 1:>5} " + "".join(f"{v:14.1f}" for v in values))
        return lines

    def plot(self, path) -> None:
        """Latency by part and the node's RSS over the run, as a PNG at ``path``."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(12.0, 6.0), layout="constrained")
        FigureCanvasAgg(figure)  # its own canvas: no pyplot state
        top, bottom = figure.subplots(2, 1, sharex=False)
        tenths = self.tenths()
        x = np.arange(1, 11)
        top.plot(x, [t["received"] for t in tenths], "k-o", label="received (total)")
        for name, meaning in PARTS:
            top.plot(x, [t[name] for t in tenths], "-o", ms=3, label=f"{name}: {meaning}")
        top.set(xlabel="tenth of the run", ylabel="p50 latency (ms)", xticks=x)
        top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        top.grid(alpha=0.3)
        published = [n for n, _ in self.samples]
        bottom.plot(published, [r / 2**20 for _, r in self.samples], "-")
        bottom.set(xlabel="masks published", ylabel="node RSS (MiB)")
        bottom.grid(alpha=0.3)
        figure.suptitle(
            f"soak: {self.bench.frames} pairs at {self.bench.rate_hz:g} Hz, "
            f"model input {self.bench.input_size}, node input QoS {self.bench.input_qos}"
        )
        figure.savefig(path, dpi=90)


def _median(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else float("nan")


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
            stream = status.get("saliency_node: camera", {})
            published = int(stream.get("published", 0))
            result.samples.append((published, rss_bytes(pid)))
            values = {key: float(stream.get(key, np.nan)) for key in NODE_P50S}
            machine_s, stolen_s = machine_cpu_seconds()
            values.update(
                t_s=now,
                cpu_s=cpu_seconds(pid),
                lost=float(stream.get("lost_before_node", 0)),
                machine_s=machine_s,
                stolen_s=stolen_s,
            )
            result.node_p50s.append((published, values))

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
