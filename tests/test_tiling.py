"""Tiled inference (rnnimg.tiling): overlapping tiles blended without seams equal the whole-image
output for models whose receptive field is smaller than the overlap's margin, seams included; the
CLI's --tile / --overlap; a tile not larger than the overlap is a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.errors import RnnImgError
from rnnimg.tiling import blend_weights, tile_settings, tile_spans, tiled_map

H, W = 150, 190  # mid-size: fits whole, and cuts into a 3 x 4 grid of 64-pixel tiles


def _seams(spans: list[tuple[int, int]]) -> list[int]:
    """Output positions where one tile ends or the next begins (the pixels a seam would spoil)."""
    return sorted({p for s, e in spans[1:] for p in (s, s + 1)} | {e - 1 for _, e in spans[:-1]})


@pytest.mark.parametrize("length,tile,overlap,multiple", [(190, 64, 24, 1), (150, 64, 24, 4),
                                                          (64, 64, 8, 1), (65, 64, 8, 2), (1000, 100, 0, 1)])
def test_spans_cover_the_axis_with_aligned_starts_and_at_least_the_overlap(length, tile, overlap, multiple):
    spans = tile_spans(length, tile, overlap, multiple)
    assert spans[0][0] == 0 and spans[-1][1] == length
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        assert s0 < s1 and e0 - s1 >= overlap  # progress, and neighbours share the overlap
    assert all(s % multiple == 0 and e - s <= tile for s, e in spans)
    margin = min(overlap // 4, 3)
    weights = blend_weights(spans, length, overlap, margin)
    total = torch.zeros(length)
    for (s, e), w in zip(spans, weights):
        total[s:e] += w
        if s > 0:
            assert bool((w[:margin] == 0).all())  # nothing from a tile's outer margin
        if e < length:
            assert bool((w[e - s - margin:] == 0).all())
    assert torch.allclose(total, torch.ones(length), atol=1e-6)


def _sharpened(name: str) -> torch.nn.Module:
    """A debug model whose output depends on wide context, so a seam would show (untrained, the
    translator's last convolution is nearly zero and dncnn's signal fades along its depth)."""
    torch.manual_seed(0)
    model = create_model(name, "debug").eval()
    with torch.no_grad():
        if name == "translator":
            model.decoder[-1].weight.mul_(20)
        else:
            for conv in model.modules():
                if isinstance(conv, torch.nn.Conv2d):
                    conv.weight.mul_(2)
    return model


@pytest.mark.parametrize("name", ["dncnn", "translator"])
def test_tiled_translation_equals_the_whole_image_seams_included(name):
    model = _sharpened(name)
    source = torch.rand(1, model.config.in_channels, H, W, generator=torch.Generator().manual_seed(1))
    whole = model.translate(source)
    r = model.receptive_radius
    overlap = 2 * r + 2  # >= 2r + 1: exact
    tile = overlap + max(16, r)
    tiled = model.translate(source, tile=tile, overlap=overlap)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 1e-4
    t, o, _ = tile_settings(tile, overlap, r, model.size_multiple)
    rows, cols = tile_spans(H, t, o, model.size_multiple), tile_spans(W, t, o, model.size_multiple)
    assert len(rows) > 1 and len(cols) > 1  # really tiled
    ys, xs = _seams(rows), _seams(cols)
    assert (tiled[..., ys, :] - whole[..., ys, :]).abs().max() < 1e-4
    assert (tiled[..., xs] - whole[..., xs]).abs().max() < 1e-4
    # the test has teeth: tiles cut without a margin (overlap 0) leave visible seams
    hard = tiled_map(lambda x: model.translate(x), source, tile=t, overlap=0, margin=0,
                     multiple=model.size_multiple)
    assert (hard - whole).abs().max() > 1e-2
    # uint8 in, uint8 out: the rounded whole-image output
    as_bytes = (source * 255).round().to(torch.uint8)
    expected = (model.translate(as_bytes.float() / 255) * 255).round().to(torch.uint8)
    got = model.translate(as_bytes, tile=t, overlap=o)
    assert got.dtype == torch.uint8 and (got.int() - expected.int()).abs().max() <= 1


def test_tiled_unet_labels_and_logits_equal_the_whole_image():
    torch.manual_seed(0)
    model = create_model("unet", "debug").eval()
    image = torch.rand(1, 1, H, W, generator=torch.Generator().manual_seed(2))
    r, m = model.receptive_radius, model.size_multiple
    tile, overlap, margin = tile_settings(4 * r + 8, 2 * r + 2, r, m)
    with torch.no_grad():
        whole = model.logits(image)
        tiled = tiled_map(model.logits, image, tile=tile, overlap=overlap, margin=margin, multiple=m)
    assert (tiled - whole).abs().max() < 1e-4
    assert torch.equal(model.segment(image, tile=tile, overlap=overlap), whole.argmax(1))
    as_bytes = (image * 255).round().to(torch.uint8)
    labels = model.segment(as_bytes, tile=tile, overlap=overlap)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels.long(), model.segment(as_bytes.float() / 255))


def test_reseg_tiles_are_blended_but_only_approximate_its_whole_image_view():
    """ReSeg's sweeps see the whole image (receptive_radius None): a tile cannot give the
    whole-image logits. What holds is the blending: away from the overlaps, the tiled logits are
    the logits of the one tile that covers the pixel."""
    torch.manual_seed(0)
    model = create_model("reseg", "debug").eval()
    assert model.receptive_radius is None
    image = torch.rand(1, 1, 128, 128, generator=torch.Generator().manual_seed(3))
    tile, overlap, margin = tile_settings(80, 32, None, model.size_multiple)
    with torch.no_grad():
        tiled = tiled_map(model.logits, image, tile=tile, overlap=overlap, margin=margin,
                          multiple=model.size_multiple)
        first = model.logits(image[..., :tile, :tile])
    # tile spans (0, 80) and (48, 128): pixels 0..47 are the first tile's alone
    assert tile_spans(128, tile, overlap, model.size_multiple) == [(0, 80), (48, 128)]
    assert (tiled[..., :48, :48] - first[..., :48, :48]).abs().max() < 1e-5
    labels = model.segment(image, tile=tile, overlap=overlap)
    assert labels.shape == (1, 128, 128)


def test_a_tile_not_larger_than_the_overlap_is_refused():
    with pytest.raises(RnnImgError, match="--tile 32 is not larger than the overlap"):
        tile_settings(32, 48, 11)
    assert tile_settings(None, None, 11) == (512, 38, 11)  # defaults: overlap 2r + 16, margin r
    assert tile_settings(100, None, None, 8) == (96, 64, 16)  # global field: overlap 64


@pytest.fixture
def translator_run(tmp_path):
    _sharpened("translator").save_pretrained(tmp_path / "run")
    return tmp_path / "run"


def test_translate_cli_tiles_a_large_image_like_the_whole(translator_run, tmp_path, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    run = str(translator_run)
    assert main(["translate", run, str(tmp_path / "in.png"), "-o", str(tmp_path / "whole.png"),
                 "--tile", "1024"]) == 0
    capsys.readouterr()
    assert main(["translate", run, str(tmp_path / "in.png"), "-o", str(tmp_path / "tiled.png"),
                 "--tile", "96", "--overlap", "80"]) == 0
    assert "translating" in capsys.readouterr().err  # the progress bar over the tiles
    whole = np.asarray(Image.open(tmp_path / "whole.png"), dtype=int)
    tiled = np.asarray(Image.open(tmp_path / "tiled.png"), dtype=int)
    assert whole.shape == (H, W) and np.abs(whole - tiled).max() <= 1  # rounding at most
    # a tile not larger than the overlap: one line, exit 2, nothing written
    out = tmp_path / "never.png"
    assert main(["translate", run, str(tmp_path / "in.png"), "-o", str(out), "--tile", "32",
                 "--overlap", "48"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--tile 32 is not larger than the overlap" in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_segment_cli_tiles_at_the_image_size(tmp_path, capsys):
    torch.manual_seed(0)
    model = create_model("unet", "debug")
    model.save_pretrained(tmp_path / "run")
    pixels = np.random.default_rng(1).integers(0, 256, (H, W), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    assert main(["segment", str(tmp_path / "run"), str(tmp_path / "in.png"), "-o",
                 str(tmp_path / "mask.png"), "--no-resize", "--tile", "64", "--overlap", "24"]) == 0
    assert "segmenting" in capsys.readouterr().err  # the progress bar over the tiles (issue 19)
    mask = np.asarray(Image.open(tmp_path / "mask.png"))
    expected = model.eval().segment(torch.from_numpy(pixels)[None, None].float() / 255)[0]
    assert mask.shape == (H, W) and np.array_equal(mask, expected.numpy())
    capsys.readouterr()
    assert main(["segment", str(tmp_path / "run"), str(tmp_path / "in.png"), "-o",
                 str(tmp_path / "m2.png"), "--no-resize", "--tile", "16", "--overlap", "16"]) == 2
    err = capsys.readouterr().err.strip()  # issue 19: one line, exit 2, nothing written
    assert "--tile 16 is not larger than the overlap" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "m2.png").exists()


# --- segment's resize path: the image resized to the training size a band of rows at a time ----


def _resize_as_before(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """What segment_image did before: the whole image as floats, one antialiased resize."""
    import torch.nn.functional as F

    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


@pytest.mark.parametrize("shape,size,rows", [((1, 3, 150, 190), (32, 32), 7), ((1, 1, 601, 37), (64, 64), 64),
                                             ((2, 3, 20, 30), (64, 48), 3), ((1, 1, 64, 64), (32, 64), 16)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_banded_resize_equals_the_one_call_resize(shape, size, rows, dtype):
    """Tolerance 1e-6 ([0, 1] scale); measured 0: torch's separable filter runs width first, so
    resizing bands of rows in width, then the whole in height, adds the same terms in the same order."""
    from rnnimg.tiling import resize_banded

    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    x = (x * 255).round().to(torch.uint8) if dtype == torch.uint8 else x
    out = resize_banded(x, size, rows=rows)
    assert out.dtype == torch.float32 and out.shape == (*shape[:2], *size)
    assert (out - _resize_as_before(x, size)).abs().max() <= 1e-6


@pytest.mark.parametrize("src,dst", [((32, 32), (150, 190)), ((150, 190), (32, 32)), ((7, 5), (7, 13)),
                                     ((64, 64), (3000, 4000)), ((5, 3), (5, 3))])
def test_mask_resize_gathers_what_nearest_exact_interpolation_picks(src, dst):
    import torch.nn.functional as F

    from rnnimg.data.segmentation import resize_mask

    mask = torch.randint(0, 21, src, generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    old = F.interpolate(mask[None, None].float(), size=dst, mode="nearest-exact")[0, 0].to(mask.dtype)
    new = resize_mask(mask, dst)
    assert new.dtype == torch.uint8 and torch.equal(new, old)
    assert torch.equal(resize_mask(mask.long(), dst), old.long())


@pytest.mark.parametrize("name", ["unet", "reseg"])
def test_segment_with_resize_gives_todays_labels_in_a_byte_a_pixel(name):
    """segment_image (the CLI without --no-resize) on a uint8 photo: the labels of the one-call
    float resize, exactly, now uint8 and without a float copy of the whole image."""
    from skimage import data

    from rnnimg.tasks import segment_image

    torch.manual_seed(0)
    model = create_model(name, "debug").eval()
    with torch.no_grad():  # larger weights: an untrained model then sees edges and gives many labels
        for p in model.parameters():
            p.mul_(3)
    pixels = torch.from_numpy(data.camera()[100:100 + H, 150:150 + W].copy())[None]  # a photo crop
    size = model.config.image_size
    with torch.no_grad():
        small = model.segment(_resize_as_before(pixels[None], (size, size)))[0]
    before = torch.nn.functional.interpolate(small[None, None].float(), size=(H, W),
                                             mode="nearest-exact")[0, 0].long()
    labels = segment_image(model, pixels, tile=512)
    assert labels.dtype == torch.uint8 and labels.shape == (H, W) and len(labels.unique()) >= 4
    assert torch.equal(labels.long(), before)
    assert torch.equal(segment_image(model, pixels.float() / 255), before)  # floats keep long labels
