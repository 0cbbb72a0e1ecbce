"""RGB-D video salient-object data sets: folder layouts, frame lists and training clips.

    from training.datasets import DatasetSpec, find_videos, ClipDataset
    videos = find_videos(DatasetSpec(root="/data/RDVS", layout="rdvs", split="train"))
    clips = ClipDataset(videos, clip_frames=10, input_size=1024, seed=0)
    item = clips[0]      # rgb (T, 3, S, S), depth (T, 1, S, S), gt (T, S, S), names

Layouts (frames matched by file name without suffix; only frames with ground truth are used, and
each of them must have its depth):

    rdvs       ROOT/{train,test}/<video>/{rgb,Depth,ground-truth}   (depth_dir: SyntheticDepth for
               RDVS's estimated depth)
    vidsod100  ROOT/{train,test}/<video>/{rgb,depth,gt}
    dvisal     ROOT/data/<video>/{RGB,Depth,GT}, the videos of a split listed in ROOT/<split>.txt
               (train, val, test_all, ...); only part of the frames have GT
    generic    ROOT/<video>/{rgb,depth,gt}  (ROOT/<split>/<video>/... when a split is given), what
               ``training.synthetic`` writes and what one's own recordings can be converted to

Depth: the data sets ship 8-bit relative depth (value / 255, near = dark); 16-bit files are read
at full precision (value / 65535), or, with ``DepthReading(mode="metric")``, as metric units
converted by the runtime's ``depth_to_model_input``. Color and depth are then resized and
normalised by the runtime's own functions, so that training sees exactly what inference sees.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from rgbd_saliency_ros.runtime.depth import (
    DepthConversion,
    decode_ros_depth,
    depth_to_model_input,
    read_depth_png,
    read_relative_depth_png,
)
from rgbd_saliency_ros.model.contract import Preprocessing
from rgbd_saliency_ros.runtime.frames import resize_square
from rgbd_saliency_ros.runtime.saliency import model_inputs
from rgbd_saliency_ros.runtime.sequence import IMAGE_SUFFIXES, read_rgb

# Millimetres per metre: REP 118's 16UC1 unit, what the runtime's decoder reads.
ROS_UNITS_PER_M = 1000.0


def reject_unknown_keys(cls, values: dict, what: str) -> None:
    """Raises ``ValueError`` naming the keys of ``values`` that are not fields of the dataclass
    ``cls``, and the valid ones: a mistyped setting must never train silently with a default."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; valid keys: {sorted(known)}")


@dataclass(frozen=True)
class Layout:
    """Folder names of one data set's layout."""

    rgb: str
    depth: str
    gt: str
    # A split is a list of video names in ROOT/<split>.txt, the videos in ROOT/data/ (else a
    # split is a sub-folder ROOT/<split>/ holding the videos).
    split_files: bool = False


LAYOUTS = {
    "generic": Layout("rgb", "depth", "gt"),
    "rdvs": Layout("rgb", "Depth", "ground-truth"),
    "vidsod100": Layout("rgb", "depth", "gt"),
    "dvisal": Layout("RGB", "Depth", "GT", split_files=True),
}


class LayoutError(ValueError):
    """A folder does not match the layout it was read as; the message names the folder and the
    layout."""


@dataclass(frozen=True)
class DepthReading:
    """How a data set's depth files become the model's depth input, (H, W) float32 in [0, 1].

    "relative": 8-bit files give value / 255 (the data sets' convention, near = dark), 16-bit
    files value / 65535. "metric": 16-bit files hold ``units_per_m`` units per metre (1000:
    millimetres), 0 = no measurement, converted by ``conversion`` as the node converts a camera's
    depth; 8-bit files are refused (they cannot be metric).
    """

    mode: Literal["relative", "metric"] = "relative"
    units_per_m: float = 1000.0
    conversion: DepthConversion = field(default_factory=DepthConversion)

    def __post_init__(self) -> None:
        if self.mode not in ("relative", "metric"):
            raise ValueError(f"depth mode must be 'relative' or 'metric', got {self.mode!r}")
        if not self.units_per_m > 0:
            raise ValueError(f"units_per_m must be positive, got {self.units_per_m}")

    def read(self, path: str | os.PathLike) -> np.ndarray:
        """(H, W) float32 in [0, 1] from one depth file."""
        if self.mode == "relative":
            return read_relative_depth_png(path)
        raw = read_depth_png(path)
        if raw.dtype != np.uint16:
            raise ValueError(
                f"{os.fspath(path)}: metric depth needs 16-bit files, got {raw.dtype}"
            )
        # The node's REP 118 decoder (0 = no measurement); other units rescale its metres.
        depth_m = decode_ros_depth(raw, "16UC1")
        if self.units_per_m != ROS_UNITS_PER_M:
            depth_m *= np.float32(ROS_UNITS_PER_M / self.units_per_m)
        return depth_to_model_input(depth_m, self.conversion)

    def to_dict(self) -> dict:
        """Plain nested dict (YAML / JSON / weights_only-checkpoint safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DepthReading:
        """Inverse of ``to_dict``; unknown keys raise."""
        values = dict(values)
        reject_unknown_keys(cls, values, "depth reading fields")
        if "conversion" in values:
            values["conversion"] = DepthConversion.from_dict(values["conversion"] or {})
        return cls(**values)


@dataclass(frozen=True)
class DatasetSpec:
    """Where a data set is and how to read it."""

    root: str
    layout: str = "generic"  # one of LAYOUTS
    # rdvs / vidsod100: train or test; dvisal: name of a split file; generic: optional sub-folder
    split: str | None = None
    depth_dir: str | None = None  # replaces the layout's depth folder name (RDVS: SyntheticDepth)
    depth: DepthReading = field(default_factory=DepthReading)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"unknown data set layout {self.layout!r}; expected one of {sorted(LAYOUTS)}"
            )

    def to_dict(self) -> dict:
        """Plain nested dict (YAML / JSON / weights_only-checkpoint safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> DatasetSpec:
        """From a config mapping; unknown keys raise."""
        values = dict(values)
        reject_unknown_keys(cls, values, "data set fields")
        if "depth" in values:
            values["depth"] = DepthReading.from_dict(values["depth"] or {})
        return cls(**values)


@dataclass(frozen=True)
class Frame:
    """One annotated frame: its name (file stem) and its three files."""

    name: str
    rgb: Path
    depth: Path
    gt: Path


@dataclass(frozen=True)
class Video:
    """The annotated frames of one video, in order."""

    name: str
    frames: tuple[Frame, ...]
    total_frames: int  # color frames in the folder, annotated or not


def _natural_key(name: str) -> list:
    """Sort key reading digit runs as numbers, so that frame 9 comes before frame 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            if path.stem in found:
                raise LayoutError(f"{folder}: two images share the name {path.stem!r}")
            found[path.stem] = path
    return found


def _layout_text(spec: DatasetSpec) -> str:
    lay = LAYOUTS[spec.layout]
    depth = spec.depth_dir or lay.depth
    video = f"<video>/{{{lay.rgb},{depth},{lay.gt}}}"
    if lay.split_files:
        return f"{spec.layout} layout: ROOT/data/{video} with split files ROOT/<split>.txt"
    if spec.layout == "generic":
        return f"generic layout: ROOT/{video} (or ROOT/<split>/{video})"
    return f"{spec.layout} layout: ROOT/{{train,test}}/{video}"


def read_video(folder: Path, spec: DatasetSpec) -> Video:
    """Lists the annotated frames of one video folder.

    Raises ``LayoutError`` naming the folder when a sub-folder is missing, a frame with ground
    truth has no color image or no depth, or no frame has ground truth.
    """
    lay = LAYOUTS[spec.layout]
    subdirs = {
        "rgb": folder / lay.rgb,
        "depth": folder / (spec.depth_dir or lay.depth),
        "gt": folder / lay.gt,
    }
    missing = [p.name for p in subdirs.values() if not p.is_dir()]
    if missing:
        present = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        raise LayoutError(
            f"{folder}: missing sub-folder(s) {missing} (has {present}); "
            f"expected the {_layout_text(spec)}"
        )
    rgb, depth, gt = (_images_by_stem(subdirs[k]) for k in ("rgb", "depth", "gt"))
    no_rgb = sorted(set(gt) - set(rgb), key=_natural_key)
    no_depth = sorted(set(gt) - set(depth), key=_natural_key)
    if no_rgb or no_depth:
        raise LayoutError(
            f"{folder}: ground-truth frames without a color image {no_rgb[:5]} or without depth "
            f"{no_depth[:5]} (frames are matched by name without suffix)"
        )
    if not gt:
        raise LayoutError(f"{folder}: no ground-truth image in {subdirs['gt']}")
    names = sorted(gt, key=_natural_key)
    frames = tuple(Frame(n, rgb[n], depth[n], gt[n]) for n in names)
    return Video(folder.name, frames, total_frames=len(rgb))


def find_videos(spec: DatasetSpec) -> list[Video]:
    """All videos of a data set split, sorted by name (see the module docstring for the layouts).

    Raises ``LayoutError`` (naming the folder and the expected layout) when the root, the split or
    a video folder does not match.
    """
    root = Path(spec.root)
    lay = LAYOUTS[spec.layout]
    if not root.is_dir():
        raise LayoutError(f"{root}: no such folder; expected the {_layout_text(spec)}")
    if lay.split_files:
        if not spec.split:
            raise LayoutError(
                f"{root}: the {spec.layout} layout needs a split "
                "(the name of a split file, e.g. train)"
            )
        split_file = root / f"{spec.split}.txt"
        if not split_file.is_file():
            present = sorted(p.name for p in root.glob("*.txt"))
            raise LayoutError(
                f"{split_file}: no such split file (found {present}); "
                f"expected the {_layout_text(spec)}"
            )
        videos_root = root / "data"
        names = sorted(
            {line.strip() for line in split_file.read_text().splitlines() if line.strip()},
            key=_natural_key,
        )
        folders = [videos_root / n for n in names]
    else:
        videos_root = root / spec.split if spec.split else root
        if spec.layout != "generic" and not spec.split:
            raise LayoutError(f"{root}: the {spec.layout} layout needs a split (train or test)")
        if not videos_root.is_dir():
            present = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise LayoutError(
                f"{videos_root}: no such folder (has {present}); expected the {_layout_text(spec)}"
            )
        folders = sorted(
            (p for p in videos_root.iterdir() if p.is_dir()), key=lambda p: _natural_key(p.name)
        )
    if not folders:
        raise LayoutError(f"{videos_root}: no video folders; expected the {_layout_text(spec)}")
    return [read_video(f, spec) for f in folders]


def read_gt(path: Path) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the ground-truth image as 8-bit grey / 255 (not binarised, as the
    reference trains)."""
    image = cv2.imread(os.fspath(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image.astype(np.float32) / np.float32(255.0)


def load_frame(
    frame: Frame, input_size: int, depth: DepthReading
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame as the model sees it: the runtime's resize and normalisation.

    Returns rgb (3, S, S) float32 ImageNet-normalised, depth (1, S, S) float32 in [0, 1] and gt
    (S, S) float32 in [0, 1], S = ``input_size``. Color, depth and ground truth are resized
    bilinearly to the square, ignoring the aspect ratio, as ``rgbd-saliency predict`` does.
    """
    rgb = read_rgb(frame.rgb)
    depth01 = depth.read(frame.depth)
    gt = read_gt(frame.gt)
    if depth01.shape != rgb.shape[:2] or gt.shape != rgb.shape[:2]:
        raise ValueError(
            f"frame {frame.name}: color {rgb.shape[:2]}, depth {depth01.shape} and ground truth "
            f"{gt.shape} differ in size ({frame.rgb.parent.parent})"
        )
    rgb_in, depth_in = model_inputs(rgb, depth01, Preprocessing(input_size))
    gt_in = np.ascontiguousarray(resize_square(gt, input_size), dtype=np.float32)
    return rgb_in, depth_in, gt_in


class ClipDataset(Dataset):
    """Training clips: ``clip_frames`` annotated frames, in order, from one video.

    Item ``i`` is drawn from its own generator seeded by (seed, i): which video (uniformly), which
    frames and whether to flip. So the same index always gives the same clip, whatever the number
    of data loader workers, and a resumed run sees exactly the clips the uninterrupted one would.

    Sampling: "random_sorted" (the reference's) picks ``clip_frames`` distinct frames anywhere in
    the video and keeps them in time order; "contiguous" takes a run of consecutive annotated
    frames. Videos with fewer annotated frames than ``clip_frames`` are left out.
    """

    def __init__(
        self,
        videos: list[Video],
        clip_frames: int,
        input_size: int,
        depth: DepthReading | None = None,
        sampling: Literal["random_sorted", "contiguous"] = "random_sorted",
        hflip_prob: float = 0.0,
        seed: int = 0,
    ) -> None:
        if clip_frames < 1:
            raise ValueError(f"clip_frames must be at least 1, got {clip_frames}")
        if sampling not in ("random_sorted", "contiguous"):
            raise ValueError(
                f"clip sampling must be 'random_sorted' or 'contiguous', got {sampling!r}"
            )
        if not 0.0 <= hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {hflip_prob}")
        self.videos = [v for v in videos if len(v.frames) >= clip_frames]
        self.skipped = [v.name for v in videos if len(v.frames) < clip_frames]
        if not self.videos:
            raise ValueError(
                f"no video has {clip_frames} annotated frames (longest: "
                f"{max((len(v.frames) for v in videos), default=0)}); lower clip_frames"
            )
        self.clip_frames = clip_frames
        self.input_size = input_size
        self.depth = depth or DepthReading()
        self.sampling = sampling
        self.hflip_prob = hflip_prob
        self.seed = seed

    def __len__(self) -> int:
        """Practically unbounded: any index gives a clip (the training loop decides how many)."""
        return 2**62

    def choose(self, index: int) -> tuple[Video, list[int], bool]:
        """(video, frame indices in time order, flip) of item ``index``."""
        rng = np.random.default_rng([self.seed, index])
        video = self.videos[int(rng.integers(len(self.videos)))]
        n = len(video.frames)
        if self.sampling == "random_sorted":
            picks = sorted(int(i) for i in rng.choice(n, size=self.clip_frames, replace=False))
        else:
            start = int(rng.integers(n - self.clip_frames + 1))
            picks = list(range(start, start + self.clip_frames))
        flip = bool(rng.random() < self.hflip_prob)
        return video, picks, flip

    def __getitem__(self, index: int) -> dict:
        """rgb (T, 3, S, S) float32, depth (T, 1, S, S) float32 in [0, 1], gt (T, S, S) float32 in
        [0, 1], video (str), frames (list of T names), index (int)."""
        video, picks, flip = self.choose(index)
        rgbs, depths, gts = zip(
            *(load_frame(video.frames[i], self.input_size, self.depth) for i in picks)
        )
        rgb, depth, gt = (torch.from_numpy(np.stack(x)) for x in (rgbs, depths, gts))
        if flip:
            # A mirrored scene is as plausible as the original; the whole clip flips together.
            rgb, depth, gt = rgb.flip(-1), depth.flip(-1), gt.flip(-1)
        return {
            "rgb": rgb,
            "depth": depth,
            "gt": gt,
            "video": video.name,
            "frames": [video.frames[i].name for i in picks],
            "index": index,
        }


def describe(videos: list[Video]) -> str:
    """One line: how many videos and annotated frames (of all color frames)."""
    annotated = sum(len(v.frames) for v in videos)
    total = sum(v.total_frames for v in videos)
    return f"{len(videos)} videos, {annotated} annotated frames of {total}"
