"""Row LSTM (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.1).

The image is processed row by row from the top; all pixels of a row are computed at once. For row i:

    [i, f, o, g] = sigmoid/tanh( K_ss (*) h_{i-1} + K_is (*) x_i )
    c_i = f * c_{i-1} + i * g,    h_i = o * tanh(c_i)

K_is is a 1 x k masked convolution over the row of the input map (mask B: the taps right of the
centre are zero, so pixel (i, j) never sees (i, j+1) and sees its own features only in the colour
order). K_ss is an unmasked 1 x 3 convolution over the previous row's hidden state. The receptive
field is a triangle above the pixel (plus the row to its left through K_is and earlier layers).

Gate layout: the 4h gate features are [i, f, o, g], each h long; in colour the unit u of every gate
belongs to the colour group of hidden unit u.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.nn.masked import MaskedConv2d, colour_groups


def gate_groups(hidden: int, groups: int) -> Tensor:
    """Colour group of each of the 4h gate features laid out [i, f, o, g]."""
    return colour_groups(hidden, groups).repeat(4)


def lstm_update(gates: Tensor, c: Tensor, dim: int = 1) -> tuple[Tensor, Tensor]:
    """One LSTM cell update from pre-activations ``gates`` ([i, f, o, g] along ``dim``)."""
    hidden = gates.shape[dim] // 4
    ifo = torch.sigmoid(gates.narrow(dim, 0, 3 * hidden))
    i, f, o = ifo.chunk(3, dim)
    g = torch.tanh(gates.narrow(dim, 3 * hidden, hidden))
    c = f * c + i * g
    return o * torch.tanh(c), c


class RowLSTM(nn.Module):
    """A Row LSTM layer: (B, in_channels, H, W) -> hidden states (B, hidden, H, W).

    Args:
        in_channels: features of the input map.
        hidden: LSTM units h.
        groups: colour groups (1 or 3) of the input and hidden features.
        kernel_size: width k of the masked input-to-state convolution (odd; the paper uses 3).
    """

    def __init__(self, in_channels: int, hidden: int, groups: int = 1, kernel_size: int = 3) -> None:
        super().__init__()
        self.hidden = hidden
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, (1, kernel_size), "B", groups,
                                           out_groups=gate_groups(hidden, groups))
        self.state_to_state = nn.Conv1d(hidden, 4 * hidden, 3, padding=1, bias=False)

    def forward(self, x: Tensor, gate_bias: Tensor | None = None) -> Tensor:
        """``gate_bias`` (B, 4h), if given, is added to the gates of every pixel (label conditioning)."""
        b, _, _, width = x.shape
        gates_in = self.input_to_state(x)  # (B, 4h, H, W): all rows at once
        if gate_bias is not None:
            gates_in = gates_in + gate_bias[:, :, None, None]
        gates_in = gates_in.permute(2, 0, 3, 1).contiguous()  # (H, B, W, 4h)
        h = x.new_zeros(b, width, self.hidden)  # (B, W, h): row -1
        c = x.new_zeros(b, width, self.hidden)
        rows = []
        # unbind, not gates_in[i]: its backward is one stack instead of a full-size zero tensor
        # per row
        for gates_i in gates_in.unbind(0):  # the recurrence runs over rows only
            h, c = lstm_update(gates_i + self.state_to_state_row(h), c, dim=-1)
            rows.append(h)
        return torch.stack(rows, dim=1).permute(0, 3, 1, 2)  # (B, H, W, h) -> (B, h, H, W)

    def state_to_state_row(self, h_prev: Tensor) -> Tensor:
        """K_ss (1 x 3, zero padded) over a previous row (B, W, h) -> (B, W, 4h).

        A matrix multiply over the unfolded row rather than ``conv1d``: on a CPU the many small
        convolutions of the scan cost several times more.
        """
        windows = F.pad(h_prev, (0, 0, 1, 1)).unfold(1, 3, 1)  # (B, W, h, 3): columns j-1..j+1
        weight = self.state_to_state.weight  # (4h, h, 3)
        return F.linear(windows.reshape(*h_prev.shape[:2], -1), weight.reshape(weight.shape[0], -1))
