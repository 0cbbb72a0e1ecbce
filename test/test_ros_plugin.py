"""Models with a growing per-stream state through the node over real rclpy, several streams each:
the plug-in that only the tests define (``plugin_model.DepthEcho``) and SAM-DAQ's memory-bank
baseline. Frames come from another process (test_ros_node's publisher); every stream must be
answered, and the plug-in's masks must be what ``SaliencyRuntime`` gives offline.

    .venv/bin/python -m pytest -q test/test_ros_plugin.py
"""

import numpy as np
import pytest
import conftest
from conftest import seeded, wait_for
from plugin_model import DepthEcho, EchoConfig
from test_ros_node import Camera, Outputs, Timeline, handshake

from rgbd_saliency_ros.evaluation.node_process import private_ros_env
from rgbd_saliency_ros.model import register_model, save_weights

register_model(DepthEcho)

ECHO_STREAMS = ("left", "middle", "right")
BANK_STREAMS = ("front", "back")


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """Two nodes (the plug-in on three cameras, the memory bank on two), a probe, the camera."""
    conftest.find_shared("data", "rgbd_encodings")
    import rclpy
    from rclpy.parameter import Parameter

    from rgbd_saliency_ros.model.random_weights import write_random_weights
    from rgbd_saliency_ros.ros.node import SaliencyNode

    folder = tmp_path_factory.mktemp("weights")
    with seeded(3):
        echo = DepthEcho(EchoConfig(input_size=64)).eval()
    save_weights(echo, folder / "echo.safetensors")
    with seeded(3):
        save_weights(DepthEcho(EchoConfig(input_size=64, nan_at=2)), folder / "faulty.safetensors")
    sam2, bank = write_random_weights(folder, input_size=64, temporal="memory_bank")
    domain = conftest.private_domain(170)
    with conftest.private_ros_context(domain) as context:
        common = dict(max_image_pixels=640 * 480, reset_timeout_s=1.0)
        echo_node = SaliencyNode(
            context=context,
            parameter_overrides=conftest.node_parameters("", folder / "echo.safetensors", **common)
            + [Parameter("streams", value=list(ECHO_STREAMS))],
            cli_args=["--ros-args", "-r", "__node:=saliency_echo"],
        )
        quiet_node = SaliencyNode(  # nobody listens to it until a test does
            context=context,
            parameter_overrides=conftest.node_parameters("", folder / "echo.safetensors", **common)
            + [Parameter("streams", value=["quiet"])],
            cli_args=["--ros-args", "-r", "__node:=saliency_quiet"],
        )
        faulty_node = SaliencyNode(  # its model's state goes non-finite after two frames
            context=context,
            parameter_overrides=conftest.node_parameters(
                "", folder / "faulty.safetensors", output_namespace="faulty_out", **common
            )
            + [Parameter("streams", value=["faulty"])],
            cli_args=["--ros-args", "-r", "__node:=saliency_faulty"],
        )
        bank_node = SaliencyNode(
            context=context,
            parameter_overrides=conftest.node_parameters(sam2, bank, **common)
            + [Parameter("streams", value=list(BANK_STREAMS))],
            cli_args=["--ros-args", "-r", "__node:=saliency_bank"],
        )
        for node in (echo_node, bank_node, quiet_node, faulty_node):
            node.start()
        probe = rclpy.create_node("probe", context=context)
        outputs = {ns: Outputs(probe, f"/saliency/{ns}") for ns in ECHO_STREAMS + BANK_STREAMS}
        outputs["faulty"] = Outputs(probe, "/faulty_out")
        nodes = (echo_node, bank_node, quiet_node, faulty_node)
        with conftest.spinning(context, *nodes, probe):
            camera = Camera(private_ros_env(domain))
            rig = dict(
                echo=echo,
                nodes={
                    **dict.fromkeys(ECHO_STREAMS, echo_node),
                    **dict.fromkeys(BANK_STREAMS, bank_node),
                    "faulty": faulty_node,
                },
                outputs=outputs,
                quiet=quiet_node,
                probe=probe,
                camera=camera,
                time=Timeline(),
            )
            try:
                for ns in outputs:
                    handshake(rig, ns)
                yield rig
            finally:
                camera.close()


def send_all_and_wait(rig, streams, stamp):
    """One pair to each stream at ``stamp`` (sent back to back), then every stream's mask."""
    for ns in streams:
        rig["camera"].pair(ns, stamp)
    for ns in streams:
        try:
            wait_for(lambda ns=ns: rig["outputs"][ns].masks.get(round(stamp, 6)), f"{ns} {stamp}")
        except AssertionError as e:  # say what the node saw: pairs, drops, errors
            raise AssertionError(f"{e}; counters: {rig['nodes'][ns].counters(ns)}") from None


@pytest.mark.parametrize("streams", [ECHO_STREAMS, BANK_STREAMS], ids=["plugin", "memory_bank"])
def test_every_stream_of_a_growing_state_model_is_answered(rig, streams):
    t = rig["time"]
    start = t.gap()  # every stream restarts: the states grow from empty again
    stamps = [start] + [t.next() for _ in range(4)]
    for i, stamp in enumerate(stamps):
        # streams join one by one, so that their states differ in length (they cannot batch)
        send_all_and_wait(rig, streams[: i + 1], stamp)
    node = rig["nodes"][streams[0]]
    for ns in streams:
        counts = node.counters(ns)
        assert counts["step_errors"] == 0 and counts["published"] >= len(stamps) - 2
        assert np.isfinite(counts["query_norm"])


def test_the_plugins_masks_through_the_node_are_the_runtimes(rig):
    """The node's probabilities for one stream equal SaliencyRuntime's on the same frames and
    stamps: the node adds nothing of its own to a model it does not know."""
    from rgbd_saliency_ros.runtime.backends.torch_backend import TorchBackend
    from rgbd_saliency_ros.runtime.saliency import FramePair, SaliencyRuntime

    t, ns = rig["time"], "middle"
    stamps = [t.gap()] + [t.next() for _ in range(5)]
    for stamp in stamps:
        send_all_and_wait(rig, (ns,), stamp)
    runtime = SaliencyRuntime(TorchBackend(rig["echo"]))
    rgb, _, metres = conftest.tum_rgbd()
    for stamp in stamps:
        [offline] = runtime.run([runtime.prepare(FramePair(ns, stamp, rgb, metres))])
        online = rig["outputs"][ns].probability(stamp)
        np.testing.assert_allclose(online, offline.probability, rtol=0, atol=1e-5)
    assert runtime.memory.peek(ns)["history"].shape == (4, 2)  # it grew to its cap


def test_a_stream_nobody_listens_to_is_not_computed_and_its_memory_restarts_on_return(rig):
    """As depth_image_proc: no subscriber to any of a stream's outputs, no step (pairs counted as
    unheard). A subscriber that arrives later gets masks from the next pair on; the memory
    continues if the last computed frame is within reset_timeout_s, else it restarts."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from rgbd_saliency_ros.ros.conversions import stamp_to_s

    node, camera, t = rig["quiet"], rig["camera"], rig["time"]
    for _ in range(3):
        camera.pair("quiet", t.next())
    counts = wait_for(
        lambda: node.counters("quiet")["pairs"] >= 3 and node.counters("quiet"), "3 pairs"
    )
    assert counts["unheard"] == counts["pairs"] and counts["published"] == 0
    assert node.runtime.memory.streams() == []  # the model never ran for it

    masks = {}
    qos = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)

    def keep(msg):
        masks[stamp_to_s(msg.header.stamp)] = msg

    topic = node.image_outputs["quiet"].mask.topic_name  # one stream: /saliency/mask
    subscription = rig["probe"].create_subscription(Image, topic, keep, qos)
    try:
        wait_for(lambda: node.image_outputs["quiet"].listening(), "the subscriber matched")
        for _ in range(10):  # the first frames after matching may be lost to discovery
            camera.pair("quiet", t.next())
            if masks:
                break
        wait_for(lambda: masks, "a mask once someone listens")
        counts = wait_for(
            lambda: node.counters("quiet")["published"] >= 1 and node.counters("quiet"),
            "published",
        )
        assert counts["reset.new_stream"] == 1  # the memory starts with the first computed frame
        camera.pair("quiet", t.next())  # within reset_timeout_s: the memory continues
        wait_for(
            lambda: node.counters("quiet")["published"] >= counts["published"] + 1, "continued"
        )
        assert node.counters("quiet")["reset.timeout"] == 0
        camera.pair("quiet", t.gap())  # a long silence: the memory restarts
        wait_for(lambda: node.counters("quiet")["reset.timeout"] == 1, "restart after a gap")
    finally:
        rig["probe"].destroy_subscription(subscription)


def test_a_state_gone_bad_restarts_the_stream_and_shows_in_the_counters(rig):
    """The model itself writes a non-finite state (nan_at=2, as a faulty device would): the
    runtime drops it, the gauge shows it (NaN), and the stream restarts at its next frame,
    counted as reset.bad_state; driven through topics only."""
    node, t = rig["nodes"]["faulty"], rig["time"]
    before = node.counters("faulty")
    stamps = [t.gap(), t.next(), t.next()]  # histories of 0, 1, 2 rows: the third step is bad
    for stamp in stamps:
        send_all_and_wait(rig, ("faulty",), stamp)
    counts = wait_for(
        lambda: (
            node.counters("faulty")["published"] >= before["published"] + 3
            and node.counters("faulty")
        ),
        "three frames counted",
    )
    assert np.isnan(counts["query_norm"])
    send_all_and_wait(rig, ("faulty",), t.next())
    after = wait_for(
        lambda: (
            node.counters("faulty")["reset.bad_state"] > before["reset.bad_state"]
            and node.counters("faulty")
        ),
        "the restart counted",
    )
    assert after["reset.bad_state"] == before["reset.bad_state"] + 1
    assert 0 <= after["query_norm"] <= 2**0.5 * 1.01  # healthy again
