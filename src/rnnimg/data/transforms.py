"""Pixel transforms shared by the image datasets: channel conversion, resizing, binarization and
quantization. Images enter as uint8 tensors (C, H, W) and leave as floats in [0, 1]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.errors import RnnImgError

BINARIZATIONS = ("fixed", "dynamic")
# ITU-R BT.601 luma weights, the ones PIL uses for "L".
_LUMA = torch.tensor([0.299, 0.587, 0.114])


def to_channels(image: Tensor, channels: int | None) -> Tensor:
    """Convert (..., C, H, W) to ``channels`` (1 or 3): grey is repeated, colour is mixed to luma.

    uint8 stays uint8 (rounded); floats stay floats.
    """
    have = image.shape[-3]
    if channels is None or have == channels:
        return image
    if channels == 3 and have == 1:
        return image.expand(*image.shape[:-3], 3, -1, -1).clone()
    if channels == 1 and have == 3:
        grey = (image.float() * _LUMA.view(3, 1, 1)).sum(-3, keepdim=True)
        return grey.round().clamp(0, 255).to(image.dtype) if image.dtype == torch.uint8 else grey
    raise RnnImgError(f"cannot convert {have} channels to {channels}; use 1 or 3.")


def resize(images: Tensor, size: int | None) -> Tensor:
    """Resize images (N, C, H, W) to ``size`` x ``size`` with antialiased bilinear filtering.

    uint8 images stay uint8 (rounded); float images in [0, 1] stay floats in [0, 1] (the
    filter's overshoot at sharp edges is clipped).
    """
    if size is None or images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    if images.dtype == torch.uint8:
        return out.round().clamp(0, 255).to(torch.uint8)
    return out.clamp(0, 1).to(images.dtype)


def quantize(image: Tensor, levels: int) -> Tensor:
    """Snap floats in [0, 1] to ``levels`` evenly spaced values (256 = 8 bits)."""
    return torch.round(image * (levels - 1)) / (levels - 1)


def binarize_fixed(image: Tensor, seed: int, index: int) -> Tensor:
    """Bernoulli binarization that is the same every time for item ``index`` under ``seed``."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return (torch.rand(image.shape, generator=gen) < image).float()


def binarize_dynamic(image: Tensor) -> Tensor:
    """A fresh Bernoulli binarization on every access (uses the global RNG, seeded by --seed)."""
    return (torch.rand_like(image) < image).float()


def check_binarize(binarize: str | None) -> None:
    if binarize is not None and binarize not in BINARIZATIONS:
        raise RnnImgError(f"binarize must be one of {BINARIZATIONS} or None, got {binarize!r}.")
