"""Segmentation data: mnist-scenes, masks:IMAGES,MASKS, voc/pets without data, joint transforms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.data import load_dataset
from rnnimg.data.segmentation import (
    PairTransform,
    random_crop_pair,
    random_flip_pair,
    read_mask,
    resize_mask,
    resize_pair,
    voc_palette,
)
from rnnimg.errors import RnnImgError

# --- transforms ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [7, 16, 33, 64, 101])
def test_resizing_a_mask_never_invents_labels(size):
    """Nearest neighbour only: down or up, every output label is one of the input's (bilinear
    on the same map produces in-between values such as 1.5 -> labels nobody drew)."""
    gen = torch.Generator().manual_seed(size)
    mask = torch.tensor([0, 3, 7, 255], dtype=torch.uint8)[torch.randint(0, 4, (40, 24), generator=gen)]
    out = resize_mask(mask, size)
    assert out.shape == (size, size) and out.dtype == mask.dtype
    assert set(out.unique().tolist()) <= {0, 3, 7, 255}
    image = torch.randint(0, 256, (1, 40, 24), dtype=torch.uint8, generator=gen)
    img2, mask2 = resize_pair(image, mask, size)
    assert img2.shape == (1, size, size) and torch.equal(mask2, out)


def test_resizing_a_block_mask_by_whole_factors_is_exact():
    """A mask of 4x4 blocks shrinks to one pixel per block, and grows back to the same blocks."""
    blocks = torch.randint(0, 5, (6, 5), generator=torch.Generator().manual_seed(0))
    big = blocks.repeat_interleave(4, 0).repeat_interleave(4, 1)  # (24, 20)
    assert torch.equal(resize_mask(big, (6, 5)), blocks)
    assert torch.equal(resize_mask(blocks, (24, 20)), big)


def test_joint_crop_and_flip_keep_image_and_mask_aligned():
    """The mask is derived from the image (label = pixel value // 64, 255 where the value is odd);
    after any random crop and flip, deriving it again from the transformed image gives the
    transformed mask exactly."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 23, 31), dtype=torch.uint8, generator=gen)

    def derive(img):
        m = (img[0] // 64).to(torch.uint8)
        m[img[0] % 2 == 1] = 255
        return m

    flips = set()
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        img, mask = random_crop_pair(image, derive(image), 16, g)
        before = img.clone()
        img, mask = random_flip_pair(img, mask, g)
        flips.add(torch.equal(img, before))
        assert img.shape == (3, 16, 16) and torch.equal(mask, derive(img))
    assert flips == {True, False}  # both outcomes happened
    # crop larger than the image: image padded with 0, mask with 255 (ignored), still aligned
    img, mask = random_crop_pair(image, derive(image), 40, torch.Generator().manual_seed(1))
    assert img.shape == (3, 40, 40) and (mask[23:] == 255).all() and (mask[:, 31:] == 255).all()
    assert torch.equal(mask[:23, :31], derive(img[:, :23, :31]))


def test_pair_transform_applies_crop_and_flip_to_train_only():
    image = torch.arange(64, dtype=torch.uint8).view(1, 8, 8)
    mask = torch.arange(64, dtype=torch.uint8).view(8, 8) % 4
    test = PairTransform(crop=4, flip=True, train=False)(image, mask)
    assert test["image"].shape == (1, 8, 8) and torch.equal(test["mask"], mask.long())
    train = PairTransform(crop=4, flip=True, train=True, image_size=8)(image, mask)
    assert train["image"].shape == (1, 8, 8) and train["mask"].dtype == torch.long


def _mask_of(image: torch.Tensor) -> torch.Tensor:
    """The mask an image (C, H, W) uint8 encodes: label = pixel value of channel 0 // 64, and 255
    (ignore) where that value is odd."""
    mask = (image[0] // 64).to(torch.uint8)
    mask[image[0] % 2 == 1] = 255
    return mask


def _windows(image: torch.Tensor, side: int) -> list[torch.Tensor]:
    h, w = image.shape[-2:]
    return [image[:, y:y + side, x:x + side] for y in range(h - side + 1) for x in range(w - side + 1)]


def test_pair_transform_in_training_mode_keeps_image_and_mask_aligned(tmp_path):
    """Training-mode PairTransform (random crop and flip): the output mask is the one its output
    image encodes, for every draw; the draws really crop at several places and flip both ways.
    The same holds for the items of a masks: dataset's train split."""
    image = torch.randint(0, 256, (3, 23, 31), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    transform = PairTransform(crop=16, flip=True, train=True)
    windows = _windows(image, 16)
    seen, flipped = set(), set()
    for seed in range(40):
        torch.manual_seed(seed)
        out = transform(image, _mask_of(image))
        pixels = (out["image"] * 255).round().to(torch.uint8)  # (3, 16, 16)
        assert out["mask"].dtype == torch.long and torch.equal(out["mask"], _mask_of(pixels).long())
        plain = [k for k, win in enumerate(windows) if torch.equal(win, pixels)]
        mirrored = [k for k, win in enumerate(windows) if torch.equal(win, pixels.flip(-1))]
        assert plain or mirrored, "the output is not a (flipped) window of the image"
        seen.update(plain + mirrored)
        flipped.add(bool(mirrored) and not plain)
    assert len(seen) >= 10 and flipped == {True, False}

    (tmp_path / "img").mkdir()
    (tmp_path / "msk").mkdir()
    for i in range(3):
        gen = torch.Generator().manual_seed(i)
        pic = torch.randint(0, 256, (3, 20, 26), dtype=torch.uint8, generator=gen)
        Image.fromarray(pic.permute(1, 2, 0).numpy()).save(tmp_path / "img" / f"{i}.png")
        Image.fromarray(_mask_of(pic).numpy()).save(tmp_path / "msk" / f"{i}.png")
    data = load_dataset(f"masks:{tmp_path / 'img'},{tmp_path / 'msk'}", "train", crop=12, flip=True)
    torch.manual_seed(0)
    for _ in range(5):
        for item in (data[i] for i in range(len(data))):
            pixels = (item["image"] * 255).round().to(torch.uint8)
            assert pixels.shape == (3, 12, 12) and torch.equal(item["mask"], _mask_of(pixels).long())


# --- mnist-scenes -------------------------------------------------------------------------------


def test_mnist_scenes_masks_label_the_strokes_and_splits_are_fixed_and_held_out():
    val = load_dataset("mnist-scenes", "val", val_scenes=20)
    a, b = val[3], load_dataset("mnist-scenes", "val", val_scenes=20)[3]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    for i in range(20):
        item = val[i]
        image, mask = item["image"][0], item["mask"]
        assert image.shape == mask.shape == (64, 64)
        assert ((mask > 0) <= (image >= 128 / 255)).all()  # a digit label only on a bright stroke
        assert mask.max() <= 10 and len(mask.unique()) >= 2
    train, test = (load_dataset("mnist-scenes", s) for s in ("train", "test"))
    assert not torch.equal(train[0]["image"], train[0]["image"])  # fresh scenes
    ids = {s: set(load_dataset("mnist-scenes", s, **{f"{s}_scenes": 1}).pool_ids.tolist())
           for s in ("train", "val", "test")}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"] and not ids["val"] & ids["test"]
    small = load_dataset("mnist-scenes", "test", test_scenes=3, image_size=32, channels=3)[0]
    assert small["image"].shape == (3, 32, 32) and small["mask"].shape == (32, 32)
    assert set(small["mask"].unique().tolist()) <= set(test[0]["mask"].unique().tolist()) | set(range(11))


def test_mnist_scenes_mask_class_matches_the_digit():
    """Render one known digit alone: its stroke pixels carry its class + 1."""
    from rnnimg.data.scenes import digit_pools, render_scene

    digits, labels, _ = digit_pools()["test"]
    image, mask = render_scene(digits[:1], labels[:1], np.array([[10, 20]]), 64)
    stroke = digits[0] >= 128
    assert (mask[10:38, 20:48][stroke] == labels[0] + 1).all()
    assert (mask[10:38, 20:48][~stroke] == 0).all() and mask.sum() == (labels[0] + 1) * stroke.sum()


# --- masks:IMAGES,MASKS ------------------------------------------------------------------------


def _pairs(root, n=12, size=(20, 16), mask_kind="L", labels=(0, 1, 2)):
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    (root / "msk").mkdir()
    for i in range(n):
        pixels = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i:02d}.png")
        m = rng.choice(labels, (size[1], size[0])).astype(np.uint8)
        if mask_kind == "P":
            img = Image.fromarray(m, mode="P")
            img.putpalette(voc_palette().reshape(-1).tolist())
        elif mask_kind == "RGB":
            img = Image.fromarray(voc_palette()[m])
        else:
            img = Image.fromarray(m)
        img.save(root / "msk" / f"{i:02d}.png")
    return f"masks:{root / 'img'},{root / 'msk'}"


@pytest.mark.parametrize("kind", ["L", "P", "RGB"])
def test_masks_reads_index_palette_and_voc_colour_pngs(tmp_path, kind):
    name = _pairs(tmp_path, mask_kind=kind, labels=(0, 1, 2, 255))
    train, test = load_dataset(name, "train"), load_dataset(name, "test")
    assert (len(train), len(test)) == (11, 1)
    raw = np.asarray(Image.open(tmp_path / "msk" / "00.png").convert("RGB")) if kind == "RGB" else None
    item = train[0]
    assert item["image"].shape == (1, 16, 20) and item["mask"].shape == (16, 20)
    assert set(item["mask"].unique().tolist()) <= {0, 1, 2, 255}
    if raw is not None:  # each colour went back to its label
        assert (voc_palette()[item["mask"].numpy().clip(0, 254)][item["mask"].numpy() != 255]
                == raw[item["mask"].numpy() != 255]).all()
    create_model("reseg", "debug", num_classes=3).check_dataset(train, name)


def test_masks_bad_input_is_one_line(tmp_path):
    name = _pairs(tmp_path, labels=(0, 1, 7))
    with pytest.raises(RnnImgError, match=r"mask label 7 in \d\d is neither a class \(0..2\) nor 255"):
        create_model("reseg", "debug", num_classes=3).check_dataset(load_dataset(name, "train"), name)
    (tmp_path / "msk" / "03.png").rename(tmp_path / "msk" / "x03.png")
    for extra in ("a", "b", "c", "d", "e", "f"):
        Image.new("L", (20, 16)).save(tmp_path / "img" / f"{extra}.png")
    with pytest.raises(RnnImgError, match=r"7 image\(s\) without a mask.*03, a, b, c, d \(and 2 more\)"
                       r".*1 mask\(s\) without an image.*x03"):
        load_dataset(name, "train")


def test_masks_size_mismatch_and_unreadable_image(tmp_path):
    name = _pairs(tmp_path)
    Image.new("L", (21, 16)).save(tmp_path / "msk" / "04.png")
    with pytest.raises(RnnImgError, match="04: the image is 20x16 but its mask is 21x16"):
        load_dataset(name, "train")
    Image.new("L", (20, 16)).save(tmp_path / "msk" / "04.png")
    (tmp_path / "img" / "05.png").write_bytes(b"not a png")
    with pytest.raises(RnnImgError, match="05.png: not a readable image"):
        load_dataset(name, "train")
    Image.fromarray(np.full((16, 20, 3), 17, dtype=np.uint8)).save(tmp_path / "msk" / "06.png")
    with pytest.raises(RnnImgError, match=r"colour \(17, 17, 17\) is not in the VOC palette"):
        read_mask(tmp_path / "msk" / "06.png")
    with pytest.raises(RnnImgError, match="IMAGES,MASKS"):
        load_dataset(f"masks:{tmp_path}", "train")


@pytest.mark.parametrize("name", ["voc", "pets"])
def test_torchvision_sets_without_data_say_how_to_get_them(tmp_path, name):
    with pytest.raises(RnnImgError, match="--download"):
        load_dataset(name, "train", data_dir=str(tmp_path))


def test_voc_and_pets_read_from_data_dir_with_their_labels(tmp_path):
    """Tiny fake copies in torchvision's layouts: VOC's palette masks keep 255 (void); pet trimaps
    1/2/3 become pet 1 / background 0 / border 2; the joint resize keeps them labels."""
    rng = np.random.default_rng(0)
    voc_root = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc_root / sub).mkdir(parents=True)
    labels = rng.choice([0, 5, 15, 255], (30, 40)).astype(np.uint8)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(voc_root / "JPEGImages" / "a.jpg")
    mask = Image.fromarray(labels, mode="P")
    mask.putpalette(voc_palette().reshape(-1).tolist())
    mask.save(voc_root / "SegmentationClass" / "a.png")
    (voc_root / "ImageSets/Segmentation/train.txt").write_text("a\n")
    item = load_dataset("voc", "train", data_dir=str(tmp_path))[0]
    assert item["image"].shape == (3, 30, 40) and torch.equal(item["mask"], torch.from_numpy(labels).long())
    small = load_dataset("voc", "train", data_dir=str(tmp_path), image_size=16)[0]["mask"]
    assert small.shape == (16, 16) and set(small.unique().tolist()) <= {0, 5, 15, 255}

    pet = tmp_path / "oxford-iiit-pet"
    (pet / "images").mkdir(parents=True)
    (pet / "annotations" / "trimaps").mkdir(parents=True)
    trimap = rng.choice([1, 2, 3], (20, 24)).astype(np.uint8)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(pet / "images" / "cat_1.jpg")
    Image.fromarray(trimap).save(pet / "annotations" / "trimaps" / "cat_1.png")
    (pet / "annotations" / "trainval.txt").write_text("cat_1 1 1 1\n")
    item = load_dataset("pets", "train", data_dir=str(tmp_path))[0]
    expected = np.select([trimap == 1, trimap == 2, trimap == 3], [1, 0, 2])
    assert torch.equal(item["mask"], torch.from_numpy(expected).long())
