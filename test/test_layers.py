"""Layers import downward only (DESIGN.md "Layers"): each one imports without the layers above it.

    model/ -> runtime/ -> ros/, evaluation/;  benchmarks/ and cli.py: top-level consumers of all

.venv/bin/python -m pytest -q test/test_layers.py
"""

import ast
import json
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "rgbd_saliency_ros"

# layer -> the package's layers its modules may import (its own included). benchmarks/ and
# cli.py sit on top, like training/: they run everything below them (bench-node starts the node)
# and nothing below imports them.
ALLOWED = {
    "model": {"model"},
    "runtime": {"model", "runtime"},
    "ros": {"model", "runtime", "ros"},
    "evaluation": {"model", "runtime", "evaluation"},
    "benchmarks": {"model", "runtime", "ros", "evaluation", "benchmarks"},
    "cli": {"model", "runtime", "ros", "evaluation", "benchmarks", "cli"},
}


def modules_of(layer: str) -> list[str]:
    """Every module of a package layer (``rgbd_saliency_ros.runtime.backends.base``, ...)."""
    return sorted(
        ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (PACKAGE / layer).rglob("*.py")
    )


# modules (imported together) -> heavy or upper-layer modules that importing them must not pull in
FORBIDDEN = {
    ("rgbd_saliency_ros.model",): ["rclpy", "onnxruntime", "tensorrt"],
    # every runtime module, not the package (its __init__ imports nothing)
    tuple(modules_of("runtime")): ["rclpy", "sensor_msgs", "std_msgs"],
    ("rgbd_saliency_ros.runtime.saliency",): ["rclpy", "torch"],
    ("rgbd_saliency_ros.runtime.depth_estimation", "rgbd_saliency_ros.runtime.depth_source"): [
        "torch"
    ],
    # torch loads in start(), where a SIGINT during loading ends the node cleanly
    ("rgbd_saliency_ros.ros.node",): ["torch", "sam2"],
    # `rgbd-saliency eval` and `make-bag` need no model
    ("rgbd_saliency_ros.evaluation.metrics",): ["torch", "rclpy"],
    ("rgbd_saliency_ros.evaluation.make_bag",): ["torch", "rclpy"],
    # only bench-node needs ROS (imported when the suite runs it)
    ("rgbd_saliency_ros.benchmarks.suite",): ["rclpy"],
}


def imported_after(modules: tuple[str, ...], candidates: list[str], cwd) -> list[str]:
    """Imports ``modules`` in a fresh interpreter; returns those of ``candidates`` then in
    sys.modules."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {list(modules)!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {candidates!r} if m in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"import {modules} failed:\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("modules", sorted(FORBIDDEN), ids=lambda m: m[0].split(".", 1)[-1])
def test_layer_imports_nothing_above_it(modules, repo_root):
    assert imported_after(modules, FORBIDDEN[modules], repo_root) == []


def test_every_runtime_module_is_checked():
    """The runtime case imports each module (the package's __init__ imports none of them)."""
    runtime = next(m for m in FORBIDDEN if len(m) > 1)
    assert {
        "rgbd_saliency_ros.runtime.saliency",
        "rgbd_saliency_ros.runtime.backends.base",
    } <= set(runtime)


def package_imports(path, root) -> set[str]:
    """The package's modules that the file ``path`` under ``root`` (the folder holding the
    package) imports, as absolute names; relative and lazy (in-function) imports included."""
    package = path.relative_to(root).parent.parts
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package[: len(package) - node.level + 1])
            found.add(f"{base}.{node.module}" if node.module else base)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module)
    return {name for name in found if name.startswith("rgbd_saliency_ros.")}


def upward_imports(root) -> tuple[list[str], set[tuple[str, str]]]:
    """(imports between layers that ALLOWED does not allow, every (layer, layer) pair seen) in
    the package under ``root``."""
    wrong, seen = [], set()
    for path in sorted((root / "rgbd_saliency_ros").rglob("*.py")):
        rel = path.relative_to(root / "rgbd_saliency_ros")
        layer = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if layer not in ALLOWED:  # the package's own __init__
            continue
        for module in package_imports(path, root):
            target = module.split(".")[1]
            seen.add((layer, target))
            if target not in ALLOWED[layer]:
                wrong.append(f"{rel} imports {module}")
    return wrong, seen


def test_package_layers_import_only_downward():
    """Every import between the package's layers, lazy ones too, follows ALLOWED: nothing below
    imports benchmarks/ or cli.py, runtime/ never imports ros/, evaluation/ never ros/."""
    wrong, seen = upward_imports(REPO_ROOT)
    assert wrong == []
    # the scan sees imports at all: these exist today (bench-node starts the node)
    assert {("runtime", "model"), ("ros", "runtime"), ("benchmarks", "ros")} <= seen


def test_the_scan_catches_an_upward_import(tmp_path):
    runtime = tmp_path / "rgbd_saliency_ros" / "runtime"
    runtime.mkdir(parents=True)
    (runtime / "probe.py").write_text(
        "from . import depth\n\ndef f():\n    from ..ros import node\n"
    )
    wrong, seen = upward_imports(tmp_path)
    assert wrong == ["runtime/probe.py imports rgbd_saliency_ros.ros"]
    assert seen == {("runtime", "runtime"), ("runtime", "ros")}


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
    loaded = imported_after(("training.train",), [*modules, "rclpy"], repo_root)
    parents = {"rgbd_saliency_ros", "rgbd_saliency_ros.evaluation"}  # packages, not code
    outside = [
        m
        for m in loaded
        if m not in parents
        and not any(m == a or m.startswith(a + ".") for a in TRAINING_MAY_IMPORT)
    ]
    assert "rgbd_saliency_ros.model.samdaq" in loaded and outside == []
