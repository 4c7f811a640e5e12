"""Stacked fully connected LSTMs stepped one time step at a time, as SVG (Denton & Fergus 2018)
builds its frame predictor and its Gaussian posterior and prior: a linear embedding, ``layers``
``torch.nn.LSTMCell`` s, and a linear head (a vector, or the mean and log-variance of a diagonal
Gaussian)."""

from __future__ import annotations

from torch import Tensor, nn

LSTMState = list[tuple[Tensor, Tensor]]  # (h, c) per layer, each (B, hidden)


class LSTMStack(nn.Module):
    """x (B, input) -> linear embedding -> ``layers`` LSTM cells -> linear -> (B, output).

    Args:
        input_size, hidden_size, output_size: sizes of x, of every LSTM layer, of the output.
        layers: stacked LSTM cells (layer l reads layer l-1's h at the same step).
        tanh: squash the output with tanh (SVG's frame predictor, whose output the decoder reads
            where the encoder's tanh output would be).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, layers: int = 1,
                 tanh: bool = False) -> None:
        super().__init__()
        self.hidden_size, self.tanh = hidden_size, tanh
        self.embed = nn.Linear(input_size, hidden_size)
        self.cells = nn.ModuleList(nn.LSTMCell(hidden_size, hidden_size) for _ in range(layers))
        self.head = nn.Linear(hidden_size, output_size)

    def init_state(self, batch_size: int, like: Tensor) -> LSTMState:
        """Zero (h, c) for every layer, with ``like``'s device and dtype."""
        zero = like.new_zeros(batch_size, self.hidden_size)
        return [(zero, zero) for _ in self.cells]

    def forward(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """One time step: (output (B, output_size), new state)."""
        h = self.embed(x)
        new_state = []
        for cell, layer_state in zip(self.cells, state):
            h, c = cell(h, layer_state)
            new_state.append((h, c))
        out = self.head(h)
        return (out.tanh() if self.tanh else out), new_state


class GaussianLSTM(nn.Module):
    """An :class:`LSTMStack` whose head gives a diagonal Gaussian: (mu, logvar), each (B, z_dim)."""

    def __init__(self, input_size: int, hidden_size: int, z_dim: int, layers: int = 1) -> None:
        super().__init__()
        self.z_dim = z_dim
        self.stack = LSTMStack(input_size, hidden_size, 2 * z_dim, layers)

    def init_state(self, batch_size: int, like: Tensor) -> LSTMState:
        return self.stack.init_state(batch_size, like)

    def forward(self, x: Tensor, state: LSTMState) -> tuple[Tensor, Tensor, LSTMState]:
        """One time step: (mu, logvar, new state)."""
        out, state = self.stack(x, state)
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar, state
