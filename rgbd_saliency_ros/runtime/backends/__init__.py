"""Inference backends behind one interface (``StepBackend``); heavy imports stay inside each
one."""

from __future__ import annotations

from .base import BackendInfo, EstimatorBackend, StepBackend

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("float32", "float16", "bfloat16", "int8")  # int8: tensorrt only


def create_backend(
    kind: str,
    *,
    sam2_checkpoint: str | None = None,
    weights: str | None = None,
    model: str | None = None,
    input_size: int | None = None,
    device: str = "cpu",
    precision: str = "float32",
    engine: str | None = None,
) -> StepBackend:
    """Builds the backend ``kind`` from file paths.

    torch: ``weights`` (this project's format, or the reference's: SAM-DAQ's), with the backbone
    checkpoint the model needs (SAM-DAQ: ``sam2_checkpoint``); neither: random SAM-DAQ weights.
    onnxruntime: ``engine``, an ONNX file written by ``rgbd-saliency export``. tensorrt:
    ``engine``, that ONNX file, from which an engine is built (or reused from the cache).
    """
    if kind == "torch":
        from ..model_loading import check_model_files, load_model
        from .torch_backend import TorchBackend

        if weights:  # trained weights: with the backbone checkpoint their model needs, if any
            check_model_files(sam2_checkpoint, weights)
        loaded = load_model(sam2_checkpoint, weights, model, input_size, device)
        return TorchBackend(loaded.model, loaded.metadata, precision)
    if kind in ("onnxruntime", "tensorrt") and not engine:
        raise ValueError(f"backend {kind} needs an exported ONNX file (rgbd-saliency export)")
    if kind == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(engine, device)
    if kind == "tensorrt":
        from .tensorrt_backend import TensorRTBackend

        return TensorRTBackend(engine, device, precision)
    raise ValueError(f"unknown backend {kind!r}; expected one of {BACKENDS}")


def create_estimator_backend(
    weights: str, device: str = "cpu", precision: str = "float32"
) -> EstimatorBackend:
    """A depth estimator's torch backend from its weights: an official Depth Anything V2
    checkpoint or this project's format (``model.checkpoints.load_depth_estimator``)."""
    import torch

    from ...model.checkpoints import load_depth_estimator
    from .torch_backend import TorchEstimatorBackend

    model = load_depth_estimator(weights).to(torch.device(device))
    return TorchEstimatorBackend(model, precision=precision)


__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "BackendInfo",
    "EstimatorBackend",
    "StepBackend",
    "create_backend",
    "create_estimator_backend",
]
