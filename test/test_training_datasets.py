"""Data set readers and the synthetic generator, on tiny layouts written in tmp_path.

.venv/bin/python -m pytest -q test/test_training_datasets.py
"""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch


from rgbd_saliency_ros.runtime.depth import DepthConversion
from rgbd_saliency_ros.model.contract import Preprocessing
from rgbd_saliency_ros.runtime.saliency import model_inputs
from training import synthetic
from training.datasets import (
    ClipDataset,
    DatasetSpec,
    DepthReading,
    LayoutError,
    find_videos,
    load_frame,
)


def write_video(
    folder: Path,
    names,
    dirs=("rgb", "depth", "gt"),
    gt_names=None,
    depth_dtype=np.uint8,
    rgb_suffix=".png",
    size=(24, 32),
):
    """A video of random frames: rgb (H, W, 3) uint8, depth uint8 or uint16, gt 0/255."""
    rng = np.random.default_rng(len(str(folder)))
    h, w = size
    rgb_dir, depth_dir, gt_dir = (folder / d for d in dirs)
    for d in (rgb_dir, depth_dir, gt_dir):
        d.mkdir(parents=True, exist_ok=True)
    for n in names:
        cv2.imwrite(
            str(rgb_dir / f"{n}{rgb_suffix}"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        )
        top = 255 if depth_dtype == np.uint8 else 65535
        cv2.imwrite(
            str(depth_dir / f"{n}.png"),
            rng.integers(1, top, (h, w), dtype=np.int64).astype(depth_dtype),
        )
    for n in names if gt_names is None else gt_names:
        cv2.imwrite(
            str(gt_dir / f"{n}.png"), np.where(rng.random((h, w)) > 0.5, 255, 0).astype(np.uint8)
        )


def test_generic_layout_frames_in_natural_order(tmp_path):
    write_video(tmp_path / "b_video", ["frame_10", "frame_9", "frame_11"])
    write_video(tmp_path / "a_video", ["0", "1"])
    videos = find_videos(DatasetSpec(root=str(tmp_path)))
    assert [v.name for v in videos] == ["a_video", "b_video"]
    assert [f.name for f in videos[1].frames] == ["frame_9", "frame_10", "frame_11"]


def test_rdvs_layout_and_its_synthetic_depth_folder(tmp_path):
    write_video(
        tmp_path / "train" / "v1",
        ["001", "002"],
        dirs=("rgb", "Depth", "ground-truth"),
        rgb_suffix=".jpg",
    )
    (tmp_path / "train" / "v1" / "SyntheticDepth").mkdir()
    for n in ("001", "002"):
        cv2.imwrite(
            str(tmp_path / "train" / "v1" / "SyntheticDepth" / f"{n}.png"),
            np.full((24, 32), 7, np.uint8),
        )
    videos = find_videos(DatasetSpec(root=str(tmp_path), layout="rdvs", split="train"))
    assert [f.rgb.suffix for f in videos[0].frames] == [".jpg", ".jpg"]
    assert videos[0].frames[0].depth.parent.name == "Depth"
    synth = find_videos(
        DatasetSpec(root=str(tmp_path), layout="rdvs", split="train", depth_dir="SyntheticDepth")
    )
    _, depth, _ = load_frame(synth[0].frames[0], 32, DepthReading())
    np.testing.assert_allclose(depth, 7 / 255, rtol=1e-6)
    with pytest.raises(LayoutError, match="needs a split"):
        find_videos(DatasetSpec(root=str(tmp_path), layout="rdvs"))


def test_vidsod100_layout(tmp_path):
    write_video(tmp_path / "test" / "v", ["a", "b", "c"])
    videos = find_videos(DatasetSpec(root=str(tmp_path), layout="vidsod100", split="test"))
    assert len(videos) == 1 and len(videos[0].frames) == 3


def test_dvisal_split_files_and_frames_with_gt_only(tmp_path):
    data = tmp_path / "data"
    write_video(
        data / "s1",
        [f"{i:03d}" for i in range(6)],
        dirs=("RGB", "Depth", "GT"),
        rgb_suffix=".jpg",
        gt_names=["000", "003", "005"],
    )
    write_video(data / "s2", ["000", "001"], dirs=("RGB", "Depth", "GT"))
    (tmp_path / "train.txt").write_text("s1\n\n")
    (tmp_path / "test_all.txt").write_text("s2\n")
    videos = find_videos(DatasetSpec(root=str(tmp_path), layout="dvisal", split="train"))
    assert [v.name for v in videos] == ["s1"]
    assert [f.name for f in videos[0].frames] == ["000", "003", "005"] and videos[
        0
    ].total_frames == 6
    with pytest.raises(LayoutError, match=r"val\.txt: no such split file"):
        find_videos(DatasetSpec(root=str(tmp_path), layout="dvisal", split="val"))


def test_layout_errors_name_the_folder_and_the_expected_layout(tmp_path):
    write_video(tmp_path / "v", ["0"], dirs=("rgb", "depth", "masks"))
    with pytest.raises(LayoutError) as err:
        find_videos(DatasetSpec(root=str(tmp_path)))
    assert str(tmp_path / "v") in str(err.value) and "['gt']" in str(err.value)
    assert "<video>/{rgb,depth,gt}" in str(err.value)
    with pytest.raises(LayoutError, match="no such folder"):
        find_videos(DatasetSpec(root=str(tmp_path / "missing"), layout="vidsod100", split="train"))
    write_video(tmp_path / "other" / "w", ["0", "1"])
    (tmp_path / "other" / "w" / "depth" / "1.png").unlink()
    with pytest.raises(LayoutError, match=r"without depth \['1'\]"):
        find_videos(DatasetSpec(root=str(tmp_path / "other")))


def test_depth_is_read_at_its_bit_depth(tmp_path):
    path8, path16 = tmp_path / "d8.png", tmp_path / "d16.png"
    cv2.imwrite(str(path8), np.array([[0, 128, 255]], np.uint8))
    cv2.imwrite(str(path16), np.array([[0, 257, 65535]], np.uint16))
    np.testing.assert_allclose(DepthReading().read(path8), [[0, 128 / 255, 1]], rtol=1e-6)
    # 16-bit relative depth keeps its precision: 257 / 65535 is not an 8-bit level / 255 of 0 or 1.
    np.testing.assert_allclose(DepthReading().read(path16), [[0, 257 / 65535, 1]], rtol=1e-6)

    # 0 (no measurement), 1, 2 and 3 m, in millimetres and in TUM's units (5000 per metre), mapped
    # by a fixed 0.5..3.5 m range: (d - 0.5) / 3, no measurement as far (1).
    conv = DepthConversion(normalization="fixed", min_depth_m=0.5, max_depth_m=3.5)
    expected = [[1.0, 0.5 / 3, 1.5 / 3, 2.5 / 3]]
    for units_per_m in (1000.0, 5000.0):
        raw = (np.array([[0, 1, 2, 3]]) * units_per_m).astype(np.uint16)
        cv2.imwrite(str(path16), raw)
        metric = DepthReading(mode="metric", units_per_m=units_per_m, conversion=conv)
        np.testing.assert_allclose(metric.read(path16), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="16-bit"):
        metric.read(path8)


def test_frames_prepared_exactly_as_predict_prepares_them(tmp_path):
    write_video(tmp_path / "v", ["0"], size=(30, 50))
    frame = find_videos(DatasetSpec(root=str(tmp_path)))[0].frames[0]
    rgb, depth, gt = load_frame(frame, 64, DepthReading())
    rgb_ref = cv2.cvtColor(cv2.imread(str(frame.rgb)), cv2.COLOR_BGR2RGB)
    depth_ref = cv2.imread(str(frame.depth), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    rgb_t, depth_t = model_inputs(rgb_ref, depth_ref, Preprocessing(64))
    np.testing.assert_array_equal(rgb, rgb_t)
    np.testing.assert_array_equal(depth, depth_t)
    assert gt.shape == (64, 64) and gt.dtype == np.float32 and 0 <= gt.min() and gt.max() <= 1


def test_clips_are_ordered_reproducible_and_flip_together(tmp_path):
    write_video(tmp_path / "v0", [str(i) for i in range(8)])
    write_video(tmp_path / "v1", [str(i) for i in range(3)])  # too short for 4-frame clips
    videos = find_videos(DatasetSpec(root=str(tmp_path)))
    clips = ClipDataset(videos, clip_frames=4, input_size=32, hflip_prob=0.5, seed=3)
    assert clips.skipped == ["v1"]
    for i in range(6):
        video, picks, flip = clips.choose(i)
        assert video.name == "v0" and picks == sorted(set(picks)) and len(picks) == 4
    a, b = clips[5], clips[5]
    assert (
        a["rgb"].shape == (4, 3, 32, 32)
        and a["depth"].shape == (4, 1, 32, 32)
        and a["gt"].shape == (4, 32, 32)
    )
    assert torch.equal(a["rgb"], b["rgb"]) and a["frames"] == b["frames"]
    flipped = next(i for i in range(50) if clips.choose(i)[2])
    video, picks, _ = clips.choose(flipped)
    item = clips[flipped]
    _, depth0, _ = load_frame(video.frames[picks[0]], 32, DepthReading())
    assert torch.equal(item["depth"][0], torch.from_numpy(depth0).flip(-1))
    contiguous = ClipDataset(videos, clip_frames=4, input_size=32, sampling="contiguous")
    _, picks, _ = contiguous.choose(0)
    assert picks == list(range(picks[0], picks[0] + 4))
    with pytest.raises(ValueError, match="no video has 9 annotated frames"):
        ClipDataset(videos, clip_frames=9, input_size=32)


def test_synthetic_videos_seeded_nearest_object_salient(tmp_path):
    cfg = synthetic.SyntheticConfig(videos=2, frames=3, size=48, seed=5)
    folders = synthetic.generate(tmp_path / "a", cfg)
    synthetic.generate(tmp_path / "b", cfg)
    for sub in ("rgb", "depth", "gt"):
        for name in ("00000.png", "00002.png"):
            a = cv2.imread(str(folders[1] / sub / name), cv2.IMREAD_UNCHANGED)
            b = cv2.imread(
                str(tmp_path / "b" / folders[1].name / sub / name), cv2.IMREAD_UNCHANGED
            )
            assert np.array_equal(a, b)
    info = json.loads((tmp_path / "a" / "synthetic.json").read_text())
    assert "near = dark" in info["depth_convention"]
    videos = find_videos(DatasetSpec(root=str(tmp_path / "a")))
    assert [len(v.frames) for v in videos] == [3, 3]
    for video in videos:
        for frame in video.frames:
            depth = cv2.imread(str(frame.depth), cv2.IMREAD_UNCHANGED)
            gt = cv2.imread(str(frame.gt), cv2.IMREAD_UNCHANGED) > 0
            assert depth.dtype == np.uint8 and gt.any() and (~gt).any()
            valid = depth < 255  # holes read as far (255)
            # Near is dark: the salient object is nearer than everything else.
            assert np.median(depth[gt & valid]) < np.median(depth[~gt & valid]) - 40


def run_synthetic(out, frames: int, size: int, seed: int = 0) -> int:
    """``python -m training.synthetic`` for one video of 16-bit millimetre depth; its exit code."""
    flags = {"--videos": 1, "--frames": frames, "--size": size, "--seed": seed}
    args = [str(a) for flag, value in flags.items() for a in (flag, value)]
    return synthetic.main(["--out", str(out), *args, "--depth-format", "mm16"])


def test_synthetic_metric_depth_and_cli(tmp_path):
    assert run_synthetic(tmp_path, frames=2, size=40) == 0
    depth = cv2.imread(str(tmp_path / "video_000" / "depth" / "00001.png"), cv2.IMREAD_UNCHANGED)
    gt = cv2.imread(str(tmp_path / "video_000" / "gt" / "00001.png"), cv2.IMREAD_UNCHANGED) > 0
    assert depth.dtype == np.uint16 and (depth == 0).any()  # holes
    near = depth[gt & (depth > 0)]
    assert 600 < np.median(near) < 1600  # the salient object is about 0.7 to 1.4 m away
    reading = DepthReading(mode="metric", units_per_m=1000.0)
    frame = find_videos(DatasetSpec(root=str(tmp_path), depth=reading))[0].frames[1]
    _, model_depth, _ = load_frame(frame, 40, reading)
    assert 0.0 <= model_depth.min() and model_depth.max() <= 1.0


def test_synthetic_long_video_keeps_the_salient_object_nearest(tmp_path):
    # Seed 77 once drove an object through the camera near frame 172 (no valid depth pixel) and,
    # before that, a distractor in front of the salient object (empty ground truth).
    assert run_synthetic(tmp_path, frames=300, size=32, seed=77) == 0
    video = tmp_path / "video_000"
    assert [len(list((video / sub).glob("*.png"))) for sub in ("rgb", "depth", "gt")] == [300] * 3
    for name in ("00000.png", "00171.png", "00172.png", "00250.png", "00299.png"):
        depth = cv2.imread(str(video / "depth" / name), cv2.IMREAD_UNCHANGED)
        gt = cv2.imread(str(video / "gt" / name), cv2.IMREAD_UNCHANGED) > 0
        near, rest = depth[gt & (depth > 0)], depth[~gt & (depth > 0)]
        assert (
            near.size and 600 < np.median(near) < 1600 and np.percentile(near, 90) < np.min(rest)
        )


def test_synthetic_failure_leaves_no_half_written_frame(tmp_path, monkeypatch):
    encode = synthetic._encode_depth
    calls = []

    def fail_on_third(depth_m, depth_format):
        calls.append(1)
        if len(calls) == 3:
            raise ValueError("simulated failure")
        return encode(depth_m, depth_format)

    monkeypatch.setattr(synthetic, "_encode_depth", fail_on_third)
    with pytest.raises(ValueError, match="simulated"):
        synthetic.generate(tmp_path, synthetic.SyntheticConfig(videos=1, frames=5, size=32))
    video = tmp_path / "video_000"
    assert [sorted(p.name for p in (video / sub).iterdir()) for sub in ("rgb", "depth", "gt")] == [
        ["00000.png", "00001.png"]
    ] * 3
