"""DRAW's Gaussian attention against a float64 implementation of the paper's equations, the grid
conventions (centre, stride, 1-indexed filters), read/write as adjoints, and attention off."""

from __future__ import annotations

import math

import torch

from rnnimg.nn.draw_attention import (
    AttentionRead,
    AttentionWrite,
    FullRead,
    FullWrite,
    Window,
    filterbank,
    filterbanks,
    window_from_params,
)


def paper_filterbanks(params, height, width, n):
    """Equations 19-25 of Gregor et al. 2015 written out with Python floats (float64), 1-indexed
    i and a exactly as printed: returns F_X (N x A) and F_Y (N x B) as nested lists."""
    gx_, gy_, log_var, log_delta_, _ = (float(v) for v in params)
    gx = (width + 1) / 2 * (gx_ + 1)
    gy = (height + 1) / 2 * (gy_ + 1)
    delta = (max(width, height) - 1) / (n - 1) * math.exp(log_delta_)
    var = math.exp(log_var)

    def bank(g, size):
        rows = []
        for i in range(1, n + 1):
            mu = g + (i - n / 2 - 0.5) * delta
            row = [math.exp(-((a - mu) ** 2) / (2 * var)) for a in range(1, size + 1)]
            z = sum(row)
            rows.append([v / z for v in row])
        return rows

    return bank(gx, width), bank(gy, height)


def test_filterbank_matches_the_papers_equations_in_float64():
    gen = torch.Generator().manual_seed(0)
    height, width = 11, 14  # A != B so the axes cannot be swapped unnoticed
    for n in (2, 3, 5):
        params = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 0.5
        params[:, 2] += 0.5  # sigma^2 around 1.6 keeps every filter well away from underflow
        window = window_from_params(params, height, width, n)
        fx, fy = filterbanks(window, height, width)
        for b in range(4):
            ref_x, ref_y = paper_filterbanks(params[b], height, width, n)
            torch.testing.assert_close(fx[b], torch.tensor(ref_x, dtype=torch.float64), rtol=1e-12,
                                       atol=1e-14)
            torch.testing.assert_close(fy[b], torch.tensor(ref_y, dtype=torch.float64), rtol=1e-12,
                                       atol=1e-14)


def test_every_filter_row_sums_to_one_even_far_off_the_image():
    centre = torch.tensor([14.0, -40.0, 300.0])
    f = filterbank(centre, torch.tensor([2.0, 1.0, 3.0]), torch.tensor([1.0, 0.01, 0.05]), 5, 28)
    torch.testing.assert_close(f.sum(-1), torch.ones(3, 5))
    assert (f >= 0).all()


def test_default_window_spans_the_image_with_outer_filters_on_the_first_and_last_pixel():
    """g~ = 0, delta~ = 1: mu_i = i for N = A, so with a small sigma F_X is the identity."""
    size = 9
    params = torch.zeros(1, 5, dtype=torch.float64)
    params[0, 2] = math.log(1e-3)  # sigma^2
    window = window_from_params(params, size, size, size)
    assert float(window.gx) == (size + 1) / 2 and float(window.delta) == 1.0
    fx, fy = filterbanks(window, size, size)
    torch.testing.assert_close(fx[0], torch.eye(size, dtype=torch.float64))
    torch.testing.assert_close(window.box()[0], torch.tensor([0.0, 0, size - 1, size - 1],
                                                             dtype=torch.float64))


def test_a_sharp_unit_stride_read_is_a_crop_scaled_by_gamma():
    """With delta = 1 and a tiny sigma, a 3x3 read centred on 1-indexed pixel (gy, gx) returns the
    pixels gy-1..gy+1, gx-1..gx+1 (0-indexed gy-2..gy), times gamma."""
    image = torch.randn(2, 1, 10, 12)
    read = AttentionRead(hidden=4, n=3, height=10, width=12)
    gx, gy, gamma = 5.0, 7.0, 1.7
    window = Window(torch.tensor([gx, gx]), torch.tensor([gy, gy]), torch.tensor([1.0, 1.0]),
                    torch.tensor([1e-3, 1e-3]), torch.tensor([gamma, gamma]), 3)
    out = read.glimpse(image, window)
    torch.testing.assert_close(out, gamma * image[:, :, 5:8, 3:6])


def test_write_is_the_adjoint_of_read_up_to_gamma():
    """<F_Y x F_X^T, w> = <x, F_Y^T w F_X>: read (gamma) and write (1/gamma) use transposed banks."""
    gen = torch.Generator().manual_seed(1)
    read = AttentionRead(hidden=4, n=4, height=10, width=12)
    write = AttentionWrite(hidden=4, n=4, maps=2, height=10, width=12)
    window = window_from_params(torch.randn(3, 5, generator=gen), 10, 12, 4)
    x = torch.randn(3, 2, 10, 12, generator=gen)
    w = torch.randn(3, 2, 4, 4, generator=gen)
    lhs = (read.glimpse(x, window) * w).sum((1, 2, 3)) / window.gamma
    rhs = (x * write.place(w, window)).sum((1, 2, 3)) * window.gamma
    torch.testing.assert_close(lhs, rhs, rtol=1e-4, atol=1e-4)


def test_read_and_write_use_separate_linear_maps_of_h_dec():
    read = AttentionRead(hidden=6, n=2, height=8, width=8)
    write = AttentionWrite(hidden=6, n=2, maps=1, height=8, width=8)
    assert read.params is not write.params
    h = torch.randn(2, 6)
    _, w_read = read(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), h)
    _, w_write = write(h)
    assert not torch.allclose(w_read.gx, w_write.gx)


def test_attention_off_reads_and_writes_the_whole_image():
    x, x_hat = torch.rand(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    r, window = FullRead()(x, x_hat, torch.randn(2, 7))
    assert window is None and torch.equal(r, torch.cat([x, x_hat], 1).flatten(1))
    write = FullWrite(hidden=7, maps=3, height=5, width=5)
    h = torch.randn(2, 7)
    out, _ = write(h)
    torch.testing.assert_close(out, (h @ write.patch.weight.T + write.patch.bias).view(2, 3, 5, 5))
