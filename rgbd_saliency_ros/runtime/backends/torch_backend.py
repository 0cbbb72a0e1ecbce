"""The PyTorch backend: CPU or CUDA, float32 or (on GPU) float16 / bfloat16 autocast."""

from __future__ import annotations

import numpy as np
import torch

from ...model.base import SaliencyModel
from .base import BackendInfo, State, StepBackend

_AUTOCAST = {"float16": torch.float16, "bfloat16": torch.bfloat16}


class TorchBackend(StepBackend):
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
        self.name = model.name
        self.config = model.config
        self.preprocessing = model.preprocessing()
        self.state_spec = model.state_spec()
        self.metadata = dict(metadata or {})
        self.precision = precision
        self._step = torch.compile(model.step_state) if compile else model.step_state

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("torch", str(self.device), self.precision)

    def initial_state(self, batch: int) -> State:
        with torch.inference_mode():
            return {n: t.float().cpu().numpy() for n, t in self.model.initial_state(batch).items()}

    def step(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self.check_inputs(rgb, depth, state)
        dev = self.device

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(dev)

        with (
            torch.inference_mode(),
            torch.autocast(
                dev.type,
                dtype=_AUTOCAST.get(self.precision, torch.float32),
                enabled=self.precision in _AUTOCAST,
            ),
        ):
            prob, new = self._step(
                tensor(rgb), tensor(depth), {n: tensor(a) for n, a in state.items()}
            )
        return prob.float().cpu().numpy(), {n: t.float().cpu().numpy() for n, t in new.items()}
