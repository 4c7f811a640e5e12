"""Occlusion masks for completion (``rnnimg complete RUN INPUT.png --mask SPEC``; voxel grids:
``INPUT.npy``, :func:`parse_volume_mask`).

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


VOLUME_MASK_SPECS = ("upper-half, lower-half, front-half, back-half, left-half, right-half, "
                     "box:x,y,z,w,h,d or the path of a mask grid (.npy/.npz/.binvox, nonzero = unknown)")
# the hidden half of each spec, as (axis of the [z, y, x] grid, upper: the half of higher indices);
# y is up, the front is +z (the camera at azimuth 0) and the right +x (rnnimg.geometry.render)
_VOLUME_HALVES = {"upper-half": (1, True), "lower-half": (1, False), "front-half": (0, True),
                  "back-half": (0, False), "right-half": (2, True), "left-half": (2, False)}


def _parse_volume_box(spec: str, size: int) -> Tensor:
    try:
        x, y, z, w, h, d = (int(v) for v in spec.split(":", 1)[1].split(","))
    except ValueError:
        raise RnnImgError(f"mask {spec!r}: write box:x,y,z,w,h,d with six integers (a corner, then "
                          "the sizes along x, y, z), e.g. box:0,4,0,8,4,8.") from None
    if min(w, h, d) < 1 or min(x, y, z) < 0 or max(x + w, y + h, z + d) > size:
        raise RnnImgError(f"mask {spec!r}: the box must have w, h, d >= 1 and lie inside the "
                          f"{size}^3 grid (x + w, y + h, z + d <= {size}).")
    known = torch.ones(size, size, size, dtype=torch.bool)
    known[z:z + d, y:y + h, x:x + w] = False
    return known


def parse_volume_mask(spec: str, size: int) -> Tensor:
    """The "known" mask (D, D, D) bool, indexed [z, y, x], of a voxel grid of side ``size``.

    The volume counterpart of :func:`parse_mask`: ``spec`` names what is *hidden*.

    Args:
        spec: ``upper-half`` (layers y >= D // 2 are unknown: the voxel generators' raster runs
            from the floor up, so the known lower half is all they condition on), ``lower-half``,
            ``front-half`` (z >= D // 2), ``back-half``, ``right-half`` (x >= D // 2),
            ``left-half``, ``box:x,y,z,w,h,d`` (that box, x/y/z its lowest corner, is unknown) or
            the path of a mask grid of the same size (.npy/.npz/.binvox; nonzero = unknown).
        size: the grid's side.

    Raises:
        RnnImgError: for an unknown spec, a malformed or out-of-grid box, a mask file that is
            missing, unreadable or of another size, or a mask that leaves nothing unknown.
    """
    from rnnimg.geometry.voxio import load_voxels

    if spec in _VOLUME_HALVES:
        axis, upper = _VOLUME_HALVES[spec]
        known = torch.ones(size, size, size, dtype=torch.bool)
        half = [slice(None)] * 3
        half[axis] = slice(size // 2, None) if upper else slice(None, size // 2)
        known[tuple(half)] = False
    elif spec.startswith("box:"):
        known = _parse_volume_box(spec, size)
    elif Path(spec).suffix and Path(spec).exists():
        known = torch.from_numpy(load_voxels(spec, size)) == 0
    elif Path(spec).suffix:
        raise RnnImgError(f"mask {spec}: no such file; pass {VOLUME_MASK_SPECS}.")
    else:
        raise RnnImgError(f"unknown mask {spec!r} for a voxel grid; use {VOLUME_MASK_SPECS}.")
    if bool(known.all()):
        raise RnnImgError(f"mask {spec!r} leaves no voxel unknown, so there is nothing to complete; "
                          "mark the region to fill (nonzero in a mask grid).")
    return known
