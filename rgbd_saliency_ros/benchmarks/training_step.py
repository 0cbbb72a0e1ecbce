"""Peak memory and time of one training step (forward over a clip, backward, AdamW) per adapter
variant.

Each variant runs in a fresh process so that peak memory is its own:

    python -m rgbd_saliency_ros.benchmarks.training_step --adapter serial --input-size 256 --clip 4

On CUDA the peak is ``torch.cuda.max_memory_allocated``; on CPU it is the highest resident memory
sampled during the steps minus the resident memory just before them (the built model and inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time

import torch
import torch.nn.functional as F

from ..model import SamDaq, SamDaqConfig


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _RssSampler:
    """Samples the resident memory every millisecond in a thread: the process's lifetime peak
    (ru_maxrss) would include model building, which can exceed the training step itself."""

    def __init__(self) -> None:
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.001)

    def __enter__(self) -> "_RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def measure(config: SamDaqConfig, clip: int, device: str = "cpu", steps: int = 2) -> dict:
    """Trains ``steps`` steps on random clips; returns the peak memory and the last step's time
    (the first pays one-off allocations)."""
    s = config.input_size
    with torch.random.fork_rng():  # seeded draws; the caller's random state is left as it was
        torch.manual_seed(0)
        model = SamDaq(config).to(device).train()
        rgb = torch.randn(1, clip, 3, s, s).to(device)
        depth = torch.rand(1, clip, 1, s, s).to(device)
        gt = (torch.rand(1, clip, s, s) > 0.5).float().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.05)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_bytes()
    times = []
    with _RssSampler() as sampler:
        for _ in range(steps):
            times.append(_train_step(model, optimizer, rgb, depth, gt, cuda))
    peak = (torch.cuda.max_memory_allocated() if cuda else sampler.peak) - base
    return {
        "adapter": config.adapter,
        "trainable_params": sum(p.numel() for p in params),
        "peak_bytes": int(peak),
        "step_s": times[-1],
    }


def _train_step(model, optimizer, rgb, depth, gt, cuda: bool) -> float:
    """One forward over the clip, backward and optimizer step; returns its wall time."""
    start = time.perf_counter()
    probs, inter = model.forward_clip(rgb, depth)
    gt_small = F.interpolate(gt, size=inter.shape[-2:], mode="bilinear", align_corners=False)
    loss = F.binary_cross_entropy(probs, gt) + 0.5 * F.binary_cross_entropy(inter, gt_small)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - start


def measure_in_subprocess(config: SamDaqConfig, clip: int, device: str = "cpu") -> dict:
    """``measure`` in a fresh interpreter (a process's peak memory cannot be reset)."""
    cmd = [
        sys.executable,
        "-m",
        __name__,
        "--adapter",
        config.adapter,
        "--model",
        config.backbone,
        "--input-size",
        str(config.input_size),
        "--clip",
        str(clip),
        "--device",
        device,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"training-step benchmark for {config.adapter} failed:\n{done.stderr[-2000:]}"
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", default="parallel")
    p.add_argument("--model", default="sam2.1_hiera_t")
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--clip", type=int, default=4)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    config = SamDaqConfig(backbone=args.model, input_size=args.input_size, adapter=args.adapter)
    print(json.dumps(measure(config, args.clip, args.device)))


if __name__ == "__main__":
    main()
