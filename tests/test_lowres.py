"""pixelscan given a low-resolution image (``low_res_scale``): causal in the high-resolution image
(flips and gradients, as pixelscan), the state-carrying sampler equals the full forward and the
naive sampler with the condition, samples of one input differ, the input changes the logits, the
data option that feeds it, and the one-line refusals."""

from __future__ import annotations

import pytest
import torch

import helpers
from helpers import generation_ranks as ranks
from helpers import random_level_image as random_image
from rnnimg.data import load_dataset
from rnnimg.data.corrupt import downscale
from rnnimg.errors import InputError, RnnImgError
from rnnimg.models import create_model

SCALE = 2


def tiny(channels: int = 1, size: int = 6, num_classes: int = 0, cell: str = "mingru",
         dtype=torch.float32):
    """A small conditional model with large random weights (the encoder's output map too, which
    starts at zero), so no dependency hides behind a small number."""
    torch.manual_seed(0)
    output = "categorical" if channels == 3 else "bernoulli"
    model = create_model("pixelscan", "debug", cell=cell, image_size=size, channels=channels,
                         hidden=6, num_layers=2, head_hidden=12, output=output, levels=4,
                         num_classes=num_classes, input_kernel=3, low_res_scale=SCALE,
                         low_res_hidden=5)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
        model.head_hidden.bias.add_(2.0)
    return model.to(dtype).eval()


def random_low_res(model, n: int, seed: int = 3, dtype=torch.float32) -> torch.Tensor:
    c = model.config
    side = c.image_size // c.low_res_scale
    return torch.rand(n, c.channels, side, side, generator=torch.Generator().manual_seed(seed)).to(dtype)


class GivenLowRes(torch.nn.Module):
    """The model with the low-resolution input fixed: ``forward(image)`` as the causality helpers
    call it."""

    def __init__(self, model, low_res: torch.Tensor) -> None:
        super().__init__()
        self.model, self.config, self.low_res = model, model.config, low_res

    def forward(self, image):
        return self.model(image, low_res=self.low_res[:len(image)])


@pytest.mark.parametrize("channels", [1, 3])
def test_changing_a_pixel_leaves_earlier_logits_unchanged(channels):
    model = tiny(channels)
    image = random_image(model)
    given = GivenLowRes(model, random_low_res(model, len(image)))
    assert helpers.later_logits_changed_by_flips(given, image) > ranks(model).numel() ** 2 / 4


@pytest.mark.parametrize("channels", [1, 3])
def test_every_logit_sees_exactly_the_whole_causal_past(channels):
    model = tiny(channels, dtype=torch.float64)
    rank = ranks(model)
    image = random_image(model, n=16, dtype=torch.float64)
    given = GivenLowRes(model, random_low_res(model, 16, dtype=torch.float64))
    for k, (i, j, ch), seen in helpers.inputs_seen_by_each_logit(given, image):
        assert torch.equal(seen, rank < k), f"logit {(i, j, ch)} does not see exactly its past"


@pytest.mark.parametrize("labels", [False, True])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_cached_step_logits_match_full_forward(cell, channels, labels):
    model = tiny(channels, num_classes=3 if labels else 0, cell=cell)
    image = random_image(model, n=3)
    low_res = random_low_res(model, 3)
    label = torch.tensor([0, 1, 2]) if labels else None
    with torch.no_grad():
        full = model(image, label, low_res=low_res)
    torch.testing.assert_close(model.cached_logits(image, label, low_res=low_res), full,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_fast_and_naive_samplers_give_identical_samples_of_one_input(channels):
    model = tiny(channels, size=4)
    low_res = random_low_res(model, 1)[0]  # one input, as the CLI gives it

    def draw(sampler, seed):
        return sampler(4, low_res=low_res, temperature=0.8, generator=torch.Generator().manual_seed(seed))

    fast = draw(model.sample, 5)
    assert torch.equal(fast, draw(model.sample_naive, 5))
    assert fast.shape == (4, channels, 4, 4) and fast.min() >= 0 and fast.max() <= 1
    # the samples of one input differ from each other (all four in colour; these large random
    # weights make many grey pixels nearly certain), and another seed draws others
    assert len({tuple(s.flatten().tolist()) for s in fast}) >= (4 if channels == 3 else 2)
    assert not torch.equal(fast, draw(model.sample, 6))


def test_the_low_res_input_changes_the_logits_and_the_samples():
    """Would fail if the condition were ignored (or only its mean were used)."""
    model = tiny(channels=3)  # (grey pixels of these large random weights are nearly certain)
    image = random_image(model)
    a, b = random_low_res(model, 2, seed=1), random_low_res(model, 2, seed=2)
    with torch.no_grad():
        assert not torch.allclose(model(image, low_res=a), model(image, low_res=b))
        # the very first logit too: the condition reaches pixels before any is drawn
        assert not torch.allclose(model(image, low_res=a)[:, :, 0, 0], model(image, low_res=b)[:, :, 0, 0])
    gen = torch.Generator
    sa = model.sample(4, low_res=a[0], generator=gen().manual_seed(0))
    sb = model.sample(4, low_res=b[0], generator=gen().manual_seed(0))
    assert not torch.equal(sa, sb)


def test_a_new_model_starts_unconditional_and_learns_to_use_the_input():
    """The encoder's output map starts at zero (the unconditional model); a few steps on pairs
    whose image is determined by its downscale bring the NLL given the input below the start."""
    torch.manual_seed(0)
    model = create_model("pixelscan", "debug", image_size=8, low_res_scale=SCALE)
    batch = model.example_batch(8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        other = batch["low_res"].flip(0)
        torch.testing.assert_close(model(batch["image"], low_res=batch["low_res"]),
                                   model(batch["image"], low_res=other))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(batch).metrics["nll_nats"]
    for _ in range(40):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert model.loss(batch).metrics["nll_nats"] < 0.7 * first
    with torch.no_grad():  # it now reads the input: the other inputs give a worse NLL
        assert (model.nll_per_image(batch["image"], low_res=batch["low_res"]).mean()
                < model.nll_per_image(batch["image"], low_res=other).mean())


def test_data_option_adds_the_downscale_that_corrupt_downscale_makes():
    plain = load_dataset("shapes", "test", image_size=16, train_size=4, test_size=3)
    data = load_dataset("shapes", "test", image_size=16, train_size=4, test_size=3, low_res=4)
    pairs = load_dataset("shapes", "test", image_size=16, train_size=4, test_size=3,
                         corrupt="downscale", scale=4)
    item = data[1]
    assert set(item) == {"image", "low_res", "label"}
    assert torch.equal(item["image"], plain[1]["image"])
    assert torch.equal(item["low_res"], pairs[1]["source"])
    assert torch.equal(item["low_res"], downscale(item["image"], 4))
    odd = load_dataset("mnist-5k", "test", image_size=10, low_res=3)[0]  # cropped to a multiple
    assert odd["image"].shape == (1, 9, 9) and odd["low_res"].shape == (1, 3, 3)
    with pytest.raises(RnnImgError, match="low_res must be a scale of 2, 3 or 4"):
        load_dataset("shapes", "test", low_res=5)
    with pytest.raises(RnnImgError, match="drop corrupt="):
        load_dataset("shapes", "test", low_res=2, corrupt="denoise")


def test_model_asks_the_data_for_the_downscale_and_scores_the_nll_given_it():
    model = create_model("pixelscan", "debug", image_size=8, low_res_scale=4)
    assert model.dataset_options()["low_res"] == 4
    data = load_dataset("mnist-5k", "test", **model.dataset_options())
    model.check_dataset(data, "mnist-5k")
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    stats = model.evaluation_statistics(batch)
    assert stats["count"] == 4 and torch.isfinite(stats["bits_per_dim"])
    with pytest.raises(RnnImgError, match="--data-opt low_res=4"):
        model.check_dataset(load_dataset("mnist-5k", "test", image_size=8, binarize="fixed"), "mnist-5k")
    with pytest.raises(RnnImgError, match="--data-opt low_res=4"):
        model.loss({"image": batch["image"]})


def test_bad_low_res_inputs_are_one_line_errors():
    model = tiny(channels=3)
    good = random_low_res(model, 1)[0]
    cases = [
        (dict(), "draws 6x6 images from 3x3 colour images .* pass one with low_res"),
        (dict(low_res=torch.rand(3, 4, 4)), "is 4x4, but this model takes 3x3 colour images"),
        (dict(low_res=torch.rand(1, 3, 3)), "is a grey image, but this model takes 3x3 colour images"),
        (dict(low_res=torch.rand(3, 3, 3, 3)), "holds 3 images for 2 samples"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            model.sample(2, **kwargs)
    with pytest.raises(InputError, match="trained without a low-resolution input .* drop low_res"):
        helpers_model = create_model("pixelscan", "debug", image_size=6)
        helpers_model.sample(2, low_res=good)
    for value, field in ((5, "low_res_scale"), (4, "image_size")):  # 6 is no multiple of 4
        with pytest.raises(RnnImgError, match=field):
            create_model("pixelscan", "debug", image_size=6, low_res_scale=value)


# --- the task layer and the CLI -------------------------------------------------------------------
@pytest.fixture
def small_runs(tmp_path):
    """A conditional (x2) and an unconditional colour pixelscan, 8x8, saved as run folders, and a
    4x4 colour input as a PNG file."""
    from PIL import Image

    runs = {}
    for name, scale in (("cond", 2), ("plain", 0)):
        torch.manual_seed(0)
        model = create_model("pixelscan", "debug", image_size=8, channels=3, output="categorical",
                             levels=256, low_res_scale=scale)
        model.save_pretrained(tmp_path / name)
        runs[name] = tmp_path / name
    low = load_dataset("shapes", "test", image_size=8, low_res=2, test_size=2)[0]["low_res"]
    pixels = (low.permute(1, 2, 0) * 255).round().byte().numpy()
    Image.fromarray(pixels).save(tmp_path / "small.png")
    Image.fromarray(pixels[:, :, 0]).save(tmp_path / "grey.png")
    Image.fromarray(pixels.repeat(2, 0).repeat(2, 1)).save(tmp_path / "big.png")
    return runs, tmp_path


def test_sample_low_res_writes_the_upscale_then_the_samples(small_runs, capsys):
    from rnnimg.cli import main
    from rnnimg.data.images import read_image
    from rnnimg.tasks.generate import bicubic_view

    runs, folder = small_runs
    grid = folder / "grid.png"
    assert main(["sample", str(runs["cond"]), "--low-res", str(folder / "small.png"), "-n", "4", "-o",
                 str(grid), "--scale", "1"]) == 0
    picture = read_image(grid)  # one row: upscale + 4 samples, 8x8 each with 2-pixel padding
    assert picture.shape == (3, 2 + 10, 2 + 5 * 10)
    upscale = bicubic_view(read_image(folder / "small.png").float() / 255, 2)
    assert (picture[:, 2:10, 2:10].float() - (upscale * 255).round()).abs().max() <= 1
    tiles = [picture[:, 2:10, 2 + 10 * k:10 + 10 * k] for k in range(1, 5)]
    assert len({tuple(t.flatten().tolist()) for t in tiles}) == 4  # four different samples


@pytest.mark.parametrize("run, image, message", [
    ("plain", "small.png", "trained without a low-resolution input (low_res_scale=0), so it takes "
                           "none; drop --low-res"),
    ("cond", None, "draws 8x8 images from 4x4 colour images (low_res_scale=2); pass one with --low-res"),
    ("cond", "big.png", "--low-res is 8x8, but this model takes 4x4 colour images"),
    ("cond", "grey.png", "--low-res is a grey image, but this model takes 4x4 colour images"),
])
def test_sample_low_res_mistakes_exit_2_with_one_line_and_write_nothing(small_runs, capsys, run,
                                                                       image, message):
    from rnnimg.cli import main

    runs, folder = small_runs
    extra = ["--low-res", str(folder / image)] if image else []
    assert main(["sample", str(runs[run]), *extra, "-n", "2", "-o", str(folder / "out.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (folder / "out.png").exists()


def test_the_task_function_refuses_as_the_cli_does_and_previews_draw_given_the_input():
    """The page calls the task's inference function: it refuses the same inputs (naming the
    argument its own way). The training previews show input, samples and truth per row."""
    from rnnimg.tasks import preview, sample

    model = tiny(channels=3)
    with pytest.raises(InputError, match="pass one with low_res"):
        sample(model, 2)
    with pytest.raises(InputError, match="drop low_res"):
        sample(create_model("pixelscan", "debug", image_size=6), 2, low_res=torch.rand(1, 3, 3))
    batch = model.example_batch(3, torch.Generator().manual_seed(0))
    pictures = preview(model, batch, torch.Generator().manual_seed(0))
    assert pictures["samples.png"].shape == (3, 3 * 8 + 2, 7 * 8 + 2)  # 3 rows of 1 + 5 + 1 tiles
    assert "completions.png" in pictures


def test_evaluate_reports_the_nll_given_the_downscale(tmp_path):
    """``evaluate`` on a run of a conditional model asks the data for the downscale itself and
    reports the exact NLL of each image given it."""
    from rnnimg.train.evaluate import evaluate

    torch.manual_seed(0)
    model = create_model("pixelscan", "debug", image_size=8, channels=3, output="categorical",
                         levels=256, low_res_scale=2)
    with torch.no_grad():  # large random weights: the condition matters
        for p in model.parameters():
            p.normal_(0, 0.3)
    data_options = {"image_size": 8, "test_size": 6}
    model.save_pretrained(tmp_path, extra={"data": {"name": "shapes", "options": data_options}})
    result = evaluate(tmp_path, batch_size=4, progress=False)
    items = load_dataset("shapes", "test", **data_options, levels=256, low_res=2)
    batch = torch.utils.data.default_collate([items[i] for i in range(6)])
    with torch.no_grad():
        given = model.nll_per_image(batch["image"], low_res=batch["low_res"]).mean().item()
        shuffled = model.nll_per_image(batch["image"], low_res=batch["low_res"].roll(1, 0)).mean().item()
    assert result["num_items"] == 6 and result["data_options"]["low_res"] == 2
    assert result["metrics"]["nll_nats"] == pytest.approx(given, rel=1e-5)
    assert abs(given - shuffled) > 1  # the figure depends on which input goes with which image


def test_the_hint_after_training_a_conditional_model_names_low_res_and_its_size(small_runs, capsys):
    """``rnnimg train`` ends with the next step; for a model that draws from a small image it is
    ``--low-res`` with an image of the model's size / low_res_scale, and that command works."""
    import shlex

    from rnnimg.cli import main
    from rnnimg.cli.train_cmds import next_steps

    runs, folder = small_runs
    plain = next_steps(runs["plain"])
    assert plain.endswith(f"rnnimg sample {runs['plain']} -n 64 -o grid.png")
    cond = next_steps(runs["cond"])
    hint = cond.split("   |   ")[1]
    assert hint == (f"rnnimg sample {runs['cond']} --low-res SMALL.png -n 4 -o grid.png  "
                    "(SMALL.png: a 4x4 colour image)")
    # the suggested command, with a 4x4 colour image for SMALL.png, runs
    words = shlex.split(hint.split("  (")[0].replace("SMALL.png", str(folder / "small.png")))
    assert words[:2] == ["rnnimg", "sample"]
    assert main([*words[1:], "-o", str(folder / "hinted.png")]) == 0
    assert (folder / "hinted.png").is_file()
    # the plain hint, taken as it is, is what fails on the conditional model
    assert main(["sample", str(runs["cond"]), "-n", "2", "-o", str(folder / "no.png")]) == 2
    assert "pass one with --low-res" in capsys.readouterr().err


def test_complete_low_res_draws_the_hidden_part_given_the_small_image(tmp_path, capsys):
    """``rnnimg complete RUN INPUT --low-res SMALL``: the known pixels come back, the hidden ones are
    drawn given SMALL (another small image gives other completions), as the task layer draws them;
    without --low-res, or with it for a model that takes none: one line, exit 2, nothing written."""
    import numpy as np
    from PIL import Image

    from rnnimg.cli import main
    from rnnimg.data.images import read_image
    from rnnimg.tasks import completion_grid, quantize_for_model

    model = tiny(channels=3)  # 6x6 colour, 4 levels, x2: the small image is 3x3
    model.save_pretrained(tmp_path / "run")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    for name in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).save(tmp_path / f"{name}.png")

    def complete(small, out):
        extra = ["--low-res", str(tmp_path / small)] if small else []
        return main(["complete", str(tmp_path / "run"), str(tmp_path / "in.png"), *extra, "-n", "3",
                     "-o", str(tmp_path / out), "--scale", "1", "--seed", "0"])

    assert complete("a.png", "a-grid.png") == 0 and complete("b.png", "b-grid.png") == 0
    grids = {k: read_image(tmp_path / f"{k}-grid.png") for k in ("a", "b")}  # occluded + 3 completions
    image = quantize_for_model(model, read_image(tmp_path / "in.png").float().div(255)[None])
    known = torch.ones(1, 1, 6, 6, dtype=torch.bool)
    known[..., 3:, :] = False
    expected = completion_grid(model, image, known, 3, torch.Generator().manual_seed(0),
                               low_res=read_image(tmp_path / "a.png").float().div(255))
    assert torch.equal(grids["a"], (expected * 255).round().byte())
    cells = {k: [g[:, 2:8, 2 + 8 * i:8 + 8 * i] for i in range(1, 4)] for k, g in grids.items()}
    truth = (image[0] * 255).round().byte()
    for k in cells:
        assert all(torch.equal(c[:, :3], truth[:, :3]) for c in cells[k])  # the known top half
    assert any(not torch.equal(a[:, 3:], b[:, 3:]) for a, b in zip(cells["a"], cells["b"]))
    capsys.readouterr()
    assert complete(None, "none.png") == 2
    assert "pass one with --low-res" in capsys.readouterr().err
    create_model("pixelscan", "debug", image_size=6, channels=3, output="categorical",
                 levels=4).save_pretrained(tmp_path / "run")
    assert complete("a.png", "plain.png") == 2
    err = capsys.readouterr().err
    assert "drop --low-res" in err and err.count("\n") == 1
    assert not (tmp_path / "none.png").exists() and not (tmp_path / "plain.png").exists()
