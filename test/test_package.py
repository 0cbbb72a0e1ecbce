"""package.xml and setup.py describe the package colcon and pip install.

.venv/bin/python -m pytest -q test/test_package.py
"""

import ast
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import rgbd_saliency_ros

NAME = "rgbd_saliency_ros"
# Python modules that are not ROS packages, and their rosdep keys.
ROSDEP_KEYS = {"numpy": "python3-numpy", "cv2": "python3-opencv", "yaml": "python3-yaml"}
# The ROS packages the node, its parameters and the launch file import, known independently of
# the ament index (which the import check below uses to tell ROS packages from others).
ROS_IMPORTS = {
    "rclpy",
    "rcl_interfaces",
    "sensor_msgs",
    "std_msgs",
    "std_srvs",
    "diagnostic_msgs",
    "launch",
    "launch_ros",
    "ament_index_python",
}


def run_python(cwd, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def setup_kwargs(cwd) -> dict:
    """The arguments setup.py passes to setuptools.setup(), without building anything."""
    code = (
        "import json, setuptools\n"
        "seen = {}\n"
        "setuptools.setup = lambda **kw: seen.update(kw)\n"
        "exec(compile(open('setup.py').read(), 'setup.py', 'exec'))\n"
        "print(json.dumps(seen))\n"
    )
    return json.loads(run_python(cwd, "-c", code))


def test_package_xml_declares_ros_dependencies(repo_root):
    root = ET.parse(repo_root / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == NAME
    assert root.findtext("version") == rgbd_saliency_ros.__version__
    assert root.findtext("license") == "MIT"
    assert root.findtext("export/build_type") == "ament_python"
    exec_depends = {e.text for e in root.findall("exec_depend")}
    # the 3D outputs' messages, and `ros2 launch` itself, besides what the node and launch import
    others = {"geometry_msgs", "visualization_msgs", "ros2launch"}
    assert ROS_IMPORTS | others | set(ROSDEP_KEYS.values()) <= exec_depends
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}


def test_setup_py_runs_and_agrees_with_package_xml(repo_root):
    assert run_python(repo_root, "setup.py", "--name").strip() == NAME
    assert run_python(repo_root, "setup.py", "--version").strip() == rgbd_saliency_ros.__version__


def test_setup_py_installs_ament_files_and_scripts(repo_root):
    kwargs = setup_kwargs(repo_root)
    data_files = dict((dest, files) for dest, files in kwargs["data_files"])
    assert data_files["share/ament_index/resource_index/packages"] == ["resource/" + NAME]
    assert data_files["share/" + NAME] == ["package.xml"]
    assert {"share/" + NAME + "/launch", "share/" + NAME + "/config"} <= set(data_files)
    for files in data_files.values():
        assert all((repo_root / f).is_file() for f in files)
    # every launch file and config file in the tree is installed
    assert sorted(data_files["share/" + NAME + "/launch"]) == sorted(
        str(p.relative_to(repo_root)) for p in repo_root.glob("launch/*.py")
    )
    assert sorted(data_files["share/" + NAME + "/config"]) == sorted(
        str(p.relative_to(repo_root))
        for p in [*repo_root.glob("config/*.yaml"), *repo_root.glob("config/*.xml")]
    )
    assert NAME in kwargs["packages"]
    assert not any(p.split(".")[0] in ("test", "training") for p in kwargs["packages"])
    assert set(kwargs["entry_points"]["console_scripts"]) == {
        "rgbd-saliency = rgbd_saliency_ros.cli:main",
        "saliency_node = rgbd_saliency_ros.ros.node:main",
    }


def imported_modules() -> dict[str, str]:
    """Top-level module name -> the first file:line importing it, over the installed sources."""
    from conftest import REPO_ROOT, package_files

    found = {}
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(
                    name.split(".")[0], f"{path.relative_to(REPO_ROOT)}:{node.lineno}"
                )
    return found


def ros_packages() -> set[str]:
    """The ROS packages this environment has: the ament index under each AMENT_PREFIX_PATH entry
    (a ROS install, a colcon workspace) and under this Python's prefix (where the PyPI wheels of
    rclpy and the messages, and ../shared/ros2-python's launch and ros2cli, put theirs)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [
        sys.prefix
    ]
    index = [Path(p, "share", "ament_index", "resource_index", "packages") for p in prefixes]
    return {entry.name for folder in index if folder.is_dir() for entry in folder.iterdir()} - {
        NAME
    }


def test_every_imported_ros_package_is_declared(repo_root):
    root = ET.parse(repo_root / "package.xml").getroot()
    declared = {e.text for tag in ("depend", "exec_depend") for e in root.findall(tag)}
    imported = imported_modules()
    installed = ros_packages()
    assert {"rclpy", "sensor_msgs"} <= installed, "no ament index found: is rclpy installed?"
    installed |= {"launch", "launch_ros"}  # ROS packages, installed or not (../shared/ros2-python)
    ros_imports = {m for m in imported if m in installed}
    assert ROS_IMPORTS <= ros_imports
    missing = {m: imported[m] for m in ros_imports if m not in declared}
    assert not missing, f"ROS packages imported but not declared in package.xml: {missing}"
    missing = {
        ROSDEP_KEYS[m]: imported[m]
        for m in ROSDEP_KEYS
        if m in imported and ROSDEP_KEYS[m] not in declared
    }
    assert not missing, f"rosdep keys missing from package.xml: {missing}"
    assert "ros2launch" in declared  # `ros2 launch` itself, for the launch file
