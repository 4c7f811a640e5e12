"""The ``photos`` dataset (scikit-image's bundled photographs, offline) and the ``downscale``
corruption (super-resolution pairs, matching PIL's bicubic resize)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.data import load_dataset
from rnnimg.data.corrupt import downscale
from rnnimg.data.photos import PHOTO_SOURCES, TEST_PHOTOS, TRAIN_PHOTOS
from rnnimg.errors import RnnImgError


def test_photos_test_split_is_whole_fixed_images_and_never_a_training_photo():
    assert not set(TEST_PHOTOS) & set(TRAIN_PHOTOS)
    assert set(PHOTO_SOURCES) == set(TEST_PHOTOS) | set(TRAIN_PHOTOS)
    assert all(src and licence for src, licence in PHOTO_SOURCES.values())
    test = load_dataset("photos", "test", image_size=32)  # image_size crops training only
    assert len(test) == 5
    sizes = [tuple(test[i]["image"].shape) for i in range(5)]
    assert sizes == [(3, 512, 512), (3, 400, 600), (3, 512, 512), (3, 512, 512), (3, 303, 384)]
    from skimage import data
    assert np.array_equal((test[1]["image"] * 255).round().byte().permute(1, 2, 0).numpy(), data.coffee())
    grey = load_dataset("photos", "test", channels=1)[0]["image"]  # astronaut mixed to luma
    assert grey.shape == (1, 512, 512)


def test_photos_training_items_are_fresh_random_crops():
    train = load_dataset("photos", "train", image_size=40, train_size=26)
    assert len(train) == 26
    torch.manual_seed(0)
    a, b = train[1]["image"], train[1]["image"]  # the same photo (chelsea), two draws
    assert a.shape == (3, 40, 40) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.equal(a, b)
    with pytest.raises(RnnImgError, match="image_size 200 is larger than the smallest"):
        load_dataset("photos", "train", image_size=200)


def _pil_downscale(image: torch.Tensor, scale: int) -> np.ndarray:
    """PIL's bicubic (antialiased) resize of (C, H, W) in [0, 1], as uint8 (H / s, W / s, C)."""
    arr = (image * 255).round().byte().permute(1, 2, 0).numpy()
    pil = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    h, w = arr.shape[:2]
    out = np.asarray(pil.resize((w // scale, h // scale), Image.BICUBIC))
    return out[..., None] if out.ndim == 2 else out


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_downscale_matches_pils_bicubic_resize(scale):
    for name, channels in (("photos", 3), ("photos", 1)):
        data = load_dataset(name, "test", channels=channels, corrupt="downscale", scale=scale)
        for i in (1, 4):  # coffee (400x600) and coins (303x384: not a multiple of 2 or 4)
            item = data[i]
            target, source = item["target"], item["source"]
            h, w = target.shape[-2:]
            assert h % scale == 0 and w % scale == 0 and h > 303 - scale
            assert source.shape[-2:] == (h // scale, w // scale)
            ours = (source * 255).round().byte().permute(1, 2, 0).numpy().astype(int)
            theirs = _pil_downscale(target, scale).astype(int)
            assert np.abs(ours - theirs).max() <= 1  # PIL's fixed-point weights, at most a level
            assert (ours == theirs).mean() > 0.99
    # a plain bicubic (no antialiasing) is far from it: the test has teeth
    img = load_dataset("photos", "test")[4]["image"][:, :300, :384]
    plain = torch.nn.functional.interpolate(img[None], scale_factor=1 / scale, mode="bicubic")[0]
    assert (plain - downscale(img, scale)).abs().max() > 0.05


def test_downscale_on_any_image_dataset_and_a_bad_scale_is_one_line():
    pairs = load_dataset("shapes", "test", image_size=30, corrupt="downscale", scale=4, test_size=3)
    item = pairs[0]
    assert item["target"].shape == (3, 28, 28) and item["source"].shape == (3, 7, 7)
    for bad in (5, 1, "2", True):
        with pytest.raises(RnnImgError) as err:
            load_dataset("shapes", "test", corrupt="downscale", scale=bad)
        assert "scale must be 2, 3 or 4" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(RnnImgError, match="scale applies to corrupt=downscale"):
        load_dataset("shapes", "test", corrupt="denoise", scale=2)
    # a same-size translator refuses super-resolution pairs in one line
    model = create_model("dncnn", "debug", in_channels=3, out_channels=3)
    with pytest.raises(RnnImgError, match="writes outputs 1x its input"):
        model.check_dataset(pairs, "shapes")


def test_cli_bad_scale_exits_2(tmp_path, capsys):
    from rnnimg.cli import main

    code = main(["train", "dncnn", "--preset", "debug", "--data", "shapes", "--data-opt",
                 "corrupt=downscale", "--data-opt", "scale=5", "--out", str(tmp_path / "run"),
                 "--max-steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "scale must be 2, 3 or 4" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_downscale_on_a_folder_of_the_users_images(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (50, 45, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    pairs = load_dataset(f"folder:{tmp_path}", "train", corrupt="downscale", scale=3)
    item = pairs[0]
    assert item["target"].shape == (3, 48, 45) and item["source"].shape == (3, 16, 15)
    theirs = _pil_downscale(item["target"], 3).astype(int)
    ours = (item["source"] * 255).round().byte().permute(1, 2, 0).numpy().astype(int)
    assert np.abs(ours - theirs).max() <= 1
