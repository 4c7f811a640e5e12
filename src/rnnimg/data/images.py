"""Image datasets: the shipped ``mnist-5k``, torchvision's ``mnist``/``fashion-mnist``/``cifar10``
and ``folder:PATH`` for the user's own images.

Every item is ``{"image": float (C, H, W) in [0, 1], "label": long}`` (``label`` only where the data
have classes). Options common to all of them:

- ``image_size``: resize to a square of this side (``None`` keeps the native size);
- ``channels``: 1 or 3 (``None`` keeps the native count);
- ``binarize``: ``"fixed"`` (a Bernoulli sample drawn once per image from ``binarize_seed``, the
  same on every run) or ``"dynamic"`` (a fresh sample at every access); ``None`` keeps grey levels;
- ``levels``: quantize grey levels to this many values (256 = 8 bits).
"""

from __future__ import annotations

import warnings
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageDataset(Dataset):
    """In-memory uint8 images with optional labels, converted on access.

    Args:
        images: uint8 (N, C, H, W).
        labels: long (N,) or None.
        ids: a stable id per image (its index in the source), used to seed fixed binarization so an
            image gets the same binary version whichever split it is in.
    """

    def __init__(self, images: Tensor, labels: Tensor | None, ids: Tensor, *, image_size=None,
                 channels=None, binarize=None, binarize_seed: int = 0, levels: int | None = None):
        T.check_binarize(binarize)
        if levels is not None and not 2 <= levels <= 256:
            raise RnnImgError(f"levels must be in 2..256, got {levels}.")
        if channels not in (None, 1, 3):
            raise RnnImgError(f"channels must be 1 or 3, got {channels}.")
        if image_size is not None and image_size < 2:
            raise RnnImgError(f"image_size must be >= 2, got {image_size}.")
        images = torch.stack([T.to_channels(im, channels) for im in images]) if channels else images
        self.images = T.resize(images, image_size)
        self.labels = labels
        self.ids = ids
        self.binarize, self.binarize_seed, self.levels = binarize, binarize_seed, levels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        image = self.images[i].float() / 255.0
        if self.binarize == "fixed":
            image = T.binarize_fixed(image, self.binarize_seed, int(self.ids[i]))
        elif self.binarize == "dynamic":
            image = T.binarize_dynamic(image)
        elif self.levels is not None and self.levels != 256:
            image = T.quantize(image, self.levels)
        item = {"image": image}
        if self.labels is not None:
            item["label"] = self.labels[i]
        return item


def mnist_5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The shipped 5,000 MNIST digits: uint8 images (5000, 28, 28) and labels (5000,)."""
    with resources.files("rnnimg.data.assets").joinpath("mnist_5k.npz").open("rb") as f:
        data = np.load(f)
        return data["images"], data["labels"]


def mnist_5k_split_indices(split: str) -> np.ndarray:
    """Indices into the shipped file for ``split``: within each class, every 10th digit (in file
    order) is a test digit. 450 train and 50 test per class, the same on every machine."""
    _, labels = mnist_5k_arrays()
    rank = np.zeros(len(labels), dtype=np.int64)
    for c in range(10):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    is_test = rank % 10 == 9
    return np.flatnonzero(is_test if split == "test" else ~is_test)


@register_dataset("mnist-5k", description="5,000 MNIST digits shipped with rnnimg "
                  "(4,500 train / 500 test, 50/class in test); CC BY-SA 3.0")
def mnist_5k(split: str, image_size=None, channels=None, binarize=None, binarize_seed: int = 0,
             levels=None) -> ImageDataset:
    images, labels = mnist_5k_arrays()
    idx = mnist_5k_split_indices(split)
    return ImageDataset(torch.from_numpy(images[idx]).unsqueeze(1),
                        torch.from_numpy(labels[idx].astype(np.int64)), torch.from_numpy(idx),
                        image_size=image_size, channels=channels, binarize=binarize,
                        binarize_seed=binarize_seed, levels=levels)


def _torchvision_dataset(cls_name: str, folder: str):
    def factory(split: str, data_dir: str = "data", download: bool = False, image_size=None,
                channels=None, binarize=None, binarize_seed: int = 0, levels=None):
        import torchvision.datasets as tvd

        cls = getattr(tvd, cls_name)
        try:
            ds = cls(root=data_dir, train=split == "train", download=download)
        except RuntimeError as err:
            if "not found" not in str(err).lower() and "corrupted" not in str(err).lower():
                raise
            raise RnnImgError(
                f"{cls_name} not found under {Path(data_dir).resolve() / folder}; pass --download "
                f"to fetch it, or --data-dir with the folder that holds {folder}/."
            ) from None
        except OSError as err:  # no network while downloading
            raise RnnImgError(f"could not download {cls_name}: {err}") from None
        data = torch.as_tensor(np.asarray(ds.data))
        images = data.unsqueeze(1) if data.dim() == 3 else data.permute(0, 3, 1, 2)  # (N, C, H, W)
        labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.long)
        offset = 0 if split == "train" else 10_000_000  # distinct binarization seeds per split
        return ImageDataset(images.contiguous(), labels, torch.arange(len(labels)) + offset,
                            image_size=image_size, channels=channels, binarize=binarize,
                            binarize_seed=binarize_seed, levels=levels)

    return factory


register_dataset("mnist", description="MNIST 60k/10k via torchvision from --data-dir "
                 "(downloads only with --download)")(_torchvision_dataset("MNIST", "MNIST"))
register_dataset("fashion-mnist", description="Fashion-MNIST 60k/10k via torchvision from "
                 "--data-dir (--download to fetch)")(_torchvision_dataset("FashionMNIST", "FashionMNIST"))
register_dataset("cifar10", description="CIFAR-10 50k/10k via torchvision from --data-dir "
                 "(--download to fetch)")(_torchvision_dataset("CIFAR10", "cifar-10-batches-py"))


def read_image(path: Path, channels: int | None = None) -> Tensor:
    """Read an image file as uint8 (C, H, W). Raises RnnImgError if it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                # 16-bit grey (PNG, TIFF): Pillow's convert() clips every value above 255 to white,
                # so scale 0..65535 to 0..255 here.
                wide = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8), "L")
            if channels == 1 or (channels is None and img.mode in ("1", "L", "I", "I;16", "F")):
                img = img.convert("L")
            else:
                img = img.convert("RGB")
            arr = np.asarray(img, dtype=np.uint8)
    except FileNotFoundError:
        raise RnnImgError(f"{path}: no such file.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise RnnImgError(f"{path}: not a readable image ({err}).") from None
    tensor = torch.from_numpy(arr.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def image_files(folder: Path) -> list[Path]:
    if not folder.exists():
        raise RnnImgError(f"{folder}: no such folder.")
    if not folder.is_dir():
        raise RnnImgError(f"{folder}: not a folder; pass a folder of images.")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise RnnImgError(f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    return files


def files_by_stem(folder: Path) -> dict[str, Path]:
    """Every image under ``folder`` by its stem: the path below ``folder`` without the suffix
    (``x/1.png`` -> ``x/1``). Two images with one stem are a one-line error."""
    files: dict[str, Path] = {}
    for path in image_files(folder):
        stem = str(path.relative_to(folder).with_suffix(""))
        if stem in files:
            raise RnnImgError(f"{folder}: {files[stem].name} and {path.name} have the same stem "
                              f"{stem!r}; keep one of them.")
        files[stem] = path
    return files


def matched_stems(spec: str, first: Path, second: Path, nouns: tuple[str, str],
                  hint: str) -> list[tuple[str, Path, Path]]:
    """(stem, file in ``first``, file in ``second``) for every stem, sorted by stem: the pairs of a
    ``pairs:`` or ``masks:`` dataset. A stem that only one folder has is a one-line error that
    starts with ``spec``, counts and names the first few unmatched stems of each folder (``nouns``
    says what the two folders hold) and ends with ``hint``."""
    a, b = files_by_stem(first), files_by_stem(second)
    only_a, only_b = set(a) - set(b), set(b) - set(a)
    if only_a or only_b:
        what = []
        for missing, folder, (have, lack) in ((only_a, second, nouns), (only_b, first, nouns[::-1])):
            if missing:
                names = sorted(missing)
                shown = ", ".join(names[:5]) + (f" (and {len(names) - 5} more)" if len(names) > 5 else "")
                what.append(f"{len(names)} {have}(s) without {'an' if lack[0] in 'aeiou' else 'a'} "
                            f"{lack} in {folder}: {shown}")
        raise RnnImgError(f"{spec}: the stems do not match; {'; '.join(what)}. {hint}")
    return [(stem, a[stem], b[stem]) for stem in sorted(a)]


def every_tenth(items: list, split: str, owner: str, noun: str) -> list:
    """The items of ``split`` when every 10th item (in the given order) is the test split; under
    10 items, train is all of them and test a one-line error ("``owner`` has N ``noun``...")."""
    if split == "test" and len(items) < 10:
        raise RnnImgError(f"{owner} has {len(items)} {noun}, too few for a test split (10 needed).")
    return [x for i, x in enumerate(items) if (i % 10 == 9) == (split == "test") or len(items) < 10]


def folder_classes(root: Path, files: list[Path]) -> list[str] | None:
    """The class names of a folder dataset: its image subfolders, sorted (None if any image lies
    directly in ``root``). Taken over all images, so the train and test splits agree."""
    subdirs = {str(f.parent.relative_to(root)) for f in files}
    return None if "." in subdirs else sorted(subdirs)


def pin_folder(arg: str, options: dict) -> tuple[str, dict]:
    """``folder:`` as a run saves it: the absolute path and the class folder names."""
    root = Path(arg).expanduser().resolve()
    if "classes" not in options and root.is_dir():
        classes = folder_classes(root, image_files(root))
        if classes is not None:
            options["classes"] = classes
    return str(root), options


@register_dataset("folder", prefix=True, pin=pin_folder,
                  description="your own images: every image under PATH; class labels from "
                              "subfolder names; every 10th image is the test split")
def folder(arg: str, split: str, image_size=None, channels=None, binarize=None,
           binarize_seed: int = 0, levels=None, strict: bool = False,
           classes: list[str] | None = None) -> ImageDataset:
    root = Path(arg).expanduser()
    files = image_files(root)
    found = folder_classes(root, files)
    if classes is None:
        classes = found
    elif found is not None and set(found) - set(classes):
        raise RnnImgError(f"{root} has class folder(s) {', '.join(sorted(set(found) - set(classes)))} "
                          f"that the run was not trained on (its classes: {', '.join(classes)}).")
    if len(files) < 10 and split == "test":
        raise RnnImgError(f"{root} has {len(files)} images, too few for a test split (10 needed).")
    keep = [i for i in range(len(files)) if (i % 10 == 9) == (split == "test") or len(files) < 10]
    images, ids, bad = [], [], []
    for i in keep:
        try:
            images.append(read_image(files[i], channels))
            ids.append(i)
        except RnnImgError as err:
            if strict:
                raise RnnImgError(f"{err} (--strict stops at the first unreadable image)") from None
            bad.append(files[i])
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image(s) under {root}, e.g. {bad[0]}; "
                      "pass --strict to stop instead.", stacklevel=2)
    if not images:
        raise RnnImgError(f"{root}: none of its {len(keep)} images could be read.")
    if image_size is None and len({im.shape[-2:] for im in images}) > 1:
        raise RnnImgError(f"{root}: images have different sizes; pass an image size to resize them.")
    if channels is None and len({im.shape[0] for im in images}) > 1:
        channels = 3
    images = [T.resize(T.to_channels(im, channels).unsqueeze(0), image_size)[0] for im in images]
    subdirs = [files[i].parent.relative_to(root) for i in ids]
    labels = None
    if classes is not None and all(str(s) != "." for s in subdirs):
        labels = torch.tensor([classes.index(str(s)) for s in subdirs])
    return ImageDataset(torch.stack(images), labels, torch.tensor(ids), binarize=binarize,
                        binarize_seed=binarize_seed, levels=levels)
