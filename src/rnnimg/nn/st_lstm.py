"""The spatiotemporal LSTM cell (ST-LSTM) of PredRNN.

Wang et al. 2017, "PredRNN: Recurrent Neural Networks for Predictive Learning using Spatiotemporal
LSTMs" (eq. 4), and Wang et al. 2022, "PredRNN: A Recurrent Neural Network for Spatiotemporal
Predictive Learning" (PredRNN-V2, the decoupling loss). Besides the temporal memory c (carried
along time inside a layer) the cell has a spatiotemporal memory m that the model passes upward
through the layers and from the top layer at t-1 to the bottom layer at t (the zigzag):

    g  = tanh(W_xg * x + W_hg * h + b_g)          g' = tanh(W'_xg * x + W_mg * m + b'_g)
    i  = sigma(W_xi * x + W_hi * h + b_i)         i' = sigma(W'_xi * x + W_mi * m + b'_i)
    f  = sigma(W_xf * x + W_hf * h + b_f)         f' = sigma(W'_xf * x + W_mf * m + b'_f)
    c_t = f o c + i o g                           m_t = f' o m + i' o g'
    o  = sigma(W_xo * x + W_ho * h + W_o * [c_t, m_t] + b_o)
    h_t = o o tanh(W_1x1 * [c_t, m_t])

The gates of c come from ONE convolution over ``[x, h]`` (i, f, g, o: 4 * hidden channels) and
the gates of m from one over ``[x, m]`` (3 * hidden); this is the paper's function exactly, with
one bias per gate. The official code's separate conv_x / conv_h / conv_m add the same terms in
five convolutions. The memory term of the output gate is a k x k convolution over [c_t, m_t], as
in the official code (the paper writes W_co o c_t + W_mo o m_t).

Under autocast (bf16 / fp16) c and m stay float32 (they accumulate) and the cell casts what its
convolutions read once, not once per convolution (see :mod:`rnnimg.nn.precision`).

Departures: the forget biases start at ``forget_bias`` (the official code adds a constant 1.0 to
the pre-activation instead); no layer normalisation (the official code has it off by default).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnimg.nn.checks import check_kernel_size
from rnnimg.nn.precision import autocast_dtype


class SpatioTemporalLSTMCell(nn.Module):
    """One ST-LSTM step for every pixel of a feature map.

    Args:
        input_channels: channels of x (the frame patches in layer 0, the layer below's h above).
        hidden_channels: channels of h, c and m.
        kernel_size: odd side of the gate convolutions.
        forget_bias: initial bias of both forget gates.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 5,
                 forget_bias: float = 1.0) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        pad, hid = kernel_size // 2, hidden_channels
        self.conv_xh = nn.Conv2d(input_channels + hid, 4 * hid, kernel_size, padding=pad)  # i f g o
        self.conv_xm = nn.Conv2d(input_channels + hid, 3 * hid, kernel_size, padding=pad)  # i' f' g'
        # The output gate's bias lives in conv_xh, so these two need none.
        self.conv_o = nn.Conv2d(2 * hid, hid, kernel_size, padding=pad, bias=False)
        self.conv_1x1 = nn.Conv2d(2 * hid, hid, 1, bias=False)
        with torch.no_grad():
            self.conv_xh.bias.zero_()
            self.conv_xh.bias[hid:2 * hid].fill_(forget_bias)
            self.conv_xm.bias.zero_()
            self.conv_xm.bias[hid:2 * hid].fill_(forget_bias)

    def init_state(self, batch_size: int, height: int, width: int, device=None, dtype=None) -> Tensor:
        """One zero map (B, hidden, H, W): use it for h, c and m."""
        return torch.zeros(batch_size, self.hidden_channels, height, width, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor, c: Tensor,
                m: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """x: (B, C_in, H, W); h, c, m: (B, hidden, H, W).

        Returns (h_t, c_t, m_t, delta_c, delta_m), where delta_c = i o g and delta_m = i' o g' are
        the memory increments that PredRNN-V2's decoupling loss compares.
        """
        low = autocast_dtype(x)  # bf16 / fp16 under autocast, else None (float32: nothing changes)
        m_in = m
        if low is not None:  # what the convolutions read, cast once (they would cast it anyway)
            x, h, m_in = x.to(low), h.to(low), m.to(low)
        i, f, g, o = self.conv_xh(torch.cat([x, h], dim=1)).chunk(4, dim=1)  # (B, hidden, H, W)
        i_m, f_m, g_m = self.conv_xm(torch.cat([x, m_in], dim=1)).chunk(3, dim=1)
        delta_c = torch.sigmoid(i) * torch.tanh(g)
        c = torch.sigmoid(f) * c + delta_c
        delta_m = torch.sigmoid(i_m) * torch.tanh(g_m)
        m = torch.sigmoid(f_m) * m + delta_m
        mem = torch.cat([c, m], dim=1)  # (B, 2 * hidden, H, W)
        if low is not None:  # c and m stay float32; their concatenation is cast once for two convs
            mem = mem.to(low)
        h = torch.sigmoid(o + self.conv_o(mem)) * torch.tanh(self.conv_1x1(mem))
        return h, c, m, delta_c, delta_m
