"""The robot pass's install: the README's recipe on a simulated Jazzy robot keeps the system's
numpy and OpenCV, and its pins stop pip from replacing them.

    make test-robot        # the whole robot pass; this module needs its environment

``make setup`` builds .robot-system/ (Ubuntu 24.04's numpy 1.26.4 and OpenCV 4.6 with the Jazzy
wheels, requirements/robot-system-jazzy.txt) and .venv-robot/ over it, installed the README's way
(system_pins.py, robot.txt, robot-no-deps.txt). The node from ``ros2 launch`` on this install is
checked in test_launch.py (its "ready" line names the numpy it imported); the runtime, node,
replay and launch tests run on it in the same pass.
"""

from __future__ import annotations

import importlib.metadata
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT

SYSTEM = os.environ.get("RGBD_TEST_ROBOT_SYSTEM")
pytestmark = pytest.mark.skipif(
    not SYSTEM, reason="needs the robot pass's environment: run `make test-robot`"
)


def pinned(name: str) -> str:
    """The version requirements/robot-system-jazzy.txt gives the simulated system."""
    for line in (REPO_ROOT / "requirements" / "robot-system-jazzy.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not in robot-system-jazzy.txt")


def test_numpy_and_opencv_are_the_systems_after_the_venv_install():
    import cv2
    import numpy

    assert numpy.__version__ == pinned("numpy") and numpy.__version__.startswith("1.")
    assert cv2.__version__ == pinned("opencv-python-headless").rsplit(".", 1)[0]
    for module in (numpy, cv2):
        assert Path(module.__file__).resolve().is_relative_to(Path(SYSTEM).resolve()), module
    venv_site = Path(site.getsitepackages()[0])
    shadowing = [
        dist.metadata["Name"]
        for dist in importlib.metadata.distributions(path=[str(venv_site)])
        if dist.metadata["Name"].lower().replace("_", "-")
        in {"numpy", "opencv-python", "opencv-python-headless", "scipy", "pillow", "pyyaml"}
    ]
    assert not shadowing, f"the venv holds its own copies of {shadowing}"


def test_the_system_pins_refuse_numpy_2_and_a_second_opencv():
    pins = Path(sys.prefix) / "system-pins.txt"
    assert f"numpy=={pinned('numpy')}" in pins.read_text().splitlines()
    for wanted in ("numpy==2.3.4", "opencv-python-headless>=4.7"):
        tried = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "-c", str(pins), wanted],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert tried.returncode != 0 and "ResolutionImpossible" in tried.stdout + tried.stderr, (
            wanted,
            tried.stdout[-2000:],
        )
