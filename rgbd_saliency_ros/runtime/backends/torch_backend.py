"""The PyTorch backend: CPU or CUDA, float32 or (on GPU) float16 / bfloat16 autocast."""

from __future__ import annotations

import numpy as np
import torch

from ...model.base import DepthEstimator, SaliencyModel
from .base import BackendInfo, EstimatorBackend, State, StepBackend

_AUTOCAST = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _check_precision(device: torch.device, precision: str) -> None:
    """Raises ValueError unless ``precision`` runs on ``device`` (reduced ones: CUDA only)."""
    if precision != "float32" and device.type != "cuda":
        raise ValueError(f"precision {precision} needs a CUDA device; {device} runs float32 only")
    if precision not in ("float32", *_AUTOCAST):
        raise ValueError(f"unknown precision {precision!r}; expected float32, float16 or bfloat16")


def _autocast(device: torch.device, precision: str):
    """The autocast context of ``precision`` (disabled for float32)."""
    return torch.autocast(
        device.type,
        dtype=_AUTOCAST.get(precision, torch.float32),
        enabled=precision in _AUTOCAST,
    )


class _TorchModule:
    """What both torch backends hold: the plug-in in eval mode on its device, what it says of
    itself, the precision it runs at."""

    def _hold(self, model, metadata: dict | None, precision: str) -> None:
        self.device = next(model.parameters()).device
        _check_precision(self.device, precision)
        self.model = model.eval()
        self.name = model.name
        self.config = model.config
        self.preprocessing = model.preprocessing()
        self.metadata = dict(metadata or {})
        self.precision = precision

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("torch", str(self.device), self.precision)


class TorchBackend(_TorchModule, StepBackend):
    """Runs a model plug-in's ``step_state`` directly. ``compile=True`` runs the step through a
    ``torch.compile`` wrapper this backend holds: the caller's module is not changed (beyond
    ``eval()``, which inference needs)."""

    def __init__(
        self,
        model: SaliencyModel,
        metadata: dict | None = None,
        precision: str = "float32",
        compile: bool = False,
    ) -> None:
        self._hold(model, metadata, precision)
        self.state_spec = model.state_spec()
        self._step = torch.compile(model.step_state) if compile else model.step_state

    def initial_state(self, batch: int) -> State:
        with torch.inference_mode():
            return {n: t.float().cpu().numpy() for n, t in self.model.initial_state(batch).items()}

    def step(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self.check_inputs(rgb, depth, state)
        dev = self.device

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(dev)

        with torch.inference_mode(), _autocast(dev, self.precision):
            prob, new = self._step(
                tensor(rgb), tensor(depth), {n: tensor(a) for n, a in state.items()}
            )
        return prob.float().cpu().numpy(), {n: t.float().cpu().numpy() for n, t in new.items()}


class TorchEstimatorBackend(_TorchModule, EstimatorBackend):
    """Runs a depth estimator plug-in's ``forward`` (CPU or CUDA; float16 / bfloat16 autocast on
    GPU)."""

    def __init__(
        self, model: DepthEstimator, metadata: dict | None = None, precision: str = "float32"
    ) -> None:
        self._hold(model, metadata, precision)

    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).to(self.device)
        with torch.inference_mode(), _autocast(self.device, self.precision):
            depth = self.model(x)
        return depth.float().cpu().numpy()
