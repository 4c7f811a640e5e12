"""``shapes``: generated colour images of shapes on textures, so colour tasks train and test offline.

Each image (default 32x32 RGB) has a background texture, one of a flat colour, a linear gradient,
stripes at a random angle and frequency, or a checkerboard, each between two random colours, and
one to three shapes (disc, square, triangle) of random sizes and colours, some of them striped.
Shapes are drawn at twice the size and averaged down 2x2, so their edges are antialiased. The
label is the class of the last (topmost) shape: 0 disc, 1 square, 2 triangle.

Every image is a function of (seed, split, index): the same on every machine and run. Options:
``train_size`` (default 5000), ``test_size`` (500), ``seed`` (0), ``native_size`` (32: the side the
images are drawn at; ``--data-opt native_size=64`` draws the same scenes at 64x64 with sharp edges,
where ``image_size=64`` would upscale the 32x32 ones), and the image options of
:class:`rnnimg.data.images.ImageDataset` (``image_size``, ``channels``, ``binarize``, ``levels``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from rnnimg.data.images import ImageDataset
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

SHAPE_CLASSES = ("disc", "square", "triangle")
NATIVE_SIZE = 32


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 1, 3).astype(np.float32)


def _texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A (S, S, 3) texture in [0, 1] between two random colours on the grid yy, xx in [0, 1)."""
    a, b = _colour(rng), _colour(rng)
    kind = rng.integers(4)
    if kind == 0:  # flat
        mix = np.zeros_like(xx)
    elif kind == 1:  # gradient
        angle = rng.uniform(0, 2 * np.pi)
        t = np.cos(angle) * xx + np.sin(angle) * yy
        mix = (t - t.min()) / max(np.ptp(t), 1e-6)
    elif kind == 2:  # stripes
        angle, freq = rng.uniform(0, np.pi), rng.uniform(2, 6)
        mix = (np.sin(2 * np.pi * freq * (np.cos(angle) * xx + np.sin(angle) * yy)) > 0).astype(np.float32)
    else:  # checkerboard
        cells = rng.integers(2, 6)
        mix = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    return a * (1 - mix[..., None]) + b * mix[..., None]


@lru_cache(maxsize=4)
def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    return yy, xx


def shape_image(rng: np.random.Generator, size: int = NATIVE_SIZE) -> tuple[np.ndarray, int]:
    """One image, uint8 (3, size, size), and the class of its top shape."""
    big = 2 * size  # drawn at twice the size, then averaged 2x2
    yy, xx = _grid(big)  # (big, big) each, in [0, 1)
    canvas = _texture(rng, yy, xx)  # (big, big, 3)
    label = 0
    for _ in range(rng.integers(1, 4)):
        label = int(rng.integers(3))
        r = rng.uniform(0.12, 0.3)  # half-size, a fraction of the side
        cy, cx = rng.uniform(r, 1 - r, 2)
        if label == 0:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r ** 2
        elif label == 1:
            inside = (np.abs(yy - cy) <= r) & (np.abs(xx - cx) <= r)
        else:  # an upward triangle: below the apex lines, above the base
            inside = (yy <= cy + r) & (np.abs(xx - cx) <= (yy - (cy - r)) / 2)
        fill = _texture(rng, yy, xx) if rng.random() < 0.3 else _colour(rng)
        canvas[inside] = fill[inside] if fill.ndim == 3 else fill
    small = canvas.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))  # (size, size, 3)
    return np.rint(small * 255).astype(np.uint8).transpose(2, 0, 1), label


@lru_cache(maxsize=8)
def shape_images(split: str, count: int, seed: int,
                 size: int = NATIVE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images uint8 (N, 3, size, size) and labels (N,) of ``split``; cached per process.
    The scenes do not depend on ``size`` (the same random draws), only their resolution does."""
    split_id = {"train": 0, "test": 1}[split]
    images, labels = [], []
    for i in range(count):
        image, label = shape_image(np.random.default_rng([seed, split_id, i]), size)
        images.append(image)
        labels.append(label)
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.long)


@register_dataset("shapes", description="generated colour shapes (disc, square, triangle) on "
                  "textures, 32x32 RGB, 5,000 train / 500 test; no download")
def shapes(split: str, train_size: int = 5000, test_size: int = 500, seed: int = 0, image_size=None,
           channels=None, binarize=None, binarize_seed: int = 0, levels=None,
           native_size: int = NATIVE_SIZE) -> ImageDataset:
    count = train_size if split == "train" else test_size
    for name, value in (("train_size", train_size), ("test_size", test_size), ("seed", seed)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "seed" else 1):
            raise RnnImgError(f"shapes: {name} must be a whole number >= "
                              f"{0 if name == 'seed' else 1}, got {value!r}.")
    if not isinstance(native_size, int) or isinstance(native_size, bool) or not 8 <= native_size <= 512:
        raise RnnImgError(f"shapes: native_size must be a whole number from 8 to 512, got {native_size!r}; "
                          "e.g. --data-opt native_size=64.")
    images, labels = shape_images(split, count, seed, native_size)
    offset = 0 if split == "train" else 10_000_000  # distinct binarization seeds per split
    return ImageDataset(images, labels, torch.arange(count) + offset, image_size=image_size,
                        channels=channels, binarize=binarize, binarize_seed=binarize_seed,
                        levels=levels)
