"""Exact synthetic depth for the geometry tests: a ray caster over planes, boxes and spheres.

Written apart from ``runtime/geometry.py`` (which it is used to check): every pixel's ray through
K^-1 is intersected with the primitives analytically, the nearest hit wins, and the depth is the
hit's z. The hit points themselves are returned too, so a test's expectations (the mean of the
object's visible surface, its extents) come from the scene, not from the code under test.

    camera = Pinhole(640, 480, 525.0, 525.0, 319.5, 239.5)
    scene = render(camera, [Plane((0, 0, 3), (0, 0, -1)), Sphere((0.1, 0, 1.2), 0.1)])
    scene.depth_m, scene.ids, scene.points_m  # (H, W) float32 NaN where no hit, int, (H, W, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pinhole:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    def k(self) -> list[float]:
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    def rays(self) -> np.ndarray:
        """(H, W, 3) ray directions with z = 1."""
        u, v = np.meshgrid(
            np.arange(self.width, dtype=np.float64), np.arange(self.height, dtype=np.float64)
        )
        return np.stack([(u - self.cx) / self.fx, (v - self.cy) / self.fy, np.ones_like(u)], -1)


def rotation(axis, degrees: float) -> np.ndarray:
    """Rodrigues' formula, written out (independent of cv2.Rodrigues)."""
    axis = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    a = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * cross + (1 - np.cos(a)) * cross @ cross


@dataclass(frozen=True)
class Plane:
    """Infinite plane through ``point`` with ``normal`` (a wall or a floor behind the objects)."""

    point: tuple
    normal: tuple

    def hit(self, origin: np.ndarray, d: np.ndarray) -> np.ndarray:
        n, p = np.asarray(self.normal, float), np.asarray(self.point, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((p - origin) @ n) / (d @ n)
        return np.where(t > 0, t, np.inf)

    def moved(self, rotation_m: np.ndarray, translation: np.ndarray) -> Plane:
        return Plane(tuple(rotation_m @ self.point + translation), tuple(rotation_m @ self.normal))


@dataclass(frozen=True)
class Box:
    """A box: centre, rotation (columns are its axes) and half sizes along those axes."""

    center: tuple
    half: tuple
    axes: np.ndarray = None  # (3, 3); None: aligned with the camera

    def hit(self, origin: np.ndarray, d: np.ndarray) -> np.ndarray:
        axes = np.eye(3) if self.axes is None else self.axes
        o = (origin - np.asarray(self.center, float)) @ axes  # in the box's frame
        dl = d @ axes
        half = np.asarray(self.half, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / dl, (half - o) / dl
        near = np.nanmax(np.minimum(t1, t2), axis=-1)
        far = np.nanmin(np.maximum(t1, t2), axis=-1)
        return np.where((near <= far) & (near > 0), near, np.inf)

    def moved(self, rotation_m: np.ndarray, translation: np.ndarray) -> Box:
        axes = np.eye(3) if self.axes is None else self.axes
        return Box(tuple(rotation_m @ self.center + translation), self.half, rotation_m @ axes)


@dataclass(frozen=True)
class Sphere:
    center: tuple
    radius: float

    def hit(self, origin: np.ndarray, d: np.ndarray) -> np.ndarray:
        oc = origin - np.asarray(self.center, float)
        a = np.einsum("...i,...i", d, d)
        b = 2 * d @ oc
        c = oc @ oc - self.radius**2
        disc = b * b - 4 * a * c
        with np.errstate(invalid="ignore"):
            t = (-b - np.sqrt(disc)) / (2 * a)
        return np.where((disc >= 0) & (t > 0), t, np.inf)

    def moved(self, rotation_m: np.ndarray, translation: np.ndarray) -> Sphere:
        return Sphere(tuple(rotation_m @ self.center + translation), self.radius)


@dataclass
class Scene:
    depth_m: np.ndarray  # (H, W) float32, NaN where no primitive is hit
    ids: np.ndarray  # (H, W) int: index of the visible primitive, -1 none
    points_m: np.ndarray  # (H, W, 3) float64 exact hit points (NaN none)

    def mask(self, index: int) -> np.ndarray:
        return np.where(self.ids == index, np.uint8(255), np.uint8(0))

    def visible_mean(self, index: int) -> np.ndarray:
        """Mean of the exact visible surface points of primitive ``index`` (one per pixel)."""
        return self.points_m[self.ids == index].mean(axis=0)


def render(camera: Pinhole, primitives: list, rotation_m=None, translation=None) -> Scene:
    """Ray-casts ``primitives`` (given in a reference frame) seen by ``camera`` placed so that a
    reference point p is at ``rotation_m @ p + translation`` in the camera frame (identity: the
    reference frame is the camera's)."""
    rotation_m = np.eye(3) if rotation_m is None else np.asarray(rotation_m, float)
    translation = np.zeros(3) if translation is None else np.asarray(translation, float)
    d = camera.rays()
    origin = np.zeros(3)
    hits = np.stack([p.moved(rotation_m, translation).hit(origin, d) for p in primitives], -1)
    ids = np.argmin(hits, axis=-1)
    t = np.take_along_axis(hits, ids[..., None], -1)[..., 0]
    found = np.isfinite(t)
    ids = np.where(found, ids, -1)
    points = np.where(found[..., None], d * t[..., None], np.nan)
    return Scene(np.where(found, t, np.nan).astype(np.float32), ids, points)


def add_flying_pixels(
    scene: Scene, index: int, gen: np.random.Generator, width_px: int = 2
) -> np.ndarray:
    """Depth with flying pixels: the ``width_px`` background pixels next to primitive ``index``
    take depths between the object's and the background's, as depth sensors report at borders."""
    depth = scene.depth_m.copy()
    inside = scene.ids == index
    band = np.zeros_like(inside)
    near_depth = np.where(inside, scene.depth_m, np.nan)
    ring = inside.copy()
    for _ in range(width_px):
        grown = ring.copy()
        grown[1:] |= ring[:-1]
        grown[:-1] |= ring[1:]
        grown[:, 1:] |= ring[:, :-1]
        grown[:, :-1] |= ring[:, 1:]
        band |= grown & ~ring
        ring = grown
    # The object's depth at the nearest object pixel, spread outwards by a max filter on -depth.
    spread = np.nan_to_num(near_depth, nan=np.inf)
    for _ in range(width_px):
        padded = np.pad(spread, 1, constant_values=np.inf)
        spread = np.minimum.reduce(
            [
                padded[1:-1, 1:-1],
                padded[:-2, 1:-1],
                padded[2:, 1:-1],
                padded[1:-1, :-2],
                padded[1:-1, 2:],
            ]
        )
    band &= np.isfinite(spread) & np.isfinite(scene.depth_m) & (scene.depth_m > spread)
    mix = gen.uniform(0.1, 0.9, band.sum())
    depth[band] = (spread[band] + mix * (scene.depth_m[band] - spread[band])).astype(np.float32)
    return depth
