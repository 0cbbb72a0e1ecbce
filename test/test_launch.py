"""What a robot user does: `colcon build`, `source install/setup.bash`, `ros2 launch` and
`ros2 run` with arguments and a parameters file, a camera in another process, masks back,
`ros2 param get/set`, Ctrl-C.

    .venv/bin/python -m pytest -q test/test_launch.py

One colcon workspace for the module (the package copied into ws/src, built with the venv's colcon);
every command runs in the environment `install/setup.bash` gives, on a private ROS domain. The
nodes run a random SAM-DAQ at input 64. The camera is this file run as a script: TUM RGB-D's real
640x480 frame as rgb8 + 16UC1, published reliable (as camera drivers do) and stamped at send time.
Needs launch, launch_ros and ros2cli from ../shared/ros2-python (`make setup` installs them):
skips where that folder is absent, fails where it is present but they are not installed.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import site
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, SHARED_DIR, find_shared, private_domain

# The robot pass (make test-robot) builds and launches with the simulated robot system's colcon
# and ros2, this venv's site-packages on PYTHONPATH, as the README's robot recipe does; otherwise
# the venv's own colcon and ros2.
ROBOT_SYSTEM = os.environ.get("RGBD_TEST_ROBOT_SYSTEM")
BIN = Path(ROBOT_SYSTEM) / "bin" if ROBOT_SYSTEM else Path(sys.executable).parent
DEADLINE_S = 120.0  # generous: start-up imports torch and builds the model on a shared CPU
# What colcon needs to build the package (as a clone has it).
PACKAGE_FILES = (
    "package.xml",
    "setup.py",
    "setup.cfg",
    "resource",
    "launch",
    "config",
    "rgbd_saliency_ros",
)
TRACEBACK = "Traceback (most recent call last)"
LAUNCH = ("ros2", "launch", "rgbd_saliency_ros", "saliency.launch.py")  # the users' command


# The camera process ------------------------------------------------------------------------------


def camera_main(rate_hz: float, width: int, topic_sets: list[str]) -> None:
    """Publishes the TUM pair to every "color,depth[,camera_info]" topic set at ``rate_hz``, the
    images resized to ``width`` pixels wide, until stdin closes. An empty depth topic: an RGB
    camera (color alone)."""
    import cv2
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from rgbd_saliency_ros.benchmarks.node import tum_frames
    from rgbd_saliency_ros.ros.conversions import image_message

    # the fixture made sure they are there: TUM's frames, not random stand-ins
    rgb, depth_mm = tum_frames(SHARED_DIR / "data" / "rgbd_encodings")
    height = round(rgb.shape[0] * width / rgb.shape[1])
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    depth_mm = cv2.resize(depth_mm, (width, height), interpolation=cv2.INTER_NEAREST)
    rclpy.init()
    node = rclpy.create_node("test_camera")
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
    sets = [topics.split(",") for topics in topic_sets]
    publishers = [
        [node.create_publisher(Image, t[0], qos), t[1] and node.create_publisher(Image, t[1], qos)]
        + [node.create_publisher(CameraInfo, topic, qos) for topic in t[2:]]
        for t in sets
    ]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    header = Header(frame_id="camera_color_optical_frame")
    info = CameraInfo(header=header, width=width, height=height, distortion_model="plumb_bob")
    while not stop.wait(1.0 / rate_hz):
        header.stamp = node.get_clock().now().to_msg()
        color, depth = image_message(rgb, "rgb8", header), image_message(depth_mm, "16UC1", header)
        for pubs in publishers:
            pubs[0].publish(color)
            if pubs[1]:
                pubs[1].publish(depth)
            if len(pubs) > 2:
                info.header = header
                pubs[2].publish(info)
    node.destroy_node()
    rclpy.shutdown()


class Process:
    """A command started as a user's shell would, with its output (stdout and stderr) collected."""

    def __init__(
        self, args: list[str], env: dict, cwd: Path | None = None, stdin: bool = False
    ) -> None:
        self.args = args
        self.process = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            start_new_session=True,  # its own process group, as a terminal gives a command
            # a test run in a background job inherits SIGINT ignored: Ctrl-C must work here
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout_s: float = DEADLINE_S) -> str:
        """The first output line matching ``pattern``; fails if the process exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if re.search(pattern, line):
                    return line
            if self.process.poll() is not None:
                time.sleep(0.2)  # the last lines
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no line matching {pattern!r} from {' '.join(self.args[:3])} "
            f"(exit status {self.process.poll()}):\n{self.output[-3000:]}"
        )

    def interrupt(self, group: bool = False, timeout_s: float = 60.0) -> int:
        """Ctrl-C: SIGINT to the process (``ros2 launch`` passes it on), or to its whole group
        (``ros2 run`` does not pass it on; a terminal signals the group). Returns the exit
        status."""
        if group:
            os.killpg(self.process.pid, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGINT)
        status = self.process.wait(timeout=timeout_s)
        self.reader.join(timeout=10)
        return status

    def stop(self) -> None:
        """Ends whatever is left of it (after a failed test)."""
        if self.process.stdin:
            self.process.stdin.close()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGINT)
                self.process.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class Masks:
    """Counts the masks arriving on some topics, in this process (its own rclpy context)."""

    def __init__(self, domain: int, topics: list[str]) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node("test_mask_listener", context=self.context)
        self.received: dict[str, list] = {topic: [] for topic in topics}
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        for topic in topics:
            self.node.create_subscription(Image, topic, self.received[topic].append, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()

    def wait(self, topic: str, count: int = 1, timeout_s: float = DEADLINE_S):
        """The ``count``-th mask on ``topic``, once it has come."""
        deadline = time.monotonic() + timeout_s
        while len(self.received[topic]) < count:
            counts = {t: len(r) for t, r in self.received.items()}
            assert time.monotonic() < deadline, (
                f"waiting for {count} masks on {topic}, received {counts}"
            )
            time.sleep(0.05)
        return self.received[topic][count - 1]

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5)
        self.node.destroy_node()
        self.context.try_shutdown()


# The workspace ---------------------------------------------------------------------------------


def sourced_environment(install: Path, base: dict) -> dict:
    """The environment after `source install/setup.bash` in a shell with ``base``."""
    done = subprocess.run(
        ["bash", "-c", f"source {install / 'setup.bash'} && env -0"],
        env=base,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(entry.split("=", 1) for entry in done.stdout.split("\0") if "=" in entry)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A colcon workspace with the package built, random weights, the sourced environment."""
    find_shared("ros2-python")
    find_shared("data", "rgbd_encodings")  # the camera's real frames
    missing = [tool for tool in ("colcon", "ros2") if not (BIN / tool).exists()]
    assert not missing, (
        f"{', '.join(missing)} not in {BIN}: run `make setup` (../shared/ros2-python is there)"
    )
    root = tmp_path_factory.mktemp("ws")
    for name in PACKAGE_FILES:
        source, target = REPO_ROOT / name, root / "src" / "rgbd_saliency_ros" / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    domain = private_domain(50)
    # The numpy the node's interpreter has without the venv: on a robot, the system's.
    system_numpy = subprocess.run(
        [BIN / "python", "-c", "import numpy; print(numpy.__version__)"],
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    venv = {}
    if ROBOT_SYSTEM:  # the README's `export PYTHONPATH="<venv site-packages>:$PYTHONPATH"`
        paths = [site.getsitepackages()[0], os.environ.get("PYTHONPATH", "")]
        venv["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    base = dict(
        os.environ,
        **venv,
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",
        ROS_DOMAIN_ID=str(domain),
        ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
        PYTHONUNBUFFERED="1",
        OMP_NUM_THREADS="1",
    )  # several nodes at once on a small CPU
    built = subprocess.run(
        ["colcon", "build", "--event-handlers", "console_direct-"],
        cwd=root,
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr

    from rgbd_saliency_ros.model.random_weights import write_random_weights

    weights_dir = tmp_path_factory.mktemp("weights")
    sam2, weights = write_random_weights(weights_dir, input_size=64)
    yield {
        "root": root,
        "install": root / "install",
        "env": sourced_environment(root / "install", base),
        "domain": domain,
        "weights": [f"sam2_checkpoint:={sam2}", f"weights:={weights}"],
        "tmp": weights_dir,
        "system_numpy": system_numpy,
    }
    subprocess.run(["ros2", "daemon", "stop"], env=base, capture_output=True, timeout=60)


def run(workspace, *args: str, timeout_s: float = DEADLINE_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args),
        env=workspace["env"],
        cwd=workspace["root"],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def start_camera(workspace, *topic_sets: str, rate_hz: float = 10.0, width: int = 640) -> Process:
    return Process(
        [sys.executable, __file__, "--camera", str(rate_hz), str(width), *topic_sets],
        workspace["env"],
        stdin=True,
    )


def camera_topics(prefix: str) -> str:
    """The default input names of a camera namespace, as a camera process topic set."""
    names = ("color/image_raw", "aligned_depth_to_color/image_raw", "color/camera_info")
    return ",".join(f"{prefix}/{name}" for name in names)


# The tests -------------------------------------------------------------------------------------


def test_colcon_build_installs_what_ros2_finds(workspace):
    install = workspace["install"] / "rgbd_saliency_ros"
    executable = install / "lib" / "rgbd_saliency_ros" / "saliency_node"
    # built by colcon's Python: the system's in the robot pass, as on a robot
    assert executable.read_text().splitlines()[0].startswith(f"#!{BIN}"), executable.read_text()
    assert (install / "share" / "rgbd_saliency_ros" / "launch" / "saliency.launch.py").is_file()
    assert (install / "share" / "rgbd_saliency_ros" / "config" / "saliency.yaml").is_file()
    assert run(workspace, "ros2", "pkg", "prefix", "rgbd_saliency_ros").stdout.strip() == str(
        install
    )
    assert (
        "rgbd_saliency_ros saliency_node"
        in run(workspace, "ros2", "pkg", "executables", "rgbd_saliency_ros").stdout
    )
    # the node runs the package colcon installed, not the repository's
    where = run(
        workspace,
        sys.executable,
        "-c",
        "import rgbd_saliency_ros; print(rgbd_saliency_ros.__file__)",
    )
    assert where.stdout.startswith(str(install)), where.stdout + where.stderr
    shown = run(workspace, *LAUNCH, "--show-args")
    assert shown.returncode == 0, shown.stderr
    for argument in (
        "namespace",
        "cameras",
        "params_file",
        "weights",
        "sam2_checkpoint",
        "model",
        "input_size",
        "backend",
        "engine",
        "device",
        "precision",
        "threshold",
        "depth_source",
        "depth_estimator_weights",
        "use_sim_time",
        "log_level",
        "color_topic",
        "depth_topic",
        "camera_info_topic",
        "mask_topic",
        "remaps",
    ):
        assert f"'{argument}':" in shown.stdout, argument


def param(workspace, verb: str, node: str, *args: str) -> str:
    return ros2_cli(workspace, "param", verb, node, *args)


def write_params(workspace, text: str) -> Path:
    path = workspace["tmp"] / "params.yaml"
    path.write_text(text)
    return path


def test_ros2_launch_in_a_namespace_with_a_params_file_and_arguments(workspace):
    params = write_params(
        workspace, "/**:\n  ros__parameters:\n    threshold: 0.3\n    input_size: 0\n"
    )
    camera = start_camera(workspace, camera_topics("/robot1/camera"))
    masks = Masks(workspace["domain"], ["/robot1/saliency/mask"])
    launch = Process(
        [
            *LAUNCH,
            "namespace:=/robot1",
            f"params_file:={params}",
            *workspace["weights"],
            "input_size:=64",
            "device:=cpu",
            "precision:=float32",
            "backend:=torch",
        ],
        workspace["env"],
    )
    try:
        ready = launch.wait_for(r"saliency_node\]: ready")
        # the node runs on the system's numpy, not a copy from the venv (robot pass: 1.26)
        assert f"numpy {workspace['system_numpy']}," in ready
        mask = masks.wait("/robot1/saliency/mask", count=3)
        assert (mask.height, mask.width, mask.encoding) == (480, 640, "mono8")
        node = "/robot1/saliency_node"
        assert "Double value is: 0.3" in param(workspace, "get", node, "threshold")  # the file's
        assert "Integer value is: 64" in param(
            workspace, "get", node, "input_size"
        )  # the argument's
        assert "Set parameter successful" in param(workspace, "set", node, "threshold", "0.7")
        assert "Double value is: 0.7" in param(workspace, "get", node, "threshold")
        assert "Setting parameter failed" in param(workspace, "set", node, "threshold", "1.5")
        assert "Setting parameter failed" in param(
            workspace, "set", node, "input_size", "128"
        )  # read-only
        assert "Double value is: 0.7" in param(workspace, "get", node, "threshold")
        status = launch.interrupt()
    finally:
        launch.stop()
        camera.stop()
        masks.close()
    assert status == 0, launch.output[-3000:]
    assert TRACEBACK not in launch.output, launch.output
    assert "process has finished cleanly" in launch.output


def test_ros2_launch_estimated_depth_answers_a_color_camera_alone(workspace, depth_anything_vits):
    """depth_source:=estimated with the official-format Depth Anything V2 file (the parity
    fixture's random ViT-S, at estimator input 28): no depth topic anywhere, masks and the
    estimate come back."""
    camera = start_camera(workspace, "/rgb/camera/color/image_raw,,/rgb/camera/color/camera_info")
    topics = ["/rgb/saliency/mask", "/rgb/saliency/depth_estimate"]
    masks = Masks(workspace["domain"], topics)
    launch = Process(
        [
            *LAUNCH,
            "namespace:=/rgb",
            *workspace["weights"],
            "input_size:=64",
            "depth_source:=estimated",
            f"depth_estimator_weights:={depth_anything_vits}",
            "depth_estimator_input_size:=28",
        ],
        workspace["env"],
    )
    try:
        launch.wait_for(r"depth source estimated: depth_anything_v2 on cpu")
        mask = masks.wait(topics[0], count=2)
        estimate = masks.wait(topics[1], count=2)
        assert (mask.height, mask.width, mask.encoding) == (480, 640, "mono8")
        assert (estimate.height, estimate.width, estimate.encoding) == (480, 640, "32FC1")
        expected = ("/rgb/saliency/depth_estimate", "/rgb/camera/color/image_raw")
        for _ in range(10):  # until discovery has seen both ends (one spin may see only some)
            graph = ros2_cli(workspace, "topic", "list")
            if all(topic in graph for topic in expected):
                break
        assert "/rgb/camera/color/image_raw" in graph and "aligned_depth" not in graph, graph
        status = launch.interrupt()
    finally:
        launch.stop()
        camera.stop()
        masks.close()
    assert status == 0, launch.output[-3000:]
    assert TRACEBACK not in launch.output, launch.output


def test_two_drivers_cameras_from_one_launch_with_remaps_and_threshold(workspace):
    """Two cameras named as the README's driver table says: RealSense 4.x (`cameras:` entry
    camera/camera, its own names) and Azure Kinect (remapped), the first one's mask renamed."""
    kinect = "/rgb/image_raw,/depth_to_rgb/image_raw,/rgb/camera_info"
    camera = start_camera(workspace, camera_topics("/camera/camera"), kinect)
    masks = Masks(workspace["domain"], ["/perception/realsense_mask", "/saliency/kinect/mask"])
    remaps = " ".join(
        f"kinect/{ours}:={theirs}"
        for ours, theirs in zip(
            ("color/image_raw", "aligned_depth_to_color/image_raw", "color/camera_info"),
            kinect.split(","),
        )
    )
    remaps += " saliency/camera/camera/mask:=/perception/realsense_mask"
    launch = Process(
        [
            *LAUNCH,
            "cameras:=[camera/camera, kinect]",
            f"remaps:={remaps}",
            *workspace["weights"],
            "threshold:=0.25",
            "node_name:=saliency_pair",
        ],
        workspace["env"],
    )
    try:
        launch.wait_for(r"saliency_pair\]: ready")
        for topic in masks.received:
            masks.wait(topic, count=2)  # both cameras answered
        node = "/saliency_pair"
        assert "Double value is: 0.25" in param(workspace, "get", node, "threshold")
        assert "String values are: ['camera/camera', 'kinect']" in param(
            workspace, "get", node, "streams"
        )
        status = launch.interrupt()
    finally:
        launch.stop()
        camera.stop()
        masks.close()
    assert status == 0 and TRACEBACK not in launch.output, launch.output[-3000:]


def ros2_cli(workspace, *args: str) -> str:
    """A `ros2 param|lifecycle ...` command's output; again while discovery has not found the
    node yet."""
    for _ in range(10):
        done = run(workspace, "ros2", *args[:2], "--no-daemon", "--spin-time", "1", *args[2:])
        if "Node not found" not in done.stdout + done.stderr:
            break
    return done.stdout + done.stderr


def test_ros2_run_managed_in_a_namespace_driven_by_ros2_lifecycle(workspace):
    params = write_params(workspace, "/**:\n  ros__parameters:\n    threshold: 0.4\n")
    camera = start_camera(workspace, camera_topics("/robot2/camera"))
    masks = Masks(workspace["domain"], ["/robot2/saliency/mask"])
    ros_args = ["--params-file", str(params), "-p", "managed:=true", "-p", "autostart:=false"]
    ros_args += [a for w in workspace["weights"] for a in ("-p", w)] + ["-r", "__ns:=/robot2"]
    node = Process(
        ["ros2", "run", "rgbd_saliency_ros", "saliency_node", "--ros-args", *ros_args],
        workspace["env"],
    )
    name = "/robot2/saliency_node"
    try:
        assert "unconfigured" in ros2_cli(workspace, "lifecycle", "get", name)
        assert not masks.received["/robot2/saliency/mask"]  # nothing before it is active
        assert "Transitioning successful" in ros2_cli(
            workspace, "lifecycle", "set", name, "configure"
        )
        assert "Transitioning successful" in ros2_cli(
            workspace, "lifecycle", "set", name, "activate"
        )
        assert "active" in ros2_cli(workspace, "lifecycle", "get", name)
        masks.wait("/robot2/saliency/mask", count=2)
        assert "Double value is: 0.4" in ros2_cli(workspace, "param", "get", name, "threshold")
        status = node.interrupt(group=True)
    finally:
        node.stop()
        camera.stop()
        masks.close()
    assert status == 0 and TRACEBACK not in node.output, node.output[-3000:]


def launch_module():
    """launch/saliency.launch.py as a module (needs launch_ros)."""
    import importlib.util

    find_shared("ros2-python")
    spec = importlib.util.spec_from_file_location(
        "saliency_launch", REPO_ROOT / "launch" / "saliency.launch.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_arguments_left_empty_keep_the_params_file():
    module = launch_module()
    empty = {name: default for name, (default, _) in module.ARGUMENTS.items()}
    assert module.parameter_overrides(empty) == {}
    assert module.remappings(empty) == []
    given = dict(
        empty,
        cameras="[front, rear]",
        input_size="64",
        threshold="0.25",
        use_sim_time="true",
        weights="w.safetensors",
        precision="float16",
        autostart="false",
        depth_source="estimated",
        depth_estimator_weights="d.pth",
        remaps="saliency/front/mask:=/a/mask, rear/color/image_raw:=/rear/rgb",
    )
    assert module.parameter_overrides(given) == {
        "streams": ["front", "rear"],
        "input_size": 64,
        "threshold": 0.25,
        "use_sim_time": True,
        "weights": "w.safetensors",
        "precision": "float16",
        "autostart": False,
        "depth_source": "estimated",
        "depth_estimator_weights": "d.pth",
    }
    assert module.remappings(given) == [
        ("saliency/front/mask", "/a/mask"),
        ("rear/color/image_raw", "/rear/rgb"),
    ]
    one = dict(empty, cameras="front", color_topic="/zed/rgb", mask_topic="/perception/mask")
    assert module.remappings(one) == [
        ("front/color/image_raw", "/zed/rgb"),
        ("saliency/mask", "/perception/mask"),
    ]
    assert module.remappings(dict(empty, depth_topic="/d")) == [
        ("camera/aligned_depth_to_color/image_raw", "/d")
    ]
    for wrong, named in (
        (dict(given, input_size="big"), "input_size"),
        (dict(given, use_sim_time="yes"), "use_sim_time"),
        (dict(given, remaps="a:b"), "remaps"),
        (dict(given, color_topic="/x"), "color_topic"),  # one camera only
        (dict(given, managed="maybe"), "managed"),
    ):
        with pytest.raises(ValueError, match=named):
            module.node_action(dict(wrong, params_file="p.yaml"))


def test_launch_arguments_match_the_node_parameter_table():
    """The launch file keeps its own argument table (it runs in `ros2 launch`'s process, which
    need not import the package): each argument that sets a parameter names one of
    ros/params.py's, given the type of its default, and the single-camera remap arguments name
    the topics the parameters' defaults give."""
    from rgbd_saliency_ros.ros.params import PARAMS, read_parameters, stream_topics

    module = launch_module()
    defaults = {spec.name: spec.default for spec in PARAMS}
    samples = {str: "x", int: "64", float: "0.25", bool: "true"}
    given = {name: default for name, (default, _) in module.ARGUMENTS.items()}
    given.update({name: samples[kind] for name, (kind, _) in module.PARAMETER_ARGUMENTS.items()})
    overrides = module.parameter_overrides(dict(given, cameras="front"))
    assert set(module.PARAMETER_ARGUMENTS) | {"streams"} == set(overrides)
    for name, value in overrides.items():
        assert name in defaults, f"launch argument for {name}: no such node parameter"
        assert type(value) is type(defaults[name]), name

    params = read_parameters(dict(defaults, weights="w", sam2_checkpoint="s"))
    topics = stream_topics(params, "camera")
    assert {
        name: default.format(camera="camera")
        for name, default in module.SINGLE_CAMERA_REMAPS.items()
    } == {
        "color_topic": topics.color,
        "depth_topic": topics.depth,
        "camera_info_topic": topics.camera_info,
        "mask_topic": topics.mask,
        "probability_topic": topics.probability,
        "overlay_topic": topics.overlay,
    }


SIGINT_TRIES = 20
AT_ONCE = 5  # nodes starting together: start-up (imports, model) is most of a try's time


@pytest.mark.slow  # 20 node starts
def test_ctrl_c_while_frames_flow_exits_0_without_traceback_every_time(workspace):
    """20 nodes, half started by `ros2 launch` (SIGINT to it), half by `ros2 run` (SIGINT to its
    process group, as a terminal sends it), each interrupted after its second mask while the camera
    keeps publishing."""
    camera = start_camera(workspace, camera_topics("/camera"), width=320)
    names = [f"sigint_{i}" for i in range(SIGINT_TRIES)]
    masks = Masks(workspace["domain"], [f"/{name}/mask" for name in names])
    ros_args = [a for w in workspace["weights"] for a in ("-p", w)]
    results = {}
    try:
        for first in range(0, SIGINT_TRIES, AT_ONCE):
            batch = {}
            for name in names[first : first + AT_ONCE]:
                if int(name.split("_")[1]) % 2:
                    args = [
                        "ros2",
                        "run",
                        "rgbd_saliency_ros",
                        "saliency_node",
                        "--ros-args",
                        *ros_args,
                        "-r",
                        f"__node:={name}",
                        "-r",
                        f"saliency/mask:=/{name}/mask",
                    ]
                else:
                    args = [
                        "ros2",
                        "launch",
                        "rgbd_saliency_ros",
                        "saliency.launch.py",
                        *workspace["weights"],
                        f"node_name:={name}",
                        f"remaps:=saliency/mask:=/{name}/mask",
                    ]
                batch[name] = Process(args, workspace["env"])
            try:
                for name, process in batch.items():
                    process.wait_for(rf"{name}\]: ready")
                    masks.wait(f"/{name}/mask", count=2)
                for name, process in batch.items():
                    status = process.interrupt(group=process.args[1] == "run")
                    results[name] = (status, TRACEBACK in process.output, process.output)
            finally:
                for process in batch.values():
                    process.stop()
    finally:
        camera.stop()
        masks.close()
    failed = {name: r for name, r in results.items() if r[0] != 0 or r[1]}
    assert len(results) == SIGINT_TRIES
    assert not failed, f"{len(failed)} of {SIGINT_TRIES} failed: " + "\n".join(
        f"{name}: exit status {r[0]}\n{r[2][-2000:]}" for name, r in failed.items()
    )


if __name__ == "__main__" and sys.argv[1:2] == ["--camera"]:
    camera_main(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
