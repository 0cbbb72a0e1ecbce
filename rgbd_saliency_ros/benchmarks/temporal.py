"""The temporal part of a step (QTM versus SAM2's memory bank), and whether a step slows over time.

The frame is encoded once; then the decoder and the temporal part run frame after frame on it, so
that what is timed is what differs between the variants.
"""

from __future__ import annotations

import statistics
import time

import torch

from ..model import SamDaq, SamDaqConfig


def bench_temporal(
    config: SamDaqConfig,
    frames: int = 1000,
    probe: tuple[int, ...] = (1, 10, 1000),
    window: int = 5,
    device: str = "cpu",
) -> dict:
    """Steps ``frames`` frames; returns the median time per frame of the temporal part and of the
    whole step after features (decoder + temporal), and those step times around each ``probe``
    frame."""
    s = config.input_size
    with torch.random.fork_rng():  # seeded draws; the caller's random state is left as it was
        torch.manual_seed(0)
        model = SamDaq(config).to(device).eval()
        rgb, depth = torch.randn(1, 3, s, s), torch.rand(1, 1, s, s)
    with torch.inference_mode():
        feats = model.encode(rgb.to(device), depth.to(device))
        temporal_s, step_s = [], []
        parts = {"t": 0.0}

        def timed(fn):
            def wrapper(*a, **k):
                start = time.perf_counter()
                out = fn(*a, **k)
                parts["t"] += time.perf_counter() - start
                return out

            return wrapper

        for owner, attribute in model.temporal_parts():
            setattr(owner, attribute, timed(getattr(owner, attribute)))
        model.step_features(feats, model.initial_tensor(1).to(device))  # set-up, not timed
        state = model.initial_tensor(1).to(device)
        for _ in range(frames):
            parts["t"] = 0.0
            start = time.perf_counter()
            _, state = model.step_features(feats, state)
            step_s.append(time.perf_counter() - start)
            temporal_s.append(parts["t"])

    def around(i: int) -> float:
        lo = max(0, min(i, frames) - window)
        return statistics.median(step_s[lo : max(lo + 1, min(i, frames))])

    return {
        "temporal": config.temporal,
        "frames": frames,
        "temporal_median_s": statistics.median(temporal_s),
        "step_after_encoder_median_s": statistics.median(step_s),
        "step_at_frame_s": {str(i): around(i) for i in probe if i <= frames},
        "state_floats": int(state[0].numel()),
    }
