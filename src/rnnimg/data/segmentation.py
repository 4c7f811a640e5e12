"""Segmentation data: image/mask pairs, the joint transforms they share, the user's own pairs
(``masks:IMAGES,MASKS``) and torchvision's ``voc`` and ``pets``.

Every item is ``{"image": float (C, H, W) in [0, 1], "mask": long (H, W)}`` with class labels
0..K-1 and 255 for pixels to ignore. Options common to these datasets:

- ``image_size``: resize image AND mask to a square of this side: the image with antialiased
  bilinear filtering, the mask with nearest neighbour only (interpolating a label map invents
  labels that no annotator drew: PITFALLS.md, ReSeg on CamVid);
- ``channels``: 1 or 3 (``None`` keeps the native count);
- ``crop`` (train split only): a random ``crop`` x ``crop`` window, the same for image and mask,
  taken before resizing; sides smaller than ``crop`` are padded (image 0, mask 255);
- ``flip`` (train split only): a random horizontal flip of image and mask together.

Random choices come from torch's global RNG, so ``--seed`` fixes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.images import every_tenth, matched_stems, read_image
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

IGNORE_INDEX = 255
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
PET_CLASSES = ("background", "pet", "border")


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map: uint8 (n, 3); label k's colour from the bits of k."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for k in range(n):
        c, r, g, b = k, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[k] = (r, g, b)
    return palette


# --- joint transforms ---------------------------------------------------------------------------


def resize_mask(mask: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Resize a label map (H, W) (any integer dtype) with nearest neighbour: every output label is
    an input label."""
    from rnnimg.tiling import nearest_indices

    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(mask.shape[-2:]) == size:
        return mask
    # F.interpolate(mode="nearest-exact")'s choice of source pixel, gathered in the mask's own
    # dtype: a uint8 label map of a large photo costs a byte a pixel, no float copy of it
    rows, cols = (nearest_indices(n, m).to(mask.device) for n, m in zip(mask.shape[-2:], size))
    return mask[..., rows, :][..., cols]


def resize_pair(image: Tensor, mask: Tensor, size: int | None) -> tuple[Tensor, Tensor]:
    """Image uint8 (C, H, W) antialiased bilinear, mask (H, W) nearest, both to size x size."""
    if size is None:
        return image, mask
    return T.resize(image.unsqueeze(0), size)[0], resize_mask(mask, size)


def random_crop_pair(image: Tensor, mask: Tensor, crop: int,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """The same random crop x crop window of image (C, H, W) and mask (H, W); sides shorter than
    ``crop`` are padded at the bottom / right (image 0, mask 255 = ignore)."""
    h, w = mask.shape
    pad_h, pad_w = max(0, crop - h), max(0, crop - w)
    if pad_h or pad_w:
        image = F.pad(image, (0, pad_w, 0, pad_h))
        mask = F.pad(mask, (0, pad_w, 0, pad_h), value=IGNORE_INDEX)
        h, w = mask.shape
    top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
    return image[:, top:top + crop, left:left + crop], mask[top:top + crop, left:left + crop]


def random_flip_pair(image: Tensor, mask: Tensor,
                     generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Flip image (C, H, W) and mask (H, W) left-right together with probability 1/2."""
    if bool(torch.rand((), generator=generator) < 0.5):
        return image.flip(-1), mask.flip(-1)
    return image, mask


def check_common_options(image_size, channels, crop) -> None:
    if image_size is not None and image_size < 4:
        raise RnnImgError(f"image_size must be >= 4, got {image_size}.")
    if channels not in (None, 1, 3):
        raise RnnImgError(f"channels must be 1 or 3, got {channels}.")
    if crop is not None and crop < 4:
        raise RnnImgError(f"crop must be >= 4, got {crop}.")


class PairTransform:
    """What every segmentation item goes through: channels, random crop and flip (train only),
    then the resize (image bilinear, mask nearest). Image uint8 (C, H, W), mask (H, W) ->
    ``{"image": float [0, 1], "mask": long}``."""

    def __init__(self, image_size=None, channels=None, crop=None, flip=False, train=False):
        check_common_options(image_size, channels, crop)
        self.image_size, self.channels = image_size, channels
        self.crop, self.flip = (crop, flip) if train else (None, False)

    def __call__(self, image: Tensor, mask: Tensor) -> dict[str, Tensor]:
        image = T.to_channels(image, self.channels)
        if self.crop is not None:
            image, mask = random_crop_pair(image, mask, self.crop)
        if self.flip:
            image, mask = random_flip_pair(image, mask)
        image, mask = resize_pair(image, mask, self.image_size)
        return {"image": image.float() / 255.0, "mask": mask.long()}


# --- the user's own pairs -------------------------------------------------------------------------


def read_mask(path: Path) -> Tensor:
    """A label map uint8 (H, W) from an index PNG (grey or palette 'P': the pixel values / palette
    indices are the labels) or an RGB image drawn in the VOC palette (each colour -> its label)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except FileNotFoundError:
        raise RnnImgError(f"{path}: no such file.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise RnnImgError(f"{path}: not a readable mask image ({err}).") from None
    if mode in ("P", "L", "1"):
        return torch.from_numpy(arr.astype(np.uint8))
    if mode.startswith("I"):
        if arr.max() > IGNORE_INDEX or arr.min() < 0:
            raise RnnImgError(f"{path}: mask values {arr.min()}..{arr.max()} do not fit labels "
                              f"0..{IGNORE_INDEX}; save the mask as an 8-bit index PNG.")
        return torch.from_numpy(arr.astype(np.uint8))
    if mode in ("RGB", "RGBA"):
        rgb = arr[..., :3].astype(np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        pal = voc_palette().astype(np.int64)
        lookup = {int((r << 16) | (g << 8) | b): k for k, (r, g, b) in enumerate(pal)}
        lookup[(224 << 16) | (224 << 8) | 192] = IGNORE_INDEX  # VOC's void colour
        out = np.zeros(codes.shape, dtype=np.uint8)
        for code in np.unique(codes):
            if int(code) not in lookup:
                r, g, b = (int(code) >> 16) & 255, (int(code) >> 8) & 255, int(code) & 255
                raise RnnImgError(f"{path}: colour ({r}, {g}, {b}) is not in the VOC palette; save "
                                  "the mask as an index PNG (pixel value = class, 255 = ignore).")
            out[codes == code] = lookup[int(code)]
        return torch.from_numpy(out)
    raise RnnImgError(f"{path}: mask mode {mode} is not supported; use an index PNG.")


class PairDataset(Dataset):
    """In-memory image/mask pairs (the user's own).

    Attributes:
        names: the matched stem of each pair (for error messages).
    """

    def __init__(self, images: list[Tensor], masks: list[Tensor], names: list[str],
                 transform: PairTransform, class_names: tuple[str, ...] = ()):
        self.images, self.masks, self.names, self.transform = images, masks, names, transform
        self.class_names = class_names

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.transform(self.images[i], self.masks[i])

    @property
    def num_classes(self) -> int | None:
        """One more than the largest mask label other than 255 (None: every pixel is ignored)."""
        top = max((int(m[m != IGNORE_INDEX].max()) for m in self.masks if (m != IGNORE_INDEX).any()),
                  default=None)
        return None if top is None else top + 1

    def label_error(self, num_classes: int) -> str | None:
        """A description of the first mask label that is neither < num_classes nor 255, or None."""
        for name, mask in zip(self.names, self.masks):
            labels = mask.unique()
            bad = labels[(labels.long() >= num_classes) & (labels.long() != IGNORE_INDEX)]
            if len(bad):
                return f"mask label {int(bad[0])} in {name}"
        return None


@register_dataset("masks", prefix=True, task="segment",
                  description="your own segmentation pairs: masks:IMAGES,MASKS, matched by file "
                  "stem; masks as index PNGs (value = class, 255 = ignore) or VOC-palette PNGs; "
                  "every 10th pair is the test split")
def masks(arg: str, split: str, image_size=None, channels=None, crop=None, flip: bool = False,
          class_names: tuple[str, ...] = ()) -> PairDataset:
    parts = arg.split(",")
    if len(parts) != 2 or not all(parts):
        raise RnnImgError(f"masks:{arg}: write masks:IMAGES,MASKS with the two folders separated "
                          "by a comma, e.g. masks:./images,./masks.")
    image_dir, mask_dir = (Path(p).expanduser() for p in parts)
    keep = every_tenth(matched_stems(f"masks:{arg}", image_dir, mask_dir, ("image", "mask"),
                                     "Give each image a mask of the same file name (any image suffix)."),
                       split, f"masks:{arg}", "pairs")
    pics, labels = [], []
    for stem, image_file, mask_file in keep:
        image, mask = read_image(image_file, channels), read_mask(mask_file)
        if tuple(image.shape[1:]) != tuple(mask.shape):
            raise RnnImgError(f"{stem}: the image is {image.shape[2]}x{image.shape[1]} but its mask "
                              f"is {mask.shape[1]}x{mask.shape[0]}; they must be the same size.")
        pics.append(image)
        labels.append(mask)
    if image_size is None and crop is None and len({m.shape for m in labels}) > 1:
        raise RnnImgError(f"masks:{arg}: the pairs have different sizes; pass an image size "
                          "(image_size) to resize them.")
    if channels is None and len({p.shape[0] for p in pics}) > 1:
        pics = [T.to_channels(p, 3) for p in pics]
    transform = PairTransform(image_size, channels, crop, flip, train=split == "train")
    return PairDataset(pics, labels, [m[0] for m in keep], transform, tuple(class_names))


# --- torchvision sets ---------------------------------------------------------------------------


class TorchvisionPairs(Dataset):
    """A torchvision segmentation set read lazily from disk; ``remap`` turns its target values
    into labels (uint8 lookup of 256 entries)."""

    def __init__(self, base, transform: PairTransform, class_names: tuple[str, ...],
                 remap: np.ndarray | None = None):
        self.base, self.transform, self.class_names, self.remap = base, transform, class_names, remap

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        image, target = self.base[i]
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.uint8).copy())
        labels = np.asarray(target, dtype=np.uint8)
        if self.remap is not None:
            labels = self.remap[labels]
        return self.transform(pixels.permute(2, 0, 1), torch.from_numpy(labels.copy()))

    def label_error(self, num_classes: int) -> str | None:
        if num_classes < len(self.class_names):
            return (f"mask label {len(self.class_names) - 1} ({self.class_names[-1]}; the data "
                    f"have {len(self.class_names)} classes)")
        return None


def _open_torchvision(what: str, make, data_dir: str, download: bool):
    try:
        return make()
    except RuntimeError as err:
        if "not found" not in str(err).lower() and "corrupted" not in str(err).lower():
            raise
        raise RnnImgError(f"{what} not found under {Path(data_dir).resolve()}; pass --download to "
                          "fetch it, or --data-dir with the folder that holds it.") from None
    except OSError as err:  # no network while downloading
        raise RnnImgError(f"could not download {what}: {err}") from None


@register_dataset("voc", task="segment", description="PASCAL VOC 2012 segmentation (21 classes, "
                  "255 = void) via torchvision from --data-dir (downloads only with --download); "
                  "test = VOC's val")
def voc(split: str, data_dir: str = "data", download: bool = False, year: str = "2012",
        image_size=None, channels=None, crop=None, flip: bool = False) -> TorchvisionPairs:
    import torchvision.datasets as tvd

    transform = PairTransform(image_size, channels, crop, flip, train=split == "train")
    base = _open_torchvision(f"VOC{year}", lambda: tvd.VOCSegmentation(
        root=data_dir, year=year, image_set="train" if split == "train" else "val",
        download=download), data_dir, download)
    return TorchvisionPairs(base, transform, VOC_CLASSES)


@register_dataset("pets", task="segment", description="Oxford-IIIT Pet trimaps (background, pet, "
                  "border) via torchvision from --data-dir (downloads only with --download)")
def pets(split: str, data_dir: str = "data", download: bool = False, image_size=None,
         channels=None, crop=None, flip: bool = False) -> TorchvisionPairs:
    import torchvision.datasets as tvd

    transform = PairTransform(image_size, channels, crop, flip, train=split == "train")
    base = _open_torchvision("Oxford-IIIT Pet", lambda: tvd.OxfordIIITPet(
        root=data_dir, split="trainval" if split == "train" else "test",
        target_types="segmentation", download=download), data_dir, download)
    remap = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    remap[1], remap[2], remap[3] = 1, 0, 2  # trimap 1 = pet, 2 = background, 3 = border
    return TorchvisionPairs(base, transform, PET_CLASSES, remap)
