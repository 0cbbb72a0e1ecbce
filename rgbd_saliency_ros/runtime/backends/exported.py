"""What the backends that run an exported step (ONNX Runtime, TensorRT) share: everything they
know about the model comes from the file ``rgbd-saliency export`` wrote."""

from __future__ import annotations

import os

import numpy as np

from ..export import input_names, output_names, read_onnx_metadata
from .base import State, StepBackend

# The metadata entries the runtime reads from a backend (depth convention, weights hash); the
# rest of the file's metadata is the export's own business.
RUNTIME_METADATA = ("depth_conversion", "weights_sha256")


class ExportedStepBackend(StepBackend):
    """A backend of an exported step: model name, config, preprocessing, state description,
    initial state and the largest batch come from the file's metadata
    (``read_onnx_metadata``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        meta = read_onnx_metadata(path)
        self.name = meta["model"]
        self.config = meta["config"]
        self.preprocessing = meta["preprocessing"]
        self.state_spec = meta["state_spec"]
        self._initial = meta["initial_state"]  # {name: array of one stream}
        self.metadata = {k: v for k, v in meta.items() if k in RUNTIME_METADATA}
        self.max_batch = int(meta.get("max_batch", 1))
        self.input_names = input_names(self.state_spec)
        self.output_names = output_names(self.state_spec)

    def initial_state(self, batch: int) -> State:
        return {n: np.repeat(a[None], batch, axis=0) for n, a in self._initial.items()}

    def check_inputs(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> None:
        """The model's shape check, and a batch within the one the file was exported for."""
        super().check_inputs(rgb, depth, state)
        if rgb.shape[0] > self.max_batch:
            raise ValueError(f"batch {rgb.shape[0]} exceeds the exported maximum {self.max_batch}")

    def feeds(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> dict[str, np.ndarray]:
        """The exported graph's inputs by name, float32 and contiguous."""
        arrays = {"rgb": rgb, "depth": depth, **state}
        return {n: np.ascontiguousarray(arrays[n], np.float32) for n in self.input_names}

    def unpack(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, State]:
        """(prob, new batched state) from the graph's outputs in ``output_names`` order."""
        return outputs[0], dict(zip(self.state_spec.names, outputs[1:]))
