"""Synthetic RGB-D videos with salient-object masks, written in the generic layout.

For tests, the smoke training and demos: no real data set can be downloaded on the development
machines, and a random backbone needs data where depth alone tells the answer.

    python -m training.synthetic --out data/synthetic --videos 8 --frames 12 --size 128 --seed 0
    python -m training.synthetic --out data/synthetic_mm --videos 2 --depth-format mm16

What one video shows: a textured, slanted background wall 3.5 to 6 m away, one to three textured
distractor objects 1.9 to 3.2 m away and the salient object, always the nearest (0.7 to 1.4 m),
all moving, drifting back and forth in depth within their bands (so the salient object stays the
nearest however long the video) and occluding each other by their depth order. The depth is what a
structured-light camera gives: noise growing with the square of the distance, a missing band
beside the left edge of near objects (the projector's shadow), random holes and dropped pixels.

Layout written (the generic layout of ``training.datasets``)::

    OUT/<video>/rgb/00000.png     (S, S, 3) 8-bit RGB
    OUT/<video>/depth/00000.png   relative8 (default): (S, S) uint8, the training data's
                                  convention, normalised per frame, near = dark (0), far = bright
                                  (255), holes 255 (read as far), made by the runtime's
                                  depth_to_model_input; mm16: (S, S) uint16 millimetres, 0 = no
                                  measurement (REP 118's 16UC1, the runtime's encode_ros_depth)
    OUT/<video>/gt/00000.png      (S, S) uint8, 255 on the visible part of the salient object,
                                  else 0
    OUT/synthetic.json            the settings, the seed and the depth convention
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from rgbd_saliency_ros.runtime.depth import (
    DepthConversion,
    depth_to_model_input,
    encode_ros_depth,
)

# The per-frame relative convention of the data sets (and of the parity fixture): near is dark.
RELATIVE_DEPTH_CONVERSION = DepthConversion(
    min_depth_m=0.1, max_depth_m=10.0, normalization="per_frame"
)

DEPTH_CONVENTION = {
    "relative8": "8-bit relative depth normalised per frame: near = dark (0), far = bright (255); "
    "holes (no measurement) are 255, i.e. read as far. Read as value / 255.",
    "mm16": "16-bit depth in millimetres, 0 = no measurement "
    "(metric; convert with a DepthConversion).",
}


@dataclass(frozen=True)
class SyntheticConfig:
    """What the generator draws from; everything else follows from ``seed``."""

    videos: int = 8
    frames: int = 12  # per video
    size: int = 128  # side of the square frames, pixels
    seed: int = 0
    depth_format: Literal["relative8", "mm16"] = "relative8"
    max_distractors: int = 3  # 1..max_distractors distractor objects per video
    # std of the depth noise at 1 m, metres; grows with distance^2
    depth_noise_per_m2: float = 0.006
    hole_rate: float = 0.01  # fraction of isolated pixels without a measurement
    rgb_noise: float = 3.0  # std of additive color noise, 8-bit levels

    def __post_init__(self) -> None:
        if self.videos < 1 or self.frames < 1:
            raise ValueError(
                f"need at least one video of one frame, got {self.videos} videos of {self.frames}"
            )
        if self.size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {self.size}")
        if self.depth_format not in DEPTH_CONVENTION:
            raise ValueError(
                f"depth_format must be one of {sorted(DEPTH_CONVENTION)}, "
                f"got {self.depth_format!r}"
            )
        if self.max_distractors < 1:
            raise ValueError(f"max_distractors must be at least 1, got {self.max_distractors}")


@dataclass
class _Object:
    """One moving object; positions and radii in pixels, depth in metres."""

    shape: str  # "ellipse", "box" or "blob"
    texture: np.ndarray  # (2S, 2S, 3) float32 RGB 0..255, sampled where the object is
    center: np.ndarray  # (2,) x, y at frame 0
    velocity: np.ndarray  # (2,) pixels per frame
    radius: float  # half-size at frame 0
    aspect: float  # height / width
    angle: float  # radians at frame 0
    spin: float  # radians per frame
    depth_m: float  # distance of the object's front at frame 0
    depth_velocity_m: float  # metres per frame
    depth_range_m: tuple[float, float]  # its depth band: the front bounces between these ends
    bulge_m: float  # how much nearer the object's middle is than its rim
    blob_radii: np.ndarray  # (16,) relative radii around the outline, for "blob"


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """(size, size, channels) float32 in about [-1, 1]: random values on a coarse grid,
    interpolated."""
    coarse = rng.uniform(-1.0, 1.0, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size, 3) float32 RGB 0..255: a base color with smooth blotches and stripes."""
    base = rng.uniform(40.0, 215.0, 3).astype(np.float32)
    blotches = _smooth_noise(rng, size, int(rng.integers(3, 9)), 3) * rng.uniform(15.0, 45.0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(5.0, 20.0)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2.0 * np.pi / period))
    stripe_color = rng.uniform(-1.0, 1.0, 3).astype(np.float32) * rng.uniform(10.0, 35.0)
    tex = base + blotches + stripes[:, :, None] * stripe_color
    return np.clip(tex, 0.0, 255.0).astype(np.float32)


def _new_object(
    rng: np.random.Generator, size: int, depth_range_m: tuple[float, float], salient: bool
) -> _Object:
    speed = rng.uniform(0.5, 2.0) * size / 128.0
    heading = rng.uniform(0.0, 2.0 * np.pi)
    return _Object(
        shape=str(rng.choice(["ellipse", "box", "blob"])),
        texture=_texture(rng, 2 * size),
        center=rng.uniform(0.25, 0.75, 2) * size,
        velocity=np.array([np.cos(heading), np.sin(heading)]) * speed,
        # Sizes overlap between the salient object and distractors: size alone must not tell
        # them apart.
        radius=rng.uniform(0.16, 0.28) * size if salient else rng.uniform(0.10, 0.26) * size,
        aspect=rng.uniform(0.6, 1.5),
        angle=rng.uniform(0.0, np.pi),
        spin=rng.uniform(-0.05, 0.05),
        depth_m=rng.uniform(*depth_range_m),
        depth_velocity_m=rng.uniform(-0.02, 0.02),
        depth_range_m=depth_range_m,
        bulge_m=rng.uniform(0.02, 0.15),
        blob_radii=rng.uniform(0.7, 1.2, 16),
    )


def _center_at(obj: _Object, t: int, size: int) -> np.ndarray:
    """(2,) x, y in pixels at frame ``t``, bouncing between 5% and 95% of the frame: objects stay
    mostly in view but may be cut by the frame edge."""
    return _bounce(obj.center + obj.velocity * t, 0.05 * size, 0.95 * size)


def _bounce(value, low: float, high: float):
    """``value`` (a float or an array) folded back into [low, high] as if reflected at both ends:
    a linear motion becomes a back-and-forth one that never leaves the interval."""
    span = high - low
    phase = np.mod(np.asarray(value, dtype=np.float64) - low, 2.0 * span)
    return low + np.where(phase <= span, phase, 2.0 * span - phase)


def _object_at(obj: _Object, t: int, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Where ``obj`` is at frame ``t``: (mask (S, S) bool, normalised radius (S, S) float32 in
    [0, 1] inside the mask, depth of its front in metres)."""
    center = _center_at(obj, t, size)
    # The drift bounces inside the object's band: a long video never takes an object through the
    # camera (negative depth, no valid pixel) nor a distractor in front of the salient object.
    depth_m = float(_bounce(obj.depth_m + obj.depth_velocity_m * t, *obj.depth_range_m))
    radius = obj.radius * obj.depth_m / depth_m  # nearer looks bigger
    angle = obj.angle + obj.spin * t
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = xx - center[0], yy - center[1]
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / radius
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / (radius * obj.aspect)
    if obj.shape == "box":
        rho = np.maximum(np.abs(u), np.abs(v))
    else:
        rho = np.sqrt(u * u + v * v)
        if obj.shape == "blob":
            theta = (np.arctan2(v, u) + np.pi) / (2.0 * np.pi) * len(obj.blob_radii)
            i0 = np.floor(theta).astype(int) % len(obj.blob_radii)
            frac = theta - np.floor(theta)
            r = (
                obj.blob_radii[i0] * (1 - frac)
                + obj.blob_radii[(i0 + 1) % len(obj.blob_radii)] * frac
            )
            rho = rho / r
    return rho <= 1.0, np.clip(rho, 0.0, 1.0).astype(np.float32), float(depth_m)


def _sensor_depth(
    rng: np.random.Generator,
    depth: np.ndarray,
    casters: list[tuple[np.ndarray, float]],
    cfg: SyntheticConfig,
) -> np.ndarray:
    """What a structured-light camera measures of the scene's true ``depth`` ((S, S) float32
    metres): noise growing with distance squared, projector shadows beside the objects ``casters``
    ((mask, front depth in metres) each), random holes and dropped pixels (NaN)."""
    s = cfg.size
    # The projector sits to the right of the camera: left of an object's edge, a band of the
    # farther surface behind it gets no pattern, hence no depth; nearer closer objects, wider.
    shadow = np.zeros((s, s), bool)
    for mask, front_m in casters:
        band = max(1, int(round(0.03 * s / front_m)))
        left_of_edge = np.zeros_like(mask)
        left_of_edge[:, :-band] = mask[:, band:]
        shadow |= left_of_edge & ~mask & (depth > front_m + 0.2)
    depth = (
        depth
        + rng.normal(0.0, 1.0, depth.shape).astype(np.float32)
        * cfg.depth_noise_per_m2
        * depth
        * depth
    )
    holes = shadow | (rng.random((s, s)) < cfg.hole_rate)
    for _ in range(int(rng.integers(0, 3))):
        cx, cy = rng.uniform(0, s, 2)
        axes = (int(rng.uniform(0.02, 0.06) * s) + 1, int(rng.uniform(0.02, 0.06) * s) + 1)
        blob = np.zeros((s, s), np.uint8)
        cv2.ellipse(blob, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 1, -1)
        holes |= blob.astype(bool)
    depth[holes] = np.nan
    return depth


def _render_video(rng: np.random.Generator, cfg: SyntheticConfig):
    """Yields (rgb (S, S, 3) uint8, depth_m (S, S) float32 metres with NaN holes, gt (S, S)
    uint8 0/255)."""
    s = cfg.size
    background = _texture(rng, 3 * s)
    pan = rng.uniform(-1.0, 1.0, 2) * s / 128.0  # background pixels per frame (camera motion)
    wall_m = rng.uniform(3.5, 6.0)
    slope = rng.uniform(-0.8, 0.8, 2)  # metres across the frame, x and y
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s - 0.5
    wall_depth = (wall_m + slope[0] * xx + slope[1] * yy).astype(np.float32)
    lighting = 1.0 + 0.25 * _smooth_noise(rng, s, 2, 1)  # (S, S, 1) slow shading across the frame

    salient = _new_object(rng, s, (0.7, 1.4), salient=True)
    distractors = [
        _new_object(rng, s, (1.9, 3.2), salient=False)
        for _ in range(int(rng.integers(1, cfg.max_distractors + 1)))
    ]
    # Drawn far to near; the salient object is nearest, so it is drawn last and never hidden.
    objects = sorted(distractors, key=lambda o: -o.depth_m) + [salient]

    for t in range(cfg.frames):
        ox, oy = (s + pan * t) % (2 * s)
        rgb = background[int(oy) : int(oy) + s, int(ox) : int(ox) + s].copy()
        depth = wall_depth.copy()
        gt = np.zeros((s, s), np.uint8)
        casters = []
        for obj in objects:
            mask, rho, front_m = _object_at(obj, t, s)
            # Rounded: the rim is farther than the middle.
            surface = front_m + obj.bulge_m * rho * rho
            visible = mask & (surface < depth)
            # The texture window follows the object's center, so the pattern moves with it.
            tx, ty = (int(round(c)) for c in np.clip(s - _center_at(obj, t, s), 0, s))
            tex = obj.texture[ty : ty + s, tx : tx + s]
            rgb[visible] = tex[visible]
            depth[visible] = surface[visible]
            casters.append((mask, front_m))
            if obj is salient:
                gt[visible] = 255
        rgb = rgb * lighting + rng.normal(0.0, cfg.rgb_noise, rgb.shape)
        depth = _sensor_depth(rng, depth, casters, cfg)
        yield np.clip(np.rint(rgb), 0, 255).astype(np.uint8), depth.astype(np.float32), gt


def _encode_depth(depth_m: np.ndarray, depth_format: str) -> np.ndarray:
    """(S, S) float32 metres, NaN holes -> the stored depth image (see the module docstring)."""
    if depth_format == "mm16":
        return encode_ros_depth(depth_m, "16UC1")  # millimetres, 0 = no measurement
    relative = depth_to_model_input(depth_m, RELATIVE_DEPTH_CONVERSION)  # (S, S) float32 in [0, 1]
    return np.rint(relative * 255.0).astype(np.uint8)


def _write_frame(folder: Path, name: str, images: dict[str, np.ndarray]) -> None:
    """Writes one frame's images (sub-folder -> image) as ``folder/<sub>/<name>``, all or none.

    Everything is encoded before anything is written, then written under temporary names that are
    renamed only once all are on disk: a failure leaves no color image without its depth and mask.
    """
    encoded = {}
    for sub, image in images.items():
        ok, data = cv2.imencode(".png", image)
        if not ok:
            raise ValueError(
                f"{folder / sub / name}: PNG encoding failed for {image.dtype} {image.shape}"
            )
        encoded[sub] = data
    temporary = {sub: folder / sub / f".{name}.tmp" for sub in encoded}
    try:
        for sub, data in encoded.items():
            temporary[sub].write_bytes(data.tobytes())
        for sub, path in temporary.items():
            os.replace(path, folder / sub / name)
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)


def generate(out_dir: str | os.PathLike, config: SyntheticConfig) -> list[Path]:
    """Writes ``config.videos`` videos under ``out_dir`` (see the module docstring).

    Video ``i`` is drawn from its own generator seeded by (seed, i), so a video does not change
    when more videos are asked for. Returns the video folders.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    folders = []
    for v in range(config.videos):
        rng = np.random.default_rng([config.seed, v])
        folder = out / f"video_{v:03d}"
        for sub in ("rgb", "depth", "gt"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        for t, (rgb, depth_m, gt) in enumerate(_render_video(rng, config)):
            images = {
                "rgb": cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                "depth": _encode_depth(depth_m, config.depth_format),
                "gt": gt,
            }
            _write_frame(folder, f"{t:05d}.png", images)
        folders.append(folder)
    info = {
        "generator": "training.synthetic",
        "config": dataclasses.asdict(config),
        "layout": "generic: <video>/{rgb,depth,gt}/<frame>.png",
        "depth_convention": DEPTH_CONVENTION[config.depth_format],
        "salient_object": "the nearest object; gt is 255 on its visible pixels",
    }
    (out / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.synthetic", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True, help="folder to write the videos into")
    parser.add_argument("--videos", type=int, default=SyntheticConfig.videos)
    parser.add_argument(
        "--frames", type=int, default=SyntheticConfig.frames, help="frames per video"
    )
    parser.add_argument(
        "--size", type=int, default=SyntheticConfig.size, help="side of the square frames, pixels"
    )
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument(
        "--depth-format", choices=sorted(DEPTH_CONVENTION), default=SyntheticConfig.depth_format
    )
    args = parser.parse_args(argv)
    config = SyntheticConfig(
        videos=args.videos,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        depth_format=args.depth_format,
    )
    folders = generate(args.out, config)
    print(
        f"wrote {len(folders)} videos of {config.frames} frames ({config.size}x{config.size}, "
        f"depth {config.depth_format}) to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
