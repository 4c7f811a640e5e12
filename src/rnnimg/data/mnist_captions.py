"""``mnist-captions``: one or two MNIST digits on a 60x60 canvas with an English caption of what is
where, in the spirit of Mansimov et al. 2016's MNIST-with-captions (their digits move over a 60x60
canvas; ours sit on a 3 x 3 grid of places so a caption names the place exactly).

A digit (28x28, from the shipped mnist-5k) sits at one of 9 places: rows top / middle / bottom and
columns left / middle / right, at pixel offsets 0, 16 and 32. Captions come from a small grammar:

- one digit: "the digit 7 is at the top left", "the digit 2 is in the centre", "the digit 5 is at
  the bottom";
- two digits: "a 3 is above a 5", "a 3 is below a 5" (same column), "a 3 is to the left of a 5",
  "a 3 is to the right of a 5" (same row). Two digits are composited with max.

Every item is ``{"image": (1, 60, 60), "text": (9,) long (0 = padding, word w is
VOCABULARY.index(w) + 1), "digits": (2,) long, "places": (2,) long}`` with -1 for an absent second
digit; place p is row p // 3, column p % 3.

Splits, both fixed by ``seed`` (the same items on every machine):

- ``train`` (``train_size`` items, default 10,000) draws digits from mnist-5k's training digits and
  never shows a one-digit caption at a HELD-OUT place: digit d at place (2 d) mod 9 (10 pairs, each
  digit one place; every place is still seen with other digits, every digit at other places);
- ``test`` (``test_size``, default 1,000) draws from mnist-5k's test digits. ``combinations``
  chooses ``"all"`` (every 4th item a held-out pair, the rest like train), ``"seen"`` or
  ``"heldout"`` (only the held-out one-digit pairs).

Binarization works as for the image datasets (``binarize="fixed"`` draws one Bernoulli image per
item from ``binarize_seed``).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

CANVAS = 60
DIGIT = 28
OFFSETS = (0, 16, 32)
PLACES = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom",
          "bottom right")
RELATIONS = ("above", "below", "to the left of", "to the right of")
VOCABULARY = tuple(str(d) for d in range(10)) + (
    "a", "above", "at", "below", "bottom", "centre", "digit", "in", "is", "left", "of", "right",
    "the", "to", "top")
MAX_WORDS = 9  # "a 3 is to the right of a 5"
COMBINATIONS = ("all", "seen", "heldout")


def heldout_place(digit: int) -> int:
    """The place never paired with ``digit`` in a one-digit training caption."""
    return (2 * digit) % 9


def one_digit_caption(digit: int, place: int) -> str:
    where = "in the centre" if PLACES[place] == "centre" else f"at the {PLACES[place]}"
    return f"the digit {digit} is {where}"


def two_digit_caption(first: int, relation: int, second: int) -> str:
    return f"a {first} is {RELATIONS[relation]} a {second}"


def place_box(place: int) -> tuple[int, int]:
    """Top-left pixel (y, x) of the 28x28 cell of ``place``."""
    return OFFSETS[place // 3], OFFSETS[place % 3]


def tokenize(caption: str, vocabulary: tuple[str, ...] = VOCABULARY,
             max_words: int = MAX_WORDS) -> Tensor:
    """Word ids (max_words,) long, 0-padded. Raises RnnImgError for an empty caption, a word outside
    ``vocabulary`` (listing it) or a caption longer than ``max_words``."""
    words = [w.strip(".,;:!?") for w in caption.lower().split()]
    words = [w for w in words if w]
    if not words:
        raise RnnImgError("the text is empty; describe the image, e.g. \"the digit 7 is at the top left\".")
    unknown = [w for w in words if w not in vocabulary]
    if unknown:
        raise RnnImgError(f"unknown word(s) {', '.join(map(repr, unknown))} in {caption!r}; the model "
                          f"knows only: {' '.join(vocabulary)}.")
    if len(words) > max_words:
        raise RnnImgError(f"the text has {len(words)} words; the model takes at most {max_words}.")
    ids = [vocabulary.index(w) + 1 for w in words] + [0] * (max_words - len(words))
    return torch.tensor(ids, dtype=torch.long)


def detokenize(ids: Tensor, vocabulary: tuple[str, ...] = VOCABULARY) -> str:
    return " ".join(vocabulary[int(i) - 1] for i in ids if int(i) > 0)


class MnistCaptions(Dataset):
    """Caption items drawn from ``digits`` (uint8 (N, 28, 28)) and their ``labels``; see the module
    docstring."""

    vocabulary = VOCABULARY

    def __init__(self, digits: np.ndarray, labels: np.ndarray, size: int, seed: int, mode: str,
                 split_salt: int, binarize=None, binarize_seed: int = 0, levels=None):
        T.check_binarize(binarize)
        self.digits, self.labels = digits, labels
        self.size, self.seed, self.mode, self.salt = size, seed, mode, split_salt
        self.binarize, self.binarize_seed, self.levels = binarize, binarize_seed, levels
        self.by_class = [np.flatnonzero(labels == c) for c in range(10)]

    def __len__(self) -> int:
        return self.size

    def recipe(self, i: int) -> tuple[list[int], list[int], list[int], str]:
        """(digit indices, classes, places, caption) of item ``i``."""
        rng = np.random.default_rng([self.seed, self.salt, i])
        heldout = self.mode == "heldout" or (self.mode == "all" and i % 4 == 0)
        if heldout:
            digit = int(rng.integers(10))
            classes, places = [digit], [heldout_place(digit)]
        elif rng.random() < 0.5:
            digit = int(rng.integers(10))
            place = int(rng.choice([p for p in range(9) if p != heldout_place(digit)]))
            classes, places = [digit], [place]
        else:
            classes = [int(c) for c in rng.integers(10, size=2)]
            relation = int(rng.integers(4))
            line = int(rng.integers(3))  # the shared column (above/below) or row (left/right)
            if relation < 2:
                near, far = line, 6 + line  # top and bottom cell of column `line`
            else:
                near, far = 3 * line, 3 * line + 2  # left and right cell of row `line`
            places = [near, far] if relation in (0, 2) else [far, near]
        picks = [int(rng.choice(self.by_class[c])) for c in classes]
        if len(classes) == 1:
            caption = one_digit_caption(classes[0], places[0])
        else:
            caption = two_digit_caption(classes[0], relation, classes[1])
        return picks, classes, places, caption

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        picks, classes, places, caption = self.recipe(i)
        canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
        for pick, place in zip(picks, places):
            y, x = place_box(place)
            np.maximum(canvas[y:y + DIGIT, x:x + DIGIT], self.digits[pick],
                       out=canvas[y:y + DIGIT, x:x + DIGIT])
        image = torch.from_numpy(canvas).float().div(255).unsqueeze(0)  # (1, 60, 60)
        if self.binarize == "fixed":
            image = T.binarize_fixed(image, self.binarize_seed, self.salt * 10_000_000 + i)
        elif self.binarize == "dynamic":
            image = T.binarize_dynamic(image)
        elif self.levels is not None and self.levels != 256:
            image = T.quantize(image, self.levels)
        pad = [-1] * (2 - len(classes))
        return {"image": image, "text": tokenize(caption),
                "digits": torch.tensor(classes + pad), "places": torch.tensor(places + pad)}


@functools.lru_cache(maxsize=2)
def _digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = mnist_5k_arrays()
    idx = mnist_5k_split_indices(split)
    return images[idx], labels[idx]


@register_dataset("mnist-captions", description="1-2 mnist-5k digits on a 60x60 canvas with a caption "
                  "of what and where; the test split holds out 10 digit/place pairs (generated)")
def mnist_captions(split: str, image_size=None, channels=None, binarize=None, binarize_seed: int = 0,
                   levels=None, train_size: int = 10_000, test_size: int = 1_000, seed: int = 0,
                   combinations: str = "all") -> MnistCaptions:
    if image_size not in (None, CANVAS):
        raise RnnImgError(f"mnist-captions images are {CANVAS}x{CANVAS}; set the model's "
                          f"image_size={CANVAS} (got {image_size}).")
    if channels not in (None, 1):
        raise RnnImgError(f"mnist-captions images are grey; set channels=1 (got {channels}).")
    if combinations not in COMBINATIONS:
        raise RnnImgError(f"combinations must be one of {', '.join(COMBINATIONS)}, got {combinations!r}.")
    if split == "train" and combinations == "heldout":
        raise RnnImgError("the train split never holds the held-out pairs; use --split test.")
    size = train_size if split == "train" else test_size
    if size < 1:
        raise RnnImgError(f"{split}_size must be >= 1, got {size}.")
    digits, labels = _digits(split)
    mode = "seen" if split == "train" else combinations
    return MnistCaptions(digits, labels, size, seed, mode, 0 if split == "train" else 1,
                         binarize=binarize, binarize_seed=binarize_seed, levels=levels)
