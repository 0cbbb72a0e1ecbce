"""The one interface every inference backend (torch, ONNX Runtime, TensorRT) implements.

Arrays in, arrays out, state explicit and opaque: the caller never branches on which backend or
which model it has. What a backend knows of its model is ``preprocessing`` and ``state_spec``
(``model.contract``), from the model itself or from the exported file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # types only: importing the runtime (and so the node) must not pull in torch
    from ...model.contract import EstimatorPreprocessing, Preprocessing, StateSpec

State = dict  # {tensor name: float32 array}, per stream or with a leading batch axis


@dataclass(frozen=True)
class BackendInfo:
    """What a backend reports about itself (for diagnostics and benchmark reports)."""

    name: str  # "torch", "onnxruntime", "tensorrt"
    device: str  # "cpu", "cuda:0", ...
    precision: str  # "float32", "float16", "bfloat16", "int8"


class StepBackend(ABC):
    """Runs a model's step on a batch of independent streams whose states stack.

    Inputs and outputs are float32 numpy arrays on the host: rgb (B, 3, S, S) normalised as
    ``preprocessing`` says; depth (B, 1, S, S) in [0, 1]; state a batched ``State`` of
    ``state_spec``'s tensors. ``step`` returns (prob (B, 1, S, S) in [0, 1], new batched state).
    """

    name: str  # the model plug-in's registry name
    config: object  # the model's config dataclass (reported, never branched on)
    preprocessing: Preprocessing
    state_spec: StateSpec
    metadata: dict  # from the weights or the exported file: config, depth conversion, ...

    @property
    @abstractmethod
    def info(self) -> BackendInfo: ...

    @abstractmethod
    def initial_state(self, batch: int) -> State:
        """A batched state of ``batch`` streams before their first frame."""

    @abstractmethod
    def step(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One frame of B streams; see the class docstring for shapes."""

    def warmup(self, batch: int = 1) -> None:
        """Runs one step on blank frames so that the first real frame is not slow."""
        s = self.preprocessing.input_size
        self.step(
            np.zeros((batch, 3, s, s), np.float32),
            np.zeros((batch, 1, s, s), np.float32),
            self.initial_state(batch),
        )

    def check_inputs(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> None:
        """Raises ValueError naming the first input whose shape does not fit this model: rgb
        (B, 3, S, S), depth (B, 1, S, S), every state tensor (B, ...) of its spec, so that every
        backend says the same."""
        s, b = self.preprocessing.input_size, rgb.shape[0]
        for name, array, shape in (("rgb", rgb, (b, 3, s, s)), ("depth", depth, (b, 1, s, s))):
            if tuple(array.shape) != shape:
                raise ValueError(f"{name} has shape {tuple(array.shape)}, expected {shape}")
        self.state_spec.check(state, batched=True)
        for name, array in state.items():
            if array.shape[0] != b:
                raise ValueError(f"state {name} has batch {array.shape[0]}, frames {b}")


class EstimatorBackend(ABC):
    """Runs a depth estimator (a depth source: no state) on a batch of images.

    ``estimate`` takes rgb (B, 3, h, w) float32 normalised as ``preprocessing`` says, h and w
    multiples of its ``multiple_of``, and returns (B, h, w) float32 relative depth in the
    estimator's units. ``runtime.depth_estimation.DepthEstimation`` does the frame's resizing.
    """

    name: str  # the estimator plug-in's registry name
    config: object  # its config dataclass (reported, never branched on)
    preprocessing: EstimatorPreprocessing
    metadata: dict  # from the weights file ({} for an official checkpoint)

    @property
    @abstractmethod
    def info(self) -> BackendInfo: ...

    @abstractmethod
    def estimate(self, rgb: np.ndarray) -> np.ndarray:
        """(B, 3, h, w) float32 -> (B, h, w) float32; see the class docstring."""
