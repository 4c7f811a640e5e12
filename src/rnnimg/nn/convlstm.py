"""Convolutional recurrent cell: ConvLSTM (ConvGRU lives in :mod:`rnnimg.nn.convgru`).

ConvLSTM (Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for
Precipitation Nowcasting", eq. 3) replaces the LSTM's matrix products by convolutions, so every
state is a feature map and every pixel of a frame is updated at once:

    i_t = sigma(W_xi * x_t + W_hi * h_{t-1} + W_ci o c_{t-1} + b_i)
    f_t = sigma(W_xf * x_t + W_hf * h_{t-1} + W_cf o c_{t-1} + b_f)
    c_t = f_t o c_{t-1} + i_t o tanh(W_xc * x_t + W_hc * h_{t-1} + b_c)
    o_t = sigma(W_xo * x_t + W_ho * h_{t-1} + W_co o c_t + b_o)
    h_t = o_t o tanh(c_t)

(``*`` convolution, ``o`` Hadamard product). All eight convolutions are computed as ONE convolution
over ``[x_t, h_{t-1}]`` with 4 * hidden output channels (i, f, g, o in that order), which is the
same function with one bias per gate. The peephole weights W_c* are per-position maps as in the
paper; they exist only when ``peephole=True`` (a parameter that is never used breaks DDP).

Under autocast (bf16 / fp16) the cell keeps c in float32 and returns h in the compute dtype, cast
once where it is made instead of at every convolution that reads it (see :mod:`rnnimg.nn.precision`).

Departure: the forget-gate bias starts at ``forget_bias`` (1.0), a standard trick (Jozefowicz et
al. 2015) that the paper does not mention.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnimg.nn.checks import check_kernel_size
from rnnimg.nn.precision import autocast_dtype


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step for every pixel of a feature map.

    Args:
        input_channels: channels of x_t.
        hidden_channels: channels of h_t and c_t.
        kernel_size: odd side of the (square) gate convolution; same padding keeps the map size.
        peephole: add the Hadamard peepholes W_ci o c, W_cf o c, W_co o c_t of the paper.
        peephole_size: (H, W) of the state maps, for per-position peepholes as in the paper;
            ``None`` makes them per-channel (broadcast over positions).
        forget_bias: initial bias of the forget gate.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3,
                 peephole: bool = False, peephole_size: tuple[int, int] | None = None,
                 forget_bias: float = 1.0) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        self.peephole = peephole
        self.gates = nn.Conv2d(input_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                               padding=kernel_size // 2)
        with torch.no_grad():
            self.gates.bias.zero_()
            self.gates.bias[hidden_channels:2 * hidden_channels].fill_(forget_bias)
        if peephole:
            shape = (hidden_channels, *(peephole_size or (1, 1)))
            # Zero start: the cell begins as a plain ConvLSTM and learns how much to peek.
            self.w_ci = nn.Parameter(torch.zeros(shape))
            self.w_cf = nn.Parameter(torch.zeros(shape))
            self.w_co = nn.Parameter(torch.zeros(shape))

    def init_state(self, batch_size: int, height: int, width: int, device=None,
                   dtype=None) -> tuple[Tensor, Tensor]:
        """Zero (h, c), each (B, hidden, H, W)."""
        h = torch.zeros(batch_size, self.hidden_channels, height, width, device=device, dtype=dtype)
        return h, torch.zeros_like(h)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, C_in, H, W); state: (h, c) each (B, hidden, H, W), or None for zeros.

        Returns the new (h, c).
        """
        if state is None:
            state = self.init_state(x.shape[0], x.shape[2], x.shape[3], x.device, x.dtype)
        h, c = state
        low = autocast_dtype(x)  # bf16 / fp16 under autocast, else None (float32: nothing changes)
        if low is not None:  # the gate convolution reads x and h in `low` anyway: cat them in it
            x, h = x.to(low), h.to(low)
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # each (B, hidden, H, W)
        if self.peephole:
            i = i + self.w_ci * c
            f = f + self.w_cf * c
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        if self.peephole:
            o = o + self.w_co * c  # the output gate peeks at the NEW cell state
        h = torch.sigmoid(o) * torch.tanh(c)
        if low is not None:  # c stays float32 (it accumulates); h is only ever read by convolutions
            h = h.to(low)
        return h, c
