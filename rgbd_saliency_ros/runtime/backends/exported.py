"""What the backends that run an exported step (ONNX Runtime, TensorRT) share: everything they
know about the model comes from the file ``rgbd-saliency export`` wrote."""

from __future__ import annotations

import os

import numpy as np

from ..export import read_onnx_metadata
from .base import StepBackend

# The metadata entries the runtime reads from a backend (depth convention, weights hash, memory
# guard bound); the rest of the file's metadata is the export's own business.
RUNTIME_METADATA = ("depth_conversion", "weights_sha256", "state_norm_bound")


class ExportedStepBackend(StepBackend):
    """A backend of an exported step: config, initial state and the largest batch come from
    the file's metadata (``read_onnx_metadata``)."""

    def __init__(self, path: str | os.PathLike) -> None:
        meta = read_onnx_metadata(path)
        self.config = meta["config"]
        self._initial = meta["initial_state"]  # (Q, D) float32
        self.metadata = {k: v for k, v in meta.items() if k in RUNTIME_METADATA}
        self.max_batch = int(meta.get("max_batch", 1))

    def initial_state(self, batch: int) -> np.ndarray:
        return np.repeat(self._initial[None], batch, axis=0)

    def check_inputs(self, rgb: np.ndarray, depth: np.ndarray, state: np.ndarray) -> None:
        """The model's shape check, and a batch within the one the file was exported for."""
        super().check_inputs(rgb, depth, state)
        if rgb.shape[0] > self.max_batch:
            raise ValueError(f"batch {rgb.shape[0]} exceeds the exported maximum {self.max_batch}")
