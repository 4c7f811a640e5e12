"""Low-resolution conditions for the generators: ``load_dataset(NAME, split, low_res=SCALE)``.

Wraps any image dataset so that every item is ``{"image": the image cropped (bottom and right) to
a multiple of SCALE, "low_res": its bicubic, antialiased downscale by SCALE}`` (``label`` kept
where there is one). The downscale is ``corrupt=downscale``'s (:func:`rnnimg.data.corrupt.downscale`,
PIL's ``resize(BICUBIC)`` on 8-bit images), so a low-resolution input made for super-resolution
and one made here are the same pixels.

Why not ``corrupt=downscale`` itself: that makes a ``translate`` dataset of ``source``/``target``
pairs, which the trainer, ``evaluate`` and the data-shape checks send to translate models. The
generator conditioned on a low-resolution image (``pixelscan --set low_res_scale=N``) models the
``image`` exactly as the unconditional one does, given one more batch key: keeping the generate
task's batches makes every layer above the model work unchanged. The downscale is deterministic,
so there is nothing to draw and every split is the same at every access.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data.corrupt import SCALES, crop_to_multiple, downscale
from rnnimg.errors import RnnImgError


def check_low_res_scale(scale: Any) -> int:
    """The ``low_res`` option: 2, 3 or 4 (RnnImgError naming the option otherwise)."""
    if isinstance(scale, bool) or scale not in SCALES:
        raise RnnImgError(f"low_res must be a scale of 2, 3 or 4, got {scale!r}; pass --data-opt "
                          "low_res=2 (or 3, 4).")
    return int(scale)


class LowResDataset(Dataset):
    """Items ``{"image", "low_res"[, "label"]}`` from an image dataset (see the module docstring).

    Args:
        base: items with ``image`` (C, H, W) in [0, 1] (and optionally ``label``).
        scale: 2, 3 or 4.
    """

    def __init__(self, base: Dataset, scale: int) -> None:
        self.base, self.scale = base, check_low_res_scale(scale)
        self.labels = getattr(base, "labels", None)  # class labels pass through

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        item = dict(self.base[index])
        if "image" not in item:
            raise RnnImgError(f"low_res applies to image datasets; this one gives {', '.join(item)}.")
        image = crop_to_multiple(item["image"], self.scale)
        item.update(image=image, low_res=downscale(image, self.scale))
        return item
