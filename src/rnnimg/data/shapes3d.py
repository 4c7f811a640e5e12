"""``shapes3d``: procedural 3D objects in 8 named classes, as voxel grids with rendered views.

No download: every object is built from parts (boxes, cylinders, cones, capsules, a torus) with
random proportions, turned about the vertical axis by a random angle, and voxelized on a
``voxel_size``^3 grid (32 by default, 3D-R2N2's resolution): a voxel is filled when its centre is
inside a part. The classes, each from its own recipe (:data:`SHAPE3D_CLASSES`):

    chair  seat, four legs, backrest          table  top, four legs
    lamp   round base, pole, conical shade    bench  long low seat on two panel legs
    shelf  sides, back, 2-4 boards            mug    hollow cylinder with a handle (a torus)
    car    body, cabin, four wheels           plane  fuselage (a capsule), wings, tail

Each item also carries ``num_views`` rendered views (12 by default) of ``view_size`` pixels
(64), orthographic, from the azimuths 0, 360/V, ... and elevations alternating 15 and 35 degrees,
shaded from the cube faces' normals (:func:`rnnimg.geometry.render_voxels`, whose docstring
states the axes and cameras). The views are what a camera sees of the *turned* object, so the
object's own orientation is unknown to a model, as in 3D-R2N2's renders of ShapeNet.

Items: ``{"views": float (V, C, S, S) in [0, 1], "voxels": float (D, D, D) 0/1 indexed [z, y, x]
with y up, "label": long, "azimuth": float (V,) degrees, "elevation": float (V,)}``.

Splits: ``train`` (``train_size``, default 2,000), ``val`` (200) and ``test`` (200), balanced
over the classes (item i is of class i mod 8). Item i is a function of (split, i) and, for
``train`` only, ``seed``: val and test use fixed seeds, so everyone's are the same shapes. An item
is built on first access and kept (as bits and uint8 views: about 50 KB at the defaults), so the
test split costs about 25 ms an item once per process and nothing afterwards.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

SHAPE3D_CLASSES = ("chair", "table", "lamp", "bench", "shelf", "mug", "car", "plane")
FLOOR = -0.94  # the y of the floor objects stand on (the grid is [-1, 1]^3)
REACH = 0.92  # every object fits in the vertical cylinder of this radius, so any turn fits the grid
VAL_SEED = 5_000_011
TEST_SEED = 6_000_023
ELEVATIONS = (15.0, 35.0)


@functools.lru_cache(maxsize=4)
def _centres(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = ((np.arange(n) + 0.5) / n * 2 - 1).astype(np.float32)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")  # (n, n, n) each, voxels indexed [z, y, x]
    return x, y, z


class _Parts:
    """Union of solid parts evaluated at the voxel centres of one object's local frame."""

    def __init__(self, x: np.ndarray, y: np.ndarray, z: np.ndarray, min_half: float):
        self.x, self.y, self.z = x, y, z
        self.min_half = min_half  # thin parts stay at least one voxel thick
        self.min_radius = 2.75 * min_half  # > half a voxel's diagonal: a pole keeps a column
        self.solid = np.zeros(x.shape, dtype=bool)

    def thin(self, half: float) -> float:
        return max(half, self.min_half)

    def box(self, lo, hi) -> None:
        """Axis-aligned box, corners (x, y, z)."""
        (x0, y0, z0), (x1, y1, z1) = lo, hi
        self.solid |= ((self.x >= x0) & (self.x <= x1) & (self.y >= y0) & (self.y <= y1)
                       & (self.z >= z0) & (self.z <= z1))

    def centred_box(self, centre, half) -> None:
        half = [self.thin(h) for h in half]
        self.box([c - h for c, h in zip(centre, half)], [c + h for c, h in zip(centre, half)])

    def cylinder(self, axis: str, centre, radius: float, half_length: float, radius_end=None) -> None:
        """A cylinder (or, with ``radius_end``, a cone frustum from ``radius`` at the low end to
        ``radius_end`` at the high end) along axis ``"x"``, ``"y"`` or ``"z"``."""
        coords = {"x": self.x - centre[0], "y": self.y - centre[1], "z": self.z - centre[2]}
        along = coords.pop(axis)
        a, b = coords.values()
        half_length = self.thin(half_length)
        s = np.clip((along + half_length) / (2 * half_length), 0, 1)
        r = radius if radius_end is None else radius + (radius_end - radius) * s
        self.solid |= (np.abs(along) <= half_length) & (a * a + b * b <= np.maximum(r, self.min_radius) ** 2)

    def capsule_z(self, centre, radius: float, half_length: float) -> None:
        """A cylinder along z with hemispherical ends (its total half-length: half + radius)."""
        dz = np.clip(self.z - centre[2], -half_length, half_length)
        d2 = (self.x - centre[0]) ** 2 + (self.y - centre[1]) ** 2 + (self.z - centre[2] - dz) ** 2
        self.solid |= d2 <= radius * radius

    def torus_z(self, centre, major: float, minor: float) -> None:
        """A ring in the x-y plane around ``centre`` (its axis along z)."""
        dx, dy, dz = self.x - centre[0], self.y - centre[1], self.z - centre[2]
        ring = np.sqrt(dx * dx + dy * dy) - major
        self.solid |= ring * ring + dz * dz <= self.thin(minor) ** 2

    def carve(self, mask: np.ndarray) -> None:
        self.solid &= ~mask


def _legs(p: _Parts, hx: float, hz: float, half: float, top: float) -> None:
    for sx in (-1, 1):
        for sz in (-1, 1):
            cx, cz = sx * (hx - half), sz * (hz - half)
            p.box((cx - p.thin(half), FLOOR, cz - p.thin(half)), (cx + p.thin(half), top, cz + p.thin(half)))


def _footprint(rng: np.random.Generator, wide: tuple[float, float], deep: tuple[float, float]):
    """Half-width (x) and half-depth (z) whose corners stay within REACH of the vertical axis."""
    hx = rng.uniform(*wide)
    hz = min(rng.uniform(*deep), math.sqrt(max(REACH**2 - hx**2, 0.01)))
    return hx, hz


def _chair(p, rng):
    hx, hz = _footprint(rng, (0.28, 0.45), (0.28, 0.45))
    seat, thick, leg = rng.uniform(-0.3, 0.0), rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.06)
    p.box((-hx, seat - 2 * p.thin(thick), -hz), (hx, seat, hz))
    _legs(p, hx, hz, leg, seat)
    back = p.thin(rng.uniform(0.03, 0.06))
    p.box((-hx, seat, -hz), (hx, min(seat + rng.uniform(0.5, 0.85), 0.95), -hz + 2 * back))


def _table(p, rng):
    hx, hz = _footprint(rng, (0.55, 0.82), (0.35, 0.6))
    top, thick, leg = rng.uniform(-0.1, 0.3), rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.07)
    p.box((-hx, top - 2 * p.thin(thick), -hz), (hx, top, hz))
    inset = rng.uniform(0.0, 0.12)
    _legs(p, hx - inset, hz - inset, leg, top)


def _lamp(p, rng):
    base_r, base_h = rng.uniform(0.18, 0.35), rng.uniform(0.03, 0.06)
    p.cylinder("y", (0, FLOOR + base_h, 0), base_r, base_h)
    top = rng.uniform(0.35, 0.8)
    pole = rng.uniform(0.03, 0.06)
    p.cylinder("y", (0, (FLOOR + top) / 2, 0), pole, (top - FLOOR) / 2)
    shade_h = rng.uniform(0.15, 0.3)
    bottom_r = rng.uniform(0.25, 0.5)
    p.cylinder("y", (0, top - shade_h / 2 + 0.05, 0), bottom_r, shade_h / 2,
               radius_end=bottom_r * rng.uniform(0.3, 0.7))


def _bench(p, rng):
    hx, hz = _footprint(rng, (0.7, 0.88), (0.15, 0.28))
    seat, thick, leg = rng.uniform(-0.5, -0.25), rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.06)
    p.box((-hx, seat - 2 * p.thin(thick), -hz), (hx, seat, hz))
    for sx in (-1, 1):
        inner = sx * (hx - rng.uniform(0.05, 0.15))
        p.centred_box((inner, (FLOOR + seat) / 2, 0), (leg, (seat - FLOOR) / 2, hz * 0.85))


def _shelf(p, rng):
    hx, hz = _footprint(rng, (0.35, 0.6), (0.15, 0.3))
    top, side = rng.uniform(0.4, 0.9), rng.uniform(0.03, 0.05)
    for sx in (-1, 1):
        p.centred_box((sx * (hx - side), (FLOOR + top) / 2, 0), (side, (top - FLOOR) / 2, hz))
    p.centred_box((0, (FLOOR + top) / 2, -hz + side), (hx, (top - FLOOR) / 2, side))  # back
    boards = int(rng.integers(2, 5))
    for y in np.linspace(FLOOR + side, top - side, boards + 1):
        p.centred_box((0, y, 0), (hx, side, hz))


def _mug(p, rng):
    r, h = rng.uniform(0.3, 0.45), rng.uniform(0.55, 1.1)
    wall, major = rng.uniform(0.06, 0.1), rng.uniform(0.14, 0.22)
    r = min(r, REACH - 2 * major - 0.02)
    mid = FLOOR + h / 2
    p.cylinder("y", (0, mid, 0), r, h / 2)
    bottom = p.thin(rng.uniform(0.04, 0.08))
    inner = (p.x**2 + p.z**2 <= (r - 2 * p.thin(wall / 2)) ** 2) & (p.y >= FLOOR + 2 * bottom)
    p.carve(inner)
    handle = _Parts(p.x, p.y, p.z, p.min_half)
    handle.torus_z((r, mid, 0), major, rng.uniform(0.04, 0.07))
    p.solid |= handle.solid & (p.x >= r - wall)  # the part of the ring outside the cup


def _car(p, rng):
    hx, hz = _footprint(rng, (0.28, 0.4), (0.7, 0.9))
    wheel_r, wheel_w = rng.uniform(0.14, 0.22), rng.uniform(0.05, 0.09)
    low, body = FLOOR + wheel_r * 0.8, rng.uniform(0.2, 0.4)
    p.box((-hx + wheel_w, low, -hz), (hx - wheel_w, low + body, hz))
    cabin_hz = hz * rng.uniform(0.35, 0.6)
    shift = rng.uniform(-0.3, 0.2) * hz
    p.box((-hx * 0.85 + wheel_w, low + body, shift - cabin_hz),
          (hx * 0.85 - wheel_w, low + body + rng.uniform(0.18, 0.35), shift + cabin_hz))
    for sx in (-1, 1):
        for sz in (-1, 1):
            p.cylinder("x", (sx * (hx - wheel_w), FLOOR + wheel_r, sz * (hz - wheel_r - 0.05)),
                       wheel_r, wheel_w)


def _plane(p, rng):
    length, radius = rng.uniform(0.6, 0.78), rng.uniform(0.07, 0.13)
    y = rng.uniform(-0.25, 0.2)
    p.capsule_z((0, y, 0), radius, length)
    chord, at = rng.uniform(0.1, 0.2), rng.uniform(-0.1, 0.15)
    span = min(rng.uniform(0.6, 0.88), math.sqrt(REACH**2 - (abs(at) + chord) ** 2))
    p.centred_box((0, y, at), (span, rng.uniform(0.02, 0.04), chord))
    tail = -length - radius * 0.5
    p.centred_box((0, y, tail + 0.1), (rng.uniform(0.2, 0.35), 0.02, rng.uniform(0.06, 0.1)))
    fin = rng.uniform(0.2, 0.35)
    p.centred_box((0, y + fin / 2 + radius / 2, tail + 0.1), (0.02, fin / 2, rng.uniform(0.08, 0.14)))


RECIPES = {"chair": _chair, "table": _table, "lamp": _lamp, "bench": _bench, "shelf": _shelf,
           "mug": _mug, "car": _car, "plane": _plane}


def make_shape(label: int, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One object of class ``SHAPE3D_CLASSES[label]``, turned by a random angle about the vertical
    axis: bool (size, size, size) indexed [z, y, x] with y up."""
    theta = rng.uniform(0, 2 * math.pi)
    x, y, z = _centres(size)
    c, s = math.cos(theta), math.sin(theta)
    local_x, local_z = c * x - s * z, s * x + c * z  # the centres in the object's own frame
    parts = _Parts(local_x, y, local_z, min_half=0.55 / size)  # thin parts: >= 1.1 voxels thick
    RECIPES[SHAPE3D_CLASSES[label]](parts, rng)
    return parts.solid


def cameras(num_views: int) -> tuple[Tensor, Tensor]:
    """Azimuths k 360 / V and elevations alternating 15 and 35 degrees, float32 (V,) each."""
    azimuth = torch.arange(num_views, dtype=torch.float32) * (360.0 / num_views)
    elevation = torch.tensor([ELEVATIONS[k % 2] for k in range(num_views)], dtype=torch.float32)
    return azimuth, elevation


class Shapes3D(Dataset):
    """Objects built on first access from (seed, index) and kept; see the module docstring."""

    class_names = SHAPE3D_CLASSES
    num_classes = len(SHAPE3D_CLASSES)

    def __init__(self, count: int, seed: tuple[int, ...], voxel_size: int, view_size: int,
                 num_views: int, channels: int):
        self.count, self.seed = count, seed
        self.voxel_size, self.view_size, self.channels = voxel_size, view_size, channels
        self.azimuth, self.elevation = cameras(num_views)
        self.labels = torch.arange(count) % len(SHAPE3D_CLASSES)
        self._kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.count

    def shape(self, i: int) -> np.ndarray:
        """bool voxels (D, D, D) of item ``i``."""
        rng = np.random.default_rng([*self.seed, i])
        return make_shape(int(self.labels[i]), rng, self.voxel_size)

    def _built(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self._kept:
            from rnnimg.geometry.render import render_voxels

            voxels = self.shape(i)
            views = render_voxels(torch.from_numpy(voxels), self.azimuth, self.elevation,
                                  self.view_size).shade[0]  # (V, S, S)
            self._kept[i] = (np.packbits(voxels), (views * 255).round().to(torch.uint8).numpy())
        return self._kept[i]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -self.count <= i < self.count:
            raise IndexError(f"item {i} out of range for {self.count} shapes")
        i = i % self.count
        bits, views = self._built(i)
        d = self.voxel_size
        voxels = np.unpackbits(bits, count=d**3).reshape(d, d, d)
        views = torch.from_numpy(views).float().div(255).unsqueeze(1)  # (V, 1, S, S)
        return {"views": views.expand(-1, self.channels, -1, -1).contiguous(),
                "voxels": torch.from_numpy(voxels).float(), "label": self.labels[i].clone(),
                "azimuth": self.azimuth.clone(), "elevation": self.elevation.clone()}


def _whole(name: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise RnnImgError(f"shapes3d: {name} must be a whole number >= {low}, got {value!r}; "
                          f"pass --data-opt {name}=N.")
    return value


@register_dataset("shapes3d", task="reconstruct", splits=("train", "val", "test"),
                  description="procedural 3D objects in 8 classes (chair, table, lamp, bench, shelf, "
                  "mug, car, plane): 32^3 voxels + 12 rendered 64x64 views with known cameras; "
                  "2,000 train / 200 val / 200 test; no download")
def shapes3d(split: str, train_size: int = 2000, val_size: int = 200, test_size: int = 200,
             seed: int = 0, voxel_size: int = 32, view_size: int = 64, num_views: int = 12,
             channels: int = 1) -> Shapes3D:
    count = {"train": train_size, "val": val_size, "test": test_size}[split]
    _whole(f"{split}_size", count, 1)
    _whole("seed", seed, 0)
    _whole("voxel_size", voxel_size, 8)
    _whole("view_size", view_size, 8)
    _whole("num_views", num_views, 1)
    if channels not in (1, 3):
        raise RnnImgError(f"shapes3d: channels must be 1 or 3 (grey views repeated), got {channels!r}.")
    split_seed = {"train": (seed, 0), "val": (VAL_SEED,), "test": (TEST_SEED,)}[split]
    return Shapes3D(count, split_seed, voxel_size, view_size, num_views, channels)
