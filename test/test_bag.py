"""Bags written by make-bag and BagWriter, read back with rosbags itself: messages, encodings,
stamps.

.venv/bin/python -m pytest -q test/test_bag.py
"""

import os
import subprocess
import sys
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import Reader

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.evaluation.bags import (
    STORAGES,
    BagError,
    BagWriter,
    bag_info,
    read_bag,
    typestore,
)
from rgbd_saliency_ros.evaluation.calibration import CameraIntrinsics
from rgbd_saliency_ros.evaluation.make_bag import MakeBagOptions, make_bag
from rgbd_saliency_ros.runtime.images import image_array
from rgbd_saliency_ros.runtime.depth import (
    DepthConversion,
    decode_ros_depth,
    depth_to_model_input,
    read_tum_depth,
)

START_NS = 1_700_000_000 * 10**9


def _frames(i: int):
    """rgb8 (6, 8, 3), 16UC1 (6, 8) mm with a hole, 32FC1 (6, 8) m with NaN, mono8 0/255."""
    gen = np.random.default_rng(i)
    rgb = gen.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    mm = gen.integers(300, 9000, (6, 8)).astype(np.uint16)
    mm[0, 0] = 0
    metres = (mm / 1000.0).astype(np.float32)
    metres[0, 0] = np.nan
    mask = np.where(gen.random((6, 8)) > 0.5, 255, 0).astype(np.uint8)
    return rgb, mm, metres, mask


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip_through_rosbags(tmp_path, storage):
    path = tmp_path / "bag"
    camera = CameraIntrinsics.from_hfov(8, 6, 90.0)
    with BagWriter(path, storage) as bag:
        for i in range(5):
            stamp = START_NS + i * 100_000_000
            rgb, mm, metres, mask = _frames(i)
            bag.write_image("/color", stamp, rgb, "rgb8", "cam")
            bag.write_image("/depth_mm", stamp, mm, "16UC1", "cam")
            bag.write_image("/depth_m", stamp, metres, "32FC1", "cam")
            bag.write_image("/gt", stamp, mask, "mono8", "cam")
            bag.write_camera_info("/info", stamp, camera, "cam")

    # Read with rosbags' own reader and typestore: what any rosbag2 tool would see.
    store = typestore("humble")
    seen = {}
    with Reader(path) as reader:
        assert {c.topic: c.msgtype for c in reader.connections} == {
            "/color": "sensor_msgs/msg/Image",
            "/depth_mm": "sensor_msgs/msg/Image",
            "/depth_m": "sensor_msgs/msg/Image",
            "/gt": "sensor_msgs/msg/Image",
            "/info": "sensor_msgs/msg/CameraInfo",
        }
        for connection, log_time, raw in reader.messages():
            msg = store.deserialize_cdr(raw, connection.msgtype)
            assert msg.header.frame_id == "cam"
            assert msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec == log_time
            seen.setdefault(connection.topic, []).append((log_time, msg))
    assert all(len(v) == 5 for v in seen.values())
    for i in range(5):
        rgb, mm, metres, mask = _frames(i)
        stamp = START_NS + i * 100_000_000
        color = seen["/color"][i][1]
        assert seen["/color"][i][0] == stamp
        assert (color.encoding, color.height, color.width, color.step, color.is_bigendian) == (
            "rgb8",
            6,
            8,
            24,
            0,
        )
        np.testing.assert_array_equal(color.data.reshape(6, 8, 3), rgb)
        depth = seen["/depth_mm"][i][1]
        assert (depth.encoding, depth.step) == ("16UC1", 16)
        np.testing.assert_array_equal(image_array(depth), mm)
        depth_m = seen["/depth_m"][i][1]
        assert (depth_m.encoding, depth_m.step) == ("32FC1", 32)
        np.testing.assert_array_equal(image_array(depth_m), metres)  # NaN == NaN here
        gt = seen["/gt"][i][1]
        assert gt.encoding == "mono8"
        np.testing.assert_array_equal(image_array(gt), mask)
    info = seen["/info"][0][1]
    assert (info.width, info.height, info.distortion_model) == (8, 6, "plumb_bob")
    np.testing.assert_allclose(info.k, [4.0, 0, 3.5, 0, 4.0, 2.5, 0, 0, 1])

    # And through this package's reader, in log-time order.
    messages = list(read_bag(path, ["/color", "/gt"]))
    assert [m.topic for m in messages] == ["/color", "/gt"] * 5
    assert bag_info(path).topics["/color"] == ("sensor_msgs/msg/Image", 5)


def test_image_array_reads_padded_and_big_endian_rows():
    values = np.arange(12, dtype=np.uint16).reshape(3, 4) * 1000
    rows = np.zeros((3, 10), np.uint8)  # 8 bytes of pixels + 2 of padding per row
    rows[:, :8] = values.astype(">u2").view(np.uint8).reshape(3, 8)
    msg = SimpleNamespace(
        height=3, width=4, encoding="16UC1", is_bigendian=1, step=10, data=rows.tobytes()
    )
    np.testing.assert_array_equal(image_array(msg), values)
    with pytest.raises(ValueError, match="truncated"):
        image_array(SimpleNamespace(**{**vars(msg), "data": rows.tobytes()[:-5]}))
    with pytest.raises(ValueError, match="unsupported encoding"):
        image_array(SimpleNamespace(**{**vars(msg), "encoding": "yuv422"}))


def test_make_bag_from_relative_depth_recovers_it(tmp_path, shared_path):
    data = shared_path("data", "ssd_rgbd_sod")
    made = make_bag(
        data / "rgb",
        data / "depth",
        tmp_path / "bag",
        data / "gt",
        MakeBagOptions(rate_hz=10.0, storage="mcap"),
        hfov_deg=69.0,
        progress=False,
    )
    assert made.frames == 3 and "PSEUDO-metric" in made.depth_note
    metadata = yaml.safe_load((tmp_path / "bag" / "metadata.yaml").read_text())
    assert (
        "PSEUDO-metric"
        in metadata["rosbag2_bagfile_information"]["custom_data"]["rgbd_saliency.depth"]
    )
    by_topic = {}
    for m in read_bag(tmp_path / "bag"):
        by_topic.setdefault(m.topic, []).append(m)
    assert sorted(by_topic) == [
        "/camera/aligned_depth_to_color/image_raw",
        "/camera/color/camera_info",
        "/camera/color/image_raw",
        "/ground_truth/mask",
    ]
    names = sorted(p.stem for p in (data / "depth").iterdir())
    for i, name in enumerate(names):
        stamps = {topic: msgs[i].msg.header.stamp for topic, msgs in by_topic.items()}
        assert {(s.sec, s.nanosec) for s in stamps.values()} == {(1_700_000_000, i * 100_000_000)}
        depth_msg = by_topic["/camera/aligned_depth_to_color/image_raw"][i].msg
        assert depth_msg.encoding == "16UC1"
        relative = cv2.imread(str(data / "depth" / f"{name}.png"), cv2.IMREAD_GRAYSCALE) / 255.0
        # The runtime's default conversion turns the pseudo-metres back into the file's values.
        back = depth_to_model_input(
            decode_ros_depth(image_array(depth_msg), "16UC1"), DepthConversion()
        )
        assert np.abs(back - relative).max() < 1e-3
        rgb = cv2.cvtColor(cv2.imread(str(data / "rgb" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image_array(by_topic["/camera/color/image_raw"][i].msg), rgb)
        gt = image_array(by_topic["/ground_truth/mask"][i].msg)
        assert set(np.unique(gt)) <= {0, 255} and gt.shape == rgb.shape[:2]


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_make_bag_metric_depth_is_rep118(tmp_path, shared_path, encoding):
    data = shared_path("data", "rgbd_encodings")
    for sub in ("rgb", "depth"):
        (tmp_path / sub).mkdir()
    os.symlink(data / "TUM_color.png", tmp_path / "rgb" / "0.png")
    os.symlink(data / "TUM_depth.png", tmp_path / "depth" / "0.png")
    code = cli_main(
        [
            "make-bag",
            "--rgb-dir",
            str(tmp_path / "rgb"),
            "--depth-dir",
            str(tmp_path / "depth"),
            "--out",
            str(tmp_path / "bag"),
            "--depth-format",
            "tum",
            "--depth-encoding",
            encoding,
        ]
    )
    assert code == 0
    [msg] = [
        m.msg for m in read_bag(tmp_path / "bag", ["/camera/aligned_depth_to_color/image_raw"])
    ]
    assert msg.encoding == encoding
    expected = read_tum_depth(data / "TUM_depth.png")
    decoded = decode_ros_depth(image_array(msg), encoding)
    np.testing.assert_array_equal(np.isnan(decoded), np.isnan(expected))
    np.testing.assert_allclose(
        decoded, expected, atol=0.0006 if encoding == "16UC1" else 0, equal_nan=True
    )


def test_make_bag_refuses_mismatched_folders_and_existing_output(tmp_path, shared_path):
    data = shared_path("data", "ssd_rgbd_sod")
    (tmp_path / "two").mkdir()
    for p in sorted((data / "gt").iterdir())[:2]:
        os.symlink(p, tmp_path / "two" / p.name)
    with pytest.raises(ValueError, match="has 2 images"):
        make_bag(data / "rgb", data / "depth", tmp_path / "bag", tmp_path / "two", progress=False)
    (tmp_path / "exists").mkdir()
    assert (
        cli_main(
            [
                "make-bag",
                "--rgb-dir",
                str(data / "rgb"),
                "--depth-dir",
                str(data / "depth"),
                "--out",
                str(tmp_path / "exists"),
            ]
        )
        == 2
    )


def test_unreadable_bags_give_clear_errors(tmp_path):
    with pytest.raises(BagError, match="no such bag"):
        list(read_bag(tmp_path / "missing"))
    path = tmp_path / "bag"
    with BagWriter(path, "sqlite3") as bag:
        for i in range(3):
            bag.write_image("/color", START_NS + i, np.zeros((64, 64, 3), np.uint8), "rgb8", "cam")
    db = next(path.glob("*.db3"))
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(BagError, match="cannot open the bag"):
        list(read_bag(path))


def test_offline_tools_import_no_rclpy(repo_root):
    """make-bag and the offline replay run without ROS: only --live needs rclpy."""
    code = (
        "import sys, rgbd_saliency_ros.evaluation.replay, rgbd_saliency_ros.evaluation.make_bag; "
        "print([m for m in ('rclpy', 'sensor_msgs') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("storage", STORAGES)
def test_bag_without_metadata_yaml_names_the_missing_file(tmp_path, storage):
    path = tmp_path / "bag"
    with BagWriter(path, storage) as bag:
        bag.write_image("/color", START_NS, np.zeros((6, 8, 3), np.uint8), "rgb8", "cam")
    (path / "metadata.yaml").unlink()
    if storage == "mcap":  # the MCAP file describes itself: read record by record
        assert [m.topic for m in read_bag(path)] == ["/color"]
        return
    with pytest.raises(BagError) as caught:
        list(read_bag(path))
    assert str(path / "metadata.yaml") in str(caught.value) and "missing" in str(caught.value)


def test_mcap_chunks_carry_crcs_that_readers_check(tmp_path):
    """make-bag's MCAP chunks carry the CRC32 of their records (rosbags writes 0: unchecked)."""
    import zlib

    from rgbd_saliency_ros.evaluation.mcap_files import chunk_parts, chunk_records

    path = tmp_path / "bag"
    gen = np.random.default_rng(0)
    with BagWriter(path, "mcap") as bag:
        for i in range(6):  # about 0.5 MiB each: several chunks
            pixels = gen.integers(0, 256, (256, 640, 3), np.uint8)
            bag.write_image("/color", START_NS + i, pixels, "rgb8", "cam")
    mcap = next(path.glob("*.mcap"))
    with open(mcap, "rb") as f:
        chunks = list(chunk_records(f))
    assert len(chunks) >= 2
    for _, body in chunks:
        size, crc, records = chunk_parts(body)
        assert crc != 0 and crc == zlib.crc32(records) and len(records) == size
    # 64 bytes flipped inside the second chunk: rosbags' own reader refuses that chunk
    offset, body = chunks[1]
    data = bytearray(mcap.read_bytes())
    middle = offset + 9 + len(body) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    mcap.write_bytes(bytes(data))
    with pytest.raises(Exception, match="checksum"):
        with Reader(path) as reader:
            list(reader.messages())
    with pytest.raises(BagError, match="1 of its .* MCAP chunks fail their CRC") as caught:
        list(read_bag(path))
    assert caught.value.damaged_chunks == 1 and 1 <= caught.value.messages_read < 6
