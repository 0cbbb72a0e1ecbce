"""An RGB-D sequence from two image folders (or a color folder alone, its depth estimated)
through ``SaliencyRuntime``, state carried frame to frame (one stream, as the node would run it).

    rgbd-saliency predict --sam2-checkpoint sam2.1_hiera_tiny.pt --weights samdaq.pt \
        --rgb-dir seq/rgb --depth-dir seq/depth --out-dir out/seq [--probabilities]
    rgbd-saliency predict ... --rgb-dir seq/rgb --out-dir out/seq \
        --depth-source estimated --depth-estimator-weights depth_anything_v2_vits.pth

Depth files follow the data sets' convention: 8-bit relative depth read as value / 255
(16-bit files as value / 65535). Frames are matched by sorted file name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from tqdm import tqdm

from .backends.base import StepBackend
from .depth import read_relative_depth_png
from .saliency import FramePair, SaliencyConfig, SaliencyRuntime

if TYPE_CHECKING:  # a type only: depth_estimation imports this module
    from .depth_estimation import DepthEstimation

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"}
# Folder frames carry no stamps: they are given these, close enough that the memory never times
# out between them (a sequence is one stream from its first frame to its last).
FRAME_PERIOD_S = 1e-3


def frame_stamp_s(index: int) -> float:
    """The stamp a folder's ``index``-th frame is stepped at."""
    return index * FRAME_PERIOD_S


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` (by ``IMAGE_SUFFIXES``), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def list_frames(
    rgb_dir: str | os.PathLike, depth_dir: str | os.PathLike
) -> list[tuple[Path, Path]]:
    """Pairs the images of two folders by sorted name; the counts must agree."""
    rgb, depth = image_files(rgb_dir), image_files(depth_dir)
    if not rgb:
        raise ValueError(f"{rgb_dir}: no images")
    if len(rgb) != len(depth):
        raise ValueError(f"{rgb_dir} has {len(rgb)} images but {depth_dir} has {len(depth)}")
    return list(zip(rgb, depth))


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from an image file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_frame(rgb_path: Path, depth_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB and (h, w) float32 relative depth in [0, 1] of one folder frame."""
    return read_rgb(rgb_path), read_relative_depth_png(depth_path)


def predict_folders(
    backend: StepBackend,
    rgb_dir: str | os.PathLike,
    depth_dir: str | os.PathLike | None,
    out_dir: str | os.PathLike,
    probabilities: bool = False,
    progress: bool = True,
    config: SaliencyConfig | None = None,
    estimation: DepthEstimation | None = None,
) -> list[Path]:
    """Writes one 0/255 mask PNG per frame at the frame's size (and, with ``probabilities``, one
    ``.npy`` float32 probability map at the model's input size). Returns the mask paths.

    The frames go through ``SaliencyRuntime`` (``config``: its threshold; the defaults otherwise)
    as one stream, so the masks are the node's for the same frames. With ``estimation`` (a
    depth estimator) and no ``depth_dir``, each frame's depth is its estimate (depth source
    "estimated", in the model's depth convention, as the node gives it)."""
    if (depth_dir is None) == (estimation is None):
        raise ValueError("need a depth folder or a depth estimator, not both or neither")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runtime = SaliencyRuntime(backend, config or SaliencyConfig())
    written = []
    if estimation is None:
        frames = list_frames(rgb_dir, depth_dir)
    else:
        from .depth_source import DepthSource  # here: it imports this module (via the estimator)

        frames = [(path, None) for path in image_files(rgb_dir)]
        if not frames:
            raise ValueError(f"{rgb_dir}: no images")
        source = DepthSource("estimated", estimation, runtime.depth_conversion)
    for i, (rgb_path, depth_path) in enumerate(
        tqdm(frames, desc="predict", unit="frame", disable=not progress)
    ):
        if depth_path is None:
            rgb = read_rgb(rgb_path)
            depth01 = source.depth_for(rgb).depth
        else:
            rgb, depth01 = read_frame(rgb_path, depth_path)
        pair = FramePair(rgb_path.parent.name, frame_stamp_s(i), rgb, depth01, False)
        [result] = runtime.run([runtime.prepare(pair)])
        if probabilities:
            np.save(out / f"{rgb_path.stem}.npy", result.model_probability)
        path = out / f"{rgb_path.stem}.png"
        cv2.imwrite(str(path), result.mask)
        written.append(path)
    return written
