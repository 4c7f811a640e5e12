"""Occlusion masks for image completion (``rnnimg complete RUN INPUT.png --mask SPEC``).

A mask is a (1, H, W) bool tensor that is True where a pixel is *known* (kept) and False where the
model must fill it in. :func:`parse_mask` builds one from a short spec or a mask image
(``rnnimg.tasks.completion_grid`` draws the occluded input next to the completions).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from rnnimg.errors import RnnImgError

MASK_SPECS = "bottom-half, right-half, box:x,y,w,h or the path of a mask image (white = unknown)"


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
