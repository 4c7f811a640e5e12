"""multiscale: the chain of an unconditional small pixelscan and one given the small image. Its
NLL is the two stages' sum on the image's own downscale, its sampler feeds the first stage's
draw to the second, and ``rnnimg sample RUN`` draws large images with no input."""

from __future__ import annotations

import math

import pytest
import torch

from rnnimg.data.corrupt import downscale
from rnnimg.errors import RnnImgError
from rnnimg.models import create_model


def tiny(output: str = "categorical", channels: int = 3):
    torch.manual_seed(0)
    model = create_model("multiscale", "debug", image_size=8, channels=channels, output=output,
                         levels=16, scale=2, input_kernel=3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model.eval()


@pytest.mark.parametrize("output, channels", [("categorical", 3), ("bernoulli", 1)])
def test_nll_is_the_small_images_plus_the_large_given_it(output, channels):
    model = tiny(output, channels)
    batch = model.example_batch(3, torch.Generator().manual_seed(0))
    image = batch["image"]
    small = model.small_of(image)
    assert small.shape == (3, channels, 4, 4)
    if output == "bernoulli":
        assert torch.equal(small, (downscale(image, 2) > 0.5).float())
    else:  # on the model's 16 levels
        assert torch.equal(small, torch.round(downscale(image, 2) * 15) / 15)
    with torch.no_grad():
        expected = model.small.nll_per_image(small) + model.large.nll_per_image(image, low_res=small)
        out = model.loss(batch)
    torch.testing.assert_close(model.nll_per_image(image), expected)
    torch.testing.assert_close(out.metrics["bits_per_dim"],
                               expected.mean() / (image[0].numel() * math.log(2)))


def test_sampling_feeds_the_first_stages_draw_to_the_second():
    model = tiny()
    out = model.sample(4, generator=torch.Generator().manual_seed(3))
    assert out.shape == (4, 3, 8, 8) and out.min() >= 0 and out.max() <= 1
    gen = torch.Generator().manual_seed(3)  # the same draws, stage by stage
    small = model.small.sample(4, generator=gen)
    assert torch.equal(out, model.large.sample(4, low_res=small, generator=gen))
    gen = torch.Generator().manual_seed(3)
    model.small.sample(4, generator=gen)
    other = model.large.sample(4, low_res=small.flip(0), generator=gen)  # the small image matters
    assert not torch.equal(out, other)


def test_config_refusals_and_the_cli_draws_large_images(tmp_path, capsys):
    from rnnimg.cli import main
    from rnnimg.data.images import read_image

    for overrides, field in ((dict(scale=5), "scale"), (dict(image_size=9), "image_size")):
        with pytest.raises(RnnImgError, match=field):
            create_model("multiscale", "debug", **overrides)
    tiny().save_pretrained(tmp_path / "run")
    assert main(["sample", str(tmp_path / "run"), "-n", "3", "-o", str(tmp_path / "g.png"),
                 "--scale", "1"]) == 0
    assert read_image(tmp_path / "g.png").shape == (3, 2 + 10, 2 + 3 * 10)  # 8x8 samples
    assert main(["sample", str(tmp_path / "run"), "--low-res", str(tmp_path / "g.png"), "-n", "1",
                 "-o", str(tmp_path / "h.png")]) == 2
    assert "drop --low-res" in capsys.readouterr().err


def test_shapes_drawn_at_64_are_the_same_scenes_at_twice_the_resolution():
    """``--data-opt native_size=64`` (the 64x64 multiscale runs) draws the 32x32 scenes again at
    64x64: same labels, and averaged 2x2 they are the 32x32 images up to the antialiasing."""
    import torch.nn.functional as F

    from rnnimg.data import load_dataset

    big = load_dataset("shapes", "test", test_size=6, native_size=64)
    small = load_dataset("shapes", "test", test_size=6)
    x64 = torch.stack([big[i]["image"] for i in range(6)])
    x32 = torch.stack([small[i]["image"] for i in range(6)])
    assert x64.shape == (6, 3, 64, 64)
    assert [int(big[i]["label"]) for i in range(6)] == [int(small[i]["label"]) for i in range(6)]
    assert (F.avg_pool2d(x64, 2) - x32).abs().mean() < 0.01
    assert (F.avg_pool2d(x64, 2) - torch.roll(x32, 1, 0)).abs().mean() > 0.1  # other scenes differ
    with pytest.raises(RnnImgError, match="native_size"):
        load_dataset("shapes", "test", test_size=2, native_size=4)
