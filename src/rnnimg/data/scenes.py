"""``mnist-scenes``: several mnist-5k digits on a canvas with a per-pixel class mask, generated.

A scene places ``min_digits``..``max_digits`` digits (28x28) at uniform random offsets on a
``canvas`` x ``canvas`` black canvas, composited with ``max``. The mask labels a pixel with
(class of the digit + 1) where that digit's intensity is at least ``threshold`` (128: the
stroke, not its faint antialiased rim) and is the brightest digit there; every other pixel is 0
(background). So there are 11 classes: background, "0" .. "9".

Splits (items ``{"image": float (1, H, W) in [0, 1], "mask": long (H, W)}``):

- ``train``: a fresh scene on every access from the training digits, seeded from torch's global
  RNG (``--seed`` makes an epoch reproducible); ``train_scenes`` is the epoch length;
- ``val``: ``val_scenes`` fixed-seed scenes from training-split digits held out of ``train``
  (every 9th digit of each class of mnist-5k's train split: 50 a class);
- ``test``: ``test_scenes`` fixed-seed scenes from mnist-5k's held-out test digits.

``image_size`` resizes image (bilinear, antialiased) and mask (nearest) together; ``channels=3``
repeats the grey channel.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices
from rnnimg.data.registry import register_dataset
from rnnimg.data.segmentation import PairTransform
from rnnimg.errors import RnnImgError

SCENE_CLASSES = ("background", *(str(d) for d in range(10)))
DIGIT_SIZE = 28
VAL_SEED = 3_000_017  # fixed: everyone's val and test scenes are the same
TEST_SEED = 4_000_037


def digit_pools() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """split -> (digits uint8 (P, 28, 28), labels (P,), indices into mnist-5k). ``val`` holds every
    9th train digit of each class, ``train`` the rest, ``test`` mnist-5k's test split."""
    images, labels = mnist_5k_arrays()
    train_ids = mnist_5k_split_indices("train")
    rank = np.zeros(len(train_ids), dtype=np.int64)
    for c in range(10):
        where = np.flatnonzero(labels[train_ids] == c)
        rank[where] = np.arange(len(where))
    ids = {"train": train_ids[rank % 9 != 8], "val": train_ids[rank % 9 == 8],
           "test": mnist_5k_split_indices("test")}
    return {k: (images[v], labels[v].astype(np.int64), v) for k, v in ids.items()}


def render_scene(digits: np.ndarray, classes: np.ndarray, offsets: np.ndarray, canvas: int,
                 threshold: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Paste digits at offsets (max compositing) and label their strokes.

    Args:
        digits: uint8 (D, 28, 28); classes: (D,) digit classes; offsets: (D, 2) top-left (y, x).

    Returns:
        image uint8 (canvas, canvas); mask uint8 (canvas, canvas): class + 1 where the brightest
        digit at a pixel reaches ``threshold``, else 0.
    """
    image = np.zeros((canvas, canvas), dtype=np.uint8)
    mask = np.zeros((canvas, canvas), dtype=np.uint8)
    s = digits.shape[-1]
    for digit, cls, (y, x) in zip(digits, classes, offsets):
        window = image[y:y + s, x:x + s]  # a view
        wins = (digit >= threshold) & (digit >= window)  # this digit is the brightest here
        mask[y:y + s, x:x + s][wins] = cls + 1
        np.maximum(window, digit, out=window)
    return image, mask


def _draw(rng: np.random.Generator, pool_size: int, canvas: int, min_digits: int,
          max_digits: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(min_digits, max_digits + 1))
    choice = rng.integers(pool_size, size=n)
    offsets = rng.integers(0, canvas - DIGIT_SIZE + 1, size=(n, 2))
    return choice, offsets


class SceneDataset(Dataset):
    """Scenes from a digit pool: fixed (a recipe drawn once from ``seed``, rendered on access) or,
    with ``seed=None``, fresh on every access."""

    class_names = SCENE_CLASSES

    def __init__(self, pool: np.ndarray, pool_labels: np.ndarray, pool_ids: np.ndarray,
                 num_scenes: int, canvas: int, min_digits: int, max_digits: int,
                 seed: int | None, transform: PairTransform):
        self.pool, self.pool_labels, self.pool_ids = pool, pool_labels, pool_ids
        self.num_scenes, self.canvas = num_scenes, canvas
        self.min_digits, self.max_digits, self.transform = min_digits, max_digits, transform
        self.recipe = None
        if seed is not None:
            rng = np.random.default_rng(seed)
            self.recipe = [_draw(rng, len(pool), canvas, min_digits, max_digits)
                           for _ in range(num_scenes)]

    def __len__(self) -> int:
        return self.num_scenes

    def scene(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """uint8 image and mask (canvas, canvas) of scene ``i`` (before the transform)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"scene {i} out of range for {len(self)} scenes")
        if self.recipe is not None:
            choice, offsets = self.recipe[i]
        else:  # seeded from torch's global RNG: --seed fixes it, each DataLoader worker differs
            seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64))
            choice, offsets = _draw(np.random.default_rng(seed), len(self.pool), self.canvas,
                                    self.min_digits, self.max_digits)
        return render_scene(self.pool[choice], self.pool_labels[choice], offsets, self.canvas)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        image, mask = self.scene(i)
        return self.transform(torch.from_numpy(image)[None], torch.from_numpy(mask))

    def label_error(self, num_classes: int) -> str | None:
        if num_classes < len(SCENE_CLASSES):
            return f"mask label {len(SCENE_CLASSES) - 1} (digit 9)"
        return None


@functools.lru_cache(maxsize=1)
def _pools():
    return digit_pools()


@register_dataset("mnist-scenes", task="segment", splits=("train", "val", "test"),
                  description="2-4 mnist-5k digits on a 64x64 canvas with a per-pixel mask "
                  "(background + 10 digit classes); fresh train scenes, fixed-seed val and test "
                  "from held-out digits")
def mnist_scenes(split: str, canvas: int = 64, min_digits: int = 2, max_digits: int = 4,
                 train_scenes: int = 10_000, val_scenes: int = 500, test_scenes: int = 500,
                 image_size=None, channels=None) -> SceneDataset:
    if canvas < DIGIT_SIZE:
        raise RnnImgError(f"canvas must be >= {DIGIT_SIZE} (a digit's side), got {canvas}.")
    if not 1 <= min_digits <= max_digits:
        raise RnnImgError(f"need 1 <= min_digits <= max_digits, got {min_digits} and {max_digits}.")
    for name, value in (("train_scenes", train_scenes), ("val_scenes", val_scenes),
                        ("test_scenes", test_scenes)):
        if value < 1:
            raise RnnImgError(f"{name} must be >= 1, got {value}.")
    pool, labels, ids = _pools()[split]
    n = {"train": train_scenes, "val": val_scenes, "test": test_scenes}[split]
    seed = {"train": None, "val": VAL_SEED, "test": TEST_SEED}[split]
    transform = PairTransform(None if image_size == canvas else image_size, channels)
    return SceneDataset(pool, labels, ids, n, canvas, min_digits, max_digits, seed, transform)
