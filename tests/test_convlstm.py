"""ConvLSTM / ConvGRU cells against the papers' equations, patching, and convlstm specifics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnimg import create_model
from rnnimg.nn import ConvGRUCell, ConvLSTMCell, depth_to_space, space_to_depth, to_frame_range


def _gate_slices(conv: nn.Conv2d, n_in: int, hidden: int, names: str):
    """Split a fused gate convolution into per-gate (W_x, W_h, b), as the papers write them."""
    w, b = conv.weight, conv.bias
    return {g: (w[k * hidden:(k + 1) * hidden, :n_in], w[k * hidden:(k + 1) * hidden, n_in:],
                b[k * hidden:(k + 1) * hidden].view(1, -1, 1, 1)) for k, g in enumerate(names)}


def _conv(x, w):
    return F.conv2d(x, w, padding=w.shape[-1] // 2)


def reference_convlstm(cell: ConvLSTMCell, xs, peephole: bool):
    """Shi et al. 2015, eq. 3, written out gate by gate with separate convolutions."""
    n_in, hid = cell.input_channels, cell.hidden_channels
    gates = _gate_slices(cell.gates, n_in, hid, "ifco")
    b, _, height, width = xs[0].shape
    h = torch.zeros(b, hid, height, width, dtype=torch.float64)
    c = torch.zeros_like(h)
    outs = []
    for x in xs:
        def pre(g, x=x, h=h):
            wx, wh, bias = gates[g]
            return _conv(x, wx) + _conv(h, wh) + bias

        i = torch.sigmoid(pre("i") + (cell.w_ci * c if peephole else 0))
        f = torch.sigmoid(pre("f") + (cell.w_cf * c if peephole else 0))
        c = f * c + i * torch.tanh(pre("c"))
        o = torch.sigmoid(pre("o") + (cell.w_co * c if peephole else 0))
        h = o * torch.tanh(c)
        outs.append((h, c))
    return outs


@pytest.mark.parametrize("peephole", [False, True])
def test_convlstm_cell_matches_paper_equations(peephole):
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel_size=3, peephole=peephole, peephole_size=(5, 6)).double()
    with torch.no_grad():
        for p in cell.parameters():  # random everything, incl. the zero-initialised peepholes
            p.normal_(0, 0.5)
    xs = [torch.randn(2, 3, 5, 6, dtype=torch.float64) for _ in range(4)]
    state = None
    for x, (h_ref, c_ref) in zip(xs, reference_convlstm(cell, xs, peephole)):
        state = cell(x, state)
        torch.testing.assert_close(state[0], h_ref, rtol=0, atol=1e-12)
        torch.testing.assert_close(state[1], c_ref, rtol=0, atol=1e-12)


def test_convlstm_cell_forget_bias_and_no_peephole_parameters():
    cell = ConvLSTMCell(2, 3, forget_bias=1.0)
    assert torch.equal(cell.gates.bias[3:6], torch.ones(3))
    assert torch.equal(cell.gates.bias[:3], torch.zeros(3))
    assert {n for n, _ in cell.named_parameters()} == {"gates.weight", "gates.bias"}
    peep = ConvLSTMCell(2, 3, peephole=True, peephole_size=(4, 4))
    assert peep.w_ci.shape == (3, 4, 4)


def test_convgru_cell_matches_equations():
    torch.manual_seed(1)
    cell = ConvGRUCell(2, 3, kernel_size=3).double()
    zr = _gate_slices(cell.gates, 2, 3, "zr")
    (wnx, wnh, bn), = _gate_slices(cell.candidate, 2, 3, "n").values()
    h = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64)
    z = torch.sigmoid(_conv(x, zr["z"][0]) + _conv(h, zr["z"][1]) + zr["z"][2])
    r = torch.sigmoid(_conv(x, zr["r"][0]) + _conv(h, zr["r"][1]) + zr["r"][2])
    n = torch.tanh(_conv(x, wnx) + _conv(r * h, wnh) + bn)
    torch.testing.assert_close(cell(x, h), (1 - z) * n + z * h, rtol=0, atol=1e-12)


@pytest.mark.parametrize("size", [16, 59, 61])
def test_patching_round_trip_and_padding(size):
    x = torch.rand(2, 3, size, size)
    p = space_to_depth(x, 4)
    assert p.shape == (2, 48, -(-size // 4), -(-size // 4))
    assert torch.equal(depth_to_space(p, 4, size, size), x)
    # the 4x4 block at the top-left corner lands in the channels of grid cell (0, 0)
    assert torch.equal(p[0, :16, 0, 0], x[0, 0, :4, :4].reshape(16))


def test_peephole_model_uses_per_position_peepholes():
    model = create_model("convlstm", "debug", peephole=True)
    assert model.cells[0].w_ci.shape == (16, 8, 8)  # hidden 16 on the 16 / patch 2 grid


def test_convlstm_trains_exactly_as_it_predicts():
    """After the context, training reads its own predictions: no train/test mismatch."""
    torch.manual_seed(0)
    model = create_model("convlstm", "debug").train()
    frames = torch.rand(2, 8, 1, 16, 16)
    with torch.no_grad():
        train_preds = model(frames)
    torch.testing.assert_close(train_preds[:, 3:], model.predict(frames[:, :4], 4), rtol=0, atol=1e-6)


def test_clamped_output_is_exact_and_passes_gradients():
    z = torch.tensor([-2.0, 0.0, 0.3, 1.0, 1.7], requires_grad=True)
    out = to_frame_range(z, "clamp")
    assert torch.equal(out, z.detach().clamp(0, 1))
    out.sum().backward()
    assert torch.equal(z.grad, torch.ones(5))  # straight through, even where clamped
    # output="sigmoid" maps the same pre-activations through a sigmoid: with equal weights the
    # first predicted frame is sigmoid(z) where the clamped model shows z itself (0 < z < 1).
    torch.manual_seed(0)
    clamped = create_model("convlstm", "debug").eval()
    squashed = create_model("convlstm", "debug", output="sigmoid").eval()
    squashed.load_state_dict(clamped.state_dict())
    context = torch.rand(2, 4, 1, 16, 16)
    z, s = clamped.predict(context, 1)[:, 0], squashed.predict(context, 1)[:, 0]
    inside = (z > 0) & (z < 1)
    assert inside.sum() > 50  # enough pixels where the two can be compared
    torch.testing.assert_close(s[inside], torch.sigmoid(z[inside]), rtol=0, atol=1e-6)
    assert 0 < s.min() and s.max() < 1


def test_one_kernel_check_for_every_convolutional_block():
    """Same padding keeps the map size only with an odd kernel: every block and config says so in
    the same words, naming the field (one check, rnnimg.nn.checks.check_kernel_size)."""
    from rnnimg.errors import RnnImgError
    from rnnimg.nn import MaskedConv2d, SpatioTemporalLSTMCell

    blocks = [lambda k: ConvLSTMCell(2, 3, kernel_size=k), lambda k: ConvGRUCell(2, 3, kernel_size=k),
              lambda k: SpatioTemporalLSTMCell(2, 3, kernel_size=k),
              lambda k: MaskedConv2d(2, 3, (1, k), "B")]
    for make in blocks:
        for bad in (0, 2, -3, 3.0):
            with pytest.raises(ValueError, match=r"kernel_size.* must be odd and >= 1"):
                make(bad)
        assert isinstance(make(3), nn.Module)  # odd sizes are accepted
    for name in ("convlstm", "predrnn"):
        with pytest.raises(RnnImgError, match="kernel_size must be odd"):
            create_model(name, "debug", kernel_size=4)
