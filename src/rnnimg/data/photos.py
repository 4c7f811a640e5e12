"""``photos``: the photographs bundled with scikit-image, which load offline (issue 19, item 1).

Real photographs nobody here made, for super-resolution and restoration at photo scale. The test
split is a fixed set of five WHOLE images, never cropped for training; the training split draws
random square crops from the other thirteen.

    test  (whole, native size): astronaut, coffee, camera, gravel, coins
    train (random crops):       brick, chelsea, clock, colorwheel, grass, hubble_deep_field,
                                immunohistochemistry, moon, page, retina, rocket, text,
                                microaneurysms

Source and licence of each image, as scikit-image documents them (the docstrings of
``skimage.data``; the ``README.txt`` installed beside the files states none). "Not stated" means
scikit-image's documentation gives no licence for the picture; it ships with scikit-image, whose
distribution is BSD-3-Clause.

| image | source | licence |
|---|---|---|
| astronaut | Eileen Collins, NASA Great Images database | public domain |
| brick | CC0Textures "Bricks25" (perspective-corrected, rotated, cropped) | CC0 |
| camera | photograph by Lav Varshney | CC0 |
| chelsea | Chelsea the cat, photograph by Stefan van der Walt | CC0 |
| clock | motion-blurred wall clock, photograph by Stefan van der Walt | public domain |
| coffee | coffee cup, Pikolo Espresso Bar, photograph by Rachel Michetti | CC0 |
| coins | Greek coins from Pompeii, Brooklyn Museum Collection | no known copyright restrictions |
| colorwheel | a colour wheel | not stated |
| grass | DeviantArt "Grass-01" by linolafett (cropped, grey) | CC0 |
| gravel | CC0Textures "Gravel04" (rescaled, cropped, grey) | CC0 |
| hubble_deep_field | Hubble eXtreme Deep Field, HubbleSite (NASA) | public domain |
| immunohistochemistry | IHC staining of colonic glands, CMMI | no known copyright restrictions |
| moon | surface of the moon | not stated |
| page | a scanned page of text | not stated |
| retina | fundus photograph of a normal left eye, Mikael Häggström, Wikimedia | CC0 1.0 |
| rocket | DSCOVR launch on Falcon 9, SpaceX | public domain |
| text | "Corner.png", Wikipedia | public domain |
| microaneurysms | crop of 07_dr.JPG, HRF Image Database (Andreas Maier) | CC0 |

Options: ``image_size`` (the side of the training crops, default 96; the test images stay whole and
keep their own sizes, so score them with batch size 1), ``channels`` (3 by default: grey photos
repeated to colour; 1: colour mixed to BT.601 luma), ``train_size`` (crops per epoch, default
1000). A training item is image ``index % 13``, cropped at a random place and mirrored left-right
with probability 1/2, drawn fresh at every access from the global RNG (seeded by the trainer).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

TEST_PHOTOS = ("astronaut", "coffee", "camera", "gravel", "coins")
TRAIN_PHOTOS = ("brick", "chelsea", "clock", "colorwheel", "grass", "hubble_deep_field",
                "immunohistochemistry", "moon", "page", "retina", "rocket", "text", "microaneurysms")
# name -> (source, licence), from the docstrings of skimage.data
PHOTO_SOURCES = {
    "astronaut": ("Eileen Collins, NASA Great Images database", "public domain"),
    "brick": ("CC0Textures Bricks25", "CC0"),
    "camera": ("photograph by Lav Varshney", "CC0"),
    "chelsea": ("Chelsea the cat, photograph by Stefan van der Walt", "CC0"),
    "clock": ("wall clock, photograph by Stefan van der Walt", "public domain"),
    "coffee": ("Pikolo Espresso Bar, photograph by Rachel Michetti", "CC0"),
    "coins": ("Greek coins from Pompeii, Brooklyn Museum Collection", "no known copyright restrictions"),
    "colorwheel": ("a colour wheel", "not stated"),
    "grass": ("DeviantArt Grass-01 by linolafett", "CC0"),
    "gravel": ("CC0Textures Gravel04", "CC0"),
    "hubble_deep_field": ("Hubble eXtreme Deep Field, HubbleSite (NASA)", "public domain"),
    "immunohistochemistry": ("IHC staining, CMMI", "no known copyright restrictions"),
    "moon": ("surface of the moon", "not stated"),
    "page": ("a scanned page", "not stated"),
    "retina": ("fundus photograph by Mikael Häggström, Wikimedia", "CC0 1.0"),
    "rocket": ("DSCOVR launch on Falcon 9, SpaceX", "public domain"),
    "text": ("Corner.png, Wikipedia", "public domain"),
    "microaneurysms": ("crop of HRF 07_dr.JPG (Andreas Maier)", "CC0"),
}


@cache
def photo(name: str) -> Tensor:
    """The bundled photograph ``name`` as uint8 (C, H, W), C = 1 or 3 as stored; cached."""
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        raise RnnImgError("the photos dataset needs scikit-image; pip install scikit-image.") from None
    arr = np.ascontiguousarray(getattr(data, name)())
    tensor = torch.from_numpy(arr)
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1).contiguous()


class PhotoCrops(Dataset):
    """``count`` random ``size`` x ``size`` crops (random place, random left-right mirror) of the
    training photos, item i from photo i % len(photos); fresh at every access."""

    def __init__(self, images: list[Tensor], size: int, count: int) -> None:
        small = min(min(im.shape[-2:]) for im in images)
        if size > small:
            raise RnnImgError(f"photos: image_size {size} is larger than the smallest training photo "
                              f"({small} pixels a side); pass --data-opt image_size=N with N <= {small}.")
        self.images, self.size, self.count = images, size, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        image = self.images[index % len(self.images)]
        h, w = image.shape[-2:]
        top = int(torch.randint(0, h - self.size + 1, (1,)))
        left = int(torch.randint(0, w - self.size + 1, (1,)))
        crop = image[:, top:top + self.size, left:left + self.size]
        if bool(torch.rand(()) < 0.5):
            crop = crop.flip(-1)
        return {"image": crop.float() / 255.0}


class WholePhotos(Dataset):
    """The test photographs, whole, at their own sizes."""

    def __init__(self, images: list[Tensor], names: tuple[str, ...]) -> None:
        self.images, self.names = images, names

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {"image": self.images[index].float() / 255.0}


@register_dataset("photos", description="the 18 photographs bundled with scikit-image: 5 whole test "
                  "images, random crops of 13 for training; offline; CC0 / public domain mostly")
def photos(split: str, image_size: int | None = None, channels: int | None = None,
           train_size: int = 1000) -> Dataset:
    channels = 3 if channels is None else channels
    if channels not in (1, 3):
        raise RnnImgError(f"photos: channels must be 1 or 3, got {channels!r}.")
    size = 96 if image_size is None else image_size
    if not isinstance(size, int) or isinstance(size, bool) or size < 2:
        raise RnnImgError(f"photos: image_size must be a whole number >= 2, got {size!r}.")
    if not isinstance(train_size, int) or isinstance(train_size, bool) or train_size < 1:
        raise RnnImgError(f"photos: train_size must be a whole number >= 1, got {train_size!r}.")
    names = TEST_PHOTOS if split == "test" else TRAIN_PHOTOS
    images = [T.to_channels(photo(n), channels) for n in names]
    if split == "test":
        return WholePhotos(images, names)
    return PhotoCrops(images, size, train_size)
