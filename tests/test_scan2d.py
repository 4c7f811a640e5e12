"""The four-direction 2D scan (nn/scan2d.py): values and gradients against a pixel-by-pixel
sequential reference, and the footprint of every direction and of the whole layer."""

from __future__ import annotations

import pytest
import torch

from rnnimg.nn.scan2d import Scan2D

# --- the reference: one pixel at a time, gates computed from the weights by einsum ----------------


def _coefficients(conv, x, directions):
    """(a, b) per direction, each (B, directions, h, H, W), of the minGRU gates of 1x1 ``conv``."""
    g = torch.einsum("oc,bchw->bohw", conv.weight[:, :, 0, 0], x) + conv.bias[:, None, None]
    bsz, _, height, width = x.shape
    g = g.view(bsz, 2, directions, -1, height, width)  # [z | h~] x directions x h
    z = torch.sigmoid(g[:, 0])
    return 1 - z, z * g[:, 1]


def _run(a, b, order):
    """States of one direction, (B, h, H, W), visiting the pixels (i, j) in ``order`` with a
    fresh zero state wherever ``order`` yields None."""
    out = {}
    state = None
    for pos in order:
        if pos is None:
            state = None
            continue
        i, j = pos
        state = b[..., i, j] if state is None else a[..., i, j] * state + b[..., i, j]
        out[pos] = state
    height, width = a.shape[-2:]
    return torch.stack([torch.stack([out[(i, j)] for j in range(width)], -1) for i in range(height)], -2)


def _rows(height, width, reverse):
    for i in range(height):
        yield None  # every row starts from zero
        yield from ((i, j) for j in (reversed(range(width)) if reverse else range(width)))


def _columns(height, width, reverse):
    for j in range(width):
        yield None
        yield from ((i, j) for i in (reversed(range(height)) if reverse else range(height)))


def reference(layer: Scan2D, x):
    height, width = x.shape[-2:]
    if layer.layout == "renet":
        a, b = _coefficients(layer.rows, x, 2)
        rows = torch.cat([_run(a[:, 0], b[:, 0], _rows(height, width, False)),
                          _run(a[:, 1], b[:, 1], _rows(height, width, True))], 1)
        a, b = _coefficients(layer.columns, rows, 2)
        return torch.cat([_run(a[:, 0], b[:, 0], _columns(height, width, False)),
                          _run(a[:, 1], b[:, 1], _columns(height, width, True))], 1)
    a, b = _coefficients(layer.project, x, 4)
    raster = [(p // width, p % width) for p in range(height * width)]  # row-major
    column_major = [(p % height, p // height) for p in range(height * width)]
    orders = [raster, raster[::-1], column_major, column_major[::-1]]
    return sum(_run(a[:, k], b[:, k], orders[k]) for k in range(4))


@pytest.mark.parametrize("layout", ["renet", "cross"])
@pytest.mark.parametrize("method", ["auto", "doubling", "sequential", "log"])
def test_scan2d_equals_the_sequential_four_direction_reference_values_and_gradients(layout, method):
    torch.manual_seed(0)
    layer = Scan2D(3, 4, layout=layout, scan_method=method).double()
    x = torch.randn(2, 3, 5, 7, dtype=torch.float64, requires_grad=True)
    cotangent = torch.randn(2, layer.out_channels, 5, 7, dtype=torch.float64)
    out = layer(x)
    ref = reference(layer, x)
    assert out.shape == ref.shape == (2, layer.out_channels, 5, 7)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    params = [x, *layer.parameters()]
    got = torch.autograd.grad((out * cotangent).sum(), params)
    want = torch.autograd.grad((ref * cotangent).sum(), params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=0)
        assert w.abs().sum() > 0


# --- footprints -------------------------------------------------------------------------------------


def _footprint(fn, x, i, j, channels=slice(None)):
    """Which input pixels (H, W) the output channels ``channels`` at (i, j) depend on."""
    x = x.clone().requires_grad_(True)
    fn(x)[:, channels, i, j].sum().backward()
    return x.grad.abs().sum(dim=(0, 1)) > 0


@pytest.mark.parametrize("i, j", [(0, 0), (2, 3), (4, 6)])
def test_renet_layout_sweeps_run_their_way_and_one_layer_sees_the_whole_image(i, j):
    """Left-to-right states at (i, j) read exactly row i up to column j, right-to-left states row i
    from column j on; the column sweep likewise along column j; the layer reads every pixel. A first,
    a middle and a last position, so a sweep run the wrong way or not flipped back is caught."""
    torch.manual_seed(0)
    height, width, h = 5, 7, 3
    layer = Scan2D(2, h, layout="renet").double()
    x = torch.randn(1, 2, height, width, dtype=torch.float64)
    cols = torch.arange(width)
    rows = torch.arange(height)[:, None]
    expect = {
        "right": (rows == i) & (cols <= j), "left": (rows == i) & (cols >= j),
    }
    assert torch.equal(_footprint(layer.sweep_rows, x, i, j, slice(0, h)), expect["right"])
    assert torch.equal(_footprint(layer.sweep_rows, x, i, j, slice(h, 2 * h)), expect["left"])
    grid = torch.randn(1, 2 * h, height, width, dtype=torch.float64)
    down = (cols == j) & (rows <= i)
    up = (cols == j) & (rows >= i)
    assert torch.equal(_footprint(layer.sweep_columns, grid, i, j, slice(0, h)), down)
    assert torch.equal(_footprint(layer.sweep_columns, grid, i, j, slice(h, 2 * h)), up)
    assert _footprint(layer, x, i, j).all()


@pytest.mark.parametrize("i, j", [(0, 0), (2, 3), (4, 6)])
def test_cross_layout_directions_follow_raster_and_column_order_and_sum_to_the_whole_image(i, j):
    torch.manual_seed(0)
    height, width = 5, 7
    layer = Scan2D(2, 3, layout="cross").double()
    x = torch.randn(1, 2, height, width, dtype=torch.float64)
    raster = torch.arange(height * width).view(height, width)  # row-major position of each pixel
    column_major = torch.arange(height * width).view(width, height).T
    expect = [raster <= raster[i, j], raster >= raster[i, j],
              column_major <= column_major[i, j], column_major >= column_major[i, j]]
    for k in range(4):
        fn = lambda t, k=k: layer.cross_directions(t)[:, k]  # noqa: E731  (B, h, H, W)
        assert torch.equal(_footprint(fn, x, i, j), expect[k]), k
    assert _footprint(layer, x, i, j).all()


def test_bad_layout_is_refused():
    with pytest.raises(ValueError, match="layout"):
        Scan2D(2, 3, layout="diagonal")
