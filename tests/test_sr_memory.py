"""What a large super-resolution output costs beyond itself (issue 19, item 4): ``recursr``'s output
without its K - 1 earlier estimates, tiles quantised in place, and a PNG written without an extra
copy of the pixels or of the encoded file."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg.models import create_model
from rnnimg.tiling import quantize, quantize_, tile_settings, tiled_map
from rnnimg.viz import pil_image, save_image, to_uint8


def test_recursr_output_is_the_last_step_without_the_others():
    torch.manual_seed(0)
    model = create_model("recursr", "debug", scale=3, image_size=18, in_channels=3, out_channels=3).eval()
    with torch.no_grad():
        model.up.weight.normal_(0, 0.2)  # a residual that matters
        source = torch.rand(2, 3, 13, 17)
        assert torch.equal(model(source), model.refine(source)[:, -1])
        assert torch.equal(model.translate(source), model.refine(source)[:, -1])


def test_quantize_in_place_gives_quantize_bytes():
    values = torch.cat([torch.linspace(-0.2, 1.2, 1001), torch.tensor([0.5 / 255, 1.5 / 255])])
    band = values.view(1, 1, 1, -1)
    expected = quantize(band)
    got = quantize_(band.clone())
    assert got.dtype == torch.uint8 and torch.equal(got, expected)


def test_tiled_uint8_super_resolution_equals_the_whole_image_quantised():
    torch.manual_seed(0)
    model = create_model("recursr", "debug", scale=2, in_channels=3, out_channels=3).eval()
    image = (torch.rand(1, 3, 70, 90) * 255).round().to(torch.uint8)
    whole = quantize(model.translate(image.float() / 255))
    tiled = model.translate(image, tile=48)  # several bands of tiles, uint8 in and out
    assert tiled.dtype == torch.uint8
    assert (tiled.int() - whole.int()).abs().max() <= 1  # float rounding can flip a .5
    assert (tiled != whole).float().mean() < 1e-3
    tile, overlap, _ = tile_settings(48, None, model.receptive_radius)
    assert tile < 70 and overlap > 0  # the point: more than one band, so carried rows were blended in


@pytest.mark.parametrize("channels", [1, 3])
def test_pil_image_of_uint8_copies_no_pixels_in_python(channels):
    image = torch.randint(0, 256, (channels, 600, 800), dtype=torch.uint8)
    tracemalloc.start()
    try:
        img = pil_image(image)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.array_equal(np.asarray(img).reshape(600, 800, channels), to_uint8(image))
    # the old way, Image.fromarray of the (H, W, C) view, made a bytes copy of every pixel first
    assert peak < image.numel() / 20, peak


def test_save_image_encodes_into_the_file_and_reads_back(tmp_path):
    image = torch.randint(0, 256, (3, 500, 700), dtype=torch.uint8)  # noise: a PNG ~ the pixels' size
    save_image(image[:, :4, :4], tmp_path / "warm.png")  # PIL imports its plugins on first use
    tracemalloc.start()
    try:
        path = save_image(image, tmp_path / "out.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert size > image.numel() * 0.9  # incompressible, as meant
    assert peak < size / 4, (peak, size)  # no BytesIO of the whole file, nor its getvalue() copy
    with Image.open(path) as read:
        assert read.mode == "RGB" and np.array_equal(np.asarray(read), to_uint8(image))
    floats = torch.rand(1, 9, 11)
    with Image.open(save_image(floats, tmp_path / "grey.png", scale=2)) as read:
        assert read.mode == "L" and read.size == (22, 18)
        assert np.array_equal(np.asarray(read)[::2, ::2], to_uint8(floats)[..., 0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "out.png", "warm.png"]  # no temporaries


@pytest.mark.parametrize("scale", [1, 2])
def test_tiled_map_blends_in_buffers_that_do_not_grow_with_the_width(scale):
    """What finish gets is a view of a buffer a tile wide, whatever the image's width: the blended
    output is not held a band of tile rows across the whole width (~400 MB at 4000 pixels wide,
    x4); and the result is still the whole-image map, carried rows and columns included."""
    def run(width):
        buffers = []

        def finish(part):
            buffers.append(tuple((part._base if part._base is not None else part).shape))
            return part.clone()

        image = torch.rand(1, 2, 100, width, generator=torch.Generator().manual_seed(width))
        fn = (lambda x: x * 0.5) if scale == 1 else \
            (lambda x: torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest") * 0.5)
        out = tiled_map(fn, image, tile=40, overlap=10, margin=2, scale=scale, finish=finish)
        assert torch.allclose(out, fn(image), atol=1e-6)
        return buffers

    narrow, wide = run(90), run(400)
    assert max(b[-1] for b in wide) == max(b[-1] for b in narrow) <= 40 * scale
    assert len(wide) > len(narrow) >= 9  # 3 x 3 tiles or more, each finishing a block
