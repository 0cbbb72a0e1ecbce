"""Damaged bags of both storages through the offline replay: each is reported, what came before the
damage is kept, metrics.json says ``"complete": false`` (or the bag is refused with a message
naming what is wrong), and nothing passes unseen.

    .venv/bin/python -m pytest -q test/test_damaged_bags.py

Bags of TUM RGB-D's real 640x480 pair, 6 frames at 10 Hz; make-bag's MCAP writer closes a chunk
after about 1 MiB, so each pair has its own chunk. Random weights at input 64.
"""

import json
import os
import shutil

import numpy as np
import pytest

from rgbd_saliency_ros.cli import main as cli_main
from rgbd_saliency_ros.evaluation.bags import STORAGES, BagError, BagWriter
from rgbd_saliency_ros.evaluation.mcap_files import chunk_records
from rgbd_saliency_ros.evaluation.replay import ReplayOptions, replay_bag

FRAMES = 6
START_NS = 1_700_000_000 * 10**9


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """storage -> a sound bag of FRAMES TUM pairs."""
    from conftest import find_shared

    from rgbd_saliency_ros.benchmarks.node import tum_frames

    find_shared("data", "rgbd_encodings")
    rgb, mm = tum_frames()
    out = {}
    for storage in STORAGES:
        path = tmp_path_factory.mktemp("bags") / storage
        with BagWriter(path, storage) as bag:
            for i in range(FRAMES):
                stamp = START_NS + i * 100_000_000
                bag.write_image("/camera/color/image_raw", stamp, rgb, "rgb8", "cam")
                bag.write_image(
                    "/camera/aligned_depth_to_color/image_raw", stamp, mm, "16UC1", "cam"
                )
        out[storage] = path
    return out


def _data_file(bag):
    return next(p for p in bag.iterdir() if p.suffix in (".mcap", ".db3"))


def _flip_in_chunk(bag, index: int) -> None:
    """64 bytes inverted in the middle of chunk ``index`` (its records, not its framing)."""
    mcap = _data_file(bag)
    with open(mcap, "rb") as f:
        offset, body = list(chunk_records(f))[index]
    data = bytearray(mcap.read_bytes())
    middle = offset + 9 + len(body) // 2
    data[middle : middle + 64] = bytes(b ^ 0xFF for b in data[middle : middle + 64])
    mcap.write_bytes(bytes(data))


def _truncate(bag, fraction: float) -> None:
    data = _data_file(bag)
    os.truncate(data, int(data.stat().st_size * fraction))


def _overwrite_start(bag) -> None:
    data = _data_file(bag)
    with open(data, "r+b") as f:
        f.write(b"\x00" * 128)


# (storage, damage, what the error says, pairs processed before it, damaged chunks); processed
# None: the bag cannot be opened at all (no output written).
CASES = [
    ("mcap", lambda b: _flip_in_chunk(b, 3), "fail their CRC", 3, 1),
    ("mcap", lambda b: (_flip_in_chunk(b, 1), _flip_in_chunk(b, 4)), "2 of its 6 MCAP", 1, 2),
    ("mcap", lambda b: _truncate(b, 0.6), "truncated", 3, 1),  # the chunk cut in two
    ("mcap", _overwrite_start, "cannot open the bag", None, 0),
    ("sqlite3", lambda b: (b / "metadata.yaml").unlink(), "metadata.yaml: missing", None, 0),
    ("sqlite3", lambda b: _truncate(b, 0.5), "cannot open the bag", None, 0),
    ("sqlite3", _overwrite_start, "cannot open the bag", None, 0),
    ("sqlite3", lambda b: [p.unlink() for p in b.iterdir()], "metadata.yaml: missing", None, 0),
]


@pytest.mark.parametrize(
    "storage, damage, phrase, processed, chunks",
    CASES,
    ids=[
        "mcap-flipped",
        "mcap-two-flipped",
        "mcap-truncated",
        "mcap-bad-start",
        "sqlite3-no-metadata",
        "sqlite3-truncated",
        "sqlite3-bad-start",
        "sqlite3-empty",
    ],
)
def test_damage_is_reported_and_what_came_before_is_kept(
    tmp_path, bags, random_backend_64, storage, damage, phrase, processed, chunks
):
    bag = tmp_path / "bag"
    shutil.copytree(bags[storage], bag)
    damage(bag)
    out = tmp_path / "out"
    with pytest.raises(BagError, match=phrase) as caught:
        replay_bag(bag, out, random_backend_64, ReplayOptions(progress=False, video=False))
    assert str(bag) in str(caught.value)
    if processed is None:
        assert not (out / "metrics.json").exists()
        return
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["complete"] is False and phrase in summary["error"]
    assert summary["processed"] == processed == len(list((out / "masks").iterdir()))
    assert summary["damaged_chunks"] == chunks


def test_a_sound_bag_replays_complete_and_the_command_says_damage_with_status_2(
    tmp_path, bags, random_backend_64, random_weights_64, capsys
):
    options = ReplayOptions(progress=False, video=False)
    summary = replay_bag(bags["mcap"], tmp_path / "mcap", random_backend_64, options)
    assert summary["complete"] is True and summary["processed"] == FRAMES
    assert summary["damaged_chunks"] == 0
    damaged = tmp_path / "damaged"
    shutil.copytree(bags["mcap"], damaged)
    _flip_in_chunk(damaged, 3)
    code = cli_main(
        [
            "replay",
            "--bag",
            str(damaged),
            "--out",
            str(tmp_path / "cli"),
            "--sam2-checkpoint",
            random_weights_64[0],
            "--weights",
            random_weights_64[1],
            "--no-video",
        ]
    )
    assert code == 2
    assert "fail their CRC" in capsys.readouterr().err
    masks = sorted((tmp_path / "cli" / "masks").iterdir())
    assert len(masks) == 3
    # what came before the damage is the same as from the sound bag
    for mask in masks:
        sound = tmp_path / "mcap" / "masks" / mask.name
        assert np.array_equal(np.fromfile(mask, np.uint8), np.fromfile(sound, np.uint8))
