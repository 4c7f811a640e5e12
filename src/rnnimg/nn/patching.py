"""Frame input and output for the video models: space-to-depth patching, the map to [0, 1].

Folding each p x p patch into channels (``F.pixel_unshuffle``) shrinks the map the recurrent
convolutions run over by p^2 (about 16x less work for p = 4 on 64 x 64 frames), as PredRNN and
OpenSTL do. Sides that p does not divide are zero-padded at the bottom and right, and the padding
is cropped off again on the way back, so a 59 x 59 frame works with p = 4 (padded to 60 x 60).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def patched_size(size: int, patch: int) -> int:
    """Side of the patch grid for a side of ``size`` pixels: ceil(size / patch)."""
    return math.ceil(size / patch)


def space_to_depth(x: Tensor, patch: int) -> Tensor:
    """(B, C, H, W) -> (B, C * patch^2, ceil(H / patch), ceil(W / patch)), zero-padding H and W."""
    if patch == 1:
        return x
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % patch, -w % patch
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))  # (B, C, H + pad_h, W + pad_w)
    return F.pixel_unshuffle(x, patch)


def depth_to_space(x: Tensor, patch: int, height: int, width: int) -> Tensor:
    """Inverse of :func:`space_to_depth`: (B, C * patch^2, h, w) -> (B, C, height, width)."""
    if patch == 1:
        return x
    return F.pixel_shuffle(x, patch)[..., :height, :width]  # crop the padding


FRAME_OUTPUTS = ("clamp", "sigmoid", "linear")


def to_frame_range(z: Tensor, kind: str, clip: bool = True) -> Tensor:
    """Map the output layer's values to [0, 1].

    - ``"clamp"``: clamp(z, 0, 1) with the identity's gradient (straight-through), so every wrong
      pixel gets a gradient.
    - ``"sigmoid"``: sigmoid(z). With a sigmoid and MSE the tiny models collapse to the mean frame
      and stay there (the sigmoid's gradient vanishes on the saturated background; measured on a
      moving square).
    - ``"linear"``: z itself when ``clip`` is False (training: the raw output, as the official
      PredRNN code and OpenSTL train it), clamp(z, 0, 1) when ``clip`` is True (evaluation and
      prediction). Only this kind reads ``clip``; the others are always in [0, 1].
    """
    if kind == "sigmoid":
        return torch.sigmoid(z)
    if kind == "linear":
        return z.clamp(0, 1) if clip else z
    return z.clamp(0, 1).detach() + (z - z.detach())  # value exactly clamp(z), gradient 1
