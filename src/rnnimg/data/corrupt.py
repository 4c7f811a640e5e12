"""Corruptions applied on the fly to any image dataset, turning it into translation pairs.

``load_dataset(NAME, split, corrupt=KIND, ...)`` wraps the image dataset NAME so that every item is
``{"source": corrupted image, "target": clean image}`` (``label`` kept where there is one). Kinds:

- ``denoise``: additive Gaussian noise of standard deviation ``sigma`` on the 0-255 scale
  (sigma / 255 on the [0, 1] scale; default 25), then clipped to [0, 1] (the clipping makes the
  effective noise smaller on black and white pixels, so the noisy input of MNIST, mostly black,
  has a higher PSNR than the unclipped 20.2 dB of sigma 25);
- ``saltpepper``: a fraction ``amount`` (default 0.1) of the pixels set to black or white (each
  with probability 1/2, all channels of a pixel together);
- ``inpaint``: ``boxes`` (default 2) random boxes with sides of 1/4 to 1/2 of the image filled
  with mid grey (0.5), a value that marks the hole on black and on white backgrounds;
- ``colorize``: the source is the BT.601 luma of the colour target, (1, H, W); the target must
  have three channels (pass ``channels=3``);
- ``downscale``: super-resolution pairs. The target is the image cropped (bottom and right) to a
  multiple of ``scale`` (2, 3 or 4; default 4); the source is its bicubic, antialiased downscale
  by ``scale``, as the super-resolution literature makes it: PIL's ``Image.resize(...,
  Image.BICUBIC)`` on 8-bit images, that is the Keys kernel (a = -0.5) stretched by the scale,
  the width first and then the height, each pass rounded to 8 bits (:func:`downscale`; equal to
  PIL's output at >99% of pixels and within one grey level at all).

Randomness: the ``test`` and ``val`` splits draw each item's corruption ONCE, from a generator
seeded with (``corrupt_seed``, split, index), so every run and every model sees the same noisy
inputs; so does the validation the trainer holds out of ``train``
(:meth:`CorruptedDataset.with_fixed_draws`). The ``train`` split draws fresh corruption at every
access from the global RNG (seeded by the trainer's --seed), which is the usual augmentation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.errors import RnnImgError

CORRUPTIONS = ("denoise", "saltpepper", "inpaint", "colorize", "downscale")
SCALES = (2, 3, 4)
# option -> (default, the corruption it belongs to)
CORRUPTION_OPTIONS: dict[str, tuple[Any, str | None]] = {
    "corrupt": (None, None), "sigma": (25.0, "denoise"), "amount": (0.1, "saltpepper"),
    "boxes": (2, "inpaint"), "scale": (4, "downscale"), "corrupt_seed": (0, None),
}
_LUMA = torch.tensor([0.299, 0.587, 0.114])
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def split_corruption_options(options: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Separate the corruption options from a dataset's own options and validate them.

    Returns:
        (the corruption settings with defaults filled in, or None without ``corrupt``; the rest).

    Raises:
        RnnImgError: for an unknown kind, sigma < 0, an amount outside [0, 1], boxes < 0, or an
            option of one kind given with another.
    """
    given = {k: v for k, v in options.items() if k in CORRUPTION_OPTIONS}
    rest = {k: v for k, v in options.items() if k not in CORRUPTION_OPTIONS}
    kind = given.get("corrupt")
    if kind is None:
        if given:
            raise RnnImgError(f"{', '.join(sorted(given))} need(s) --data-opt corrupt=KIND "
                              f"(one of {', '.join(CORRUPTIONS)}).")
        return None, rest
    if kind not in CORRUPTIONS:
        raise RnnImgError(f"unknown corruption {kind!r}; use corrupt= one of {', '.join(CORRUPTIONS)}.")
    for key in given:
        owner = CORRUPTION_OPTIONS[key][1]
        if owner is not None and owner != kind:
            raise RnnImgError(f"{key} applies to corrupt={owner}, not corrupt={kind}; drop it.")
    settings = {k: given.get(k, default) for k, (default, owner) in CORRUPTION_OPTIONS.items()
                if owner in (None, kind)}
    for key, kind_of in (("sigma", (int, float)), ("amount", (int, float)), ("boxes", int),
                         ("corrupt_seed", int)):
        if key in settings and (not isinstance(settings[key], kind_of) or isinstance(settings[key], bool)):
            raise RnnImgError(f"{key} must be a number, got {settings[key]!r}.")
    if "sigma" in settings and not settings["sigma"] >= 0:
        raise RnnImgError(f"sigma must be >= 0 (on the 0-255 scale, e.g. 25), got {settings['sigma']}.")
    if "amount" in settings and not 0 <= settings["amount"] <= 1:
        raise RnnImgError(f"amount must be a fraction of pixels in [0, 1], got {settings['amount']}.")
    if "boxes" in settings and settings["boxes"] < 0:
        raise RnnImgError(f"boxes must be >= 0, got {settings['boxes']}.")
    if "scale" in settings and (settings["scale"] not in SCALES or isinstance(settings["scale"], bool)):
        raise RnnImgError(f"scale must be 2, 3 or 4, got {settings['scale']!r}; pass --data-opt "
                          "scale=2 (or 3, 4).")
    return settings, rest


def crop_to_multiple(image: Tensor, scale: int) -> Tensor:
    """(..., H, W) cut at the bottom and right to multiples of ``scale``; RnnImgError when a side is
    shorter than ``scale``."""
    h, w = image.shape[-2:]
    if h < scale or w < scale:
        raise RnnImgError(f"corrupt=downscale: a {w}x{h} image is smaller than the scale {scale}; use "
                          "larger images (--data-opt image_size=N) or a smaller scale.")
    return image[..., :h - h % scale, :w - w % scale]


def downscale(image: Tensor, scale: int) -> Tensor:
    """The bicubic, antialiased downscale of (..., C, H, W) in [0, 1] (H, W multiples of
    ``scale``) to (..., C, H / scale, W / scale), as PIL's ``resize(BICUBIC)`` makes it from
    8-bit images: torch's antialiased bicubic (PIL's kernel) over the width, rounded to 8 bits,
    then over the height, rounded again."""
    import torch.nn.functional as F

    h, w = image.shape[-2:]
    x = image.reshape(-1, *image.shape[-3:]).float()
    for size in ((h, w // scale), (h // scale, w // scale)):
        x = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
        x = (x * 255).round().clamp(0, 255) / 255
    return x.reshape(*image.shape[:-2], h // scale, w // scale).to(image.dtype)


def corrupt_image(image: Tensor, kind: str, generator: torch.Generator | None = None,
                  sigma: float = 25.0, amount: float = 0.1, boxes: int = 2, scale: int = 4) -> Tensor:
    """The corrupted version of one image (C, H, W) in [0, 1] (see the module docstring).

    Args:
        generator: where the random numbers come from (None: the global RNG).
    """
    c, h, w = image.shape
    if kind == "denoise":
        noise = torch.randn(image.shape, generator=generator)
        return (image + noise * (sigma / 255.0)).clamp(0, 1)
    if kind == "saltpepper":
        u = torch.rand(1, h, w, generator=generator)
        salt = torch.rand(1, h, w, generator=generator) < 0.5
        value = salt.to(image.dtype).expand(c, h, w)
        return torch.where((u < amount).expand(c, h, w), value, image)
    if kind == "inpaint":
        out = image.clone()
        for _ in range(boxes):
            bh, bw = (int(torch.randint(max(1, s // 4), max(2, s // 2 + 1), (1,), generator=generator))
                      for s in (h, w))
            top = int(torch.randint(0, h - bh + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - bw + 1, (1,), generator=generator))
            out[:, top:top + bh, left:left + bw] = 0.5
        return out
    if kind == "colorize":
        if c != 3:
            raise RnnImgError(f"corrupt=colorize needs colour targets, got {c}-channel images; pass "
                              "--data-opt channels=3 or use colour data (shapes, cifar10).")
        return (image * _LUMA.view(3, 1, 1).to(image.dtype)).sum(0, keepdim=True)
    if kind == "downscale":
        return downscale(crop_to_multiple(image, scale), scale)
    raise RnnImgError(f"unknown corruption {kind!r}; use one of {', '.join(CORRUPTIONS)}.")


class CorruptedDataset(Dataset):
    """Wraps a dataset of ``{"image": ...}`` items into ``{"source", "target"}`` pairs.

    Args:
        base: items with ``image`` (C, H, W) in [0, 1] (and optionally ``label``).
        split: "train" draws fresh corruption at every access; any other split draws item i's
            corruption from a generator seeded with (corrupt_seed, split, i): the same every run.
        settings: from :func:`split_corruption_options`.
    """

    def __init__(self, base: Dataset, split: str, settings: dict[str, Any]) -> None:
        self.base, self.split = base, split
        self.kind = settings["corrupt"]
        self.seed = int(settings.get("corrupt_seed", 0))
        self.params = {k: settings[k] for k in ("sigma", "amount", "boxes", "scale") if k in settings}
        self.labels = getattr(base, "labels", None)  # class labels pass through

    def __len__(self) -> int:
        return len(self.base)

    def with_fixed_draws(self) -> CorruptedDataset:
        """The same items, each corrupted ONCE from a generator fixed by (corrupt_seed, index), as
        the val and test splits are. Validation held out of ``train`` uses it, so every validation
        of every run, whatever its --seed, sees the same noisy inputs."""
        return CorruptedDataset(self.base, "heldout", {"corrupt": self.kind, "corrupt_seed": self.seed,
                                                       **self.params})

    def generator_for(self, index: int) -> torch.Generator | None:
        """None (the global RNG) for train; a generator fixed by seed, split and index otherwise."""
        if self.split == "train":
            return None
        offset = _SPLIT_OFFSET.get(self.split, 3)
        return torch.Generator().manual_seed((self.seed * 4 + offset) * 1_000_003 + index)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = self.base[index]
        if "image" not in item:
            raise RnnImgError(f"corrupt={self.kind} applies to image datasets; this one gives "
                              f"{', '.join(item)}.")
        target = item["image"]
        if self.kind == "downscale":  # the target is the image cut to a multiple of the scale
            target = crop_to_multiple(target, self.params["scale"])
        source = corrupt_image(target, self.kind, self.generator_for(index), **self.params)
        out = {"source": source, "target": target}
        if "label" in item:
            out["label"] = item["label"]
        return out
