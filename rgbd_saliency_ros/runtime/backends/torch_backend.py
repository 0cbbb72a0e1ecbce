"""The PyTorch backend: CPU or CUDA, float32 or (on GPU) float16 / bfloat16 autocast."""

from __future__ import annotations

import numpy as np
import torch

from ...model import SamDaq
from .base import BackendInfo, StepBackend

_AUTOCAST = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchBackend(StepBackend):
    """Runs ``SamDaq.step`` directly. ``compile=True`` runs the encoder through a
    ``torch.compile`` wrapper this backend holds: the caller's module is not changed (beyond
    ``eval()``, which inference needs)."""

    def __init__(
        self,
        model: SamDaq,
        metadata: dict | None = None,
        precision: str = "float32",
        compile: bool = False,
    ) -> None:
        self.device = next(model.parameters()).device
        if precision != "float32" and self.device.type != "cuda":
            raise ValueError(
                f"precision {precision} needs a CUDA device; {self.device} runs float32 only"
            )
        if precision not in ("float32", *_AUTOCAST):
            raise ValueError(
                f"unknown precision {precision!r}; expected float32, float16 or bfloat16"
            )
        self.model = model.eval()
        self.config = model.config
        # The bound travels like the exported file's: the runtime's memory guard reads it here.
        self.metadata = {**(metadata or {}), "state_norm_bound": model.state_norm_bound()}
        self.precision = precision
        self._encode = torch.compile(model.encode) if compile else model.encode

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("torch", str(self.device), self.precision)

    def initial_state(self, batch: int) -> np.ndarray:
        with torch.inference_mode():
            return self.model.initial_state(batch).cpu().numpy()

    def step(
        self, rgb: np.ndarray, depth: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        self.check_inputs(rgb, depth, state)
        dev = self.device
        with (
            torch.inference_mode(),
            torch.autocast(
                dev.type,
                dtype=_AUTOCAST.get(self.precision, torch.float32),
                enabled=self.precision in _AUTOCAST,
            ),
        ):
            # SamDaq.step, with the encoder this backend chose (inputs checked above)
            features = self._encode(
                torch.from_numpy(rgb).to(dev, non_blocking=True),
                torch.from_numpy(depth).to(dev, non_blocking=True),
            )
            prob, new_state = self.model.step_features(
                features, torch.from_numpy(state).to(dev, non_blocking=True)
            )
        return prob.float().cpu().numpy(), new_state.float().cpu().numpy()
