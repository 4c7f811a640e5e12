"""The web page's upscale view (issue 19, item 6): the translate tab shows a super-resolution model
as the input, the model's output and bicubic side by side, at the input's own size (tiled), with
the output's size and, where the page made the input by downscaling, the PSNR-Y of both.

The shipped ``pretrained:sr-photos-x4`` stands in as a tiny recursr trained here for a few steps
on the same data (photos, corrupt=downscale), so the test does not wait for the shipped weights."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from rnnimg import create_model
from rnnimg.data import load_dataset
from rnnimg.data.corrupt import downscale
from rnnimg.errors import RnnImgError
from rnnimg.metrics import psnr_y_per_image
from rnnimg.serve import core, upscale

OPTIONS = {"image_size": 16, "channels": 1, "corrupt": "downscale", "scale": 2}


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory):
    """A recursr (debug preset, x2, grey) trained for a few steps on photos, and a translator."""
    torch.manual_seed(0)
    model = create_model("recursr", "debug")
    data = load_dataset("photos", "train", **OPTIONS)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for k in range(8):
        out = model.loss(default_collate([data[4 * k + i] for i in range(4)]))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    with torch.no_grad():  # a residual far from bicubic, so that the panels tell them apart
        model.up.weight.mul_(5)
    tmp = tmp_path_factory.mktemp("upscale")
    model.save_pretrained(tmp / "sr", extra={"data": {"name": "photos", "options": OPTIONS}})
    translator = create_model("translator", "debug")
    translator.save_pretrained(tmp / "translator", extra={"data": {"name": "mnist-5k", "options": {
        **translator.dataset_options(), "corrupt": "denoise", "sigma": 25}}})
    return core.load_served([str(tmp / "sr"), str(tmp / "translator")])


def grey_png(path, height=30, width=41, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def pil_bicubic(pixels: np.ndarray, scale: int) -> np.ndarray:
    h, w = pixels.shape[:2]
    return np.asarray(Image.fromarray(pixels).resize((w * scale, h * scale), Image.BICUBIC))


def test_an_upload_is_upscaled_at_its_own_size_beside_bicubic(upscaler, tmp_path):
    sr, translator = upscaler
    assert upscale.upscales(sr) and not upscale.upscales(translator)
    pixels = grey_png(tmp_path / "small.png")
    result = upscale.upscale_file(sr, tmp_path / "small.png", tile=36)  # several tiles (overlap 32)
    assert result.output.shape == result.bicubic.shape == result.input.shape == (60, 82, 3)
    assert np.array_equal(result.bicubic[..., 0], pil_bicubic(pixels, 2))
    assert np.array_equal(result.input[::2, ::2, 0], pixels)  # the input's pixels as 2x2 blocks
    x = torch.from_numpy(pixels)[None, None].float() / 255
    expected = sr.model.translate(x)[0, 0].mul(255).round().byte().numpy()
    assert np.abs(result.output[..., 0].astype(int) - expected).max() <= 1  # tiled = whole
    assert np.abs(result.output.astype(int) - result.bicubic).mean() > 1  # not bicubic
    assert result.original is None and "41x30 in, 82x60 out" in result.caption
    assert "PSNR" not in result.caption  # nothing to compare an upload with


def test_the_page_scores_what_it_downscaled_against_the_original(upscaler, tmp_path):
    sr, _ = upscaler
    pixels = grey_png(tmp_path / "photo.png", 31, 40)
    result = upscale.upscale_file(sr, tmp_path / "photo.png", shrink_first=True)
    original = pixels[:30, :40]  # cut to a multiple of the scale
    assert np.array_equal(result.original[..., 0], original)
    small = downscale(torch.from_numpy(original)[None].float() / 255, 2).mul(255).round().byte()
    assert np.array_equal(result.input[::2, ::2, 0], small[0].numpy())

    def psnr(picture):
        return float(psnr_y_per_image(torch.from_numpy(picture[..., :1]).permute(2, 0, 1)[None] / 255.0,
                                      torch.from_numpy(original)[None, None] / 255.0, 2)[0])

    model_db, bicubic_db = (float(v) for v in re.findall(r"([\d.]+) dB", result.caption))
    assert model_db == pytest.approx(psnr(result.output), abs=0.006)
    assert bicubic_db == pytest.approx(psnr(result.bicubic), abs=0.006)
    assert model_db != bicubic_db
    # a test photo: its downscale (from the data) upscaled, scored against the photo
    photo = upscale.upscale_test_photo(sr, 4)
    item = core.test_item(sr, 4)
    assert photo.original.shape[:2] == tuple(item["target"].shape[-2:])
    assert photo.output.shape == photo.original.shape and "PSNR-Y" in photo.caption


@pytest.mark.parametrize("channels", [1, 3])
def test_the_page_scores_band_by_band_as_evaluate_scores(channels):
    g = torch.Generator().manual_seed(channels)
    target = torch.randint(0, 256, (channels, 37, 29), generator=g, dtype=torch.uint8)
    pred = (target.int() + torch.randint(-9, 10, target.shape, generator=g)).clamp(0, 255).byte()
    whole = float(psnr_y_per_image(pred[None].float() / 255, target[None].float() / 255, 3)[0])
    assert upscale.banded_psnr_y(pred, target, 3, rows=5) == pytest.approx(whole, abs=1e-9)
    assert upscale.banded_psnr_y(target, target, 3) == 100.0  # an exact copy, as evaluate caps it


def test_bad_uploads_are_refused_in_one_readable_line(upscaler, tmp_path, monkeypatch):
    sr, _ = upscaler
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(tmp_path / "colour.png")
    with pytest.raises(RnnImgError, match="the image is a colour image, but the model takes grey"):
        upscale.upscale_file(sr, tmp_path / "colour.png")
    monkeypatch.setattr(upscale, "MAX_UPSCALED_PIXELS", 50 * 50)
    grey_png(tmp_path / "big.png", 30, 30)
    with pytest.raises(RnnImgError, match="30x30 pixels, 60x60 at x2.*rnnimg translate"):
        upscale.upscale_file(sr, tmp_path / "big.png")
    grey_png(tmp_path / "one.png", 1, 1)
    with pytest.raises(RnnImgError, match="smaller than 2x2"):
        upscale.upscale_file(sr, tmp_path / "one.png", shrink_first=True)
    grey_png(tmp_path / "tiny.png", 4, 9)  # too small to shave 2 pixels from: no score, no error
    tiny = upscale.upscale_file(sr, tmp_path / "tiny.png", shrink_first=True)
    assert tiny.output.shape == (4, 8, 3) and "PSNR" not in tiny.caption


def test_the_translate_tab_upscales_through_gradio(upscaler, tmp_path, monkeypatch):
    """Through Gradio's own events: the super-resolver's panels, and the translator's pictures in
    the same tab when it is chosen."""
    gr = pytest.importorskip("gradio", reason="the web extra is not installed: pip install 'rnnimg[web]'")
    from rnnimg.serve.app import build_app

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    sr, translator = upscaler
    app = build_app(upscaler, tmp_path / "work")
    assert [b.id for b in app.blocks.values() if isinstance(b, gr.Tab)] == ["translate"]
    pixels = grey_png(tmp_path / "small.png", 23, 37)
    gallery, caption, shown, output, bicubic, original = app(
        sr.label, "upload", 0, str(tmp_path / "small.png"), False, 0, api_name="translate")

    def read(panel):
        path = panel["value"] if "value" in panel else panel  # a value with its visibility
        assert str(path).endswith(".png")  # lossless: Gradio's default WebP would blur the comparison
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))

    assert read(output).shape == (46, 74)  # scale x the upload's size
    assert np.array_equal(read(bicubic), pil_bicubic(pixels, 2))
    assert np.array_equal(read(shown)[::2, ::2], pixels)
    assert "37x23 in, 74x46 out" in caption["value"] and not gallery["visible"]
    with pytest.raises(Exception, match="upload an image first"):
        app(sr.label, "upload", 0, None, False, 0, api_name="translate")
    # the translator in the same tab: its pictures, the upscale panels hidden
    result = app(translator.label, "test image", 0, None, False, 0, api_name="translate")
    assert result[0]["visible"] and result[0]["value"][0]["image"].endswith("translation.png")
    assert not any(panel["visible"] for panel in result[1:])
