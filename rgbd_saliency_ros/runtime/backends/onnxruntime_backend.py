"""The ONNX Runtime backend: runs a step exported by ``rgbd-saliency export --format onnx``."""

from __future__ import annotations

import os

import numpy as np

from .base import BackendInfo, State
from .exported import ExportedStepBackend


class OnnxRuntimeBackend(ExportedStepBackend):
    """CPU or CUDA execution provider; what it knows of the model comes from the file."""

    def __init__(self, path: str | os.PathLike, device: str = "cpu") -> None:
        import onnxruntime as ort

        super().__init__(path)
        if device == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise ValueError(
                    f"device {device}: this onnxruntime has no CUDA provider "
                    "(install onnxruntime-gpu)"
                )
            index = int(device.split(":")[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            raise ValueError(
                f"unknown device {device!r} for onnxruntime; expected cpu or cuda[:N]"
            )
        self.session = ort.InferenceSession(os.fspath(path), providers=providers)
        self.device = device

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("onnxruntime", self.device, "float32")

    def step(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        self.check_inputs(rgb, depth, state)
        return self.unpack(self.session.run(self.output_names, self.feeds(rgb, depth, state)))
