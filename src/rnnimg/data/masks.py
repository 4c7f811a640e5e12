"""Occlusion masks for image completion (``rnnimg complete RUN INPUT.png --mask SPEC``).

A mask is a (1, H, W) bool tensor that is True where a pixel is *known* (kept) and False where the
model must fill it in. :func:`parse_mask` builds one from a short spec or a mask image;
:func:`completion_grid` draws the occluded input next to the completions.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from rnnimg.errors import RnnImgError

MASK_SPECS = "bottom-half, right-half, box:x,y,w,h or the path of a mask image (white = unknown)"
# how the unknown region of the input is shown in a completion grid: mid-grey, which no binarized
# image contains
UNKNOWN_FILL = 0.5


def _parse_box(spec: str, height: int, width: int) -> Tensor:
    try:
        x, y, w, h = (int(v) for v in spec.split(":", 1)[1].split(","))
    except ValueError:
        raise RnnImgError(f"mask {spec!r}: write box:x,y,w,h with four integers, "
                          "e.g. box:8,8,12,12.") from None
    if w < 1 or h < 1 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise RnnImgError(f"mask {spec!r}: the box must have w, h >= 1 and lie inside the "
                          f"{width}x{height} image (x + w <= {width}, y + h <= {height}).")
    known = torch.ones(1, height, width, dtype=torch.bool)
    known[:, y:y + h, x:x + w] = False
    return known


def _read_mask_image(path: Path, height: int, width: int) -> Tensor:
    from rnnimg.data.images import read_image

    pixels = read_image(path, channels=1)  # (1, H, W) uint8
    if tuple(pixels.shape[1:]) != (height, width):
        raise RnnImgError(f"{path}: the mask is {pixels.shape[2]}x{pixels.shape[1]}, but the image is "
                          f"{width}x{height}; make a mask of the same size.")
    return pixels < 128  # white (unknown) -> False, black (known) -> True


def parse_mask(spec: str, height: int, width: int) -> Tensor:
    """The "known" mask (1, H, W) bool for ``spec``.

    Args:
        spec: ``bottom-half`` (rows from H // 2 down are unknown), ``right-half`` (columns from
            W // 2 on are unknown), ``box:x,y,w,h`` (that rectangle, x/y its top-left corner, is
            unknown) or the path of a mask image of the same size (white = unknown, black = known).
        height, width: the size of the image to complete.

    Raises:
        RnnImgError: for an unknown spec, a malformed or out-of-image box, a mask image that is
            missing, unreadable or of another size, or a mask that leaves nothing unknown.
    """
    known = torch.ones(1, height, width, dtype=torch.bool)
    if spec == "bottom-half":
        known[:, height // 2:] = False
    elif spec == "right-half":
        known[:, :, width // 2:] = False
    elif spec.startswith("box:"):
        known = _parse_box(spec, height, width)
    elif Path(spec).suffix and Path(spec).exists():
        known = _read_mask_image(Path(spec), height, width)
    elif Path(spec).suffix:
        raise RnnImgError(f"mask {spec}: no such file; pass {MASK_SPECS}.")
    else:
        raise RnnImgError(f"unknown mask {spec!r}; use {MASK_SPECS}.")
    if bool(known.all()):
        raise RnnImgError(f"mask {spec!r} leaves no pixel unknown, so there is nothing to complete; "
                          "mark the region to fill in white.")
    return known


def occlude(image: Tensor, known: Tensor) -> Tensor:
    """(C, H, W) in [0, 1] with (1, H, W) ``known`` -> RGB (3, H, W), the unknown part mid-grey."""
    rgb = image.float().expand(3, -1, -1) if image.shape[0] == 1 else image.float()
    return torch.where(known.to(rgb.device), rgb, torch.full_like(rgb, UNKNOWN_FILL))


def completion_grid(model, image: Tensor, known: Tensor, n: int = 8,
                    generator: torch.Generator | None = None, temperature: float = 1.0,
                    label: int | Tensor | None = None, nrow: int | None = None) -> Tensor:
    """One picture: the occluded input first, then ``n`` completions of it.

    Args:
        model: a model with ``complete(image, known, label=, generator=, temperature=)``
            (e.g. pixelrnn).
        image: (C, H, W) or (1, C, H, W) in [0, 1].
        known: (1, H, W) or (1, 1, H, W) bool, True where the pixel is kept.
        n: number of completions.
        generator: for reproducible completions.
        temperature: passed to ``model.complete``.
        label: class index for a class-conditional model (one for all completions).
        nrow: pictures per grid row (default: all n + 1 in one row).

    Returns:
        (3, H', W') in [0, 1], ready for :func:`rnnimg.viz.save_image`.
    """
    from rnnimg.viz import make_grid

    image = image[0] if image.dim() == 4 else image  # (C, H, W)
    known = known[0] if known.dim() == 4 else known  # (1, H, W)
    batch = image.unsqueeze(0).expand(n, -1, -1, -1).to(model.device)  # (n, C, H, W)
    masks = known.unsqueeze(0).expand(n, -1, -1, -1).to(model.device)  # (n, 1, H, W)
    completions = model.complete(batch, masks, label=label, generator=generator,
                                 temperature=temperature).cpu()
    rgb = completions.expand(-1, 3, -1, -1) if completions.shape[1] == 1 else completions
    pictures = torch.cat([occlude(image.cpu(), known.cpu()).unsqueeze(0), rgb])  # (n + 1, 3, H, W)
    return make_grid(pictures, nrow=nrow or n + 1)
