"""The 3D convolutional GRU and LSTM of 3D-R2N2, one step at a time.

Choy et al. 2016, "3D-R2N2: A Unified Approach for Single and Multi-view 3D Object
Reconstruction", section 3.2: a grid of N x N x N recurrent units (N = 4), each with its own
hidden vector, whose state-to-state connections are 3D convolutions (3x3x3), so a unit only sees
its neighbours. The GRU (eq. 9-11 of the paper, with ``*`` a 3D convolution and ``o`` the
Hadamard product):

    u_t = sigma(W_u * x_t + U_u * h_{t-1} + b_u)                     update gate
    r_t = sigma(W_r * x_t + U_r * h_{t-1} + b_r)                     reset gate
    h_t = (1 - u_t) o h_{t-1} + u_t o tanh(W_h * x_t + U_h * (r_t o h_{t-1}) + b_h)

(the paper's convention: u weighs the NEW candidate). The LSTM (eq. 5-8) has no output gate:

    i_t = sigma(W_i * x_t + U_i * h_{t-1} + b_i)    f_t = sigma(W_f * x_t + U_f * h_{t-1} + b_f)
    s_t = f_t o s_{t-1} + i_t o tanh(W_s * x_t + U_s * h_{t-1} + b_s)
    h_t = tanh(s_t)

Departure: in the paper the input term ``W T(x_t)`` is a fully connected map from the encoder's
feature vector to every unit (about 25M weights at N = 4 and 128 hidden units). Here the caller
maps the features to a small input grid ``x_t`` (B, C_in, N, N, N) (one linear layer in the
model) and the cell convolves ``[x_t, h_{t-1}]`` with one fused 3x3x3 convolution for the gates,
which keeps the unit's local receptive field and costs a few thousand weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnimg.nn.checks import check_kernel_size


class ConvGRU3dCell(nn.Module):
    """One 3D ConvGRU step for every unit of a (D, H, W) grid: ``h_t = cell(x_t, h_{t-1})``.

    Args:
        input_channels: channels of x_t (B, C_in, D, H, W).
        hidden_channels: channels of h_t.
        kernel_size: odd side of the cubic convolutions (3 in the paper); same padding.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        pad = kernel_size // 2
        # u and r from one fused convolution over [x, h]: (B, 2 * hidden, D, H, W)
        self.gates = nn.Conv3d(input_channels + hidden_channels, 2 * hidden_channels, kernel_size,
                               padding=pad)
        # the candidate reads [x, r o h]: r has to come first
        self.candidate = nn.Conv3d(input_channels + hidden_channels, hidden_channels, kernel_size,
                                   padding=pad)

    def init_state(self, x: Tensor) -> Tensor:
        """Zero h shaped like x's grid, (B, hidden, D, H, W)."""
        return x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step: x (B, C_in, D, H, W), h (B, hidden, D, H, W) or None for zeros -> h_t."""
        if h is None:
            h = self.init_state(x)
        u, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return (1 - u) * h + u * n


class ConvLSTM3dCell(nn.Module):
    """One step of 3D-R2N2's 3D LSTM (no output gate): ``(h_t, s_t) = cell(x_t, (h, s))``.

    Args:
        input_channels, hidden_channels, kernel_size: as :class:`ConvGRU3dCell`.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        # i, f and the candidate from one fused convolution over [x, h]: (B, 3 * hidden, D, H, W)
        self.gates = nn.Conv3d(input_channels + hidden_channels, 3 * hidden_channels, kernel_size,
                               padding=kernel_size // 2)

    def init_state(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x.new_zeros(x.shape[0], self.hidden_channels, *x.shape[2:])
        return h, h.clone()

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """One step: x (B, C_in, D, H, W), state (h, s) or None for zeros -> (h_t, s_t)."""
        h, s = self.init_state(x) if state is None else state
        i, f, g = self.gates(torch.cat([x, h], dim=1)).chunk(3, dim=1)
        s = torch.sigmoid(f) * s + torch.sigmoid(i) * torch.tanh(g)
        return torch.tanh(s), s
