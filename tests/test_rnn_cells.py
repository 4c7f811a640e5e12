import pytest
import torch

from rnnimg.nn import RNN, RNNCell, make_recurrent


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell_matches_torch(nonlinearity):
    torch.manual_seed(0)
    ref = torch.nn.RNNCell(5, 7, nonlinearity=nonlinearity)
    cell = RNNCell(5, 7, nonlinearity)
    cell.copy_from_torch(ref)
    x, h = torch.randn(4, 5), torch.randn(4, 7)
    assert torch.allclose(cell(x, h), ref(x, h), atol=1e-6)
    assert torch.allclose(cell(x), ref(x), atol=1e-6)


def test_rnn_cell_is_the_textbook_equation():
    torch.manual_seed(0)
    cell = RNNCell(3, 4)
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    expected = torch.tanh(h @ cell.W_hh.T + x @ cell.W_xh.T + cell.b_h)
    assert torch.allclose(cell(x, h), expected, atol=1e-7)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_sequence_matches_torch(nonlinearity):
    torch.manual_seed(1)
    ref = torch.nn.RNN(6, 8, num_layers=2, nonlinearity=nonlinearity, batch_first=True)
    ours = RNN(6, 8, num_layers=2, nonlinearity=nonlinearity)
    for layer, cell in enumerate(ours.cells):
        cell.copy_from_torch(ref, layer)
    x, h0 = torch.randn(3, 11, 6), torch.randn(2, 3, 8)
    y_ref, h_ref = ref(x, h0)
    y, h = ours(x, h0)
    assert torch.allclose(y, y_ref, atol=1e-6)
    assert torch.allclose(h, h_ref, atol=1e-6)


def test_rnn_output_layer_is_w_hy_h_plus_b_y():
    torch.manual_seed(2)
    ours = RNN(4, 5, output_size=3)
    plain = RNN(4, 5)
    plain.load_state_dict({k: v for k, v in ours.state_dict().items() if k.startswith("cells")})
    x = torch.randn(2, 6, 4)
    h, _ = plain(x)
    y, _ = ours(x)
    assert torch.allclose(y, h @ ours.output.weight.T + ours.output.bias, atol=1e-6)


def test_time_major_layout_gives_the_same_result():
    torch.manual_seed(3)
    a = RNN(4, 5)
    b = RNN(4, 5, batch_first=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 6, 4)
    assert torch.allclose(a(x)[0], b(x.transpose(0, 1))[0].transpose(0, 1))


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_factory_layers_share_one_interface(kind):
    layer = make_recurrent(kind, 4, 6)
    x = torch.randn(2, 5, 4)
    out, state = layer(x)
    assert out.shape == (2, 5, 6)
    # Feeding the sequence in two halves with the carried state gives the same outputs.
    out1, s1 = layer(x[:, :2])
    out2, _ = layer(x[:, 2:], s1)
    assert torch.allclose(torch.cat([out1, out2], 1), out, atol=1e-6)


def test_factory_rejects_unknown_kind():
    with pytest.raises(ValueError, match="cell must be one of"):
        make_recurrent("transformer", 2, 2)
