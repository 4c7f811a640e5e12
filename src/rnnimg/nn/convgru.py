"""ConvGRU: the gated recurrent unit with convolutions, one step at a time.

Ballas et al. 2016, "Delving Deeper into Convolutional Networks for Learning Video
Representations", eq. 5 (the GRU of Cho et al. 2014 with every matrix product replaced by a
same-padded convolution, so every pixel of a feature map is updated at once):

    z_t = sigma(W_xz * x_t + W_hz * h_{t-1} + b_z)              update gate
    r_t = sigma(W_xr * x_t + W_hr * h_{t-1} + b_r)              reset gate
    n_t = tanh(W_xn * x_t + W_hn * (r_t o h_{t-1}) + b_n)       candidate
    h_t = (1 - z_t) o n_t + z_t o h_{t-1}

(``*`` convolution, ``o`` Hadamard product). The four convolutions of z and r are ONE convolution
over ``[x_t, h_{t-1}]`` with 2 * hidden output channels (z, then r); the candidate is a second
convolution over ``[x_t, r_t o h_{t-1}]``. Both are the same functions as the paper's with one bias
per gate (the paper's two biases per gate add up to one).

Convention: z weighs the OLD state, as in ``torch.nn.GRU`` (Cho et al. write the same with z and
1 - z swapped; the two are the same family of functions with z's sign flipped).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnimg.nn.checks import check_kernel_size


class ConvGRUCell(nn.Module):
    """One ConvGRU step for every pixel of a feature map.

    The public one-step API is ``h_t = cell(x_t, h_{t-1})``; a caller that iterates (the
    translator's refinement loop) keeps ``h`` itself, so the same weights serve every step.

    Args:
        input_channels: channels of x_t.
        hidden_channels: channels of h_t.
        kernel_size: odd side of the (square) convolutions; same padding keeps the map size.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        pad = kernel_size // 2
        # z and r from one fused convolution over [x, h]: (B, 2 * hidden, H, W)
        self.gates = nn.Conv2d(input_channels + hidden_channels, 2 * hidden_channels, kernel_size,
                               padding=pad)
        # the candidate reads [x, r o h]: it cannot join the fused convolution, r comes first
        self.candidate = nn.Conv2d(input_channels + hidden_channels, hidden_channels, kernel_size,
                                   padding=pad)

    def init_state(self, batch_size: int, height: int, width: int, device=None, dtype=None) -> Tensor:
        """Zero h, (B, hidden, H, W)."""
        return torch.zeros(batch_size, self.hidden_channels, height, width, device=device, dtype=dtype)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One step.

        Args:
            x: (B, C_in, H, W).
            h: (B, hidden, H, W), or None for zeros.

        Returns:
            h_t, (B, hidden, H, W).
        """
        if h is None:
            h = self.init_state(x.shape[0], x.shape[2], x.shape[3], x.device, x.dtype)
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], dim=1))).chunk(2, dim=1)  # (B, hid, H, W)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        return (1 - z) * n + z * h
