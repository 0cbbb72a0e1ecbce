"""Frames in, relative depth out: a depth estimator (Depth Anything V2) around its backend, as
the official ``infer_image`` runs it. No ROS and no torch: numpy and cv2 here, the network in the
backend.

    backend = create_estimator_backend("depth_anything_v2_vits.pth")
    estimate = DepthEstimation(backend).estimate(rgb)   # rgb (H, W, 3) uint8 RGB
    estimate.depth                                      # (H, W) float32, relative inverse depth

    rgbd-saliency estimate-depth --weights depth_anything_v2_vits.pth --rgb-dir R --out-dir O

The official path, step by step (``depth_anything_v2/dpt.py`` ``image2tensor``/``infer_image`` and
``util/transform.py`` at a561b84), which ``shared/fixtures/depth_anything_v2_parity`` pins:

1. RGB / 255 in float64;
2. resized with cv2 INTER_CUBIC (in float64) to ``inference_size``: the shorter side scaled to
   ``input_size`` (518), each side rounded to the nearest multiple of 14, rounded up instead
   where the nearest falls below ``input_size`` (640 x 480 -> 686 x 518);
3. ImageNet mean/std in float64, then float32, CHW, a batch axis;
4. the network's (h, w) output resized to the frame bilinearly with align_corners=True.

The estimate is relative inverse depth in the model's own units: larger is nearer, 0 at the
farthest the network saw, no metric scale, and the scale and shift change from frame to frame.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from .sequence import image_files, read_rgb

if TYPE_CHECKING:  # types only: this module runs without torch
    from ..model.contract import EstimatorPreprocessing
    from .backends.base import EstimatorBackend


def _to_multiple(x: float, multiple: int, at_least: int) -> int:
    """``x`` rounded to the nearest multiple (numpy's half-to-even, as the official code); the
    next one up if that is below ``at_least``."""
    y = int(np.round(x / multiple) * multiple)
    if y < at_least:
        y = int(np.ceil(x / multiple) * multiple)
    return y


def inference_size(
    height: int, width: int, preprocessing: EstimatorPreprocessing
) -> tuple[int, int]:
    """(h, w) in pixels of the estimator's input for a height x width frame: the official
    ``Resize(..., resize_method="lower_bound")``. Keeping the aspect ratio, one scale makes the
    shorter side ``input_size``; otherwise each side is scaled to it on its own (a square)."""
    target, multiple = preprocessing.input_size, preprocessing.multiple_of
    scale_h, scale_w = target / height, target / width
    if preprocessing.keep_aspect_ratio:
        scale_h = scale_w = max(scale_h, scale_w)
    return (
        _to_multiple(scale_h * height, multiple, target),
        _to_multiple(scale_w * width, multiple, target),
    )


def estimator_input(rgb: np.ndarray, preprocessing: EstimatorPreprocessing) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 normalised input at ``inference_size``."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or not rgb.size:
        raise ValueError(f"color must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = inference_size(rgb.shape[0], rgb.shape[1], preprocessing)
    image = cv2.resize(rgb / 255.0, (w, h), interpolation=cv2.INTER_CUBIC)  # float64
    image = (image - np.asarray(preprocessing.mean)) / np.asarray(preprocessing.std)
    return np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)[None]


def _align_corners_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per output index along one axis: the two input indices and the second one's weight
    (float32), for bilinear resampling with align_corners=True (the ends map onto the ends).
    In float32 as PyTorch's CPU kernel computes them: in float64 the source coordinates near
    686 differ by float32's rounding, which moves the frame-size output by 5e-5."""
    scale = np.float32(n_in - 1) / np.float32(n_out - 1) if n_out > 1 else np.float32(0)
    src = scale * np.arange(n_out, dtype=np.float32)
    first = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    second = np.minimum(first + 1, n_in - 1)
    weight = np.clip(src - first.astype(np.float32), np.float32(0), np.float32(1))
    return first, second, weight


def resize_to_frame(depth: np.ndarray, height: int, width: int) -> np.ndarray:
    """(h, w) float32 -> (height, width) float32, bilinear with align_corners=True, as the
    official ``infer_image`` resizes its output with torch (cv2's bilinear is
    align_corners=False): along the width first, then the height, in float32."""
    r0, r1, wr = _align_corners_taps(depth.shape[0], height)
    c0, c1, wc = _align_corners_taps(depth.shape[1], width)
    d = depth.astype(np.float32, copy=False)
    one = np.float32(1)

    def along_width(rows: np.ndarray) -> np.ndarray:  # (height, w) -> (height, width)
        return rows[:, c0] * (one - wc) + rows[:, c1] * wc

    top, bottom = along_width(d[r0]), along_width(d[r1])
    return top * (one - wr)[:, None] + bottom * wr[:, None]


@dataclass
class DepthEstimate:
    """One frame's estimate."""

    depth: np.ndarray  # (H, W) float32 >= 0 at the frame's size: relative inverse depth
    model_output: np.ndarray  # (h, w) float32: the network's own output at its input size
    model_time_s: float  # the backend's wall time for this frame


class DepthEstimation:
    """A depth estimator's backend with the official pre- and post-processing around it.

    ``input_size``: the shorter side the frames are scaled to (default: the model's, 518 for
    Depth Anything V2; smaller is faster and coarser). ``keep_aspect_ratio=False`` squashes
    every frame to input_size x input_size (a fixed shape, as an exported engine would take).
    """

    def __init__(
        self,
        backend: EstimatorBackend,
        input_size: int | None = None,
        keep_aspect_ratio: bool | None = None,
    ) -> None:
        self.backend = backend
        changes = {}
        if input_size is not None:
            changes["input_size"] = input_size
        if keep_aspect_ratio is not None:
            changes["keep_aspect_ratio"] = keep_aspect_ratio
        self.preprocessing = dataclasses.replace(backend.preprocessing, **changes)

    def prepare(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32, the backend's input."""
        return estimator_input(rgb, self.preprocessing)

    def estimate(self, rgb: np.ndarray) -> DepthEstimate:
        """(H, W, 3) uint8 RGB -> its estimate (see ``DepthEstimate``). Raises ValueError on a
        frame that is not (H, W, 3) uint8."""
        x = self.prepare(rgb)
        start = time.perf_counter()
        [out] = self.backend.estimate(x)
        elapsed = time.perf_counter() - start
        return DepthEstimate(resize_to_frame(out, rgb.shape[0], rgb.shape[1]), out, elapsed)


def estimate_folder(
    estimation: DepthEstimation,
    rgb_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    progress: bool = True,
) -> tuple[list[Path], list[float]]:
    """Writes each image of ``rgb_dir`` (sorted by name) as ``out_dir/<stem>.npy``: its
    estimate, (H, W) float32 at the image's size (``DepthEstimate.depth``). Returns the paths
    and each frame's model time in seconds."""
    frames = image_files(rgb_dir)
    if not frames:
        raise ValueError(f"{rgb_dir}: no images")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, times_s = [], []
    for path in tqdm(frames, desc="estimate-depth", unit="frame", disable=not progress):
        estimate = estimation.estimate(read_rgb(path))
        target = out / f"{path.stem}.npy"
        np.save(target, estimate.depth)
        written.append(target)
        times_s.append(estimate.model_time_s)
    return written, times_s
