"""Masked convolutions of PixelRNN / PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural
Networks", section 3.4).

A masked convolution sees, around output position (i, j), every row above and the columns left of
j on row i; what it sees at (i, j) itself depends on the colour groups. Features are split into
groups R, G, B (one group for grey images): with mask ``"A"`` (the first layer, which reads the
image) an output feature of group g sees input features of groups < g at the centre, so R sees no
channel of its own pixel, G sees R and B sees R and G; with mask ``"B"`` (every later layer) it sees
groups <= g. Nothing right of or below the centre is seen.

The mask is a buffer and the forward computes ``conv2d(x, weight * mask)``: the weights are never
changed in place, so masked-out entries stay inert parameters with zero gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.nn.checks import check_kernel_size

MASK_TYPES = ("A", "B")


def colour_groups(num_features: int, groups: int) -> Tensor:
    """Group index of each of ``num_features`` features split into ``groups`` contiguous blocks.

    The blocks differ by at most one feature when ``groups`` does not divide ``num_features``
    (h = 128 features in 3 colour groups gives 43, 43, 42). With ``num_features = groups * K``
    (a softmax over K levels per channel, laid out channel-major) feature f belongs to f // K.
    """
    return torch.arange(num_features) * groups // num_features


def build_mask(out_groups: Tensor, in_groups: Tensor, kernel_size: tuple[int, int],
               mask_type: str) -> Tensor:
    """The (out, in, kh, kw) 0/1 mask of a causal convolution centred at (kh // 2, kw // 2)."""
    kh, kw = kernel_size
    ch, cw = kh // 2, kw // 2
    mask = torch.zeros(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, :ch, :] = 1  # every row above the centre
    mask[:, :, ch, :cw] = 1  # left of the centre on its row
    og, ig = out_groups.view(-1, 1), in_groups.view(1, -1)
    mask[:, :, ch, cw] = (og > ig).float() if mask_type == "A" else (og >= ig).float()
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 2-D convolution that only sees the past in raster order (and colour order at the centre).

    Args:
        in_channels, out_channels: feature counts.
        kernel_size: int or (kh, kw), both odd; padding keeps H and W.
        mask_type: "A" (excludes the centre's own group) or "B" (includes it).
        groups: colour groups, 1 (grey) or 3 (RGB). Not ``nn.Conv2d``'s grouped convolution.
        in_groups, out_groups: group index per input/output feature; default contiguous blocks
            (:func:`colour_groups`).
        bias: add a learned bias.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 mask_type: str, groups: int = 1, in_groups: Tensor | None = None,
                 out_groups: Tensor | None = None, bias: bool = True) -> None:
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        check_kernel_size(kh, "kernel_size (height)")
        check_kernel_size(kw, "kernel_size (width)")
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, (kh, kw), padding=(kh // 2, kw // 2), bias=bias)
        in_groups = colour_groups(in_channels, groups) if in_groups is None else in_groups
        out_groups = colour_groups(out_channels, groups) if out_groups is None else out_groups
        assert len(in_groups) == in_channels and len(out_groups) == out_channels
        self.mask_type = mask_type
        self.colour_group_count = groups
        self.register_buffer("mask", build_mask(out_groups, in_groups, (kh, kw), mask_type),
                             persistent=False)

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.masked_weight(), self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, groups={self.colour_group_count}"
