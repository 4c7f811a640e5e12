"""minGRU and minLSTM (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi 2024, "Were RNNs All We Needed?").

Both drop the previous state from the gates, so the state update is linear in the state,
h_t = a_t * h_{t-1} + b_t, with a_t and b_t functions of the input x_t alone. Training runs the
whole sequence at once with :func:`rnnimg.nn.scan.linear_scan`; sampling runs :meth:`step`, one
position at a time with a constant-size state. The two give the same states (tested).

    minGRU:   z = sigmoid(W_z x),  h~ = W_h x,  h_t = (1 - z) h_{t-1} + z h~
    minLSTM:  f = sigmoid(W_f x),  i = sigmoid(W_i x),  h~ = W_h x,
              h_t = f' h_{t-1} + i' h~  with  f' = f / (f + i),  i' = i / (f + i)

Departure from the paper: the paper's parallel mode works in log space and so makes h~ positive
(g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise); the exact scans used here take any sign, so
h~ is the plain linear map of the paper's sequential equations.

The input projection can be masked by colour groups (:class:`MaskedLinear`): an output feature of
group g then reads input features of groups <= g only, which is what PixelRNN's mask B does for a
1x1 convolution; the recurrence is elementwise, so it never mixes groups.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.nn.masked import build_mask, colour_groups
from rnnimg.nn.scan import linear_scan

CELLS = ("mingru", "minlstm")
GATE_COUNTS = {"mingru": 2, "minlstm": 3}  # projected features per hidden unit


def mingru_coefficients(z_pre: Tensor, candidate: Tensor) -> tuple[Tensor, Tensor]:
    """minGRU's (a, b) of h_t = a h_{t-1} + b: a = 1 - z, b = z h~, with z = sigmoid(z_pre)."""
    z = torch.sigmoid(z_pre)
    return 1 - z, z * candidate


def minlstm_coefficients(f_pre: Tensor, i_pre: Tensor, candidate: Tensor) -> tuple[Tensor, Tensor]:
    """minLSTM's (a, b): a = f / (f + i), b = i / (f + i) h~, with f, i the sigmoids of the
    pre-activations."""
    f, i = torch.sigmoid(f_pre), torch.sigmoid(i_pre)
    total = f + i
    return f / total, i / total * candidate


class MaskedLinear(nn.Linear):
    """A linear map over the last axis whose output feature of colour group g reads only input
    features of groups <= g (PixelRNN's mask B for a 1x1 convolution, channels last).

    Args:
        in_features, out_features: sizes.
        groups: colour groups; 1 means no mask.
        in_groups, out_groups: group of each feature; default contiguous blocks.
    """

    def __init__(self, in_features: int, out_features: int, groups: int = 1,
                 in_groups: Tensor | None = None, out_groups: Tensor | None = None) -> None:
        super().__init__(in_features, out_features)
        in_groups = colour_groups(in_features, groups) if in_groups is None else in_groups
        out_groups = colour_groups(out_features, groups) if out_groups is None else out_groups
        mask = build_mask(out_groups, in_groups, (1, 1), "B")[:, :, 0, 0]  # (out, in)
        self.register_buffer("mask", mask, persistent=False)

    def masked_weight(self) -> Tensor:
        return self.weight * self.mask

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.masked_weight(), self.bias)


class _MinRNN(nn.Module):
    """Shared parts: the gate projection, the parallel forward and the one-position step."""

    gate_count = 2

    def __init__(self, input_size: int, hidden_size: int, groups: int = 1,
                 scan_method: str = "auto") -> None:
        super().__init__()
        self.input_size, self.hidden_size, self.scan_method = input_size, hidden_size, scan_method
        # gate features laid out [gate 1, gate 2, (gate 3)], each hidden long; unit u of every
        # gate belongs to the colour group of hidden unit u
        out_groups = colour_groups(hidden_size, groups).repeat(self.gate_count)
        self.project = MaskedLinear(input_size, self.gate_count * hidden_size, groups,
                                    out_groups=out_groups)

    def coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        """(a, b) of h_t = a h_{t-1} + b from the projected input ``gates`` (..., k * hidden)."""
        raise NotImplementedError

    def forward(self, x: Tensor, h0: Tensor | None = None, dim: int = 1,
                reverse: bool = False) -> Tensor:
        """All states for a sequence.

        Args:
            x: (..., input_size) with the sequence along ``dim`` (e.g. (B, T, input_size)).
            h0: the state before the first position, (x's shape without ``dim``)[:-1] + (hidden,);
                None means zeros.
            dim: the sequence axis of ``x`` (not the last).
            reverse: run from the last position to the first.

        Returns:
            h: x's shape with hidden_size last.
        """
        a, b = self.coefficients(self.project(x))
        return linear_scan(a, b, h0, dim=dim, method=self.scan_method, reverse=reverse)

    def update(self, gates: Tensor, h: Tensor) -> Tensor:
        """The new state from the projected input ``gates`` and the state ``h`` (one position)."""
        a, b = self.coefficients(gates)
        return torch.addcmul(b, a, h)

    def step(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        """One position: x (..., input_size), h (..., hidden) or None (zeros) -> the new h."""
        gates = self.project(x)
        return self.coefficients(gates)[1] if h is None else self.update(gates, h)


class MinGRU(_MinRNN):
    """minGRU: h_t = (1 - z_t) h_{t-1} + z_t h~_t, with z and h~ from x_t alone.

    Args:
        input_size, hidden_size: feature sizes.
        groups: colour groups of the input projection (1 = none).
        scan_method: :func:`linear_scan` method of the parallel forward.
    """

    gate_count = 2

    def coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        return mingru_coefficients(*gates.chunk(2, dim=-1))

    def update(self, gates: Tensor, h: Tensor) -> Tensor:
        z_pre, candidate = gates.chunk(2, dim=-1)
        return torch.lerp(h, candidate, torch.sigmoid(z_pre))  # h + z (h~ - h): 2 operations


class MinLSTM(_MinRNN):
    """minLSTM: h_t = f'_t h_{t-1} + i'_t h~_t, with f' = f / (f + i), i' = i / (f + i).

    Args: as :class:`MinGRU`.
    """

    gate_count = 3

    def coefficients(self, gates: Tensor) -> tuple[Tensor, Tensor]:
        return minlstm_coefficients(*gates.chunk(3, dim=-1))


def make_min_rnn(cell: str, input_size: int, hidden_size: int, groups: int = 1,
                 scan_method: str = "auto") -> _MinRNN:
    """A :class:`MinGRU` (``cell="mingru"``) or :class:`MinLSTM` (``"minlstm"``)."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    cls = MinGRU if cell == "mingru" else MinLSTM
    return cls(input_size, hidden_size, groups, scan_method)
