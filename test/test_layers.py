"""Layers import downward only (DESIGN.md "Layers"): each one imports without the layers above it.

.venv/bin/python -m pytest -q test/test_layers.py
"""

import json
import subprocess
import sys

import pytest

# module -> heavy or upper-layer modules that importing it must not pull in
FORBIDDEN = {
    "rgbd_saliency_ros.model": ["rclpy", "onnxruntime", "tensorrt"],
    "rgbd_saliency_ros.runtime": ["rclpy"],
    "rgbd_saliency_ros.runtime.saliency": ["rclpy", "torch"],
    # torch loads in start(), where a SIGINT during loading ends the node cleanly
    "rgbd_saliency_ros.ros.node": ["torch", "sam2"],
    # `rgbd-saliency eval` and `make-bag` need no model
    "rgbd_saliency_ros.evaluation.metrics": ["torch", "rclpy"],
    "rgbd_saliency_ros.evaluation.make_bag": ["torch", "rclpy"],
}


def imported_after(module: str, candidates: list[str], cwd) -> list[str]:
    """Imports `module` in a fresh interpreter; returns those of `candidates` then in sys.modules."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {candidates!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"import {module} failed:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", sorted(FORBIDDEN))
def test_layer_imports_nothing_above_it(module, repo_root):
    assert imported_after(module, FORBIDDEN[module], repo_root) == []


# What training/ may import of the package (README "Training"): the network, the runtime's frame
# and depth preparation (the same code as inference) and the metrics of the held-out score.
TRAINING_MAY_IMPORT = (
    "rgbd_saliency_ros.model",
    "rgbd_saliency_ros.runtime",
    "rgbd_saliency_ros.evaluation.metrics",
)


def test_training_imports_model_runtime_and_metrics_only(repo_root):
    package = repo_root / "rgbd_saliency_ros"
    modules = [
        ".".join(p.relative_to(repo_root).with_suffix("").parts).removesuffix(".__init__")
        for p in package.rglob("*.py")
    ]
    loaded = imported_after("training.train", [*modules, "rclpy"], repo_root)
    parents = {"rgbd_saliency_ros", "rgbd_saliency_ros.evaluation"}  # packages, not code
    outside = [
        m
        for m in loaded
        if m not in parents
        and not any(m == a or m.startswith(a + ".") for a in TRAINING_MAY_IMPORT)
    ]
    assert "rgbd_saliency_ros.model.samdaq" in loaded and outside == []
