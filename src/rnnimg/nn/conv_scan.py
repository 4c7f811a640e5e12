"""A convolutional linear recurrence over time: every pixel of a feature map carries a minGRU or
minLSTM state whose gates are convolutions of the input frame alone, so a whole clip's states come
from one scan over time (:func:`rnnimg.nn.scan.linear_scan`) and a stream advances with
:meth:`ConvScanCell.step`, one frame at a time with a constant-size state.

For a frame x_t (B, C, H, W), with ``*`` a same-padded k x k convolution and ``o`` the Hadamard
product (minGRU; minLSTM's (a, b) come from :func:`rnnimg.nn.minrnn.minlstm_coefficients`):

    [z~, h~, o~] = W * x_t + bias                         (one convolution for every gate)
    h_t = (1 - sigmoid(z~)) o h_{t-1} + sigmoid(z~) o h~   (a_t h_{t-1} + b_t: a linear recurrence)
    y_t = sigmoid(o~) o tanh(h_t)                         (the layer's output, an LSTM's output gate)

This is ConvLSTM's cell (Shi et al. 2015) with the state-to-gate convolutions removed, which is
what makes the state update linear in the state (the quasi-recurrent layout of Bradbury et al.
2017, "Quasi-Recurrent Neural Networks", with Feng et al. 2024's minGRU / minLSTM coefficients).
ConvS5 (Smith et al. 2023, "Convolutional State Space Models for Long-Range Spatiotemporal
Modeling") makes the same trade: spatial mixing happens in the convolutions of the input and of
the output, the transition is pointwise, and the whole sequence is one parallel scan. Departures
from ConvS5: the decay a_t is input-dependent (a gate, as in minGRU and Mamba) instead of a fixed
diagonal matrix from a discretised continuous-time system, and the state has the feature size.

Under autocast the coefficients and the state stay in float32 (the state accumulates over time),
as :class:`rnnimg.nn.ConvLSTMCell` keeps c in float32.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnimg.nn.checks import check_kernel_size
from rnnimg.nn.minrnn import CELLS, GATE_COUNTS, mingru_coefficients, minlstm_coefficients
from rnnimg.nn.precision import autocast_dtype
from rnnimg.nn.scan import SCAN_METHODS, linear_scan


class ConvScanCell(nn.Module):
    """A convolutional minGRU / minLSTM with an output gate, parallel over time.

    Args:
        input_channels: channels of x_t.
        hidden_channels: channels of the state h_t and of the output y_t.
        kernel_size: odd side of the gate convolution.
        cell: ``"mingru"`` or ``"minlstm"``: how the gates make (a_t, b_t).
        forget_bias: initial bias that keeps the state (minGRU: -bias on z~, so a starts near
            sigmoid(bias); minLSTM: +bias on the forget gate).
        scan_method: :func:`rnnimg.nn.scan.linear_scan` method of :meth:`forward`.
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size: int = 3,
                 cell: str = "mingru", forget_bias: float = 1.0, scan_method: str = "auto") -> None:
        super().__init__()
        check_kernel_size(kernel_size)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        if scan_method not in SCAN_METHODS:
            raise ValueError(f"scan_method must be one of {SCAN_METHODS}, got {scan_method!r}")
        self.input_channels, self.hidden_channels = input_channels, hidden_channels
        self.cell, self.scan_method = cell, scan_method
        self.gate_count = GATE_COUNTS[cell] + 1  # the cell's gates, then the output gate
        self.gates = nn.Conv2d(input_channels, self.gate_count * hidden_channels, kernel_size,
                               padding=kernel_size // 2)
        with torch.no_grad():
            self.gates.bias.zero_()
            self.gates.bias[:hidden_channels].fill_(-forget_bias if cell == "mingru" else forget_bias)

    def init_state(self, batch_size: int, height: int, width: int, device=None, dtype=None) -> Tensor:
        """The zero state h, (B, hidden, H, W)."""
        return torch.zeros(batch_size, self.hidden_channels, height, width, device=device, dtype=dtype)

    def _coefficients(self, gates: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
        """(a, b, output gate pre-activation) from the gate convolution's output, channels on ``dim``."""
        parts = gates.chunk(self.gate_count, dim=dim)
        if autocast_dtype(gates) is not None:  # the recurrence runs in float32
            parts = [p.float() for p in parts]
        if self.cell == "mingru":
            a, b = mingru_coefficients(parts[0], parts[1])
        else:
            a, b = minlstm_coefficients(parts[0], parts[1], parts[2])
        return a, b, parts[-1]

    @staticmethod
    def _output(h: Tensor, o: Tensor) -> Tensor:
        return torch.sigmoid(o) * torch.tanh(h)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """A whole clip at once.

        Args:
            x: (B, T, C_in, H, W).
            h0: the state before the first frame, (B, hidden, H, W); None means zeros.

        Returns:
            (y, h), each (B, T, hidden, H, W): the outputs and the states after every frame.
        """
        b, t = x.shape[:2]
        gates = self.gates(x.flatten(0, 1)).unflatten(0, (b, t))  # (B, T, G*hidden, H, W)
        a, coef_b, o = self._coefficients(gates, dim=2)  # each (B, T, hidden, H, W)
        h = linear_scan(a, coef_b, h0, dim=1, method=self.scan_method)
        return self._output(h, o), h

    def step(self, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """One frame: x (B, C_in, H, W), h (B, hidden, H, W) -> (y, new h), each (B, hidden, H, W).

        The same operations as one position of :meth:`forward`'s sequential scan (a multiply-add
        of the state), so a stream of steps gives the scan's states."""
        a, b, o = self._coefficients(self.gates(x), dim=1)
        h = torch.addcmul(b, a, h)
        return self._output(h, o), h
