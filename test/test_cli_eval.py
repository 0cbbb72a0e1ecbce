"""``rgbd-saliency eval``: metrics of a prediction folder against ground truth, as JSON.

.venv/bin/python -m pytest -q test/test_cli_eval.py
"""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.evaluation.metrics import RESULT_KEYS


def test_eval_writes_the_published_values(shared_path, tmp_path, capsys):
    reference = shared_path("data", "sod_metrics_reference")
    out = tmp_path / "metrics" / "eval.json"
    code = cli_main(
        [
            "eval",
            "--pred",
            str(reference / "preds"),
            "--gt",
            str(reference / "masks"),
            "--json",
            str(out),
        ]
    )
    assert code == 0
    results = json.loads(out.read_text())
    assert tuple(results) == RESULT_KEYS
    # shared/data/README.md quotes these published values of pysodmetrics for the three pairs.
    assert results["Smeasure"] == pytest.approx(0.902976, abs=5e-7)
    assert results["MAE"] == pytest.approx(0.037056, abs=5e-7)
    assert results["maxEm"] == pytest.approx(0.966954, abs=5e-7)
    assert results["maxFm"] == pytest.approx(0.588678, abs=5e-7)
    assert "3 frames" in capsys.readouterr().out


def test_eval_refuses_unmatched_names(tmp_path, capsys):
    for folder, name in (("pred", "a.png"), ("gt", "b.png")):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / name), np.zeros((4, 4), np.uint8))
    code = cli_main(
        [
            "eval",
            "--pred",
            str(tmp_path / "pred"),
            "--gt",
            str(tmp_path / "gt"),
            "--json",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2
    assert "do not match" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_eval_runs_without_torch(tmp_path, repo_root):
    """Commands that need no model must not pay torch's import (seconds on a robot's CPU)."""
    for folder in ("pred", "gt"):
        (tmp_path / folder).mkdir()
        mask = np.zeros((8, 8), np.uint8)
        mask[2:6, 2:6] = 255
        cv2.imwrite(str(tmp_path / folder / "a.png"), mask)
    argv = ["eval", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    code = (
        "import sys\n"
        "from rgbd_saliency_ros.cli import main\n"
        f"rc = main({argv!r})\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 False"
