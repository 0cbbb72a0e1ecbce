"""Bags recorded with compressed topics: make-bag --compressed writes what image_transport would
record, rosbags reads it back, and the offline replay gives the masks of the raw twin.

    .venv/bin/python -m pytest -q test/test_compressed_bag.py
"""

import cv2
import numpy as np
import pytest
from conftest import private_domain, small_ssd
from rosbags.rosbag2 import Reader

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.evaluation.bags import BagWriter, read_bag, typestore
from rgbd_saliency_ros.evaluation.replay import ReplayOptions, replay_bag
from rgbd_saliency_ros.runtime.compressed import decode_color, decode_depth, encode_depth
from rgbd_saliency_ros.runtime.images import image_array

COLOR, DEPTH = "/camera/color/image_raw", "/camera/aligned_depth_to_color/image_raw"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"


def make(frames, out, *extra):
    args = [
        "make-bag",
        "--rgb-dir",
        str(frames / "rgb"),
        "--depth-dir",
        str(frames / "depth"),
        "--gt-dir",
        str(frames / "gt"),
        "--out",
        str(out),
        "--rate",
        "10",
        *extra,
    ]
    assert cli_main(args) == 0


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_make_bag_compressed_writes_image_transport_topics(tmp_path, storage):
    frames = small_ssd(tmp_path / "frames")
    make(frames, tmp_path / "raw", "--storage", storage)
    make(frames, tmp_path / "png", "--storage", storage, "--compressed", "png")
    # rosbags' own reader and typestore: what any rosbag2 tool sees
    store, seen = typestore("humble"), {}
    with Reader(tmp_path / "png") as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        for connection, log_time, raw in reader.messages():
            msg = store.deserialize_cdr(raw, connection.msgtype)
            seen.setdefault(connection.topic, []).append(msg)
    assert types[COLOR + "/compressed"] == types[DEPTH + "/compressedDepth"] == COMPRESSED_TYPE
    assert COLOR not in types and DEPTH not in types
    raw = {}
    for m in read_bag(tmp_path / "raw", [COLOR, DEPTH]):
        raw.setdefault(m.topic, []).append(m.msg)
    for i in range(3):
        color, depth = seen[COLOR + "/compressed"][i], seen[DEPTH + "/compressedDepth"][i]
        assert (
            color.format == "rgb8; png compressed bgr8"
            and depth.format == "16UC1; compressedDepth"
        )
        assert color.header == raw[COLOR][i].header and depth.header == raw[DEPTH][i].header
        # PNG color is the raw twin's pixels; 16UC1 compressedDepth its millimetres, bit for bit
        np.testing.assert_array_equal(
            decode_color(color.format, color.data, 10**6), image_array(raw[COLOR][i])
        )
        pixels, encoding = decode_depth(depth.format, depth.data, 10**6)
        np.testing.assert_array_equal(pixels, image_array(raw[DEPTH][i]))
        assert encoding == "16UC1"


def test_make_bag_compressed_jpeg_and_32fc1(tmp_path):
    frames = small_ssd(tmp_path / "frames")
    make(
        frames,
        tmp_path / "bag",
        "--compressed",
        "--depth-encoding",
        "32FC1",
        "--jpeg-quality",
        "80",
    )
    made = {m.topic: m.msg for m in read_bag(tmp_path / "bag")}
    color, depth = made[COLOR + "/compressed"], made[DEPTH + "/compressedDepth"]
    assert (
        color.format == "rgb8; jpeg compressed bgr8" and bytes(color.data[:3]) == b"\xff\xd8\xff"
    )
    assert depth.format == "32FC1; compressedDepth"
    assert decode_depth(depth.format, depth.data, 10**6)[0].dtype == np.float32


def _twin_masks(tmp_path, name, bag, backend):
    out = tmp_path / f"out_{name}"
    summary = replay_bag(
        bag, out, backend, ReplayOptions(progress=False, video=False, probabilities=True)
    )
    masks = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((out / "masks").iterdir())]
    probs = [
        cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((out / "probabilities").iterdir())
    ]
    return summary, masks, probs


def test_compressed_bag_replays_to_the_masks_of_its_raw_twin(tmp_path, random_backend_64):
    frames = small_ssd(tmp_path / "frames")
    make(frames, tmp_path / "compressed", "--compressed", "png")  # lossless color and depth
    make(frames, tmp_path / "raw")
    # the topics are found under image_transport's names without being given
    compressed = _twin_masks(tmp_path, "compressed", tmp_path / "compressed", random_backend_64)
    raw = _twin_masks(tmp_path, "raw", tmp_path / "raw", random_backend_64)
    assert compressed[0]["processed"] == raw[0]["processed"] == 3
    assert compressed[0]["bad_input"] == {}
    assert len(compressed[1]) == len(raw[1]) == len(compressed[2]) == len(raw[2]) == 3
    for got, expected in zip(compressed[1] + compressed[2], raw[1] + raw[2]):
        np.testing.assert_array_equal(got, expected)
    assert any(p.any() for p in raw[2])  # not all zero: the comparison means something


def test_replay_counts_lossy_and_broken_compressed_depth(tmp_path, shared_path, random_backend_64):
    from rgbd_saliency_ros.runtime.compressed import encode_color

    rgb = cv2.resize(
        cv2.imread(str(shared_path("data", "rgbd_encodings", "TUM_color.png"))), (64, 48)
    )
    mm = np.full((48, 64), 1500, np.uint16)
    good_depth = encode_depth(mm, "16UC1")
    lossy = (
        "16UC1; jpeg compressed mono8",
        cv2.imencode(".jpg", (mm >> 4).astype(np.uint8))[1].tobytes(),
    )
    with BagWriter(tmp_path / "bag") as bag:
        for i, depth in enumerate(
            [good_depth, lossy, (good_depth[0], good_depth[1][:40]), good_depth]
        ):
            stamp = 1_700_000_000 * 10**9 + i * 100_000_000
            bag.write_compressed(
                COLOR + "/compressed", stamp, *encode_color(rgb[..., ::-1].copy()), "cam"
            )
            bag.write_compressed(DEPTH + "/compressedDepth", stamp, *depth, "cam")
    summary = replay_bag(
        tmp_path / "bag",
        tmp_path / "out",
        random_backend_64,
        ReplayOptions(progress=False, video=False),
    )
    assert summary["processed"] == 2
    assert summary["bad_input"] == {"lossy_depth": 1, "decode_failed": 1}


@pytest.mark.slow
def test_live_replay_of_a_compressed_bag_gives_the_raw_twins_masks(
    tmp_path, random_weights_64, monkeypatch
):
    """The node, started with the compressed transports, answers every frame of a compressed bag
    played live with the mask the offline replay gives for the raw twin. Frames 1 s apart and a
    0.5 s reset timeout: each mask starts a fresh memory, so a frame the node skips changes no
    other frame's mask."""
    import os

    from rgbd_saliency_ros.evaluation.live import LiveOptions, live_replay
    from rgbd_saliency_ros.evaluation.node_process import node_command, running
    from rgbd_saliency_ros.runtime.backends import create_backend
    from rgbd_saliency_ros.runtime.saliency import SaliencyConfig

    monkeypatch.setenv("ROS_DOMAIN_ID", str(private_domain(11)))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    frames = small_ssd(tmp_path / "frames")
    for name, extra in (("compressed", ["--compressed", "png"]), ("raw", [])):
        make(frames, tmp_path / name, "--rate", "1", *extra)
    sam2, weights = random_weights_64
    options = ReplayOptions(
        progress=False,
        video=False,
        probabilities=True,
        saliency=SaliencyConfig(reset_timeout_s=0.5),
    )
    replay_bag(
        tmp_path / "raw",
        tmp_path / "offline",
        create_backend("torch", sam2_checkpoint=sam2, weights=weights),
        options,
    )
    params = {
        "color_transport": "compressed",
        "depth_transport": "compressedDepth",
        "input_qos.reliability": "reliable",
        "reset_timeout_s": 0.5,
        "diagnostics_period_s": 0.5,
    }
    with running(node_command(sam2, weights, params, "warn"), env=dict(os.environ)) as node:
        summary = live_replay(
            tmp_path / "compressed",
            tmp_path / "live",
            options,
            LiveOptions(discovery_timeout_s=120.0, drain_timeout_s=15.0),
        )
        assert node.poll() is None, "the node died"
    assert summary["sent_color"] == summary["sent_depth"] == 3
    assert summary["node_counters"]["bad_input"] == summary["bad_input"] == {}
    live = sorted((tmp_path / "live" / "masks").iterdir())
    assert len(live) == summary["masks_received"] >= 2  # at 1 Hz the node keeps up
    _assert_same_outputs(tmp_path / "live", tmp_path / "offline", [path.name for path in live])


def _assert_same_outputs(got_dir, expected_dir, names):
    """The probabilities of ``names`` agree to one grey level; so do the masks, wherever the
    probability is not at the threshold.

    The node's process sums in another order than this one (its own torch threads): the
    probabilities agree to the last bits, so masks agree wherever the probability is not at the
    threshold (random weights leave much of the frame near 0.5)."""

    def read(folder, kind, name):
        return cv2.imread(str(folder / kind / name), cv2.IMREAD_UNCHANGED).astype(int)

    for name in names:
        got, expected = (
            read(got_dir, "probabilities", name),
            read(expected_dir, "probabilities", name),
        )
        assert np.abs(got - expected).max() <= 1
        settled = np.abs(expected - 127.5) > 2
        mask, expected_mask = read(got_dir, "masks", name), read(expected_dir, "masks", name)
        assert 0 < expected_mask.mean() < 255  # a mask with an inside and an outside
        np.testing.assert_array_equal(mask[settled], expected_mask[settled])
        assert settled.mean() > 0.5
