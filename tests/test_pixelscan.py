"""pixelscan: causality with no blind spot (grey and colour, both cells), the state-carrying sampler
against the full forward and the naive sampler, completion, class conditioning, a tiny overfit and
user errors."""

from __future__ import annotations

import pytest
import torch

import helpers
from helpers import generation_ranks as ranks
from helpers import random_level_image as random_image
from rnnimg.data.masks import parse_mask
from rnnimg.errors import RnnImgError
from rnnimg.models import create_model

CELLS = ("mingru", "minlstm")
SIZE = 5


def tiny(cell: str = "mingru", channels: int = 1, num_classes: int = 0, size: int = SIZE,
         seed: int = 0, dtype=torch.float32):
    """A small model with large random weights, so no dependency hides behind a small number."""
    torch.manual_seed(seed)
    output = "categorical" if channels == 3 else "bernoulli"
    model = create_model("pixelscan", "debug", cell=cell, image_size=size, channels=channels,
                         hidden=6, num_layers=2, head_hidden=12, output=output, levels=4,
                         num_classes=num_classes, input_kernel=3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        model.head_hidden.bias.add_(2.0)  # fewer head ReLUs at zero: no dependency hides there
    return model.to(dtype).eval()


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_changing_a_pixel_leaves_earlier_logits_unchanged(cell, channels):
    model = tiny(cell, channels)
    # the test has teeth: later logits do depend on the pixel (that every one does is the
    # gradient test's job: with random weights one logit's ReLUs can all sit at zero)
    assert helpers.later_logits_changed_by_flips(model, random_image(model)) > ranks(model).numel() ** 2 / 4


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_every_logit_sees_exactly_the_whole_causal_past(cell, channels):
    """Gradients over a whole image: logit k depends on every input before k and on nothing else
    (PixelCNN and the Diagonal BiLSTM fail the 'every' half; their blind spots)."""
    model = tiny(cell, channels, size=6, dtype=torch.float64)
    rank = ranks(model)
    image = random_image(model, n=32, dtype=torch.float64)
    for k, (i, j, ch), seen in helpers.inputs_seen_by_each_logit(model, image):
        assert torch.equal(seen, rank < k), f"logit {(i, j, ch)} does not see exactly its past"


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_cached_step_logits_match_full_forward(cell, channels, conditional):
    model = tiny(cell, channels, num_classes=3 if conditional else 0)
    if conditional:  # the label offsets start at zero; make them matter
        with torch.no_grad():
            model.label_embedding.weight.normal_(0, 1)
    helpers.check_cached_logits_match_forward(model, conditional)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cell", CELLS)
def test_fast_and_naive_samplers_give_identical_samples(cell, channels):
    helpers.check_fast_sampler_matches_naive(tiny(cell, channels, size=4), channels, size=4)


@pytest.mark.parametrize("channels", [1, 3])
def test_completion_keeps_known_pixels_and_samples_the_rest(channels):
    model = tiny(channels=channels)
    image = random_image(model, n=4)
    known = parse_mask("bottom-half", SIZE, SIZE).unsqueeze(0).expand(4, -1, -1, -1).clone()
    known[1, 0, SIZE - 1, 0] = True  # a different mask per image is allowed
    known[2, 0, 0, 1] = False  # and holes above known pixels
    helpers.check_completion(model, image, known)


def test_class_label_changes_logits_and_samples():
    model = tiny(num_classes=3)
    with torch.no_grad():
        model.label_embedding.weight.normal_(0, 1)
    a, _ = helpers.check_label_changes_logits_and_samples(model)
    assert torch.equal(a, model.sample_naive(4, label=0, generator=torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("cell", CELLS)
def test_loss_falls_on_a_few_fixed_images(cell):
    first, last = helpers.loss_after_fitting("pixelscan", cell=cell)
    assert last.metrics["nll_nats"] < 0.6 * first.metrics["nll_nats"]


def test_scan_methods_give_the_same_model():
    model = tiny(dtype=torch.float64)
    image = random_image(model, dtype=torch.float64)
    with torch.no_grad():
        outs = []
        for method in ("doubling", "sequential", "log"):
            for block in model.blocks:
                for rnn in (block.row_both, block.column, block.row):
                    rnn.scan_method = method
            outs.append(model(image))
    torch.testing.assert_close(outs[0], outs[1])
    torch.testing.assert_close(outs[0], outs[2])


def test_bad_inputs_raise_rnnimg_error():
    model = tiny(num_classes=3)
    image = random_image(model)
    known = torch.ones(2, 1, SIZE, SIZE, dtype=torch.bool)
    known[:, :, -1] = False
    with pytest.raises(RnnImgError, match="shape"):
        model.complete(torch.zeros(2, 1, SIZE + 1, SIZE + 1), known)
    with pytest.raises(RnnImgError, match="same size"):
        model.complete(image, known[:, :, :-1])
    with pytest.raises(RnnImgError, match="nothing to complete"):
        model.complete(image, torch.ones_like(known))
    with pytest.raises(RnnImgError, match="bool"):
        model.complete(image, known.float())
    with pytest.raises(RnnImgError, match="outside"):
        model.sample(2, label=3)
    with pytest.raises(RnnImgError, match="temperature"):
        model.sample(2, temperature=0.0)
    with pytest.raises(RnnImgError, match="text"):
        model.sample(2, text=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(RnnImgError, match="num_classes"):
        tiny().sample(2, label=1)
    for field, value in (("cell", "lstm"), ("scan_method", "fft"), ("input_kernel", 4),
                         ("hidden", 2)):
        with pytest.raises(RnnImgError, match=field):
            create_model("pixelscan", "debug", channels=3, **{field: value})


def test_presets():
    mnist = create_model("pixelscan", "mnist").config
    assert (mnist.channels, mnist.output, mnist.image_size) == (1, "bernoulli", 28)
    cifar = create_model("pixelscan", "cifar10").config
    assert (cifar.channels, cifar.output, cifar.levels, cifar.image_size) == (3, "categorical", 256, 32)
