"""Linear-recurrence scans and the minGRU / minLSTM layers built on them: every parallel method
against the textbook loop (values and gradients, with and without an initial state, both
directions, 4,096 steps), and the layers' one-position ``step`` against their parallel forward."""

from __future__ import annotations

import pytest
import torch

from rnnimg.nn.minrnn import MaskedLinear, MinGRU, MinLSTM, make_min_rnn
from rnnimg.nn.scan import SCAN_METHODS, linear_scan, linear_scan_reference

TOL = dict(atol=1e-5, rtol=1e-5)


def sequence(length: int, seed: int = 0, positive_a: bool = True):
    """(a, b, h0) in float64: batch 3, ``length`` steps, 4 features; a in (0.5, 1) so 4,096 steps
    keep a measurable state (or of both signs when ``positive_a`` is False)."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(3, length, 4, generator=gen, dtype=torch.float64) * 0.5 + 0.5
    if not positive_a:
        a = a * torch.where(torch.rand(a.shape, generator=gen) < 0.5, -1.0, 1.0).double()
    b = torch.randn(3, length, 4, generator=gen, dtype=torch.float64)
    h0 = torch.randn(3, 4, generator=gen, dtype=torch.float64) * 3
    return a, b, h0


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("method", SCAN_METHODS)
def test_parallel_scan_equals_the_loop_values_and_gradients_for_4096_steps(method, with_h0, reverse):
    a, b, h0 = sequence(4096)
    h0 = h0 if with_h0 else None
    leaves = [t.requires_grad_() for t in (a, b) + ((h0,) if with_h0 else ())]
    weight = torch.randn(b.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    want = linear_scan_reference(a, b, h0, dim=1, reverse=reverse)
    got = linear_scan(a, b, h0, dim=1, method=method, reverse=reverse)
    torch.testing.assert_close(got, want, **TOL)
    grads_want = torch.autograd.grad((want * weight).sum(), leaves)
    grads_got = torch.autograd.grad((got * weight).sum(), leaves)
    for name, g, w in zip(("a", "b", "h0"), grads_got, grads_want):
        torch.testing.assert_close(g, w, **TOL, msg=f"gradient of {name}")
    if with_h0:  # the initial state matters far into the sequence's first steps
        first = 0 if not reverse else -1
        no_h0 = linear_scan(a, b, None, dim=1, method=method, reverse=reverse)
        assert (got[:, first] - no_h0[:, first]).abs().min() > 1e-3


def test_reference_loop_is_the_recurrence():
    a = torch.tensor([[0.5, 2.0, -1.0]], dtype=torch.float64).T  # (T=3, 1)
    b = torch.tensor([[1.0, 1.0, 3.0]], dtype=torch.float64).T
    h = linear_scan_reference(a, b, torch.tensor([4.0], dtype=torch.float64), dim=0)
    assert h.flatten().tolist() == [0.5 * 4 + 1, 2 * 3 + 1, -1 * 7 + 3]


@pytest.mark.parametrize("method", ["doubling", "sequential"])
def test_exact_methods_take_any_sign_and_growing_coefficients(method):
    a, b, h0 = sequence(200, positive_a=False)
    a = a * 1.02  # |a| up to 1.02: a growing state, no logarithm anywhere
    torch.testing.assert_close(linear_scan(a, b, h0, method=method), linear_scan_reference(a, b, h0))


@pytest.mark.parametrize("method", SCAN_METHODS)
def test_scan_runs_along_any_axis_batched_over_the_others(method):
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(2, 5, 7, 3, generator=gen, dtype=torch.float64)
    b = torch.randn(2, 5, 7, 3, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 7, 3, generator=gen, dtype=torch.float64)
    got = linear_scan(a, b, h0, dim=1, method=method)
    for i in range(2):
        for w in range(7):  # each (batch, column) slice is its own sequence
            want = linear_scan_reference(a[i, :, w], b[i, :, w], h0[i, w], dim=0)
            torch.testing.assert_close(got[i, :, w], want)


def test_float32_doubling_stays_close_to_float64_over_4096_steps():
    a, b, h0 = sequence(4096, seed=3)
    want = linear_scan_reference(a, b, h0)
    got = linear_scan(a.float(), b.float(), h0.float(), method="doubling")
    assert (got.double() - want).abs().max() < 1e-4


def test_bad_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        linear_scan(torch.ones(1, 2), torch.ones(1, 2), method="fft")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_step_repeated_equals_parallel_forward(cls, reverse):
    torch.manual_seed(0)
    layer = cls(5, 6).double()
    x = torch.randn(2, 30, 5, dtype=torch.float64)
    h0 = torch.randn(2, 6, dtype=torch.float64)
    for start in (None, h0):
        parallel = layer(x, start, dim=1, reverse=reverse)
        h, states = start, [None] * 30
        for t in (range(29, -1, -1) if reverse else range(30)):
            h = layer.step(x[:, t], h)
            states[t] = h
        torch.testing.assert_close(torch.stack(states, dim=1), parallel, **TOL)


def test_min_gru_and_min_lstm_follow_the_papers_equations():
    torch.manual_seed(0)
    x = torch.randn(4, 7, 3, dtype=torch.float64)
    gru = MinGRU(3, 5).double()
    wz, wh = gru.project.weight.chunk(2)
    bz, bh = gru.project.bias.chunk(2)
    h = torch.zeros(4, 5, dtype=torch.float64)
    for t in range(7):
        z = torch.sigmoid(x[:, t] @ wz.T + bz)
        h = (1 - z) * h + z * (x[:, t] @ wh.T + bh)
    torch.testing.assert_close(gru(x)[:, -1], h)
    lstm = MinLSTM(3, 5).double()
    wf, wi, wh = lstm.project.weight.chunk(3)
    bf, bi, bh = lstm.project.bias.chunk(3)
    h = torch.zeros(4, 5, dtype=torch.float64)
    for t in range(7):
        f, i = torch.sigmoid(x[:, t] @ wf.T + bf), torch.sigmoid(x[:, t] @ wi.T + bi)
        h = f / (f + i) * h + i / (f + i) * (x[:, t] @ wh.T + bh)
    torch.testing.assert_close(lstm(x)[:, -1], h)


def test_colour_groups_keep_later_groups_out():
    torch.manual_seed(0)
    layer = make_min_rnn("mingru", 6, 6, groups=3)  # inputs and units: R R G G B B
    x = torch.randn(1, 4, 6, requires_grad=True)
    out = layer(x)
    for unit, group in enumerate([0, 0, 1, 1, 2, 2]):
        (grad,) = torch.autograd.grad(out[0, -1, unit], x, retain_graph=True)
        seen = grad[0].abs().sum(0) > 0  # (6,) input features that reach this unit
        assert not seen[2 * (group + 1):].any(), f"unit {unit} reads a later colour group"
        assert seen[:2 * (group + 1)].all()
    lin = MaskedLinear(3, 3, groups=3)
    assert torch.equal(lin.mask, torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 1, 1]]))


@pytest.mark.parametrize("method", ["doubling", "sequential"])
def test_broadcast_coefficients_get_their_own_shape_of_gradient(method):
    gen = torch.Generator().manual_seed(2)
    a = (torch.rand(1, 50, 1, generator=gen, dtype=torch.float64) * 0.9).requires_grad_()
    b = torch.randn(3, 50, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    got = linear_scan(a, b, dim=1, method=method)
    want = linear_scan_reference(a, b, dim=1)
    torch.testing.assert_close(got, want)
    (grad_got,) = torch.autograd.grad(got.sum(), a)
    (grad_want,) = torch.autograd.grad(want.sum(), a)
    assert grad_got.shape == a.shape
    torch.testing.assert_close(grad_got, grad_want)
