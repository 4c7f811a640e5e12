"""PredRNN: the ST-LSTM cell against the paper's equations, the zigzag memory, the schedules' values.
(The truth masks both predictors draw from the schedules: tests/test_video_models.py.)"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rnnimg import create_model
from rnnimg.models.predict.config import reverse_schedule, scheduled_sampling_eta
from rnnimg.nn import SpatioTemporalLSTMCell, depth_to_space, space_to_depth


def _conv(x, w):
    return F.conv2d(x, w, padding=w.shape[-1] // 2)


def test_st_lstm_cell_matches_paper_equations():
    torch.manual_seed(0)
    n_in, hid = 3, 4
    cell = SpatioTemporalLSTMCell(n_in, hid, kernel_size=3).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.normal_(0, 0.5)
    wxh, bxh = cell.conv_xh.weight, cell.conv_xh.bias
    wxm, bxm = cell.conv_xm.weight, cell.conv_xm.bias

    def gate(w, b, k, x, y):  # W_x* * x + W_y* * y + b_*, one gate of a fused convolution
        sl = slice(k * hid, (k + 1) * hid)
        return _conv(x, w[sl, :n_in]) + _conv(y, w[sl, n_in:]) + b[sl].view(1, -1, 1, 1)

    x = torch.randn(2, n_in, 5, 5, dtype=torch.float64)
    h, c, m = (torch.randn(2, hid, 5, 5, dtype=torch.float64) for _ in range(3))
    i, f, g = (torch.sigmoid(gate(wxh, bxh, 0, x, h)), torch.sigmoid(gate(wxh, bxh, 1, x, h)),
               torch.tanh(gate(wxh, bxh, 2, x, h)))
    c_ref = f * c + i * g
    i2, f2, g2 = (torch.sigmoid(gate(wxm, bxm, 0, x, m)), torch.sigmoid(gate(wxm, bxm, 1, x, m)),
                  torch.tanh(gate(wxm, bxm, 2, x, m)))
    m_ref = f2 * m + i2 * g2
    mem = torch.cat([c_ref, m_ref], 1)
    o = torch.sigmoid(gate(wxh, bxh, 3, x, h) + _conv(mem, cell.conv_o.weight))
    h_ref = o * torch.tanh(_conv(mem, cell.conv_1x1.weight))
    h2, c2, m2, dc, dm = cell(x, h, c, m)
    for got, want in [(h2, h_ref), (c2, c_ref), (m2, m_ref), (dc, i * g), (dm, i2 * g2)]:
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_zigzag_memory_matches_reference_rollout():
    """m climbs the layers within a step and goes from the top layer at t-1 to layer 0 at t."""
    torch.manual_seed(0)
    model = create_model("predrnn", "debug", num_layers=3).eval()
    frames = torch.rand(2, 5, 1, 16, 16)
    with torch.no_grad():
        got = model.rollout(frames, torch.ones(2, 4, dtype=torch.bool))[0]
        hid = model.config.hidden_size
        h = [torch.zeros(2, hid, 8, 8) for _ in range(3)]
        c = [torch.zeros(2, hid, 8, 8) for _ in range(3)]
        m = torch.zeros(2, hid, 8, 8)
        want = []
        for t in range(4):
            x = space_to_depth(frames[:, t], 2)
            for layer, cell in enumerate(model.cells):
                h[layer], c[layer], m, _, _ = cell(x, h[layer], c[layer], m)
                x = h[layer]
            want.append(depth_to_space(model.head(x), 2, 16, 16).clamp(0, 1))
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=0, atol=1e-6)


def test_scheduled_sampling_eta_values():
    assert scheduled_sampling_eta(0) == 1.0
    assert scheduled_sampling_eta(1) == pytest.approx(1 - 2e-5)
    assert scheduled_sampling_eta(25_000) == pytest.approx(0.5)
    assert scheduled_sampling_eta(50_000) == 0.0
    assert scheduled_sampling_eta(100_000) == 0.0


def test_reverse_schedule_values():
    assert reverse_schedule(0) == (0.5, 0.5)
    assert reverse_schedule(24_999) == (0.5, 0.5)
    r_eta, eta = reverse_schedule(37_500)
    assert r_eta == pytest.approx(1 - 0.5 * math.exp(-2.5))
    assert eta == pytest.approx(0.25)
    assert reverse_schedule(50_000) == (1.0, 0.0)
    assert reverse_schedule(100_000) == (1.0, 0.0)
    # r_eta rises and eta falls monotonically
    steps = range(0, 60_000, 1_000)
    r = [reverse_schedule(s)[0] for s in steps]
    e = [reverse_schedule(s)[1] for s in steps]
    assert r == sorted(r) and e == sorted(e, reverse=True)


def test_decoupling_loss_is_added_only_when_enabled():
    torch.manual_seed(0)
    plain = create_model("predrnn", "debug")
    assert plain.adapter is None and "aux" not in plain.loss(plain.example_batch(2)).metrics
    v2 = create_model("predrnn", "debug", decouple_beta=0.1).train()
    batch = v2.example_batch(2, torch.Generator().manual_seed(0))
    out = v2.loss(batch)
    aux = out.metrics["aux"]
    assert 0 < aux <= 0.1  # beta times a mean |cosine| in [0, 1]
    mse_all = F.mse_loss(v2.rollout(batch["frames"], torch.ones(2, 7, dtype=torch.bool))[0],
                         batch["frames"][:, 1:])
    torch.testing.assert_close(out.loss, mse_all + aux, rtol=1e-5, atol=1e-6)
