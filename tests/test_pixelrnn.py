"""PixelRNN: causality (grey and colour, both variants), the cached sampler against the full forward
and the naive sampler, completion, class conditioning, a tiny overfit, user errors and masks."""

from __future__ import annotations

import pytest
import torch

import helpers
from helpers import generation_ranks as ranks
from helpers import random_level_image as random_image
from rnnimg.data.masks import parse_mask
from rnnimg.errors import RnnImgError
from rnnimg.models import create_model
from rnnimg.nn import DiagonalLSTM, MaskedConv2d, skew, unskew
from rnnimg.tasks import completion_grid

VARIANTS = ("row", "diagonal")
SIZE = 5


def tiny(variant: str, channels: int = 1, num_classes: int = 0, size: int = SIZE, seed: int = 0):
    """A small model with large random weights, so that no dependency hides behind a small number
    (the padded skew cells, for one, carry clearly non-zero states)."""
    torch.manual_seed(seed)
    output = "categorical" if channels == 3 else "bernoulli"
    model = create_model("pixelrnn", "debug", variant=variant, image_size=size, channels=channels,
                         hidden=6, num_layers=2, head_hidden=12, output=output, levels=4,
                         num_classes=num_classes)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", VARIANTS)
def test_changing_a_pixel_leaves_earlier_logits_unchanged(variant, channels):
    model = tiny(variant, channels)
    # the test has teeth: later logits do depend on the pixel
    assert helpers.later_logits_changed_by_flips(model, random_image(model)) > ranks(model).numel()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", VARIANTS)
def test_logit_gradient_is_zero_on_current_and_later_inputs(variant, channels):
    model = tiny(variant, channels)
    rank = ranks(model)
    for k, (i, j, ch), seen in helpers.inputs_seen_by_each_logit(model, random_image(model, n=4)):
        assert not seen[rank >= k].any(), f"logit {(i, j, ch)} sees itself or a later input"
        if ch > 0:  # a colour channel sees the earlier channels of its own pixel
            assert seen[i, j, :ch].all(), f"logit {(i, j, ch)} misses its pixel's earlier channels"
        if j > 0:  # and every pixel sees its left neighbour
            assert seen[i, j - 1].all(), f"logit {(i, j, ch)} misses its left neighbour"


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", VARIANTS)
def test_cached_step_logits_match_full_forward(variant, channels, conditional):
    helpers.check_cached_logits_match_forward(tiny(variant, channels, num_classes=3 if conditional else 0),
                                      conditional)


def test_lstm_update_is_torch_lstm_cell_gate_order():
    """Row LSTM and Diagonal BiLSTM gates are laid out [i, f, g, o], as torch.nn.LSTMCell's: fed the
    gates through an identity input map, LSTMCell gives the same h and c."""
    from rnnimg.nn.row_lstm import lstm_update, lstm_update_into

    torch.manual_seed(0)
    h = 5
    gates, c = torch.randn(3, 4 * h), torch.randn(3, h)
    cell = torch.nn.LSTMCell(4 * h, h)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.eye(4 * h))
        cell.weight_hh.zero_()
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
        want_h, want_c = cell(gates, (torch.zeros(3, h), c))
    got_h, got_c = lstm_update(gates, c, dim=-1)
    torch.testing.assert_close((got_h, got_c), (want_h, want_c))
    into_h, into_c = torch.empty(3, h), torch.empty(3, h)
    lstm_update_into(gates, c, into_h, into_c)
    torch.testing.assert_close((into_h, into_c), (want_h, want_c))


@pytest.mark.parametrize("variant", VARIANTS)
def test_layer_raster_steps_equal_the_layer(variant):
    """The public per-pixel step API of RowLSTM / DiagonalBiLSTM gives layer(x) at every pixel,
    for a stack fed the previous layer's output, with per-image gate offsets."""
    from rnnimg.nn import DiagonalBiLSTM, RowLSTM

    torch.manual_seed(0)
    cls, gates = (RowLSTM, 4) if variant == "row" else (DiagonalBiLSTM, 8)
    layers = [cls(3, 3), cls(3, 3)]
    with torch.no_grad():
        for p in [p for layer in layers for p in layer.parameters()]:
            p.normal_(0, 0.5)
    n, height, width = 2, 4, 5
    x0 = torch.randn(n, 3, height, width)
    biases = [torch.randn(n, gates * 3), None]
    with torch.no_grad():
        y0 = layers[0](x0, biases[0])
        y1 = layers[1](y0, biases[1])
        steps = cls.raster_steps(layers, n, height, width, biases)
        for i in range(height):
            steps.start_row(i)
            for j in range(width):
                steps.input_at(0, j).copy_(x0[:, :, i, j])
                torch.testing.assert_close(steps.step(0, j), y0[:, :, i, j], atol=1e-5, rtol=1e-5)
                steps.input_at(1, j).copy_(y0[:, :, i, j])
                torch.testing.assert_close(steps.step(1, j), y1[:, :, i, j], atol=1e-5, rtol=1e-5)
            steps.end_row(i)


def test_masked_conv_masks_the_future_and_the_colour_order():
    grey = MaskedConv2d(1, 1, 3, "A").mask[0, 0]
    assert torch.equal(grey, torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    assert MaskedConv2d(1, 1, 3, "B").mask[0, 0, 1, 1] == 1
    centre_a = MaskedConv2d(3, 3, 3, "A", groups=3).mask[:, :, 1, 1]  # [out, in], R G B
    assert torch.equal(centre_a, torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0]]))  # G<-R, B<-R,G
    centre_b = MaskedConv2d(6, 3, 1, "B", groups=3).mask[:, :, 0, 0]  # 2 input features a group
    assert torch.equal(centre_b, torch.tensor([[1.0, 1, 0, 0, 0, 0], [1, 1, 1, 1, 0, 0], [1] * 6]))


def test_masked_conv_leaves_its_weights_alone():
    conv = MaskedConv2d(3, 6, 5, "A", groups=3)
    before = conv.weight.detach().clone()
    conv(torch.randn(2, 3, 6, 6)).sum().backward()
    assert torch.equal(conv.weight, before)
    assert torch.equal(conv.weight.grad * (1 - conv.mask), torch.zeros_like(before))
    assert "mask" not in conv.state_dict()  # rebuilt from the config, not stored in checkpoints


def test_padded_skew_cells_are_not_zero_states():
    torch.manual_seed(0)
    lstm = DiagonalLSTM(4, 3)
    with torch.no_grad():
        lstm.state_to_state.bias.fill_(0.5)
        pad_h, pad_c = lstm.padded_states(5)
    assert torch.equal(pad_h[0], torch.zeros(3))  # row 0's left neighbour is the initial state
    assert pad_h[1:].abs().min() > 0 and pad_c[1:].abs().min() > 0


def test_skew_unskew_round_trip():
    x = torch.randn(2, 3, 4, 6)
    s = skew(x)
    assert s.shape == (2, 3, 4, 9)
    assert torch.equal(s[:, :, 2, 2:8], x[:, :, 2]) and torch.equal(s[:, :, 2, :2], torch.zeros(2, 3, 2))
    assert torch.equal(unskew(s, 6), x)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("variant", VARIANTS)
def test_fast_and_naive_samplers_give_identical_samples(variant, channels):
    helpers.check_fast_sampler_matches_naive(tiny(variant, channels, size=4), channels, size=4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_completion_keeps_known_pixels_and_samples_the_rest(variant):
    model = tiny(variant, channels=3)
    image = random_image(model, n=4)
    known = parse_mask("bottom-half", SIZE, SIZE).unsqueeze(0).expand(4, -1, -1, -1).clone()
    known[1, 0, SIZE - 1, 0] = True  # a different mask per image is allowed
    helpers.check_completion(model, image, known)


@pytest.mark.parametrize("variant", VARIANTS)
def test_class_label_changes_logits_and_samples(variant):
    helpers.check_label_changes_logits_and_samples(tiny(variant, num_classes=3))


@pytest.mark.parametrize("variant", VARIANTS)
def test_loss_falls_on_a_few_fixed_images(variant):
    first, last = helpers.loss_after_fitting("pixelrnn", variant=variant)
    assert set(first.metrics) == {"nll_nats", "bits_per_dim"}
    assert last.metrics["nll_nats"] < 0.6 * first.metrics["nll_nats"]
    # metrics are the exact NLL: nats per image and bits per dimension of the same number
    dims = 10 * 10
    expected_bpd = float(last.metrics["nll_nats"]) / dims / torch.log(torch.tensor(2.0))
    assert float(last.metrics["bits_per_dim"]) == pytest.approx(float(expected_bpd), rel=1e-5)


def test_bad_inputs_raise_rnnimg_error():
    model = tiny("row", channels=1, num_classes=3)
    image = random_image(model)
    known = torch.ones(2, 1, SIZE, SIZE, dtype=torch.bool)
    known[:, :, -1] = False
    with pytest.raises(RnnImgError, match="shape"):  # wrong image size
        model.complete(torch.zeros(2, 1, SIZE + 1, SIZE + 1), known)
    with pytest.raises(RnnImgError, match="shape"):  # wrong channels
        model.complete(torch.zeros(2, 3, SIZE, SIZE), known)
    with pytest.raises(RnnImgError, match="same size"):  # mask not matching the image
        model.complete(image, known[:, :, :-1])
    with pytest.raises(RnnImgError, match="nothing to complete"):
        model.complete(image, torch.ones_like(known))
    with pytest.raises(RnnImgError, match="outside"):
        model.complete(image, known, label=3)
    with pytest.raises(RnnImgError, match="outside"):
        model.sample(2, label=-1)
    with pytest.raises(RnnImgError, match="temperature"):
        model.complete(image, known, temperature=0.0)
    with pytest.raises(RnnImgError, match="temperature"):
        model.sample(2, temperature=-1.0)
    with pytest.raises(RnnImgError, match="text"):
        model.sample(2, text=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(RnnImgError, match="num_classes"):
        tiny("row").sample(2, label=1)
    with pytest.raises(RnnImgError, match="variant"):
        create_model("pixelrnn", "debug", variant="column")
    with pytest.raises(RnnImgError, match="hidden"):
        create_model("pixelrnn", "debug", channels=3, hidden=2)


def test_presets_build_the_paper_networks():
    """The presets build the paper's networks, not only configs that say so: layer types and
    count, h units per direction, the 2h residual stream, the output head and the logits."""
    from rnnimg.nn.diagonal_bilstm import DiagonalBiLSTM
    from rnnimg.nn.row_lstm import RowLSTM

    def shape_of(model, name):
        return dict(model.named_parameters())[name].shape

    mnist = create_model("pixelrnn", "mnist")  # binarized MNIST: Diagonal BiLSTM, 7 x h=16
    assert len(mnist.layers) == 7 and all(type(x) is DiagonalBiLSTM for x in mnist.layers)
    assert shape_of(mnist, "input_conv.weight") == (32, 1, 7, 7)  # 7x7 mask A to 2h
    for k in range(7):  # both directions: 4h gates from 2h inputs (1x1), K_ss 2x1 over h
        for side in ("forward_lstm", "backward_lstm"):
            assert shape_of(mnist, f"layers.{k}.{side}.input_to_state.weight") == (64, 32, 1, 1)
            assert shape_of(mnist, f"layers.{k}.{side}.state_to_state.weight") == (64, 16, 2)
        assert shape_of(mnist, f"residuals.{k}.weight") == (32, 16, 1, 1)  # h -> 2h, added
    assert shape_of(mnist, "head_out.weight") == (1, 32, 1, 1)  # one Bernoulli logit per pixel
    assert mnist(torch.zeros(2, 1, 5, 6)).shape == (2, 1, 5, 6)  # (the layers take any size)
    with torch.device("meta"):  # CIFAR-10: 12 x h=128, 1024 output features, 256-way softmax
        cifar = create_model("pixelrnn", "cifar10")
        row = create_model("pixelrnn", "cifar10", variant="row")
        assert cifar(torch.zeros(1, 3, 4, 5)).shape == (1, 3, 256, 4, 5)
    for model, layer in ((cifar, DiagonalBiLSTM), (row, RowLSTM)):
        assert len(model.layers) == 12 and all(type(x) is layer for x in model.layers)
        assert shape_of(model, "input_conv.weight") == (256, 3, 7, 7)
        assert shape_of(model, "residuals.11.weight") == (256, 128, 1, 1)
        assert shape_of(model, "head_hidden.weight") == (1024, 256, 1, 1)
        assert shape_of(model, "head_out.weight") == (3 * 256, 1024, 1, 1)
    assert shape_of(row, "layers.0.input_to_state.weight") == (512, 256, 1, 3)  # 1x3 over the row
    assert shape_of(row, "layers.0.state_to_state.weight") == (512, 128, 3)  # 1x3 over row i-1


def test_parse_mask_specs(tmp_path):
    from PIL import Image

    bottom = parse_mask("bottom-half", 4, 6)
    assert bottom.shape == (1, 4, 6) and bottom.dtype == torch.bool
    assert bottom[0, :2].all() and not bottom[0, 2:].any()
    right = parse_mask("right-half", 4, 6)
    assert right[0, :, :3].all() and not right[0, :, 3:].any()
    box = parse_mask("box:1,2,3,2", 4, 6)  # x=1, y=2, w=3, h=2
    expected = torch.ones(4, 6, dtype=torch.bool)
    expected[2:4, 1:4] = False
    assert torch.equal(box[0], expected)
    pixels = torch.zeros(4, 6, dtype=torch.uint8)
    pixels[0, 5] = 255  # white = unknown
    Image.fromarray(pixels.numpy()).save(tmp_path / "m.png")
    from_png = parse_mask(str(tmp_path / "m.png"), 4, 6)
    assert (~from_png).sum() == 1 and not from_png[0, 0, 5]
    with pytest.raises(RnnImgError, match="same size"):
        parse_mask(str(tmp_path / "m.png"), 5, 6)
    with pytest.raises(RnnImgError, match="no such file"):
        parse_mask(str(tmp_path / "missing.png"), 4, 6)
    with pytest.raises(RnnImgError, match="inside"):
        parse_mask("box:4,0,3,2", 4, 6)
    with pytest.raises(RnnImgError, match="four integers"):
        parse_mask("box:1,2", 4, 6)
    with pytest.raises(RnnImgError, match="unknown mask"):
        parse_mask("top-half", 4, 6)
    Image.fromarray(torch.zeros(4, 6, dtype=torch.uint8).numpy()).save(tmp_path / "black.png")
    with pytest.raises(RnnImgError, match="nothing to complete"):
        parse_mask(str(tmp_path / "black.png"), 4, 6)


def test_completion_grid_shows_input_then_completions():
    model = tiny("diagonal", num_classes=3)
    image = random_image(model, n=1)
    known = parse_mask("right-half", SIZE, SIZE)
    gen = torch.Generator().manual_seed(0)
    grid = completion_grid(model, image, known.unsqueeze(0), n=3, generator=gen, label=1)
    assert grid.shape == (3, SIZE + 4, 4 * (SIZE + 2) + 2)
    first = grid[:, 2:2 + SIZE, 2:2 + SIZE]  # the occluded input: the unknown half mid-grey
    assert torch.equal(first[:, :, SIZE // 2:], torch.full((3, SIZE, SIZE - SIZE // 2), 0.5))
    assert torch.equal(first[:, :, :SIZE // 2], image[0, :, :, :SIZE // 2].expand(3, -1, -1))
    expected = model.complete(image.expand(3, -1, -1, -1), known.expand(3, 1, -1, -1), label=1,
                              generator=torch.Generator().manual_seed(0))
    second = grid[:, 2:2 + SIZE, SIZE + 4:2 * SIZE + 4]  # the first completion, binary
    assert torch.equal(second, expected[0].expand(3, -1, -1))
