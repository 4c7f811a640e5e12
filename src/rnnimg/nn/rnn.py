"""Plain recurrent layers: the textbook Elman RNN and a factory for rnn / lstm / gru.

The equations are the seed article's, exactly:

    h_t = f(W_hh h_{t-1} + W_xh x_t + b_h),        y_t = W_hy h_t + b_y,

with f = tanh or relu. ``torch.nn.RNN`` writes the same recurrence with two biases (b_ih + b_hh);
:meth:`RNNCell.from_torch` folds them into the one b_h so the parity test can copy weights over.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

_NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


class RNNCell(nn.Module):
    """One step of the Elman RNN: ``h_t = f(W_hh h_{t-1} + W_xh x_t + b_h)``.

    Args:
        input_size: size of x_t.
        hidden_size: size of h_t.
        nonlinearity: ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh") -> None:
        super().__init__()
        if nonlinearity not in _NONLINEARITIES:
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        self.W_xh = nn.Parameter(torch.empty(hidden_size, input_size))
        self.W_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.b_h = nn.Parameter(torch.empty(hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn.RNN's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def input_projection(self, x: Tensor) -> Tensor:
        """W_xh x + b_h for any leading shape: done for all time steps at once by :class:`RNN`."""
        return x @ self.W_xh.T + self.b_h

    def step(self, projected_x: Tensor, h: Tensor) -> Tensor:
        """The recurrence given an already projected input (the only sequential work)."""
        return _NONLINEARITIES[self.nonlinearity](projected_x + h @ self.W_hh.T)

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """x: (B, input_size); h: (B, hidden_size) or None for zeros. Returns h_t (B, hidden_size)."""
        if h is None:
            h = x.new_zeros(x.shape[0], self.hidden_size)
        return self.step(self.input_projection(x), h)

    @torch.no_grad()
    def copy_from_torch(self, cell: nn.RNNCell | nn.RNN, layer: int = 0) -> None:
        """Copy the weights of a ``torch.nn.RNNCell`` (or one layer of ``torch.nn.RNN``)."""
        sfx = "" if isinstance(cell, nn.RNNCell) else f"_l{layer}"
        self.W_xh.copy_(getattr(cell, f"weight_ih{sfx}"))
        self.W_hh.copy_(getattr(cell, f"weight_hh{sfx}"))
        self.b_h.copy_(getattr(cell, f"bias_ih{sfx}") + getattr(cell, f"bias_hh{sfx}"))


class RNN(nn.Module):
    """A stack of :class:`RNNCell` run over a sequence, with the optional output ``y_t = W_hy h_t + b_y``.

    The input projection W_xh x_t + b_h is one matrix multiply over all time steps; the Python loop
    runs only along the recurrence.

    Args:
        input_size, hidden_size, nonlinearity: as for :class:`RNNCell`.
        num_layers: stacked layers; layer k's hidden sequence is layer k+1's input.
        output_size: if set, ``forward`` returns y_t = W_hy h_t + b_y instead of h_t.
        batch_first: sequences are (B, T, ...) if True (the default), else (T, B, ...).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", output_size: int | None = None,
                 batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first
        self.cells = nn.ModuleList(
            RNNCell(input_size if i == 0 else hidden_size, hidden_size, nonlinearity)
            for i in range(num_layers)
        )
        self.output = nn.Linear(hidden_size, output_size) if output_size else None

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x: (B, T, I). h0: (L, B, H) or None. Returns (y or h over time (B, T, O|H), h_T (L, B, H))."""
        if not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I)
        finals = []
        for layer, cell in enumerate(self.cells):
            projected = cell.input_projection(x)  # (B, T, H), all steps at once
            h = projected.new_zeros(x.shape[0], cell.hidden_size) if h0 is None else h0[layer]
            outs = []
            for t in range(x.shape[1]):
                h = cell.step(projected[:, t], h)
                outs.append(h)
            x = torch.stack(outs, dim=1)  # (B, T, H)
            finals.append(h)
        y = self.output(x) if self.output is not None else x
        if not self.batch_first:
            y = y.transpose(0, 1)
        return y, torch.stack(finals)


RECURRENT_KINDS = ("rnn", "lstm", "gru")


class LSTM(nn.LSTM):
    """``torch.nn.LSTM`` that runs in float32 under CPU autocast.

    oneDNN's bfloat16 LSTM primitive exists only on CPUs with AVX-512 BF16; on others (an AVX2
    machine, measured here with torch 2.14) ``--precision bf16-mixed`` stopped with "could not create
    a primitive descriptor for the LSTM forward propagation primitive". ``nn.GRU`` and ``nn.RNN``
    have no such primitive and run under autocast as they are. Weights and state-dict keys are
    those of ``nn.LSTM``; on a GPU nothing changes.
    """

    def forward(self, x, hx=None):
        if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            with torch.autocast("cpu", enabled=False):
                hx = None if hx is None else tuple(h.float() for h in hx)
                return super().forward(x.float(), hx)
        return super().forward(x, hx)


def make_recurrent(kind: str, input_size: int, hidden_size: int, num_layers: int = 1,
                   dropout: float = 0.0) -> nn.Module:
    """A batch-first recurrent layer of ``kind``: ``"rnn"`` (:class:`RNN`, the textbook equations),
    ``"lstm"`` or ``"gru"`` (``torch.nn.LSTM`` / ``torch.nn.GRU``, cuDNN-backed on a GPU).

    Every kind is called as ``layer(x, state) -> (outputs (B, T, H), state)``.
    """
    if kind == "rnn":
        return RNN(input_size, hidden_size, num_layers)
    if kind == "lstm":
        return LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
    if kind == "gru":
        return nn.GRU(input_size, hidden_size, num_layers, batch_first=True, dropout=dropout)
    raise ValueError(f"cell must be one of {RECURRENT_KINDS}, got {kind!r}")
