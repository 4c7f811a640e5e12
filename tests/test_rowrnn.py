import pytest
import torch

from rnnimg import create_model
from rnnimg.errors import RnnImgError


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("output", ["bernoulli", "categorical"])
def test_row_logits_depend_only_on_rows_above(cell, output):
    torch.manual_seed(0)
    model = create_model("rowrnn", "debug", cell=cell, output=output, levels=16, image_size=10).eval()
    image = model.example_batch(2)["image"]
    logits = model(image)
    for r in (0, 3, 9):
        changed = image.clone()
        changed[:, :, r:] = torch.rand_like(changed[:, :, r:]).round()
        new = model(changed)
        assert torch.equal(new[..., : r + 1, :], logits[..., : r + 1, :]), f"row {r} saw the future"
        if r < 9:  # and the model is not trivially constant: row r+1 does react to row r
            assert not torch.equal(new[..., r + 1, :], logits[..., r + 1, :])


def test_nll_is_the_sum_of_per_pixel_cross_entropies():
    torch.manual_seed(0)
    model = create_model("rowrnn", "debug", output="categorical", levels=4, image_size=6).eval()
    image = model.example_batch(3)["image"]
    logp = model(image).log_softmax(dim=2)  # (B, C, K, H, W)
    target = (image * 3).round().long().unsqueeze(2)
    manual = -logp.gather(2, target).sum(dim=(1, 2, 3, 4))
    assert torch.allclose(model.nll_per_image(image), manual, atol=1e-4)
    out = model.loss({"image": image})
    assert torch.allclose(out.metrics["bits_per_dim"], manual.mean() / (36 * torch.log(torch.tensor(2.0))))


def test_sampling_is_reproducible_and_temperature_matters():
    model = create_model("rowrnn", "debug").eval()
    a = model.sample(4, generator=torch.Generator().manual_seed(3))
    b = model.sample(4, generator=torch.Generator().manual_seed(3))
    c = model.sample(4, temperature=0.3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}


def test_sampler_carries_state_like_the_full_forward_pass():
    """With temperature -> 0 the sampler picks the argmax; the full pass must agree row by row."""
    torch.manual_seed(0)
    model = create_model("rowrnn", "debug", output="categorical", levels=8, image_size=8).eval()
    x = model.sample(3, temperature=1e-4, generator=torch.Generator().manual_seed(0))
    greedy = model(x).argmax(dim=2).float() / 7  # (B, C, H, W)
    assert torch.equal(greedy, x)


def test_labels_condition_the_samples():
    torch.manual_seed(0)
    model = create_model("rowrnn", "debug", num_classes=10).eval()
    with torch.no_grad():
        for p in model.label_embedding.parameters():
            p.mul_(20)
    a = model.sample(4, label=1, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, label=2, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)
    with pytest.raises(RnnImgError, match="outside 0..9"):
        model.sample(2, label=10)


def test_bad_sampling_arguments():
    model = create_model("rowrnn", "debug")
    with pytest.raises(RnnImgError, match="temperature"):
        model.sample(2, temperature=0)
    with pytest.raises(RnnImgError, match="without labels"):
        model.sample(2, label=1)


def test_a_few_steps_overfit_a_tiny_batch():
    torch.manual_seed(0)
    model = create_model("rowrnn", "debug", image_size=12)
    batch = model.example_batch(4, torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = model.loss(batch).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_config_validation_names_the_field():
    with pytest.raises(RnnImgError, match="cell must be one of"):
        create_model("rowrnn", cell="transformer")
    with pytest.raises(RnnImgError, match="no config field"):
        create_model("rowrnn", hidden=3)
    with pytest.raises(RnnImgError, match="no preset"):
        create_model("rowrnn", "imagenet")
    with pytest.raises(RnnImgError, match="unknown model 'rownn'.*rowrnn"):
        create_model("rownn")


def test_config_values_of_the_wrong_type_are_named():
    with pytest.raises(RnnImgError, match="hidden_size must be a whole number, got 'abc'"):
        create_model("rowrnn", hidden_size="abc")
    with pytest.raises(RnnImgError, match="dropout must be a number"):
        create_model("rowrnn", dropout=True)
    assert create_model("rowrnn", "debug", dropout=0).config.dropout == 0  # an int is a fine float
