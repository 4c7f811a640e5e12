"""Parallel linear recurrences: h_t = a_t * h_{t-1} + b_t for every t at once, in pure PyTorch.

A recurrence whose new state is *linear* in the old one (the coefficients a_t and b_t may depend on
the input, not on h) is associative: the pairs (a, b) compose as
(a2, b2) o (a1, b1) = (a2 * a1, a2 * b1 + b2). So the whole sequence can be computed in a few
whole-tensor operations instead of a Python step per position (Blelloch 1990; Martin and Cundy 2018
"Parallelizing linear recurrent neural nets over sequence length"; Heinsen 2023 "Efficient
parallelization of a ubiquitous sequential computation"). minGRU, minLSTM (Feng et al. 2024) and
diagonal state-space layers are all of this form.

Three ways are offered; they agree to ~1e-12 in float64 (tested):

- ``"doubling"`` (the default): a Hillis-Steele scan. Step k combines every position with the one
  2^k before it, so ceil(log2 T) steps of three elementwise operations finish the scan. It takes
  any real a and b (signs, zeros, values above one), divides by nothing and takes no logarithms, so
  it is as accurate as the sequential loop. The backward pass is another linear recurrence run in
  reverse (g_t = dL/dh_t + a_{t+1} g_{t+1}), done by the same scan in a custom autograd function,
  so the forward stores only a and h.
- ``"log"``: Heinsen's log-space scan, h_t = A_t (h_0 + sum_{s<=t} b_s / A_s) with
  A_t = prod_{s<=t} a_s evaluated as exp(log A_t + logcumsumexp(log|b_s| - log A_s)). It needs
  a_t > 0; b's sign is handled by scanning its positive and negative parts separately. Autograd
  differentiates it.
- ``"sequential"``: the reference loop, one step per position.

Measured on the 2-core CPU of this project (``python benchmarks/bench_pixelscan.py --scan``, see
docs/benchmarks.md): the doubling scan is the fastest of the three at the image lengths pixelscan
uses (28-32) and at 4,096 steps, and it is exact where the log-space scan loses digits when A_t
underflows; that is why it is the default.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

SCAN_METHODS = ("doubling", "log", "sequential")


def _fold_initial_state(a: Tensor, b: Tensor, h0: Tensor | None, dim: int) -> Tensor:
    """b with a_0 * h0 added to its first position (h_0 = a_0 h0 + b_0), so a scan from zero
    gives the scan from h0."""
    if h0 is None:
        return b
    first = b.narrow(dim, 0, 1) + a.narrow(dim, 0, 1) * h0.unsqueeze(dim)
    return torch.cat([first, b.narrow(dim, 1, b.shape[dim] - 1)], dim=dim)


@torch.no_grad()
def _doubling_inplace(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """Hillis-Steele scan from a zero state; overwrites ``a`` and ``b`` (b ends as h)."""
    length = b.shape[dim]
    step = 1
    while step < length:
        rest = length - step
        # right-hand sides are evaluated into temporaries first, so the overlap of the later and
        # the earlier slice is harmless
        b.narrow(dim, step, rest).add_(a.narrow(dim, step, rest) * b.narrow(dim, 0, rest))
        if 2 * step < length:  # the last step needs no products of a
            a.narrow(dim, step, rest).copy_(a.narrow(dim, step, rest) * a.narrow(dim, 0, rest))
        step *= 2
    return b


class _DoublingScan(torch.autograd.Function):
    """h = scan(a, b) from a zero state; backward by the reverse scan of the output gradient."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, dim: int) -> Tensor:
        h = _doubling_inplace(a.clone(), b.clone(), dim)
        ctx.save_for_backward(a, h)
        ctx.dim = dim
        return h

    @staticmethod
    def backward(ctx, grad_h: Tensor):
        a, h = ctx.saved_tensors
        dim = ctx.dim
        length = a.shape[dim]
        # g_t = grad_h_t + a_{t+1} g_{t+1}: a scan over the reversed sequence with a shifted by one
        a_next = torch.cat([a.narrow(dim, 1, length - 1), torch.zeros_like(a.narrow(dim, 0, 1))], dim)
        g = _doubling_inplace(a_next.flip(dim), grad_h.flip(dim).clone(), dim).flip(dim)
        h_prev = torch.cat([torch.zeros_like(h.narrow(dim, 0, 1)), h.narrow(dim, 0, length - 1)], dim)
        grad_a = g * h_prev if ctx.needs_input_grad[0] else None
        return grad_a, g, None


def _scan_doubling(a: Tensor, b: Tensor, dim: int) -> Tensor:
    if a.requires_grad or b.requires_grad:
        return _DoublingScan.apply(a, b, dim)
    return _doubling_inplace(a.clone(), b.clone(), dim)


def _scan_log(a: Tensor, b: Tensor, dim: int) -> Tensor:
    """Heinsen's log-space scan; a > 0 required, b of any sign."""
    log_a_cum = torch.log(a).cumsum(dim)  # log A_t
    tiny = torch.finfo(b.dtype).tiny
    out = torch.zeros_like(b)
    for sign in (1.0, -1.0):  # b = b+ - b-; log 0 = -inf drops a part where it is absent
        part = (sign * b).clamp(min=0)
        log_part = torch.where(part > 0, torch.log(part.clamp(min=tiny)), -math.inf)
        out = out + sign * torch.exp(log_a_cum + torch.logcumsumexp(log_part - log_a_cum, dim))
    return out


def _scan_sequential(a: Tensor, b: Tensor, dim: int) -> Tensor:
    h = torch.zeros_like(b.select(dim, 0))
    out = []
    for a_t, b_t in zip(a.unbind(dim), b.unbind(dim)):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, dim)


def linear_scan(a: Tensor, b: Tensor, h0: Tensor | None = None, dim: int = 1,
                method: str = "doubling") -> Tensor:
    """All states of h_t = a_t * h_{t-1} + b_t along ``dim``, batched over every other axis.

    Args:
        a: coefficients, broadcastable to ``b`` (the same shape in the layers of this package).
        b: inputs, any shape; the recurrence runs along ``dim``.
        h0: the state before the first position, ``b``'s shape without ``dim``; None means zeros.
        dim: the axis of the recurrence.
        method: ``"doubling"`` (exact, any sign, the default), ``"log"`` (Heinsen; needs a > 0)
            or ``"sequential"`` (the reference loop).

    Returns:
        h, the shape of ``b``: h[t] along ``dim`` is the state after position t.
    """
    if method not in SCAN_METHODS:
        raise ValueError(f"method must be one of {SCAN_METHODS}, got {method!r}")
    a = a.expand_as(b)
    dim = dim % b.dim()
    if b.shape[dim] == 0:
        return b.clone()
    b = _fold_initial_state(a, b, h0, dim)
    if method == "doubling":
        return _scan_doubling(a, b, dim)
    if method == "log":
        return _scan_log(a, b, dim)
    return _scan_sequential(a, b, dim)


def linear_scan_sequential(a: Tensor, b: Tensor, h0: Tensor | None = None, dim: int = 1) -> Tensor:
    """The reference: :func:`linear_scan` computed one position at a time."""
    return linear_scan(a, b, h0, dim, method="sequential")
