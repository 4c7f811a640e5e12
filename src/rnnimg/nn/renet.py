"""ReNet sweeps (Visin et al. 2015, "ReNet: A Recurrent Neural Network Based Alternative to
Convolutional Networks"), the recurrent layer of ReSeg (Visin et al. 2016).

A ReNet layer cuts its input into non-overlapping p x p patches (space-to-depth), then

1. sweeps a bidirectional RNN along every row of patches (left to right and right to left), and
2. sweeps a second bidirectional RNN down every column of the row sweep's output.

The axis a sweep does not run along is folded into the batch, so one ``torch.nn.GRU`` /
``torch.nn.LSTM`` call (cuDNN on a GPU) runs every row, or every column, at once; the only Python
loop is the one inside the RNN, along the sweep.

Receptive field: after the row sweep, the feature of patch (i, j) depends on the whole row i of
patches; after the column sweep it depends on row sweeps of every row, i.e. on the whole image.
So one ReNet layer already sees the whole image, as the paper says ("each feature activation ...
is with respect to the whole image"); stacking layers adds depth, not context. ``sweep_rows`` and
``sweep_columns`` are public so a test can check each sweep's footprint on its own.

Departures from the paper: ReNet sweeps vertically first, then horizontally; here rows come first
(the order the rnnimg issue asks for; the receptive field is the same). Sides that p does not
divide are zero-padded at the bottom and right.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

RENET_CELLS = ("gru", "lstm")


def _bidirectional(cell: str, input_size: int, hidden_size: int) -> nn.Module:
    if cell == "gru":
        return nn.GRU(input_size, hidden_size, batch_first=True, bidirectional=True)
    if cell == "lstm":
        return nn.LSTM(input_size, hidden_size, batch_first=True, bidirectional=True)
    raise ValueError(f"cell must be one of {RENET_CELLS}, got {cell!r}")


class ReNetLayer(nn.Module):
    """Patches, then a bidirectional RNN along every row, then one down every column.

    Args:
        in_channels: C of the input map (B, C, H, W).
        hidden_size: units per direction; the output has ``2 * hidden_size`` channels.
        patch_size: p; the output grid is (ceil(H / p), ceil(W / p)).
        cell: ``"gru"`` or ``"lstm"``.
    """

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int = 1,
                 cell: str = "gru") -> None:
        super().__init__()
        if patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {patch_size}")
        self.patch_size, self.hidden_size = patch_size, hidden_size
        self.out_channels = 2 * hidden_size
        self.rows = _bidirectional(cell, in_channels * patch_size**2, hidden_size)
        self.columns = _bidirectional(cell, 2 * hidden_size, hidden_size)

    def patches(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C * p^2, ceil(H / p), ceil(W / p)), zero-padding H and W."""
        p = self.patch_size
        if p == 1:
            return x
        pad_h, pad_w = -x.shape[-2] % p, -x.shape[-1] % p
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return F.pixel_unshuffle(x, p)

    def sweep_rows(self, grid: Tensor) -> Tensor:
        """Bidirectional RNN along every row: (B, D, h, w) -> (B, 2H, h, w)."""
        b, d, h, w = grid.shape
        seq = grid.permute(0, 2, 3, 1).reshape(b * h, w, d)  # (B*h, w, D): rows in the batch
        out, _ = self.rows(seq)  # (B*h, w, 2H)
        return out.view(b, h, w, -1).permute(0, 3, 1, 2)  # (B, 2H, h, w)

    def sweep_columns(self, grid: Tensor) -> Tensor:
        """Bidirectional RNN down every column: (B, 2H, h, w) -> (B, 2H, h, w)."""
        b, d, h, w = grid.shape
        seq = grid.permute(0, 3, 2, 1).reshape(b * w, h, d)  # (B*w, h, D): columns in the batch
        out, _ = self.columns(seq)  # (B*w, h, 2H)
        return out.view(b, w, h, -1).permute(0, 3, 2, 1)  # (B, 2H, h, w)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, 2 * hidden_size, ceil(H / p), ceil(W / p))."""
        return self.sweep_columns(self.sweep_rows(self.patches(x))).contiguous()
