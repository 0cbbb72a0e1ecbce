"""package.xml and setup.py describe the package colcon and pip install.

    .venv/bin/python -m pytest -q test/test_package.py
"""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import rgbd_saliency_ros

NAME = "rgbd_saliency_ros"


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
    assert {
        "rclpy", "sensor_msgs", "std_msgs", "std_srvs", "diagnostic_msgs", "geometry_msgs",
        "visualization_msgs", "python3-numpy", "python3-opencv", "python3-yaml",
    } <= exec_depends
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
        str(p.relative_to(repo_root)) for p in repo_root.glob("launch/*.py"))
    assert sorted(data_files["share/" + NAME + "/config"]) == sorted(
        str(p.relative_to(repo_root)) for p in [*repo_root.glob("config/*.yaml"), *repo_root.glob("config/*.xml")])
    assert NAME in kwargs["packages"]
    assert not any(p.split(".")[0] in ("test", "training") for p in kwargs["packages"])
    assert set(kwargs["entry_points"]["console_scripts"]) == {
        "rgbd-saliency = rgbd_saliency_ros.cli:main",
        "saliency_node = rgbd_saliency_ros.ros.node:main",
    }
