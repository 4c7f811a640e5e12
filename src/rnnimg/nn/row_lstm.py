"""Row LSTM (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.1).

The image is processed row by row from the top; all pixels of a row are computed at once. For row i:

    [i, f, g, o] = sigmoid/tanh( K_ss (*) h_{i-1} + K_is (*) x_i )
    c_i = f * c_{i-1} + i * g,    h_i = o * tanh(c_i)

K_is is a 1 x k masked convolution over the row of the input map (mask B: the taps right of the
centre are zero, so pixel (i, j) never sees (i, j+1) and sees its own features only in the colour
order). K_ss is an unmasked 1 x 3 convolution over the previous row's hidden state. The receptive
field is a triangle above the pixel (plus the row to its left through K_is and earlier layers).

Gate layout: the 4h gate features are [i, f, g, o], each h long (as ``torch.nn.LSTM``, ConvLSTM and
ST-LSTM); in colour the unit u of every gate belongs to the colour group of hidden unit u.

Sampling one pixel at a time: :meth:`RowLSTM.raster_steps` gives a stack of Row LSTMs a
per-row / per-pixel step API with carried state (:class:`RowLSTMSteps`), so a sampler never reads
the layers' weights itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.nn.masked import MaskedConv2d, colour_groups
from rnnimg.runtime.graphs import at, into


def gate_groups(hidden: int, groups: int) -> Tensor:
    """Colour group of each of the 4h gate features laid out [i, f, g, o]."""
    return colour_groups(hidden, groups).repeat(4)


def lstm_update(gates: Tensor, c: Tensor, dim: int = 1) -> tuple[Tensor, Tensor]:
    """One LSTM cell update from pre-activations ``gates`` ([i, f, g, o] along ``dim``):
    c' = f c + i g, h' = o tanh(c'), returns (h', c')."""
    # one sigmoid over all 4h (its g part unused) rather than three: the scans call this per step
    i, f, _, o = torch.sigmoid(gates).chunk(4, dim)
    g = torch.tanh(gates.narrow(dim, 2 * (gates.shape[dim] // 4), gates.shape[dim] // 4))
    c = f * c + i * g
    return o * torch.tanh(c), c


def lstm_update_into(gates: Tensor, c_prev: Tensor, h_out: Tensor, c_out: Tensor) -> None:
    """:func:`lstm_update` along the last dimension, written into preallocated ``h_out`` and
    ``c_out`` (the samplers' per-pixel steps keep their state in fixed buffers)."""
    hidden = gates.shape[-1] // 4
    act = torch.sigmoid(gates)  # i, f, (unused), o
    i, f, o = act[..., :hidden], act[..., hidden:2 * hidden], act[..., 3 * hidden:]
    into(torch.addcmul, f * c_prev, i, torch.tanh(gates[..., 2 * hidden:3 * hidden]), out=c_out)
    into(torch.mul, o, torch.tanh(c_out), out=h_out)


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

    @classmethod
    def raster_steps(cls, layers: list[RowLSTM], batch: int, height: int, width: int,
                     gate_biases: list[Tensor | None]) -> RowLSTMSteps:
        """Step a stack of Row LSTM layers one pixel at a time in raster order; see
        :class:`RowLSTMSteps`. ``gate_biases`` holds one (batch, 4h) offset or None per layer."""
        return RowLSTMSteps(layers, batch, width, gate_biases)


class RowLSTMSteps:
    """A stack of :class:`RowLSTM` layers run one pixel at a time, carrying the state.

    Per row i: :meth:`start_row` computes every layer's state-to-state term K_ss (*) h_{i-1} for
    the whole row (row i-1 is final). Per pixel (i, j) and layer l, the caller writes the layer's
    input at column j into :meth:`input_at` ``(l, j)`` and calls :meth:`step` ``(l, j)``, which
    adds the masked input-to-state taps over columns j-k//2..j of that input and runs the cell; it
    returns the layer's output h at (i, j), equal to ``layer(x)[:, :, i, j]``. The weights are
    packed once, and the inputs and states live in preallocated buffers.
    """

    def __init__(self, layers: list[RowLSTM], batch: int, width: int,
                 gate_biases: list[Tensor | None]) -> None:
        ref = layers[0].state_to_state.weight
        self.layers, self.batch, self.hidden = list(layers), batch, layers[0].hidden
        h, n, num = self.hidden, batch, len(layers)
        in_channels = layers[0].input_to_state.in_channels
        self.taps_w, self.bias = [], []
        for layer, gate_bias in zip(layers, gate_biases):
            wk = layer.input_to_state.masked_weight()[:, :, 0]  # (4h, in, k)
            self.r = wk.shape[-1] // 2  # taps left of the centre; the right ones are masked out
            # (r+1) columns x in features, flattened column-major like the input buffer's window
            self.taps_w.append(wk[:, :, :self.r + 1].permute(2, 1, 0).reshape(-1, 4 * h).contiguous())
            b = layer.input_to_state.bias.expand(n, -1)
            self.bias.append((b if gate_bias is None else b + gate_bias).unsqueeze(1))  # (n, 1, 4h)
        self.x = ref.new_zeros(num, n, width + self.r, in_channels)  # inputs, r zero columns left
        self.pre = ref.new_zeros(num, n, width, 4 * h)  # the row's gates from K_ss and the biases
        self.h_prev, self.c_prev = ref.new_zeros(num, n, width, h), ref.new_zeros(num, n, width, h)
        self.h_cur, self.c_cur = ref.new_zeros(num, n, width, h), ref.new_zeros(num, n, width, h)

    def start_row(self, i: int) -> None:
        for layer in range(len(self.layers)):
            ss = self.layers[layer].state_to_state_row(self.h_prev[layer])  # (n, W, 4h)
            torch.add(ss, self.bias[layer], out=self.pre[layer])

    def input_at(self, layer: int, j: int) -> Tensor:
        """The buffer (n, in) to write layer ``layer``'s input at column ``j`` of this row into."""
        return at(self.x[layer], 1, j + self.r)

    def step(self, layer: int, j: int) -> Tensor:
        """The layer's output h (n, hidden) at column ``j`` of this row."""
        window = self.x[layer, :, j:j + self.r + 1].reshape(self.batch, -1)  # columns j-r..j
        gates = torch.addmm(at(self.pre[layer], 1, j), window, self.taps_w[layer])
        h_new = at(self.h_cur[layer], 1, j)
        lstm_update_into(gates, at(self.c_prev[layer], 1, j), h_new, at(self.c_cur[layer], 1, j))
        return h_new

    def end_row(self, i: int) -> None:
        self.h_prev, self.h_cur = self.h_cur, self.h_prev
        self.c_prev, self.c_cur = self.c_cur, self.c_prev
