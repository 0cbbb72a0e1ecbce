"""The managed node through its lifecycle services, as `ros2 lifecycle set/get` drives it.

    .venv/bin/python -m pytest -q test/test_ros_lifecycle.py

One ``saliency_node`` with ``managed: true`` and ``autostart: false`` on a private ROS domain, at
input 64 with random weights; a client node calls its ``get_state``, ``change_state`` and
``set_parameters`` services and publishes TUM RGB-D frames (reliable, as drivers do).
"""

import threading
import time

import pytest
from conftest import (
    node_parameters,
    private_domain,
    private_ros_context,
    spinning,
    tum_rgbd,
    wait_for,
)

DEADLINE_S = 60.0
QUIET_S = 2.0  # how long "no mask" is waited for (frames go every 0.1 s)


def rss_mib() -> float:
    """Resident memory of this process, MiB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Client:
    """Lifecycle, parameter and frame client of the node under test."""

    def __init__(self, context, node_name: str) -> None:
        import rclpy
        from lifecycle_msgs.srv import ChangeState, GetState
        from rcl_interfaces.srv import SetParameters
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from rgbd_saliency_ros.ros.conversions import image_message

        rgb, mm, _ = tum_rgbd()
        self.node = rclpy.create_node("lifecycle_client", context=context)
        self.color = image_message(rgb, "rgb8", Header(frame_id="tum_camera"))
        self.depth = image_message(mm, "16UC1", Header(frame_id="tum_camera"))
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.publishers = [
            self.node.create_publisher(Image, topic, qos)
            for topic in ("/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw")
        ]
        self.masks: list = []
        self.node.create_subscription(Image, "/saliency/mask", self.masks.append, qos)
        self.get_state = self.node.create_client(GetState, f"/{node_name}/get_state")
        self.change_state = self.node.create_client(ChangeState, f"/{node_name}/change_state")
        self.set_parameters = self.node.create_client(
            SetParameters, f"/{node_name}/set_parameters"
        )
        self.stamp_s = time.time() - 600.0  # behind the node's clock, as a replayed bag's

    def call(self, client, request):
        assert client.wait_for_service(timeout_sec=DEADLINE_S), f"{client.srv_name} not available"
        future = client.call_async(request)
        return wait_for(lambda: future.done() and future.result(), f"{client.srv_name} response")

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self.call(self.get_state, GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {
            "configure": Transition.TRANSITION_CONFIGURE,
            "activate": Transition.TRANSITION_ACTIVATE,
            "deactivate": Transition.TRANSITION_DEACTIVATE,
            "cleanup": Transition.TRANSITION_CLEANUP,
            "shutdown": Transition.TRANSITION_UNCONFIGURED_SHUTDOWN,
        }
        return self.call(
            self.change_state, ChangeState.Request(transition=Transition(id=ids[label]))
        ).success

    def set(self, name: str, value: str) -> bool:
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()]
        )
        return self.call(self.set_parameters, request).results[0].successful

    def masks_for_frames(self, active: bool, frames: int = 10) -> int:
        """Sends ``frames`` pairs at 10 Hz; returns how many masks came back. Active: once the
        node's subscriptions have matched (frames sent before would be lost, not refused), and
        waiting for the first mask; inactive: waiting QUIET_S for masks that must not come."""
        if active:
            wait_for(
                lambda: all(p.get_subscription_count() for p in self.publishers),
                "the node's subscriptions",
            )
        before = len(self.masks)
        for _ in range(frames):
            self.stamp_s += 0.1
            sec, nanosec = divmod(round(self.stamp_s * 1e9), 10**9)
            for msg, publisher in zip((self.color, self.depth), self.publishers):
                msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
                publisher.publish(msg)
            time.sleep(0.1)
        if active:
            wait_for(lambda: len(self.masks) > before, "a mask")
        else:
            time.sleep(QUIET_S)
        return len(self.masks) - before


@pytest.fixture
def managed(random_weights_64):
    from rclpy.parameter import Parameter

    from rgbd_saliency_ros.ros.node import SaliencyNode

    sam2, weights = random_weights_64
    with private_ros_context(private_domain(37)) as context:
        node = SaliencyNode(
            context=context,
            parameter_overrides=[
                Parameter("managed", value=True),
                Parameter("autostart", value=False),
                Parameter("sam2_checkpoint", value=sam2),
                Parameter("weights", value=weights + ".missing"),
                Parameter("max_image_pixels", value=640 * 480),
            ],
        )
        client = Client(context, node.get_name())
        with spinning(context, node, client.node):
            yield node, client, weights


def test_transitions_load_answer_stop_and_free(managed):
    node, client, weights = managed
    assert client.state() == "unconfigured" and node.runtime is None

    # bad weights: configure fails with the reason, the node stays up and unconfigured
    assert client.transition("configure") is False
    assert client.state() == "unconfigured"
    assert "samdaq.safetensors.missing: no such file" in str(node.configure_error)
    # corrected while unconfigured, configure succeeds: loaded, not answering yet
    assert client.set("weights", weights)
    before_load = rss_mib()
    assert client.transition("configure")
    loaded = rss_mib()
    assert client.state() == "inactive" and node.runtime is not None
    assert client.masks_for_frames(active=False) == 0
    # only the threshold changes once configured
    assert client.set("sync_slop_s", 0.05) is False and client.set("threshold", 0.4)

    assert client.transition("activate") and client.state() == "active"
    assert client.masks_for_frames(active=True) > 0

    assert client.transition("deactivate") and client.state() == "inactive"
    assert node.runtime is not None  # deactivate keeps the model
    assert client.masks_for_frames(active=False) == 0
    assert client.transition("activate")
    assert client.masks_for_frames(active=True) > 0
    assert client.transition("deactivate")

    assert client.transition("cleanup") and client.state() == "unconfigured"
    assert node.runtime is None
    first = (loaded - before_load, loaded - rss_mib())  # MiB: configure's rise, cleanup's return

    before_load = rss_mib()
    assert client.transition("configure")  # and again
    loaded = rss_mib()
    assert client.transition("activate")
    assert client.masks_for_frames(active=True) > 0
    assert client.transition("deactivate") and client.transition("cleanup")
    second = (loaded - before_load, loaded - rss_mib())
    print(
        "memory (MiB): configure +{:.0f}, cleanup -{:.0f}; again +{:.0f}, -{:.0f}".format(
            *first, *second
        )
    )
    # This test process's resident memory (README "Managed (lifecycle) node" has the figures).
    # The first rise also holds what a first load leaves for good (modules, caches); the second
    # is the model's.
    assert first[1] > 0.6 * first[0] and second[1] > 0.8 * second[0]
    assert client.transition("shutdown") and client.state() == "finalized"


@pytest.fixture
def plain_node(random_weights_64):
    """A started plain node on a private domain with no camera: the test drives its worker."""
    from rgbd_saliency_ros.ros.node import SaliencyNode

    with private_ros_context(private_domain(53)) as context:
        node = SaliencyNode(
            context=context, parameter_overrides=node_parameters(*random_weights_64)
        )
        try:
            node.start()
            yield node
        finally:
            node.destroy_node()


def _step_in_worker(node, process) -> None:
    """Makes the worker's next round run ``process(batch, taken_s)`` in place of the model."""
    node._process = process
    with node._cond:
        node._slots["camera"] = object()
        node._cond.notify()


def test_a_dead_worker_is_reported_and_shuts_the_node_down(plain_node):
    node = plain_node
    node.publish_diagnostics()
    assert not node.worker_failed and node.context.ok()

    def fatal(batch, taken_s):  # what `except Exception` cannot catch
        raise SystemExit("injected")

    _step_in_worker(node, fatal)
    wait_for(lambda: not node._worker.is_alive(), "the worker to die")
    node.publish_diagnostics()
    assert node.worker_failed and not node.context.ok()  # spin returns; main exits with status 1


def test_deactivate_returns_when_the_batch_in_flight_ends(plain_node, monkeypatch):
    """Deactivate waits for a batch being stepped (it must not publish after) and is woken when
    that batch ends, not at the end of its wait (which the test makes longer than wait_for's)."""
    from rgbd_saliency_ros.ros import node as saliency

    monkeypatch.setattr(saliency, "DEACTIVATE_WAIT_S", 600.0)
    node = plain_node
    stepping, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow(batch, taken_s):  # a step that takes until the test says so
        stepping.set()
        release.wait()

    try:
        _step_in_worker(node, slow)
        wait_for(stepping.is_set, "the batch to be stepped")
        deactivating = threading.Thread(target=lambda: (node.trigger_deactivate(), done.set()))
        deactivating.start()
        time.sleep(0.5)
        assert not done.is_set(), "deactivate returned while a batch was still being stepped"
        release.set()
        wait_for(done.is_set, "deactivate to return once the batch ended")
        assert node._state == "inactive"
    finally:
        release.set()  # the worker must not stay blocked when the node is destroyed


DEAD_WORKER_SCRIPT = """
import sys
from rgbd_saliency_ros.ros import node as saliency

start = saliency.SaliencyNode.start

def start_then_kill_the_worker(self, backend=None):
    start(self, backend)
    def fatal(batch, taken_s):
        raise SystemExit("injected")
    self._process = fatal
    with self._cond:
        self._slots["camera"] = object()
        self._cond.notify()

saliency.SaliencyNode.start = start_then_kill_the_worker
saliency.main(sys.argv[1:])
"""


def test_a_dead_worker_makes_the_process_exit_1(random_weights_64):
    """What a supervisor (systemd, launch's respawn) sees: exit status 1, the reason in the log."""
    import subprocess
    import sys

    from rgbd_saliency_ros.evaluation.node_process import private_ros_env, ros_args

    sam2, weights = random_weights_64
    env = private_ros_env(private_domain(59))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            DEAD_WORKER_SCRIPT,
            *ros_args(sam2, weights, {"diagnostics_period_s": 0.2}),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "the worker thread stopped" in done.stderr and "Traceback" not in done.stderr


SPIN_ERROR_SCRIPT = """
import os, signal, sys
import rclpy
from rgbd_saliency_ros.ros import node as saliency

def spin(node):  # what rclpy.spin raises when a signal lands while it takes a message
    if os.environ["SIGNAL_FIRST"] == "1":
        os.kill(os.getpid(), signal.SIGTERM)
    raise RuntimeError("Unable to convert call argument '0' to Python object")

rclpy.spin = spin
saliency.main(sys.argv[1:])
"""


@pytest.mark.parametrize("signal_first", [True, False], ids=["after a signal", "on its own"])
def test_an_error_out_of_spin_is_a_shutdown_only_after_a_signal(signal_first):
    """An error out of rclpy.spin while a signal shuts rclpy down (its context goes down a
    moment later, from rclpy's signal thread) ends the node with 0 and no traceback; the same
    error without a signal is a real one and is not hidden."""
    import subprocess
    import sys

    from rgbd_saliency_ros.evaluation.node_process import private_ros_env

    env = dict(private_ros_env(private_domain(67)), SIGNAL_FIRST=str(int(signal_first)))
    args = ["--ros-args", "-p", "managed:=true", "-p", "autostart:=false"]
    done = subprocess.run(
        [sys.executable, "-c", SPIN_ERROR_SCRIPT, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if signal_first:
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    else:
        assert done.returncode != 0 and "Unable to convert call argument" in done.stderr


def test_only_a_half_built_rclpy_future_is_kept_quiet_at_exit():
    """Ctrl-C can land inside rclpy's Future.__init__; the half-built Task's __del__ then raises
    at exit, which would print a traceback after a clean shutdown. Only that report is dropped."""
    import gc
    import sys

    from rclpy.task import Future

    from rgbd_saliency_ros.ros.node import _quiet_half_built_futures

    reported = []

    class Other:
        def __del__(self):
            raise AttributeError("another object's")

    previous = sys.unraisablehook
    sys.unraisablehook = _quiet_half_built_futures(lambda u: reported.append(u.exc_value))
    try:
        half = Future.__new__(Future)  # as when KeyboardInterrupt lands before its attributes
        other = Other()
        del half, other
        gc.collect()
    finally:
        sys.unraisablehook = previous
    assert [str(e) for e in reported] == ["another object's"]
