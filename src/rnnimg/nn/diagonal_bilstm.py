"""Diagonal BiLSTM (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.2).

Each direction skews the input map, shifting row i right by i (width W + H - 1), so that a diagonal
of the image becomes a column; it then scans the columns left to right. At skewed column k the
gates are

    [i, f, g, o] = K_is (*) x[:, k] + K_ss (*) h[:, k-1]

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

Sampling one pixel at a time: :meth:`DiagonalBiLSTM.raster_steps` gives a stack of these layers a
per-row / per-pixel step API with carried state (:class:`DiagonalBiLSTMSteps`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.nn.masked import MaskedConv2d
from rnnimg.nn.row_lstm import gate_groups, lstm_update, lstm_update_into
from rnnimg.runtime.graphs import at, into


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

    @classmethod
    def raster_steps(cls, layers: list[DiagonalBiLSTM], batch: int, height: int, width: int,
                     gate_biases: list[Tensor | None]) -> DiagonalBiLSTMSteps:
        """Step a stack of Diagonal BiLSTM layers one pixel at a time in raster order; see
        :class:`DiagonalBiLSTMSteps`. ``gate_biases`` holds one (batch, 8h) offset or None per
        layer."""
        return DiagonalBiLSTMSteps(layers, batch, height, width, gate_biases)


class DiagonalBiLSTMSteps:
    """A stack of :class:`DiagonalBiLSTM` layers run one pixel at a time, carrying the state.

    In image coordinates the left-to-right scan at (i, j) needs the cell above (i-1, j) and the
    cell to the left (i, j-1), both known in raster order: :meth:`start_row` applies the "above"
    tap of K_ss to all of row i-1 at once, and :meth:`step` runs one cell per layer and pixel. The
    left neighbours of column 0 are the skew's padded cells, which carry K_ss's bias
    (:meth:`DiagonalLSTM.padded_states`), not zeros. The right-to-left scan reaches (i, j) only
    from row i-1 (its output is shifted down a row), and row i-1's scan needs all of that row's
    input: :meth:`end_row` runs the right-to-left scans of a finished row for every layer at once
    (batched matrix products across layers).

    Per pixel (i, j) and layer l the caller writes the layer's input at column j into
    :meth:`input_at` ``(l, j)`` and calls :meth:`step` ``(l, j)``, which returns the layer's output
    at (i, j), equal to ``layer(x)[:, :, i, j]``.
    """

    def __init__(self, layers: list[DiagonalBiLSTM], batch: int, height: int, width: int,
                 gate_biases: list[Tensor | None]) -> None:
        h, n, num = layers[0].hidden, batch, len(layers)
        self.hidden, self.num, self.batch, self.width = h, num, batch, width
        in_channels = layers[0].forward_lstm.input_to_state.in_channels

        def packed(lstm: DiagonalLSTM) -> tuple[Tensor, Tensor, Tensor, Tensor]:
            wi = lstm.input_to_state.masked_weight()[:, :, 0, 0].t()  # (in, 4h)
            ws = lstm.state_to_state.weight  # (4h, h, 2): [above, left]
            return wi, ws[:, :, 0].t(), ws[:, :, 1].t(), lstm.input_to_state.bias + lstm.state_to_state.bias

        fwd = [packed(layer.forward_lstm) for layer in layers]
        bwd = [packed(layer.backward_lstm) for layer in layers]
        self.f_in = [p[0].contiguous() for p in fwd]
        self.f_above = torch.stack([p[1] for p in fwd])  # (L, h, 4h)
        self.f_left = [p[2].contiguous() for p in fwd]
        self.b_in_above = torch.stack([torch.cat([p[0], p[1]]) for p in bwd])  # (L, in + h, 4h)
        self.b_left = torch.stack([p[2] for p in bwd])  # (L, h, 4h)
        f_bias, b_bias = [], []
        for (*_, fb), (*_, bb), gate_bias in zip(fwd, bwd, gate_biases):
            lf, lb = (None, None) if gate_bias is None else gate_bias.chunk(2, dim=1)
            f_bias.append(fb.expand(n, -1) if lf is None else fb + lf)
            b_bias.append(bb.expand(n, -1) if lb is None else bb + lb)
        self.f_bias = torch.stack(f_bias).unsqueeze(2)  # (L, n, 1, 4h)
        self.b_bias = torch.stack(b_bias).unsqueeze(2)
        # left neighbours of column 0 (left to right) and of column W-1 (right to left), per row
        pads_f = [layer.forward_lstm.padded_states(height) for layer in layers]
        pads_b = [layer.backward_lstm.padded_states(height) for layer in layers]
        self.pad_hf = torch.stack([p[0] for p in pads_f])  # (L, H, h)
        self.pad_cf = torch.stack([p[1] for p in pads_f])
        self.pad_hb = torch.stack([p[0] for p in pads_b])
        self.pad_cb = torch.stack([p[1] for p in pads_b])
        ref = self.f_above
        # x: every layer's input row; hf, cf: left-to-right states of the current row, slot 0 the
        # padded left neighbour; hb, cb: right-to-left states of the last finished row; pre_f:
        # the row's left-to-right gates from above + biases; pre_b: the same for right-to-left
        self.x = ref.new_zeros(num, n, width, in_channels)
        self.hf, self.cf = ref.new_zeros(num, n, width + 1, h), ref.new_zeros(num, n, width + 1, h)
        self.hb, self.cb = ref.new_zeros(num, n, width, h), ref.new_zeros(num, n, width, h)
        self.pre_f = ref.new_zeros(num, n, width, 4 * h)
        self.pre_b = ref.new_zeros(num, n, width, 4 * h)
        self.out = ref.new_zeros(num, n, width, h)

    def start_row(self, i: int) -> None:
        num, n, w, h = self.num, self.batch, self.width, self.hidden
        above = self.hf[:, :, 1:].reshape(num, n * w, h) if i else self.hf.new_zeros(num, n * w, h)
        torch.add(torch.bmm(above, self.f_above).view(num, n, w, 4 * h), self.f_bias, out=self.pre_f)
        self.hf[:, :, 0] = self.pad_hf[:, i].unsqueeze(1)
        self.cf[:, :, 0] = self.pad_cf[:, i].unsqueeze(1)

    def input_at(self, layer: int, j: int) -> Tensor:
        """The buffer (n, in) to write layer ``layer``'s input at column ``j`` of this row into."""
        return at(self.x[layer], 1, j)

    def step(self, layer: int, j: int) -> Tensor:
        """The layer's output (n, hidden) at column ``j`` of this row: the left-to-right state
        there plus the right-to-left state of the pixel above."""
        hf, cf = self.hf[layer], self.cf[layer]  # (n, W + 1, h): slot j is column j - 1
        gates = torch.addmm(at(self.pre_f[layer], 1, j), at(self.x[layer], 1, j), self.f_in[layer])
        gates.addmm_(at(hf, 1, j), self.f_left[layer])
        h_new = at(hf, 1, j + 1)
        lstm_update_into(gates, at(cf, 1, j), h_new, at(cf, 1, j + 1))
        return into(torch.add, h_new, at(self.hb[layer], 1, j), out=at(self.out[layer], 1, j))

    def end_row(self, i: int) -> None:
        """Right-to-left scans of row i, every layer at once: (L, n, ...) batched products."""
        num, n, w, h = self.num, self.batch, self.width, self.hidden
        inp = torch.cat([self.x, self.hb], dim=-1).view(num, n * w, -1)  # [x, h above]
        torch.add(torch.bmm(inp, self.b_in_above).view(num, n, w, 4 * h), self.b_bias, out=self.pre_b)
        h_left = self.pad_hb[:, i].unsqueeze(1).expand(num, n, h)
        c_left = self.pad_cb[:, i].unsqueeze(1).expand(num, n, h)
        for j in range(w - 1, -1, -1):  # right to left; the left neighbour is column j + 1
            gates = torch.baddbmm(self.pre_b[:, :, j], h_left, self.b_left)  # (L, n, 4h)
            lstm_update_into(gates, c_left, self.hb[:, :, j], self.cb[:, :, j])
            h_left, c_left = self.hb[:, :, j], self.cb[:, :, j]
