"""Diagonal BiLSTM (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.2).

Each direction skews the input map, shifting row i right by i (width W + H - 1), so that a diagonal
of the image becomes a column; it then scans the columns left to right. At skewed column k the
gates are

    [i, f, o, g] = K_is (*) x[:, k] + K_ss (*) h[:, k-1]

where K_is is a 1x1 mask-B convolution and K_ss is a 2x1 convolution over the previous column: its
first tap is the cell above (a zero row is padded on top) and its second the cell to the left, both
in image coordinates. The cell state c flows only from the left neighbour. The map is unskewed
afterwards.

The right-to-left direction flips the width, runs the same kind of scan with its own weights and
flips back; its output is then shifted down one row before it is added to the left-to-right
output, so pixel (i, j) sees the right-to-left state of (i-1, j) and nothing of its own row to the
right. The skew pads cells left of column 0; they have no input but still carry K_ss's bias, so
they are learned constant states, not zeros (the cached sampler computes them once).

Known property (the paper's design has it too): a small blind spot. Pixel (i-1, W-1) is not seen
from (i, j) with j < W - 4, however many layers: only the 7x7 input convolution at (i, j >= W - 4)
or features at (i-1, W-1) itself could carry it, and the latter are causal (checked with gradients
on a 9x9 model: logit (4, 0) depends on every earlier pixel except (3, 8)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.nn.masked import MaskedConv2d
from rnnimg.nn.row_lstm import gate_groups, lstm_update


def skew(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, H, W + H - 1), row i shifted right by i, zeros elsewhere."""
    b, ch, height, width = x.shape
    flat = F.pad(x, (0, height)).reshape(b, ch, height * (width + height))
    return flat[:, :, : height * (width + height - 1)].reshape(b, ch, height, width + height - 1)


def unskew(x: Tensor, width: int) -> Tensor:
    """Inverse of :func:`skew`: (B, C, H, W + H - 1) -> (B, C, H, W)."""
    b, ch, height, _ = x.shape
    flat = F.pad(x.reshape(b, ch, -1), (0, height))
    return flat.reshape(b, ch, height, width + height)[..., :width]


class DiagonalLSTM(nn.Module):
    """One direction (left to right) of the Diagonal BiLSTM: (B, in, H, W) -> (B, hidden, H, W)."""

    def __init__(self, in_channels: int, hidden: int, groups: int = 1) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, 1, "B", groups,
                                           out_groups=gate_groups(hidden, groups))
        # taps: [above, left]; the bias reaches every skewed cell, the padded ones included
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 2)

    def forward(self, x: Tensor, gate_bias: Tensor | None = None) -> Tensor:
        b, _, height, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W)
        if gate_bias is not None:  # added before skewing: the padded cells stay input-free
            gates_in = gates_in + gate_bias[:, :, None, None]
        gates_in = skew(gates_in).permute(3, 0, 2, 1).contiguous()  # (W + H - 1, B, H, 4h)
        h = x.new_zeros(b, height, self.hidden)  # (B, H, h): column -1
        c = x.new_zeros(b, height, self.hidden)
        columns = []
        # unbind, not gates_in[k]: its backward is one stack instead of a full-size zero
        # tensor per column
        for gates_k in gates_in.unbind(0):  # the recurrence runs over diagonals only
            h, c = lstm_update(gates_k + self.state_to_state_column(h), c, dim=-1)
            columns.append(h)
        out = torch.stack(columns, dim=-1).permute(0, 2, 1, 3)  # (B, H, h, W') -> (B, h, H, W')
        return unskew(out, width)  # (B, h, H, W)

    def state_to_state_column(self, h_prev: Tensor) -> Tensor:
        """K_ss over the previous skewed column (B, H, h) -> (B, H, 4h): taps above and left.

        A matrix multiply rather than ``conv1d``: on a CPU the many small convolutions of the scan
        cost several times more.
        """
        windows = F.pad(h_prev, (0, 0, 1, 0)).unfold(1, 2, 1)  # (B, H, h, 2): [above, left]
        weight = self.state_to_state.weight  # (4h, h, 2)
        return F.linear(windows.reshape(*h_prev.shape[:2], -1), weight.reshape(weight.shape[0], -1),
                        self.state_to_state.bias)

    def padded_states(self, height: int) -> tuple[Tensor, Tensor]:
        """States (h, c), each (H, hidden), of the skewed cell left of column 0 in every row.

        Row 0 has none (its left neighbour is the zero initial state). These cells get no input,
        only K_ss's bias, so they are the same for every image; the cached sampler needs them.
        """
        w = self.state_to_state.weight
        h = w.new_zeros(1, height, self.hidden)
        c = w.new_zeros(1, height, self.hidden)
        pad_h, pad_c = [h[0, 0]], [c[0, 0]]
        for k in range(height - 1):  # cell (k+1, k) is the left neighbour of (k+1, 0)
            h, c = lstm_update(self.state_to_state_column(h), c, dim=-1)
            pad_h.append(h[0, k + 1])
            pad_c.append(c[0, k + 1])
        return torch.stack(pad_h), torch.stack(pad_c)


class DiagonalBiLSTM(nn.Module):
    """A Diagonal BiLSTM layer: (B, in_channels, H, W) -> (B, hidden, H, W), causal in raster order.

    Args:
        in_channels: features of the input map.
        hidden: LSTM units h per direction.
        groups: colour groups (1 or 3) of the input and hidden features.
    """

    def __init__(self, in_channels: int, hidden: int, groups: int = 1) -> None:
        super().__init__()
        self.hidden = hidden
        self.forward_lstm = DiagonalLSTM(in_channels, hidden, groups)
        self.backward_lstm = DiagonalLSTM(in_channels, hidden, groups)

    def forward(self, x: Tensor, gate_bias: Tensor | None = None) -> Tensor:
        """``gate_bias`` (B, 8h), if given: [left-to-right, right-to-left] gate offsets per image."""
        bias_f = bias_b = None
        if gate_bias is not None:
            bias_f, bias_b = gate_bias.chunk(2, dim=1)
        out = self.forward_lstm(x, bias_f)  # (B, h, H, W)
        back = self.backward_lstm(x.flip(-1), bias_b).flip(-1)  # (B, h, H, W)
        back = F.pad(back, (0, 0, 1, 0))[:, :, :-1]  # shift down one row: (i, j) gets (i-1, j)
        return out + back
