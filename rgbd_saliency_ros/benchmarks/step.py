"""Median time of one SAM-DAQ step and where it goes.

    rgbd-saliency bench-step --model sam2.1_hiera_t --input-size 1024 --repeats 5

Random weights and random frames: the work per step does not depend on the values.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..model import SamDaq, SamDaqConfig

# Parts of the step, in the order they run.
PARTS = ("trunk", "adapters", "neck", "qtm", "decoder", "memory_encoder")


@dataclass
class StepTimings:
    """Seconds per step: the median total and the median of each part over the repeats."""

    config: SamDaqConfig
    batch: int
    threads: int
    compiled: bool = False
    totals_s: list[float] = field(default_factory=list)
    parts_s: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    @property
    def median_s(self) -> float:
        return statistics.median(self.totals_s)

    def part_median_s(self, part: str) -> float:
        return statistics.median(self.parts_s[part]) if self.parts_s[part] else 0.0

    def report(self) -> str:
        lines = [
            f"SAM-DAQ step, {self.config.backbone}, input {self.config.input_size}, "
            f"batch {self.batch}, {self.threads} threads, {len(self.totals_s)} repeats"
            + (", torch.compile" if self.compiled else ""),
            f"  median step      {self.median_s:8.3f} s",
        ]
        named = 0.0
        for part in PARTS:
            t = self.part_median_s(part)
            named += t
            lines.append(f"  {part:<16} {t:8.3f} s  {100 * t / self.median_s:5.1f} %")
        other = max(self.median_s - named, 0.0)
        lines.append(
            f"  {'other':<16} {other:8.3f} s  {100 * other / self.median_s:5.1f} %  "
            "(resizes, concatenations)"
        )
        return "\n".join(lines)


class _PartClock:
    """Adds the wall time spent inside wrapped callables to the current repeat's totals."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.current: dict[str, float] = defaultdict(float)

    @contextmanager
    def measure(self, part: str):
        _sync(self.device)
        start = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            self.current[part] += time.perf_counter() - start

    def wrap(self, part: str, fn):
        def timed(*args, **kwargs):
            with self.measure(part):
                return fn(*args, **kwargs)

        return timed


def _instrument(model: SamDaq, clock: _PartClock) -> None:
    """Shadows the model's part calls on this instance with timed ones (benchmark only)."""
    model._trunk_stage = clock.wrap("trunk", model._trunk_stage)
    for module in [model.depth_projector, model.depth_stem_skip, *model.adapters]:
        module.forward = clock.wrap("adapters", module.forward)
    model.neck.forward = clock.wrap("neck", model.neck.forward)
    model.mask_decoder.conv_s0.forward = clock.wrap("neck", model.mask_decoder.conv_s0.forward)
    model.mask_decoder.conv_s1.forward = clock.wrap("neck", model.mask_decoder.conv_s1.forward)
    model.qtm.prompt = clock.wrap("qtm", model.qtm.prompt)
    model.qtm.update = clock.wrap("qtm", model.qtm.update)
    model.decode = clock.wrap("decoder", model.decode)
    model.memory_encoder.forward = clock.wrap("memory_encoder", model.memory_encoder.forward)


def bench_step(
    config: SamDaqConfig,
    batch: int = 1,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
    compile: bool = False,
) -> StepTimings:
    """Times ``repeats`` steps (after ``warmup``) of a random-weight model on random frames.

    ``compile``: run the encoder through ``torch.compile`` (inductor, frozen weights); the parts of
    the encoder are then fused and reported together under "trunk".
    """
    model = SamDaq(config).to(device).eval()
    clock = _PartClock(device)
    if compile:
        # Weights are constants at inference: freezing lets inductor prepack them. An option of
        # this compile only, not inductor's process-wide config.
        model.encode = clock.wrap("trunk", torch.compile(model.encode, options={"freezing": True}))
    else:
        _instrument(model, clock)
    s = config.input_size
    gen = torch.Generator().manual_seed(0)
    rgb = torch.randn(batch, 3, s, s, generator=gen).to(device)
    depth = torch.rand(batch, 1, s, s, generator=gen).to(device)
    state = model.initial_tensor(batch).to(device)
    result = StepTimings(config, batch, torch.get_num_threads(), compiled=compile)
    with torch.inference_mode():
        for i in range(warmup + repeats):
            clock.current.clear()
            _sync(device)
            start = time.perf_counter()
            _, state = model.step(rgb, depth, state)
            _sync(device)
            total = time.perf_counter() - start
            if i >= warmup:
                result.totals_s.append(total)
                for part in PARTS:
                    result.parts_s[part].append(clock.current.get(part, 0.0))
    return result


def _sync(device: str) -> None:
    # CUDA runs asynchronously: without a sync, times would be launch times.
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
