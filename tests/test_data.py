import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import list_datasets, load_dataset
from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices
from rnnimg.data.transforms import quantize
from rnnimg.errors import RnnImgError


def test_mnist_5k_fixed_split():
    _, labels = mnist_5k_arrays()
    train, test = mnist_5k_split_indices("train"), mnist_5k_split_indices("test")
    assert len(train) == 4500 and len(test) == 500
    assert not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [50] * 10
    assert np.array_equal(test, mnist_5k_split_indices("test"))  # the same digits every time
    ds = load_dataset("mnist-5k", "test")
    item = ds[0]
    assert item["image"].shape == (1, 28, 28) and item["image"].dtype == torch.float32
    assert 0 <= item["image"].min() and item["image"].max() <= 1 and item["label"].dtype == torch.long
    images, _ = mnist_5k_arrays()
    assert torch.equal(item["image"], torch.from_numpy(images[test[0]]).float().unsqueeze(0) / 255)


def test_fixed_binarization_is_stable_and_dynamic_is_not():
    a = load_dataset("mnist-5k", "test", binarize="fixed")
    b = load_dataset("mnist-5k", "test", binarize="fixed")
    assert torch.equal(a[7]["image"], b[7]["image"]) and set(a[7]["image"].unique().tolist()) == {0, 1}
    c = load_dataset("mnist-5k", "test", binarize="fixed", binarize_seed=1)
    assert not torch.equal(a[7]["image"], c[7]["image"])
    d = load_dataset("mnist-5k", "test", binarize="dynamic")
    assert not torch.equal(d[7]["image"], d[7]["image"])
    # Binarization follows the grey level: mean of many dynamic draws approaches it.
    grey = load_dataset("mnist-5k", "test")[7]["image"]
    mean = torch.stack([d[7]["image"] for _ in range(400)]).mean(0)
    assert (mean - grey).abs().max() < 0.15


def test_quantization_levels():
    x = torch.linspace(0, 1, 1000)
    q = quantize(x, 4)
    assert sorted(q.unique().tolist()) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    ds = load_dataset("mnist-5k", "test", levels=8)
    grey = load_dataset("mnist-5k", "test")[3]["image"]
    assert torch.equal(ds[3]["image"], quantize(grey, 8))  # each pixel snapped to the nearest k/7
    assert (ds[3]["image"] - grey).abs().max() <= 1 / 14 + 1e-6
    assert len(ds[3]["image"].unique()) > 2  # a digit's grey edges survive: not blank, not binary


def test_resize_and_channels():
    ds = load_dataset("mnist-5k", "test", image_size=16, channels=3)
    assert ds[0]["image"].shape == (3, 16, 16)
    assert torch.equal(ds[0]["image"][0], ds[0]["image"][2])


def test_folder_dataset_with_class_subfolders(image_folder):
    train = load_dataset(f"folder:{image_folder}", "train")
    test = load_dataset(f"folder:{image_folder}", "test")
    assert len(train) == 18 and len(test) == 2
    # Item k is the k-th file in sorted order, every 10th left for the test split, labelled by its
    # subfolder (classes in sorted order: cats 0, dogs 1); read here with PIL on its own.
    files = sorted(image_folder.rglob("*.png"))
    train_files = [f for i, f in enumerate(files) if i % 10 != 9]
    assert [files[i] for i in (9, 19)] == [f for f in files if f not in train_files]
    for k, path in enumerate(train_files):
        pixels = torch.from_numpy(np.array(Image.open(path))).float() / 255
        assert torch.equal(train[k]["image"], pixels[None]), path
        assert train[k]["label"].item() == ("cats", "dogs").index(path.parent.name), path
    assert test[1]["label"].item() == ("cats", "dogs").index(files[19].parent.name)
    resized = load_dataset(f"folder:{image_folder}", "train", image_size=8, channels=3)
    assert resized[0]["image"].shape == (3, 8, 8)
    with Image.open(train_files[0]) as img:  # PIL's antialiased bilinear, independently
        small = torch.from_numpy(np.array(img.resize((8, 8), Image.BILINEAR))).float() / 255
    assert (resized[0]["image"] - small).abs().max() <= 1.01 / 255  # every channel, to rounding


def test_folder_corrupt_image_is_skipped_with_a_warning_or_fails_with_strict(image_folder):
    (image_folder / "dogs" / "00.png").write_bytes(b"not a png at all")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        ds = load_dataset(f"folder:{image_folder}", "train")
    assert len(ds) == 17
    with pytest.raises(RnnImgError, match="00.png: not a readable image"):
        load_dataset(f"folder:{image_folder}", "train", strict=True)


def test_folder_bad_paths(tmp_path):
    with pytest.raises(RnnImgError, match="no such folder"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RnnImgError, match="no images found"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    with pytest.raises(RnnImgError, match="needs a path"):
        load_dataset("folder:")


def test_unknown_dataset_name_and_option():
    with pytest.raises(RnnImgError, match="unknown dataset 'mnist5k'.*mnist-5k"):
        load_dataset("mnist5k")
    with pytest.raises(RnnImgError, match="takes no option"):
        load_dataset("mnist-5k", colour=True)
    with pytest.raises(RnnImgError, match="no split"):
        load_dataset("mnist-5k", "validation")


def test_torchvision_sets_never_download_unless_asked(tmp_path):
    with pytest.raises(RnnImgError, match="pass --download"):
        load_dataset("mnist", data_dir=str(tmp_path))
    assert not any(tmp_path.rglob("*.gz"))


def test_registry_lists_the_shipped_sets():
    names = {e.name for e in list_datasets()}
    assert {"mnist-5k", "mnist", "fashion-mnist", "cifar10", "folder"} <= names


def test_folder_reads_16_bit_grey_pngs_scaled_not_clipped(tmp_path):
    from PIL import Image

    ramp = np.linspace(0, 65535, 8 * 8).reshape(8, 8).astype(np.uint16)  # a 16-bit grey ramp
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    rgb = np.repeat((ramp // 257).astype(np.uint8)[..., None], 3, axis=2)  # the same ramp, 8-bit RGB
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    ds = load_dataset(f"folder:{tmp_path}", "train")
    deep, colour = ds[1]["image"], ds[0]["image"]  # sorted: colour.png, deep.png; mixed -> 3 channels
    assert deep.shape == colour.shape == (3, 8, 8)
    # Pillow's convert("L") clipped every 16-bit value above 255 to white: mid-grey must stay mid-grey.
    assert deep[0, 4, 0].item() == pytest.approx(ramp[4, 0] / 65535, abs=1 / 255)
    assert (deep - colour).abs().max() <= 1 / 255 + 1e-6


def test_transforms_take_float_clips_as_well_as_uint8_images():
    """resize and to_channels serve the image datasets (uint8) and the clip datasets (float frames
    (T, C, H, W) in [0, 1]) alike; moving-mnist's resized clips go through them."""
    import torch.nn.functional as F

    from rnnimg.data.transforms import resize, to_channels

    gen = torch.Generator().manual_seed(0)
    clip = (torch.rand(5, 1, 12, 12, generator=gen) > 0.5).float()  # sharp edges overshoot
    small = resize(clip, 5)
    assert small.dtype == torch.float32 and small.shape == (5, 1, 5, 5)
    expected = F.interpolate(clip, size=(5, 5), mode="bilinear", antialias=True, align_corners=False)
    assert torch.equal(small, expected.clamp(0, 1))  # values, not rounded to 8 bits
    as_bytes = resize((clip * 255).to(torch.uint8), 5)
    assert as_bytes.dtype == torch.uint8
    assert (as_bytes.float() - expected.clamp(0, 1) * 255).abs().max() <= 0.5 + 1e-4  # rounded
    rgb = to_channels(small, 3)
    assert rgb.shape == (5, 3, 5, 5) and torch.equal(rgb[:, 2], small[:, 0])
    colour = torch.rand(5, 3, 4, 4, generator=gen)
    grey = to_channels(colour, 1)
    luma = 0.299 * colour[:, 0] + 0.587 * colour[:, 1] + 0.114 * colour[:, 2]
    assert grey.shape == (5, 1, 4, 4) and torch.allclose(grey[:, 0], luma, atol=1e-6)
