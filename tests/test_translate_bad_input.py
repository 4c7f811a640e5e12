"""Bad input on the translate / super-resolution path, and the segmenters' smallest input (issue
19, "Bad input"): one line, exit 2, nothing written. (A scale that is not 2, 3 or 4 given as a data
option is tested in test_photos.py; a colour image for a grey translator and a tile not larger than
the overlap for the translator in test_translate_data.py and test_tiling.py.)"""

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.models.registry import list_models
from rnnimg.tasks import segment_image, translate_image


@pytest.mark.parametrize("name", list_models("translate"))
def test_no_translate_model_has_a_minimum_input_size(name):
    """Every translate model pads its convolutions with zeros, so a one-pixel image is a valid
    input (there is no minimum to refuse); a model that adds one must refuse smaller inputs in
    translate_image, and this test says so."""
    model = create_model(name, "debug").eval()
    c = model.config
    out = translate_image(model, torch.full((c.in_channels, 1, 1), 128, dtype=torch.uint8))
    assert out.shape == (c.out_channels, model.scale, model.scale) and out.dtype == torch.uint8


@pytest.mark.parametrize("name", list_models("segment"))
@pytest.mark.parametrize("side", [1, 3])
def test_no_segment_model_has_a_minimum_input_size(name, side):
    """The other verb that takes --tile: at its own size (``--no-resize``), every segmenter labels
    a 1x1 or 3x3 image (zero padding; the U-Nets pad to their size multiple), so there is no
    minimum to refuse; a model that adds one must refuse smaller inputs in segment_image."""
    torch.manual_seed(0)
    model = create_model(name, "debug").eval()
    image = torch.full((model.config.channels, side, side), 128, dtype=torch.uint8)
    labels = segment_image(model, image, resize=False)
    assert labels.shape == (side, side) and labels.dtype == torch.uint8
    assert int(labels.max()) < model.config.num_classes


@pytest.fixture(scope="module")
def colour_x4(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sr") / "run"
    create_model("espcn", "debug", in_channels=3, out_channels=3, scale=4).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("picture, extra, message", [
    ("grey", [], "small.png is a grey image, but the model takes colour input; convert it to colour"),
    ("colour", ["--tile", "8"], "--tile 8 is not larger than the overlap"),
    ("colour", ["--scale", "2"], "--scale only enlarges the pixels of the --steps strip; the output's "
                                 "size is the model's own (4x the input's)"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(colour_x4, tmp_path, capsys, picture, extra,
                                                           message):
    pixels = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    Image.fromarray(pixels[..., 0] if picture == "grey" else pixels).save(tmp_path / "small.png")
    out = tmp_path / "big.png"
    assert main(["translate", colour_x4, str(tmp_path / "small.png"), "-o", str(out), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]
    # the same image, without the bad flag: the x4 output (so the refusal was the flag's)
    if extra:
        assert main(["translate", colour_x4, str(tmp_path / "small.png"), "-o", str(out)]) == 0
        assert Image.open(out).size == (40, 48)


def test_scale_with_steps_still_enlarges_the_strip(colour_x4, tmp_path):
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "small.png")
    for scale in ("1", "2"):
        assert main(["translate", colour_x4, str(tmp_path / "small.png"), "-o",
                     str(tmp_path / f"{scale}.png"), "--steps", str(tmp_path / f"strip{scale}.png"),
                     "--scale", scale]) == 0
    one, two = (Image.open(tmp_path / f"strip{s}.png").size for s in ("1", "2"))
    assert two == (2 * one[0], 2 * one[1])


def test_a_model_scale_that_is_not_2_3_or_4_is_one_line_naming_the_data_option(tmp_path, capsys):
    """Issue 19's "a scale that is not 2, 3 or 4" through the model's config (``--set scale=5``), not
    only through the data option (test_photos.py): one line that says where the scale comes from."""
    out = tmp_path / "run"
    assert main(["train", "espcn", "--preset", "debug", "--data", "mnist-5k", "--data-opt",
                 "corrupt=downscale", "--data-opt", "scale=2", "--set", "scale=5", "--out", str(out),
                 "--max-steps", "1", "--no-progress", "--accelerator", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert "scale must be 2, 3 or 4, got 5" in err and len(err.splitlines()) == 1
    assert "--data-opt scale=" in err  # the next step: the data decides a super-resolver's scale
    assert not out.exists()
