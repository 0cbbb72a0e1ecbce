"""Which Python, numpy, OpenCV and torch a process runs: on a robot the system's and a venv's
copies can mix, and a mask that differs between two machines starts with this line."""

from __future__ import annotations

import platform
import sys


def library_versions() -> str:
    """``"Python 3.10.12, numpy 1.21.5, OpenCV 4.5.4, torch 2.5.0"``: the copies this process has
    imported (torch only once something loaded it: this never imports it)."""
    parts = [f"Python {platform.python_version()}"]
    for label, module in (("numpy", "numpy"), ("OpenCV", "cv2"), ("torch", "torch")):
        loaded = sys.modules.get(module)
        if loaded is not None:
            parts.append(f"{label} {getattr(loaded, '__version__', '?')}")
    return ", ".join(parts)
