"""Print a pip constraints file that pins the compiled Python distributions the system provides.

Run it with the venv's own Python (a venv made with ``--system-site-packages``, after sourcing the
ROS setup file), and pass its output to pip with ``-c``:

    python requirements/system_pins.py > system-pins.txt
    pip install -c system-pins.txt -r requirements/robot.txt

"The system" is every distribution pip can see outside the venv's own site-packages: the
distribution's packages (numpy, OpenCV, SciPy, ...), ROS's (rclpy, on PYTHONPATH) and JetPack's
torch. Those with compiled modules are pinned to the installed version, so none can be upgraded
into the venv, where the copy would shadow the one other compiled modules were built against
(numpy 2 over numpy 1.26): pip stops with a resolution error instead. A plain ``numpy<2`` would
not do: a requirement of numpy>=1.23 would still pull a second numpy 1.x over Humble's 1.21.5.
Pure-Python ones (typing_extensions, packaging) are left free: a newer copy in the venv breaks no
binary, and pinning them would make Humble's old ones block rosbags' and hydra's minimums.

Standard library only (it runs before anything is installed); Python 3.8 or newer.
"""

from __future__ import annotations

import re
import site
import sys
from importlib import metadata
from pathlib import Path

# PEP 440 public versions: Debian's local suffixes ("1.2.3+dfsg") cannot be pinned with ==.
VERSION = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$")
# Installers, not libraries: a newer copy in the venv shadows nothing compiled against them.
TOOLS = {"pip", "setuptools", "wheel"}


def venv_site_dirs() -> list[str]:
    """The running venv's own site-packages folders (empty outside a venv)."""
    if sys.prefix == sys.base_prefix:
        return []
    return [path for path in site.getsitepackages() if path.startswith(sys.prefix)]


def compiled(dist: metadata.Distribution) -> bool:
    """Whether the distribution holds extension modules (``.so``), found from its file list or,
    for Debian's packages that ship none, from its top-level packages' folders."""
    files = dist.files
    if files:
        return any(str(path).endswith(".so") or ".so." in str(path) for path in files)
    top = (dist.read_text("top_level.txt") or dist.metadata["Name"] or "").split()
    for name in top:
        folder = Path(str(dist.locate_file(name)))
        if folder.is_dir() and next(folder.rglob("*.so"), None) is not None:
            return True
        if any(folder.parent.glob(f"{name}*.so")):
            return True
    return False


def system_pins() -> list[str]:
    """``name==version`` for each compiled distribution outside the venv, the first found per name
    (the one Python imports)."""
    own = tuple(venv_site_dirs())
    pins: dict[str, str] = {}
    for dist in metadata.distributions():
        location = str(dist.locate_file(""))
        name = (dist.metadata["Name"] or "").strip()
        if not name or (own and location.startswith(own)):
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pins or key in TOOLS or not VERSION.match(dist.version or ""):
            continue
        pins[key] = f"{key}=={dist.version}" if compiled(dist) else ""
    return sorted(pin for pin in pins.values() if pin)


if __name__ == "__main__":
    print("# the system's compiled Python distributions, pinned (requirements/system_pins.py)")
    print("\n".join(system_pins()))
