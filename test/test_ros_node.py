"""The node live, with real rclpy and DDS: real frames from another process, masks back.

    .venv/bin/python -m pytest -q test/test_ros_node.py

Two nodes run in this process (each test run on its own ROS domain), on a random SAM-DAQ at input
64: ``saliency_node`` with the default single camera, and ``saliency_pair`` with two cameras.
A publisher in a separate process (this file run as a script) sends TUM RGB-D's 640x480 frame as
rgb8 color and 16UC1 depth, stamp by stamp, as the tests ask it. Stamps are chosen by the tests (a
time line of their own), so memory resets by timeout and backward jumps are exact.
"""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import conftest
from conftest import wait_for

from rgbd_saliency_ros.evaluation.node_process import private_ros_env

DEADLINE_S = 60.0  # generous: the CPU is shared


# The publisher process ---------------------------------------------------------------------------


def publisher_main() -> None:
    """Reads JSON commands from stdin, publishes, answers "ok" (or "error ...") on stdout.

    {"topic": T,
     "frame": "color" | "depth" | "color_small" | "depth_small" | "depth_zero"
              | "depth_left_invalid" (the left half 0) | "info",
     "stamp": s, "edit": {field: value, "truncate": bytes},
     "reliability": "reliable" | "best_effort"}

    One publisher per topic and reliability (reliable, as RealSense publishes, unless asked).
    Over 60 lines: the child process's whole script, its frames and its command loop.
    """
    import array

    import cv2
    import rclpy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from rgbd_saliency_ros.ros.conversions import image_message
    from rgbd_saliency_ros.ros.params import keep_last_qos

    rgb, mm, _ = conftest.tum_rgbd()
    left_invalid = mm.copy()
    left_invalid[:, : mm.shape[1] // 2] = 0
    frames = {
        "color": (rgb, "rgb8"),
        "depth": (mm, "16UC1"),
        "color_small": (cv2.resize(rgb, (320, 240), interpolation=cv2.INTER_AREA), "rgb8"),
        "depth_small": (cv2.resize(mm, (320, 240), interpolation=cv2.INTER_NEAREST), "16UC1"),
        "depth_zero": (np.zeros_like(mm), "16UC1"),
        "depth_left_invalid": (left_invalid, "16UC1"),
    }
    rclpy.init()
    node = rclpy.create_node("test_camera")
    publishers = {}
    for line in sys.stdin:
        command = json.loads(line)
        topic, frame = command["topic"], command["frame"]
        key = (topic, command.get("reliability", "reliable"))
        if key not in publishers:
            qos = keep_last_qos(key[1], 10)
            publishers[key] = node.create_publisher(
                CameraInfo if frame == "info" else Image, topic, qos
            )
            deadline = time.monotonic() + DEADLINE_S
            while publishers[key].get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the subscriber's side of the match may lag ours
        sec, nanosec = divmod(round(command["stamp"] * 1e9), 10**9)
        header = Header(frame_id="tum_camera")
        header.stamp.sec, header.stamp.nanosec = sec, nanosec
        if frame == "info":
            msg = CameraInfo(header=header, width=640, height=480, distortion_model="plumb_bob")
            msg.k = [525.0, 0.0, 319.5, 0.0, 525.0, 239.5, 0.0, 0.0, 1.0]
        else:
            msg = image_message(*frames[frame], header)
            for field, value in command.get("edit", {}).items():
                if field == "truncate":
                    msg.data = array.array("B", bytes(msg.data)[:value])
                else:
                    setattr(msg, field, value)
        publishers[key].publish(msg)
        print("ok", flush=True)
    node.destroy_node()
    rclpy.shutdown()


class Camera:
    """Test-side handle of the publisher process: ``SCRIPT --publisher`` (a subclass in another
    test file sets its own file)."""

    SCRIPT = __file__

    def __init__(self, env: dict) -> None:
        self.process = subprocess.Popen(
            [sys.executable, self.SCRIPT, "--publisher"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(
        self, topic: str, frame: str, stamp: float, reliability: str = "reliable", **edit
    ) -> None:
        command = {
            "topic": topic,
            "frame": frame,
            "stamp": stamp,
            "edit": edit,
            "reliability": reliability,
        }
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        assert answer == "ok", f"publisher: {answer!r} (exit status {self.process.poll()})"

    def pair(
        self,
        ns: str,
        stamp: float,
        color: str = "color",
        depth: str = "depth",
        color_edit=None,
        depth_edit=None,
        reliability: str = "reliable",
    ) -> None:
        self.send(f"/{ns}/color/image_raw", color, stamp, reliability, **(color_edit or {}))
        self.send(
            f"/{ns}/aligned_depth_to_color/image_raw",
            depth,
            stamp,
            reliability,
            **(depth_edit or {}),
        )

    def close(self) -> None:
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# The test process ------------------------------------------------------------------------------


class Outputs:
    """Collects one stream's outputs (reliable subscriptions, so that nothing is missed)."""

    def __init__(self, probe, prefix: str) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image

        self.lock = threading.Lock()
        self.masks, self.probabilities, self.overlays, self.infos = {}, {}, {}, {}
        qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        for topic, store, kind in (
            (f"{prefix}/mask", self.masks, Image),
            (f"{prefix}/probability", self.probabilities, Image),
            (f"{prefix}/overlay", self.overlays, Image),
            (f"{prefix}/camera_info", self.infos, CameraInfo),
        ):
            probe.create_subscription(
                kind, topic, lambda msg, store=store: self._keep(store, msg), qos
            )

    def _keep(self, store: dict, msg) -> None:
        from rgbd_saliency_ros.ros.conversions import stamp_to_s

        with self.lock:
            store[round(stamp_to_s(msg.header.stamp), 6)] = msg

    def probability(self, stamp: float) -> np.ndarray:
        msg = wait_for(lambda: self.probabilities.get(round(stamp, 6)), f"probability at {stamp}")
        return np.frombuffer(msg.data, np.float32).reshape(msg.height, msg.width)


class Timeline:
    """Stamps for the tests: 30 Hz frames, with jumps forward (> reset_timeout_s) on request."""

    def __init__(self) -> None:
        # Near the node's clock (stamps far from it are bad input, max_stamp_*_s): ten minutes
        # behind it, so that the tests' gaps never take the time line ahead of it.
        self.now = float(round(time.time())) - 600.0

    def next(self) -> float:
        self.now = round(self.now + 1 / 30, 6)
        return self.now

    def gap(self) -> float:
        """A stamp after a gap longer than reset_timeout_s: the stream restarts (timeout).

        10 s: the node allows twice its last step time on top of reset_timeout_s (1 s here), and
        on a loaded 2-core machine a step at input 64 has taken over half a second."""
        self.now = round(self.now + 10.0, 6)
        return self.now


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """The nodes ready (one stream, two streams, the package's defaults in a namespace), a probe
    node listening, and the publisher process. Over 60 lines: one module-wide set-up, in the
    order it must happen, kept whole so that its teardown mirrors it."""
    conftest.find_shared("data", "rgbd_encodings")
    import rclpy
    from rclpy.parameter import Parameter

    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.ros.node import SaliencyNode

    sam2_ckpt, weights = write_random_weights(tmp_path_factory.mktemp("weights"), input_size=64)
    domain = conftest.private_domain(100)
    env = private_ros_env(domain)
    with conftest.private_ros_context(domain) as context:
        common = conftest.node_parameters(
            sam2_ckpt,
            weights,
            max_image_pixels=640 * 480,
            reset_timeout_s=1.0,
            diagnostics_period_s=0.5,
        )
        single = SaliencyNode(context=context, parameter_overrides=common)
        pair = SaliencyNode(
            context=context,
            parameter_overrides=common + [Parameter("streams", value=["left", "right"])],
            cli_args=["--ros-args", "-r", "__node:=saliency_pair"],
        )
        # the package's defaults (input QoS following the publishers), in a namespace
        defaults = common[:2] + [Parameter("diagnostics_period_s", value=0.5)]
        auto = SaliencyNode(
            context=context,
            parameter_overrides=defaults,
            cli_args=["--ros-args", "-r", "__node:=saliency_auto", "-r", "__ns:=/robot1"],
        )
        for node in (single, pair, auto):
            node.start()
        probe = rclpy.create_node("probe", context=context)
        outputs = {
            "camera": Outputs(probe, "/saliency"),
            "left": Outputs(probe, "/saliency/left"),
            "right": Outputs(probe, "/saliency/right"),
            "robot1/camera": Outputs(probe, "/robot1/saliency"),
        }
        streams = {
            "camera": (single, "camera"),
            "left": (pair, "left"),
            "right": (pair, "right"),
            "robot1/camera": (auto, "camera"),
        }
        diagnostics = []
        from diagnostic_msgs.msg import DiagnosticArray

        probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
        with conftest.spinning(context, single, pair, auto, probe):
            camera = Camera(env)
            rig = dict(
                single=single,
                pair=pair,
                auto=auto,
                probe=probe,
                outputs=outputs,
                streams=streams,
                camera=camera,
                diagnostics=diagnostics,
                time=Timeline(),
                context=context,
            )
            try:
                for ns in outputs:
                    handshake(rig, ns)
                yield rig
            finally:
                camera.close()


def handshake(rig, ns: str, **pair_kwargs) -> float:
    """Sends pairs until one mask comes back (DDS matching may lose the very first messages);
    returns its stamp."""
    masks = rig["outputs"][ns].masks

    def send() -> float:
        stamp = rig["time"].next()
        rig["camera"].pair(ns, stamp, **pair_kwargs)
        return stamp

    return conftest.send_until_received(send, masks, f"a mask of {ns}", DEADLINE_S / 4)


def send_and_wait(rig, ns: str, stamp: float, **pair_kwargs):
    """Sends one good pair; returns its mask message once the node has counted it as published."""
    outputs, (node, stream) = rig["outputs"][ns], rig["streams"][ns]
    published = node.counters(stream)["published"]
    rig["camera"].pair(ns, stamp, **pair_kwargs)
    mask = wait_for(lambda: outputs.masks.get(round(stamp, 6)), f"the mask of {ns} at {stamp}")
    counter_after(node, stream, "published", published + 1)  # the mask can arrive before the count
    return mask


def counter_after(node, stream: str, name: str, target: float) -> float:
    """Waits until ``name`` of ``stream`` reaches ``target``; returns the counters."""
    return wait_for(
        lambda: node.counters(stream)[name] >= target and node.counters(stream),
        f"{stream} {name} >= {target}",
    )


def test_masks_come_back_with_input_stamps_size_and_encoding(rig):
    camera, t = rig["camera"], rig["time"]
    camera.send("/camera/color/camera_info", "info", t.now)
    stamps = [t.gap()] + [t.next() for _ in range(2)]
    for stamp in stamps:
        mask = send_and_wait(rig, "camera", stamp)
        assert (mask.height, mask.width, mask.encoding, mask.step) == (480, 640, "mono8", 640)
        assert mask.header.frame_id == "tum_camera"
        pixels = np.frombuffer(mask.data, np.uint8)
        assert set(np.unique(pixels)) <= {0, 255}
        prob = rig["outputs"]["camera"].probability(stamp)
        assert prob.shape == (480, 640) and 0.0 <= prob.min() and prob.max() <= 1.0
        assert np.array_equal(
            pixels.reshape(480, 640), np.where(prob >= 0.5, 255, 0).astype(np.uint8)
        )
    overlay = wait_for(
        lambda: rig["outputs"]["camera"].overlays.get(round(stamps[-1], 6)), "overlay"
    )
    assert (overlay.height, overlay.width, overlay.encoding) == (480, 640, "rgb8")
    info = wait_for(
        lambda: rig["outputs"]["camera"].infos.get(round(stamps[-1], 6)), "restamped camera_info"
    )
    assert info.header.frame_id == "tum_camera" and info.k[0] == 525.0
    counts = rig["single"].counters("camera")
    assert counts["published"] >= 3 and counts["reset.timeout"] + counts["reset.new_stream"] >= 1


def test_bag_loop_keeps_masks_coming_and_resets_memory(rig):
    node, t = rig["single"], rig["time"]
    outputs = rig["outputs"]["camera"]
    start = t.gap()
    loop = [
        round(start + 0.25 * i, 6) for i in range(6)
    ]  # a 1.25 s bag: steps back more than backward_jump_s
    for stamp in loop:
        send_and_wait(rig, "camera", stamp)
    fresh, continued = outputs.probability(loop[0]), outputs.probability(loop[-1])
    before = node.counters("camera")
    for stamp in loop[:3]:  # the bag starts again
        outputs.masks.pop(round(stamp, 6))
        outputs.probabilities.pop(round(stamp, 6))
        send_and_wait(rig, "camera", stamp)
    after = node.counters("camera")
    assert after["reset.backward_jump"] == before["reset.backward_jump"] + 1
    assert after["clock_jumps"] == before["clock_jumps"] + 1
    # the frame after the loop started from a fresh memory, as the first one did; later ones
    # carry it
    assert np.abs(outputs.probability(loop[0]) - fresh).max() < 1e-6
    assert np.abs(continued - fresh).max() > 1e-5
    assert np.abs(outputs.probability(loop[2]) - fresh).max() > 1e-5
    t.now = loop[-1]


BAD_INPUTS = [
    ("unsupported_encoding", dict(color_edit={"encoding": "bgr16"})),
    ("size_mismatch", dict(depth="depth_small")),
    ("truncated_data", dict(color_edit={"truncate": 1000})),
    ("empty_image", dict(depth_edit={"width": 0, "step": 0})),
    ("step_too_small", dict(color_edit={"step": 100})),
    ("invalid_depth", dict(depth="depth_zero")),
    ("too_large", dict(color_edit={"height": 481})),  # above max_image_pixels
]


def test_every_bad_input_is_survived_counted_and_gives_no_output(rig):
    node, camera, t = rig["single"], rig["camera"], rig["time"]
    outputs = rig["outputs"]["camera"]
    send_and_wait(rig, "camera", t.next())
    bad_stamps = []
    for kind, edits in BAD_INPUTS:
        before = node.counters("camera")[f"bad_input.{kind}"]
        stamp = t.next()
        bad_stamps.append(stamp)
        camera.pair("camera", stamp, **edits)
        counter_after(node, "camera", f"bad_input.{kind}", before + 1)
        send_and_wait(rig, "camera", t.next())  # and it goes on
    # duplicate and out-of-order stamps: dropped at pairing
    last = t.now
    before = node.counters("camera")
    camera.pair("camera", last)
    camera.pair("camera", round(last - 0.1, 6))
    send_and_wait(rig, "camera", t.next())
    after = node.counters("camera")
    assert after["bad_input.duplicate_stamp"] == before["bad_input.duplicate_stamp"] + 2
    assert after["bad_input.out_of_order"] == before["bad_input.out_of_order"] + 2
    assert after["published"] == before["published"] + 1
    assert not any(round(s, 6) in outputs.masks for s in bad_stamps + [round(last - 0.1, 6)])
    # the same numbers reach /diagnostics
    expected = {f"bad_input.{kind}": after[f"bad_input.{kind}"] for kind, _ in BAD_INPUTS}
    for name in ("bad_input.duplicate_stamp", "bad_input.out_of_order", "published"):
        expected[name] = after[name]
    reported = wait_for(
        lambda: matching_diagnostics(rig["diagnostics"], "saliency_node: camera", expected),
        "/diagnostics",
    )
    assert all(
        k in reported
        for k in (
            "color_in_hz",
            "output_hz",
            "model_ms_p50",
            "model_ms_p95",
            "latency_ms_p95",
            "dropped",
            "unpaired_color",
            "reset.request",
            "reset.backward_jump",
        )
    )


def matching_diagnostics(received: list, name: str, expected: dict):
    from rgbd_saliency_ros.ros.diagnostics import status_values

    for msg in reversed(list(received)):
        for status in msg.status:
            if status.name == name:
                values = status_values(status)
                if all(values.get(k) == v for k, v in expected.items()):
                    return values
    return None


def call_trigger(probe, service: str):
    from std_srvs.srv import Trigger

    client = probe.create_client(Trigger, service)
    try:
        assert client.wait_for_service(timeout_sec=DEADLINE_S), f"{service} not available"
        future = client.call_async(Trigger.Request())
        return wait_for(lambda: future.done() and future.result(), f"{service} response")
    finally:
        probe.destroy_client(client)


def test_reset_service_restarts_the_memory(rig):
    node, t = rig["single"], rig["time"]
    outputs = rig["outputs"]["camera"]
    first = t.gap()
    send_and_wait(rig, "camera", first)
    send_and_wait(rig, "camera", t.next())
    before = node.counters("camera")
    response = call_trigger(rig["probe"], "/saliency_node/reset")
    assert response.success
    after_reset = t.next()
    send_and_wait(rig, "camera", after_reset)
    assert node.counters("camera")["reset.request"] == before["reset.request"] + 1
    assert np.abs(outputs.probability(after_reset) - outputs.probability(first)).max() < 1e-6


def test_two_streams_keep_separate_memories_and_run_batched(rig):
    node, camera, t = rig["pair"], rig["camera"], rig["time"]
    left, right = rig["outputs"]["left"], rig["outputs"]["right"]
    stamps = [t.gap()] + [t.next() for _ in range(3)]
    for stamp in stamps:
        send_and_wait(rig, "left", stamp)
    # right's first frame after a gap starts fresh although left has history
    send_and_wait(rig, "right", stamps[-1])
    fresh = left.probability(stamps[0])
    assert np.abs(right.probability(stamps[-1]) - fresh).max() < 1e-6
    assert np.abs(left.probability(stamps[-1]) - fresh).max() > 1e-5

    # a per-stream reset touches only that stream
    before = {s: node.counters(s)["reset.request"] for s in ("left", "right")}
    assert call_trigger(rig["probe"], "/saliency_pair/left/reset").success
    # hold the worker inside a step so that both streams' next pairs are ready together
    batches, release, step = [], threading.Event(), node.runtime.backend.step

    def held_step(rgb, depth, state):
        batches.append(rgb.shape[0])
        release.wait(DEADLINE_S)
        return step(rgb, depth, state)

    node.runtime.backend.step = held_step
    try:
        held, together = t.next(), t.next()
        camera.pair("left", held)
        wait_for(lambda: batches, "the worker to take the first pair")
        pairs = {s: node.counters(s)["pairs"] for s in ("left", "right")}
        camera.pair("left", together)
        camera.pair("right", together)
        wait_for(
            lambda: all(node.counters(s)["pairs"] > pairs[s] for s in ("left", "right")),
            "both pairs",
        )
        published = {s: node.counters(s)["published"] for s in ("left", "right")}
        release.set()
        wait_for(
            lambda: round(together, 6) in left.masks and round(together, 6) in right.masks,
            "both masks",
        )
        counter_after(node, "left", "published", published["left"] + 2)
        counter_after(node, "right", "published", published["right"] + 1)
    finally:
        release.set()
        node.runtime.backend.step = step
    assert batches == [1, 2]
    assert node.counters("left")["reset.request"] == before["left"] + 1
    assert node.counters("right")["reset.request"] == before["right"]
    assert np.abs(left.probability(held) - fresh).max() < 1e-6
    assert np.abs(right.probability(together) - fresh).max() > 1e-5


def test_defaults_follow_reliable_and_best_effort_publishers_in_the_node_namespace(rig):
    node, t = rig["auto"], rig["time"]
    color, depth = (
        "/robot1/camera/color/image_raw",
        "/robot1/camera/aligned_depth_to_color/image_raw",
    )
    # the rig's reliable publishers: subscribed reliable (no frame lost to UDP fragments), masks
    # published under the node's namespace
    assert node.input_reliability()[color] == node.input_reliability()[depth] == "reliable"
    send_and_wait(rig, "robot1/camera", t.next())
    # a best-effort publisher appears on the same topics: the node follows it (a reliable
    # subscription would not match it), and its frames come back as masks
    stamp = handshake(
        rig, "robot1/camera", color="color_small", depth="depth_small", reliability="best_effort"
    )
    assert node.input_reliability()[color] == node.input_reliability()[depth] == "best_effort"
    mask = rig["outputs"]["robot1/camera"].masks[round(stamp, 6)]
    assert (mask.height, mask.width) == (240, 320)
    send_and_wait(
        rig, "robot1/camera", t.next(), color="color_small", depth="depth_small"
    )  # and the reliable one


def test_pairs_arriving_back_to_back_leave_the_newest_and_count_as_a_burst(rig):
    from unittest import mock

    node, t, outputs = rig["single"], rig["time"], rig["outputs"]["camera"]
    send_and_wait(rig, "camera", t.next())
    before = node.counters("camera")
    first, second = t.next(), t.next()
    with mock.patch.object(
        node._cond, "notify", lambda *args: None
    ):  # the worker sleeps through both
        rig["camera"].pair("camera", first)
        rig["camera"].pair("camera", second)
        counter_after(node, "camera", "pairs", before["pairs"] + 2)
    with node._cond:
        node._cond.notify_all()
    wait_for(lambda: outputs.masks.get(round(second, 6)), "the newest pair's mask")
    after = counter_after(node, "camera", "published", before["published"] + 1)
    assert after["dropped"] == before["dropped"] + 1
    assert (
        after["dropped_in_burst"] == before["dropped_in_burst"] + 1
    )  # the worker was idle: not the model's fault
    assert round(first, 6) not in outputs.masks


def test_an_error_in_the_worker_is_counted_and_the_worker_goes_on(rig):
    node, t = rig["single"], rig["time"]
    outputs = node.image_outputs["camera"]
    mask_publisher = outputs.mask

    class Broken:
        def get_subscription_count(self):
            return 1

        def publish(self, msg):
            raise RuntimeError("injected publish failure")

    before = node.counters("camera")
    outputs.mask = Broken()
    try:
        rig["camera"].pair("camera", t.next())
        counter_after(node, "camera", "worker_errors", before["worker_errors"] + 1)
    finally:
        outputs.mask = mask_publisher
    send_and_wait(rig, "camera", t.next())
    assert node.counters("camera")["published"] == before["published"] + 1


def test_threshold_is_the_only_parameter_that_changes_at_run_time(rig):
    from rclpy.parameter import Parameter

    node = rig["single"]
    assert node.set_parameters([Parameter("threshold", value=1.5)])[0].successful is False
    assert node.set_parameters([Parameter("sync_slop_s", value=0.1)])[0].successful is False
    assert node.set_parameters([Parameter("threshold", value=0.6)])[0].successful
    assert node.runtime.config.threshold == 0.6
    assert node.set_parameters([Parameter("threshold", value=0.5)])[0].successful


if __name__ == "__main__" and sys.argv[1:] == ["--publisher"]:
    publisher_main()
