"""The Sample tab for a pixelscan given a small image (``low_res_scale``): an upload control for the
small image, shown only for such a model; the grid is the small image's bicubic upscale, then the
samples drawn from it, as ``rnnimg sample --low-res`` writes it; the page refuses what the CLI
refuses (the task layer's lines), naming its control; without an upload the page draws from the
first test item's small image, so the tab opens with a picture. Tested through rnnimg.serve.core
and through Gradio's own events (no browser)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.data import load_dataset
from rnnimg.errors import RnnImgError
from rnnimg.serve import core

DATA = {"image_size": 8, "test_size": 4}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """A conditional (x2: 4x4 -> 8x8) and a plain colour pixelscan on shapes, as the page serves
    them, and small images: the right one, a grey one, one of the model's full size."""
    tmp = tmp_path_factory.mktemp("lowres-page")
    specs = []
    for name, scale in (("cond", 2), ("plain", 0)):
        torch.manual_seed(0)
        model = create_model("pixelscan", "debug", image_size=8, channels=3, output="categorical",
                             levels=256, low_res_scale=scale)
        model.save_pretrained(tmp / name, extra={"data": {"name": "shapes", "options": {
            **model.dataset_options(), **DATA}}})
        specs.append(str(tmp / name))
    low = load_dataset("shapes", "test", low_res=2, **DATA)[1]["low_res"]  # not test item 0's
    pixels = (low.permute(1, 2, 0) * 255).round().byte().numpy()
    Image.fromarray(pixels).save(tmp / "small.png")
    Image.fromarray(pixels[:, :, 0]).save(tmp / "grey.png")
    Image.fromarray(pixels.repeat(2, 0).repeat(2, 1)).save(tmp / "big.png")
    return core.load_served(specs), tmp


def cells(grid: np.ndarray, n: int, size: int = 8, pad: int = 2) -> list[np.ndarray]:
    return [grid[pad:pad + size, pad + k * (size + pad):pad + k * (size + pad) + size] for k in range(n)]


def upscale_of(path) -> np.ndarray:
    from rnnimg.data.images import read_image
    from rnnimg.tasks.generate import bicubic_view

    up = bicubic_view(read_image(path).float() / 255, 2)
    return up.mul(255).round().byte().permute(1, 2, 0).numpy()


def test_an_uploaded_small_image_comes_first_then_samples_drawn_from_it(page):
    (cond, plain), folder = page
    assert core.low_res_scale(cond) == 2 and core.low_res_scale(plain) == 0
    small = core.low_res_for(cond, str(folder / "small.png"))
    assert small.shape == (3, 4, 4)  # as stored: not resized to anything
    grid = core.sample(cond, 4, seed=0, scale=1, low_res=small)
    first, *drawn = cells(grid, 5)
    assert np.abs(first.astype(int) - upscale_of(folder / "small.png").astype(int)).max() <= 1
    assert len({d.tobytes() for d in drawn}) == 4  # four different samples
    # the same draws as the task layer makes them from that input (what the CLI writes)
    from rnnimg.tasks import sample

    expected = sample(cond.model, 4, generator=torch.Generator().manual_seed(0), low_res=small)
    for d, e in zip(drawn, expected):
        assert np.array_equal(d, e.mul(255).round().byte().permute(1, 2, 0).numpy())
    # no upload: the first test item's small image (so the tab opens with a picture)
    default = core.low_res_for(cond, None)
    assert torch.equal(default, core.test_item(cond, 0)["low_res"]) and not torch.equal(default, small)
    assert core.low_res_for(plain, None) is None  # a plain model draws from nothing


@pytest.mark.parametrize("model, image, message", [
    ("plain", "small.png", "trained without a low-resolution input (low_res_scale=0), so it takes "
                           "none; drop the small image."),
    ("cond", "big.png", "the small image is 8x8, but this model takes 4x4 colour images"),
    ("cond", "grey.png", "the small image is a grey image, but this model takes 4x4 colour images"),
])
def test_the_page_refuses_what_the_cli_refuses_naming_its_control(page, model, image, message):
    (cond, plain), folder = page
    served = cond if model == "cond" else plain
    with pytest.raises(RnnImgError, match=re.escape(message)) as err:
        core.sample(served, 2, low_res=core.low_res_for(served, str(folder / image)))
    assert not re.search(r"--low-res|\blow_res\b", str(err.value))  # no flag or argument name
    with pytest.raises(RnnImgError, match="pass one with the small image"):
        core.sample(cond, 2)  # the task function itself, given nothing


def test_the_sample_tab_shows_the_upload_only_for_such_a_model(page, tmp_path, monkeypatch):
    """Through Gradio: the control's visibility on open and when the model changes, a click with
    an upload, the tab's first result without one, and a refusal as a page message."""
    gr = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app

    (cond, plain), folder = page
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    for first, visible in ((cond, True), (plain, False)):
        app = build_app([first, cond if first is plain else plain], tmp_path / "work")
        (small,) = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "sample-low-res"]
        assert small.visible is visible
        assert isinstance(small, gr.File) and "4x4 colour" in small.label if visible else True
    change = next(f for f in app.fns.values() if small in f.outputs)  # the model dropdown's change
    updates = change.fn(cond.label)
    assert updates[-1]["visible"] is True and updates[-1]["value"] is None
    assert change.fn(plain.label)[-1]["visible"] is False
    path = app(cond.label, "any", "", 4, 0, 1.0, str(folder / "small.png"), api_name="generate")
    with Image.open(path) as im:
        grid = np.asarray(im.convert("RGB"))[::3, ::3]  # the page enlarges pixels 3x
    assert np.array_equal(grid, core.sample(cond, 4, seed=0, scale=1,
                                            low_res=core.low_res_for(cond, str(folder / "small.png"))))
    opened = app(cond.label, "any", "", 16, 0, 1.0, None, api_name="generate_on_open")
    assert opened
    with pytest.raises(Exception, match="the small image is a grey image"):
        app(cond.label, "any", "", 2, 0, 1.0, str(folder / "grey.png"), api_name="generate")


def test_the_complete_tab_completes_given_the_pictures_own_downscale(page, tmp_path):
    """A test item of a conditional model comes with its downscale as ``low_res``: the Complete tab
    draws given exactly that (and given an upload's own downscale), where it used to refuse."""
    from rnnimg.tasks import completion_grid, quantize_for_model

    (_, plain), _ = page
    torch.manual_seed(0)
    model = create_model("pixelscan", "debug", image_size=8, channels=3, output="categorical",
                         levels=256, low_res_scale=2)
    with torch.no_grad():  # large random weights: the small image changes the draws
        for p in model.parameters():
            p.normal_(0, 0.3)
    model.save_pretrained(tmp_path / "cond", extra={"data": {"name": "shapes", "options": {
        **model.dataset_options(), **DATA}}})
    (cond,) = core.load_served([str(tmp_path / "cond")])
    item = core.test_item(cond, 0)
    image = item["image"].unsqueeze(0).float()
    _, grid = core.complete(cond, image, "bottom half", 3, seed=0, scale=1)
    known = core.region_mask("bottom half", 8, 8)

    def completions(low_res):
        return core.to_numpy(completion_grid(cond.model, quantize_for_model(cond.model, image), known, 3,
                                             torch.Generator().manual_seed(0), low_res=low_res))

    assert np.array_equal(grid, completions(item["low_res"]))
    assert not np.array_equal(grid, completions(core.test_item(cond, 1)["low_res"]))  # it matters
    assert core.complete(plain, image, "bottom half", 3, scale=1)[1].shape == grid.shape  # no small image
