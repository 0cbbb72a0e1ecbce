"""Salient object detection metrics, frame-averaged as the published toolboxes compute them.

Built on `pysodmetrics` (py_sod_metrics): S-measure, E-measure and F-measure (beta^2 = 0.3), each
adaptive / mean / max over the 256 thresholds, weighted F-measure and MAE. Every metric is computed
per frame and averaged over frames, and each prediction is min-max normalised first (MATLAB's
`mapminmax(im2double(pred))`), as the published evaluation code does with saved maps; the ground
truth is binarised at > 128.

    from rgbd_saliency_ros.evaluation.metrics import SaliencyMetrics, evaluate_folders
    metrics = SaliencyMetrics()
    metrics.update(prob, gt)          # (H, W) float in [0, 1] or uint8, and uint8 / bool
    metrics.results()                 # {"Smeasure": ..., "MAE": ...}
    evaluate_folders("out/masks", "data/gt")
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics

from ..runtime.sequence import IMAGE_SUFFIXES

RESULT_KEYS = (
    "Smeasure",
    "adpEm",
    "meanEm",
    "maxEm",
    "adpFm",
    "meanFm",
    "maxFm",
    "wFmeasure",
    "MAE",
)
F_BETA_SQUARED = 0.3  # the salient-object convention: precision weighted over recall
FOREGROUND_ABOVE = 128  # a grey mask's foreground (ground truth, saved masks): values above this


def binarize(grey: np.ndarray) -> np.ndarray:
    """(H, W) grey mask -> uint8 0/255, foreground where the value is above
    ``FOREGROUND_ABOVE``."""
    return np.where(grey > FOREGROUND_ABOVE, np.uint8(255), np.uint8(0))


def _prepare(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pred float64 min-max normalised to [0, 1], gt bool), as toolboxes prepare saved maps."""
    if pred.ndim != 2 or gt.ndim != 2:
        raise ValueError(f"pred and gt must be (H, W), got {pred.shape} and {gt.shape}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in size")
    if pred.dtype == np.uint8:
        values = pred / 255.0
    elif pred.dtype in (np.float32, np.float64):
        values = pred.astype(np.float64)
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise ValueError("a float prediction must be finite and within [0, 1]")
    else:
        raise TypeError(f"pred must be uint8 or float32/float64 in [0, 1], got {pred.dtype}")
    low, high = values.min(), values.max()
    if high != low:
        values = (values - low) / (high - low)
    if gt.dtype == np.uint8:
        mask = gt > FOREGROUND_ABOVE
    elif gt.dtype == np.bool_:
        mask = gt
    else:
        raise TypeError(f"gt must be uint8 (binarised at > 128) or bool, got {gt.dtype}")
    return values, mask


class SaliencyMetrics:
    """Accumulates frames and reports frame-averaged saliency metrics."""

    def __init__(self) -> None:
        self._smeasure = py_sod_metrics.Smeasure()
        self._emeasure = py_sod_metrics.Emeasure()
        self._wfmeasure = py_sod_metrics.WeightedFmeasure()
        self._mae = py_sod_metrics.MAE()
        self._binary = py_sod_metrics.FmeasureV2(
            metric_handlers={
                "fm": py_sod_metrics.FmeasureHandler(
                    with_dynamic=True, with_adaptive=True, beta=F_BETA_SQUARED
                ),
                "pre": py_sod_metrics.PrecisionHandler(with_dynamic=True, with_adaptive=False),
                "rec": py_sod_metrics.RecallHandler(with_dynamic=True, with_adaptive=False),
            }
        )
        self._frames = 0

    def __len__(self) -> int:
        """Number of frames accumulated."""
        return self._frames

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one frame.

        Args:
            pred: (H, W) uint8 0..255, or float32/float64 in [0, 1] (a probability map); min-max
                normalised before scoring, like a saved map.
            gt: (H, W) uint8 (foreground where > 128) or bool, the same size as pred.
        """
        values, mask = _prepare(pred, gt)
        for metric in (self._smeasure, self._emeasure, self._wfmeasure, self._mae, self._binary):
            metric.step(values, mask, normalize=False)
        self._frames += 1

    def _require_frames(self) -> None:
        if self._frames == 0:
            raise ValueError("no frames accumulated: call update() first")

    def results(self) -> dict[str, float]:
        """Frame-averaged metrics, keys `RESULT_KEYS`, all in [0, 1] (MAE: lower is better)."""
        self._require_frames()
        em = self._emeasure.get_results()["em"]
        fm = self._binary.get_results()["fm"]
        values = {
            "Smeasure": self._smeasure.get_results()["sm"],
            "adpEm": em["adp"],
            "meanEm": em["curve"].mean(),
            "maxEm": em["curve"].max(),
            "adpFm": fm["adaptive"],
            "meanFm": fm["dynamic"].mean(),
            "maxFm": fm["dynamic"].max(),
            "wFmeasure": self._wfmeasure.get_results()["wfm"],
            "MAE": self._mae.get_results()["mae"],
        }
        return {key: float(values[key]) for key in RESULT_KEYS}

    def per_frame(self) -> dict[str, np.ndarray]:
        """Per-frame scores in update order: "Smeasure" and "MAE", each (N,) float64."""
        self._require_frames()
        return {
            "Smeasure": np.asarray(self._smeasure.sms, dtype=np.float64),
            "MAE": np.asarray(self._mae.maes, dtype=np.float64),
        }

    def curves(self) -> dict[str, np.ndarray]:
        """Frame-averaged curves over the 256 binarisation thresholds, for reports.

        Returns:
            "threshold": (256,) int 0..255, ascending; index t binarises the normalised prediction
                as `floor(255 * pred) >= t`. "precision", "recall", "fmeasure" (beta^2 = 0.3),
                "emeasure": (256,) float64 at those thresholds.
        """
        self._require_frames()
        binary = self._binary.get_results()
        # pysodmetrics orders its curves from threshold 255 down to 0; flip to ascending.
        return {
            "threshold": np.arange(256),
            "precision": binary["pre"]["dynamic"][::-1].copy(),
            "recall": binary["rec"]["dynamic"][::-1].copy(),
            "fmeasure": binary["fm"]["dynamic"][::-1].copy(),
            "emeasure": self._emeasure.get_results()["em"]["curve"][::-1].copy(),
        }


def _images_by_stem(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in found:
            raise ValueError(f"two images share the name {path.stem!r} in {folder}")
        found[path.stem] = path
    return found


def _read_grey(path: Path) -> np.ndarray:
    image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


def accumulate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> SaliencyMetrics:
    """Score every prediction image against the ground truth image of the same stem.

    Both folders must hold the same set of stems (any of `IMAGE_SUFFIXES`). Images are read as
    8-bit grey; a prediction whose size differs from its ground truth's is resized to it
    bilinearly, as the published evaluation scripts do.

    Raises:
        ValueError: no images, or stems present in only one folder (all of them listed).
    """
    preds = _images_by_stem(Path(pred_dir))
    gts = _images_by_stem(Path(gt_dir))
    only_pred = sorted(set(preds) - set(gts))
    only_gt = sorted(set(gts) - set(preds))
    if only_pred or only_gt:
        raise ValueError(
            "prediction and ground truth names do not match: "
            f"without ground truth in {gt_dir}: {only_pred}; "
            f"without prediction in {pred_dir}: {only_gt}"
        )
    if not gts:
        raise ValueError(f"no images in {pred_dir} and {gt_dir}")
    metrics = SaliencyMetrics()
    for stem in sorted(gts):
        gt = _read_grey(gts[stem])
        pred = _read_grey(preds[stem])
        if pred.shape != gt.shape:
            pred = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
        metrics.update(pred, gt)
    return metrics


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike) -> dict[str, float]:
    """Frame-averaged metrics of a folder pair, keys `RESULT_KEYS` (see `accumulate_folders`)."""
    return accumulate_folders(pred_dir, gt_dir).results()
