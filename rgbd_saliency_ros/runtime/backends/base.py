"""The one interface every inference backend (torch, ONNX Runtime, TensorRT) implements.

Arrays in, arrays out, state explicit: the caller never branches on which backend it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # a type only: importing the runtime (and so the node) must not pull in torch
    from ...model import SamDaqConfig


@dataclass(frozen=True)
class BackendInfo:
    """What a backend reports about itself (for diagnostics and benchmark reports)."""

    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...
    precision: str  # "float32", "float16", "bfloat16", "int8"


class StepBackend(ABC):
    """Runs the SAM-DAQ step on a batch of independent streams.

    Inputs and outputs are float32 numpy arrays on the host:
    rgb (B, 3, S, S) ImageNet-normalised; depth (B, 1, S, S) in [0, 1];
    state (B, num_video_queries, query_dim). ``step`` returns (prob (B, 1, S, S) in [0, 1], new
    state).
    """

    config: SamDaqConfig
    metadata: dict  # from the weights or the exported file: config, depth conversion, ...

    @property
    @abstractmethod
    def info(self) -> BackendInfo: ...

    @abstractmethod
    def initial_state(self, batch: int) -> np.ndarray:
        """(batch, num_video_queries, query_dim) float32: a stream's state before its first
        frame."""

    @abstractmethod
    def step(
        self, rgb: np.ndarray, depth: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One frame of B streams; see the class docstring for shapes."""

    def warmup(self, batch: int = 1) -> None:
        """Runs one step on blank frames so that the first real frame is not slow."""
        s = self.config.input_size
        self.step(
            np.zeros((batch, 3, s, s), np.float32),
            np.zeros((batch, 1, s, s), np.float32),
            self.initial_state(batch),
        )

    def check_inputs(self, rgb: np.ndarray, depth: np.ndarray, state: np.ndarray) -> None:
        """Raises ValueError on shapes that do not fit this model: the model's own check
        (``SamDaqConfig.check_step_inputs``), so every backend and the model say the same."""
        self.config.check_step_inputs(rgb, depth, state)
