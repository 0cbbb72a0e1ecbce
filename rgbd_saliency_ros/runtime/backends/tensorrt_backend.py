"""The TensorRT backend: an engine built from the exported ONNX step, cached per device and
settings.

GPU only; kept thin. Engines are cached under a key of GPU name, compute capability, TensorRT
version, precision, input size, batch range and weights hash, so a change of any of them builds
a new engine and an engine is never reused on another device.

    rgbd-saliency export --format tensorrt --precision float16 ... --output step.onnx
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..export import read_onnx_metadata
from .base import BackendInfo, State
from .exported import ExportedStepBackend

TRT_PRECISIONS = ("float32", "float16", "bfloat16", "int8")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/rgbd_saliency_ros/engines`` (``~/.cache/...`` by default)."""
    return (
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "rgbd_saliency_ros"
        / "engines"
    )


def engine_cache_key(
    gpu_name: str,
    compute_capability: tuple[int, int],
    trt_version: str,
    precision: str,
    input_size: int,
    batch_range: tuple[int, int, int],
    weights_sha256: str,
) -> str:
    """A file-name-safe key naming one engine build; every argument changes it."""
    fields = {
        "gpu": gpu_name,
        "sm": list(compute_capability),
        "trt": trt_version,
        "precision": precision,
        "input": input_size,
        "batch": list(batch_range),
        "weights": weights_sha256,
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]
    return f"samdaq_{input_size}_{precision}_{digest}"


def _device_fields(device: str) -> tuple[str, tuple[int, int], int]:
    import torch

    if not str(device).startswith("cuda"):
        raise ValueError(
            f"the tensorrt backend runs on a CUDA device, not {device!r} (use --device cuda)"
        )
    if not torch.cuda.is_available():
        raise RuntimeError("the tensorrt backend needs a CUDA GPU; none is visible")
    index = torch.device(device).index or 0
    return torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index), index


def calibration_batches(
    rgb_dir: str | os.PathLike, depth_dir: str | os.PathLike, onnx_path: str | os.PathLike
):
    """Calibration inputs for int8: {input name: batch of one} per frame of two image folders,
    each with the state the stream carries into that frame. The frames go through
    ``SaliencyRuntime`` on ONNX Runtime (CPU) in order, so the states are the ones a stream
    really reaches, not only initial ones (the ranges int8 must cover)."""
    from ..saliency import FramePair, SaliencyConfig, SaliencyRuntime
    from ..sequence import frame_stamp_s, list_frames, read_frame
    from .onnxruntime_backend import OnnxRuntimeBackend

    backend = OnnxRuntimeBackend(onnx_path, "cpu")
    runtime = SaliencyRuntime(backend, SaliencyConfig())
    for i, paths in enumerate(list_frames(rgb_dir, depth_dir)):
        rgb, depth01 = read_frame(*paths)
        prepared = runtime.prepare(FramePair("calibration", frame_stamp_s(i), rgb, depth01, False))
        state = backend.state_spec.stack([runtime.state_before(prepared)])
        yield backend.feeds(prepared.rgb[None], prepared.depth[None], state)
        runtime.run([prepared])


def build_engine(
    onnx_path: str | os.PathLike,
    device: str = "cuda",
    precision: str = "float16",
    opt_batch: int = 1,
    cache_dir: str | os.PathLike | None = None,
    calibration=None,
    progress: bool = True,
) -> Path:
    """Builds (or finds in the cache) a serialized engine for ``onnx_path``; returns its path.

    ``calibration``: for int8, an iterable of {input name: numpy batch} of representative frames
    (``calibration_batches``); needed only to build: an int8 engine already in the cache
    (``rgbd-saliency export --format tensorrt --precision int8 --calibration-dir ...``) is used
    without it.
    """
    import tensorrt as trt

    if precision not in TRT_PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {TRT_PRECISIONS}")
    meta = read_onnx_metadata(onnx_path)
    size, max_batch = meta["preprocessing"].input_size, int(meta["max_batch"])
    gpu, sm, _ = _device_fields(device)
    batch_range = (1, min(opt_batch, max_batch), max_batch)
    key = engine_cache_key(
        gpu, sm, trt.__version__, precision, size, batch_range, meta["weights_sha256"]
    )
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    engine_path = cache / f"{key}.engine"
    if engine_path.is_file():
        return engine_path
    if precision == "int8" and calibration is None:
        raise ValueError(
            f"no int8 engine for {onnx_path} on this GPU and TensorRT in {cache} (key {key}): "
            "build it once with rgbd-saliency export --format tensorrt --precision int8 "
            f"--calibration-dir DIR --opt-batch {batch_range[1]} --cache-dir {cache}"
        )

    serialized = _build_serialized(
        trt, onnx_path, meta, precision, batch_range, calibration, cache / f"{key}.calib", progress
    )
    cache.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(serialized)
    engine_path.with_suffix(".json").write_text(
        json.dumps(
            {
                "onnx": os.fspath(onnx_path),
                "gpu": gpu,
                "sm": sm,
                "precision": precision,
                "batch": batch_range,
            }
        )
    )
    return engine_path


def _build_serialized(
    trt,
    onnx_path,
    meta: dict,
    precision: str,
    batch_range,
    calibration,
    calib_cache: Path,
    progress: bool,
) -> bytes:
    """Parses ``onnx_path`` (``meta``: its metadata) and builds its engine for ``precision``
    over ``batch_range`` (min, opt, max batch); int8 calibrates on ``calibration``, caching the
    table in ``calib_cache``. Returns the serialized engine."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(os.fspath(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: TensorRT cannot parse it: {errors}")
    config = builder.create_builder_config()
    flags = {"float16": ["FP16"], "bfloat16": ["BF16"], "int8": ["INT8", "FP16"]}.get(
        precision, []
    )
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    s = meta["preprocessing"].input_size
    shapes = {"rgb": (3, s, s), "depth": (1, s, s)}
    shapes.update({t.name: t.shape for t in meta["state_spec"].tensors})
    profile = builder.create_optimization_profile()
    for name, shape in shapes.items():
        profile.set_shape(name, *[(b, *shape) for b in batch_range])
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.int8_calibrator = _Calibrator(trt, calibration, calib_cache)
        config.set_calibration_profile(profile)
    if progress:
        config.progress_monitor = _progress_monitor(trt)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"{onnx_path}: TensorRT engine build failed (see the log above)")
    return bytes(serialized)


class TensorRTBackend(ExportedStepBackend):
    """Runs the cached engine; device buffers are allocated once, for the largest batch."""

    def __init__(
        self,
        onnx_path: str | os.PathLike,
        device: str = "cuda",
        precision: str = "float16",
        cache_dir: str | os.PathLike | None = None,
    ) -> None:
        import tensorrt as trt
        import torch

        super().__init__(onnx_path)
        self.precision = precision
        _, _, index = _device_fields(device)
        self.device = f"cuda:{index}"
        engine_path = build_engine(onnx_path, self.device, precision, cache_dir=cache_dir)
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f"{engine_path}: cannot deserialize (built by another TensorRT?); "
                "delete it to rebuild"
            )
        self.context = self.engine.create_execution_context()
        s, b = self.preprocessing.input_size, self.max_batch
        shapes = {"rgb": (b, 3, s, s), "depth": (b, 1, s, s), "prob": (b, 1, s, s)}
        for t in self.state_spec.tensors:
            shapes[t.name] = shapes[f"new_{t.name}"] = (b, *t.shape)
        self._buffers = {
            n: torch.empty(shape, dtype=torch.float32, device=self.device)
            for n, shape in shapes.items()
        }
        self._stream = torch.cuda.Stream(device=self.device)

    @property
    def info(self) -> BackendInfo:
        return BackendInfo("tensorrt", self.device, self.precision)

    def step(self, rgb: np.ndarray, depth: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        import torch

        self.check_inputs(rgb, depth, state)
        b = rgb.shape[0]
        with torch.cuda.stream(self._stream):
            for name, array in self.feeds(rgb, depth, state).items():
                view = self._buffers[name][:b]
                view.copy_(torch.from_numpy(array), non_blocking=False)
                self.context.set_input_shape(name, tuple(view.shape))
            for name, buf in self._buffers.items():
                self.context.set_tensor_address(name, buf.data_ptr())
            if not self.context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            self._stream.synchronize()
        return self.unpack([self._buffers[n][:b].cpu().numpy() for n in self.output_names])


def _progress_monitor(trt):
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        """Shows TensorRT's build phases as progress bars."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._bars = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self._bars[phase_name] = tqdm(
                total=num_steps, desc=f"tensorrt: {phase_name}", leave=False
            )

        def step_complete(self, phase_name, step):
            bar = self._bars.get(phase_name)
            if bar is not None:
                bar.n = step + 1
                bar.refresh()
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self._bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def _Calibrator(trt, batches, cache_file: Path):
    """An entropy calibrator over {input name: numpy batch} dicts, cached beside the engine."""
    import torch

    class Calibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._iter = iter(batches)
            self._keep = []

        def get_batch_size(self):
            return 1

        def get_batch(self, names):
            try:
                arrays = next(self._iter)
            except StopIteration:
                return None
            self._keep = [
                torch.from_numpy(np.ascontiguousarray(arrays[n], np.float32)).cuda() for n in names
            ]
            return [t.data_ptr() for t in self._keep]

        def read_calibration_cache(self):
            return cache_file.read_bytes() if cache_file.is_file() else None

        def write_calibration_cache(self, cache):
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache_file.write_bytes(bytes(cache))

    return Calibrator()
