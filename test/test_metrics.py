"""Saliency metrics against the values the pysodmetrics authors publish, and folder evaluation.

.venv/bin/python -m pytest -q test/test_metrics.py
"""

import json
import shutil

import cv2
import numpy as np
import pytest

from rgbd_saliency_ros.evaluation.metrics import (
    RESULT_KEYS,
    SaliencyMetrics,
    accumulate_folders,
    evaluate_folders,
)


def _latest_published(performance: dict) -> dict:
    """For each metric key, its value in the newest version that publishes it ("v1_4_3")."""

    def version(name: str) -> tuple[int, ...]:
        return tuple(int(part) for part in name.removeprefix("v").split("_"))

    newest_first = sorted(performance, key=version, reverse=True)
    values = {}
    for name in newest_first:
        for key, value in performance[name].items():
            values.setdefault(key, value)
    return values


@pytest.fixture
def reference(shared_path):
    return shared_path("data", "sod_metrics_reference")


@pytest.fixture
def sample_frames():
    """Two synthetic frames: (pred uint8, gt uint8) with partial overlap."""
    rng = np.random.default_rng(1)
    frames = []
    for shift in (3, 9):
        gt = np.zeros((40, 50), np.uint8)
        gt[10:30, 15:35] = 255
        pred = np.roll(gt, shift, axis=1).astype(np.float64) * 0.8
        pred += rng.uniform(0, 40, size=gt.shape)
        frames.append((np.clip(pred, 0, 255).astype(np.uint8), gt))
    return frames


def test_matches_published_values(reference):
    performance = json.loads((reference / "version_performance.json").read_text())
    published = _latest_published(performance)
    results = evaluate_folders(reference / "preds", reference / "masks")
    assert tuple(results) == RESULT_KEYS
    for key in RESULT_KEYS:
        # The published values are full doubles; ours are the same computation, so only float
        # rounding may differ (S-measure moved by 2e-7 between published versions).
        assert results[key] == pytest.approx(published[key], abs=1e-9), key
    # The values quoted in shared/data/README.md, at their printed precision.
    assert results["Smeasure"] == pytest.approx(0.902976, abs=5e-7)
    assert results["MAE"] == pytest.approx(0.037056, abs=5e-7)
    assert results["maxEm"] == pytest.approx(0.966954, abs=5e-7)
    assert results["maxFm"] == pytest.approx(0.588678, abs=5e-7)


def test_per_frame_and_curves_are_consistent(reference):
    metrics = accumulate_folders(reference / "preds", reference / "masks")
    results = metrics.results()
    per_frame = metrics.per_frame()
    assert len(metrics) == 3 and per_frame["Smeasure"].shape == (3,)
    assert per_frame["Smeasure"].mean() == pytest.approx(results["Smeasure"], abs=1e-12)
    assert per_frame["MAE"].mean() == pytest.approx(results["MAE"], abs=1e-12)
    curves = metrics.curves()
    np.testing.assert_array_equal(curves["threshold"], np.arange(256))
    for name in ("precision", "recall", "fmeasure", "emeasure"):
        assert curves[name].shape == (256,)
    assert curves["fmeasure"].max() == pytest.approx(results["maxFm"], abs=1e-12)
    assert curves["fmeasure"].mean() == pytest.approx(results["meanFm"], abs=1e-12)
    assert curves["emeasure"].max() == pytest.approx(results["maxEm"], abs=1e-12)
    # Ascending thresholds: fewer pixels pass, so recall can only fall.
    assert np.all(np.diff(curves["recall"]) <= 1e-12)


def test_float_probability_equals_its_uint8_map(sample_frames):
    from_uint8, from_float = SaliencyMetrics(), SaliencyMetrics()
    for pred, gt in sample_frames:
        from_uint8.update(pred, gt)
        from_float.update((pred / 255.0).astype(np.float64), gt > 128)
    assert from_float.results() == from_uint8.results()


def test_perfect_prediction():
    gt = np.zeros((30, 30), np.uint8)
    gt[5:20, 8:25] = 255
    metrics = SaliencyMetrics()
    metrics.update(gt.astype(np.float32) / 255.0, gt)
    results = metrics.results()
    assert results["MAE"] == 0.0
    for key in ("Smeasure", "maxFm", "adpFm", "wFmeasure"):
        assert results[key] == pytest.approx(1.0, abs=1e-6), key
    # The E-measure divides by (pixels - 1), as the MATLAB original does.
    assert results["maxEm"] == pytest.approx(gt.size / (gt.size - 1), abs=1e-12)


def test_folders_resize_prediction_to_gt(tmp_path, sample_frames):
    """Maps saved at half the ground truth's size score as the full-size maps do (the folder
    reader brings them to the ground truth's size), within what halving a noisy map changes (up
    to about 0.03 here). Without the resize the sizes would not match; with the axes swapped
    the maps would not line up with the ground truth."""
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    pred_dir.mkdir()
    gt_dir.mkdir()
    full_size = SaliencyMetrics()
    for index, (pred, gt) in enumerate(sample_frames):
        full_size.update(pred, gt)
        half = cv2.resize(pred, (25, 20), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(pred_dir / f"frame{index}.png"), half)
        cv2.imwrite(str(gt_dir / f"frame{index}.png"), gt)
    (gt_dir / "notes.txt").write_text("not an image")
    results, expected = evaluate_folders(pred_dir, gt_dir), full_size.results()
    for key in RESULT_KEYS:
        assert results[key] == pytest.approx(expected[key], abs=0.04), key


def test_unmatched_names_are_listed(tmp_path, reference):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    shutil.copytree(reference / "preds", pred_dir)
    shutil.copytree(reference / "masks", gt_dir)
    (pred_dir / "19.png").rename(pred_dir / "19_pred.png")
    with pytest.raises(ValueError, match=r"\['19_pred'\].*\['19'\]"):
        evaluate_folders(pred_dir, gt_dir)


def test_empty_folders_raise(tmp_path):
    with pytest.raises(ValueError, match="no images"):
        evaluate_folders(tmp_path, tmp_path)


def test_bad_input_raises():
    metrics = SaliencyMetrics()
    with pytest.raises(ValueError, match="no frames"):
        metrics.results()
    gt = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError):
        metrics.update(np.zeros((4, 5), np.uint8), gt)
    with pytest.raises(ValueError):
        metrics.update(np.full((4, 4), 1.5), gt)
    with pytest.raises(ValueError):
        metrics.update(np.full((4, 4), np.nan), gt)
    with pytest.raises(TypeError):
        metrics.update(np.zeros((4, 4), np.int32), gt)
    with pytest.raises(TypeError):
        metrics.update(np.zeros((4, 4), np.uint8), gt.astype(np.float32))
    assert len(metrics) == 0


def test_one_foreground_rule_for_ground_truth_and_saved_masks(tmp_path):
    import cv2

    from rgbd_saliency_ros.evaluation.make_bag import read_gt
    from rgbd_saliency_ros.evaluation.metrics import binarize

    grey = np.array([[0, 127, 128, 129, 255]], np.uint8)
    assert binarize(grey).tolist() == [[0, 0, 0, 255, 255]]  # foreground strictly above 128
    cv2.imwrite(str(tmp_path / "gt.png"), grey)
    assert np.array_equal(read_gt(tmp_path / "gt.png"), binarize(grey))
