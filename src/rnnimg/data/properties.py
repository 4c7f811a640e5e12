"""What a dataset carries, in the terms of a model's config: :class:`DataProperties`.

The data drive the model's shape (docs/architecture.md): image size, channels, number of classes, vocabulary
and frame size come from the dataset unless the user sets them. :func:`describe_data` loads a
dataset's training split as the user asked for it and reads those properties off its first item
and the attributes datasets expose:

- ``labels`` (a tensor of class labels), ``num_classes`` or ``class_names``: the classes of the
  ``label`` (generate) or ``mask`` (segment) values;
- ``vocabulary``: the words of the ``text`` token ids (0 is padding, word w is index + 1).

Models declare which config field each property sets (``RnnImgModel.data_fields``); the trainer
resolves them in one place (:mod:`rnnimg.train.datashape`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

IGNORE_INDEX = 255  # the mask label that marks pixels without a class


@dataclass(frozen=True)
class DataProperties:
    """The shape of what a dataset gives; None where it gives no such thing.

    Attributes:
        name: the dataset's name, for messages.
        image_size: side of its square images (generate, segment; translate: the targets).
        image_hw: (height, width) of its images, square or not.
        channels: of its images (translate: of the targets; predict: of the frames).
        source_channels: translate: of the source images.
        scale: translate: target side / source side where the target is a whole multiple larger
            (super-resolution data such as corrupt=downscale); 1 for same-size pairs.
        frame_size: predict: side of its square frames.
        frame_hw: predict: (height, width) of its frames.
        num_classes: classes of its ``label`` (generate) or ``mask`` (segment) values.
        class_names: segment: the names of the mask classes (``()``: unnamed).
        vocabulary: the words of its captions (``text``); None: no captions.
        max_words: the length of its caption token rows.
        view_size: reconstruct: side of its square views.
        voxel_size: reconstruct: side of its cubic voxel grids.
    """

    name: str
    image_size: int | None = None
    image_hw: tuple[int, int] | None = None
    channels: int | None = None
    source_channels: int | None = None
    scale: int | None = None
    frame_size: int | None = None
    frame_hw: tuple[int, int] | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    vocabulary: tuple[str, ...] | None = None
    max_words: int | None = None
    view_size: int | None = None
    voxel_size: int | None = None

    def summary(self, properties: Collection[str] | None = None) -> str:
        """A few words for messages, e.g. ``32x32 images with 3 channels, 3 classes`` or ``32^3
        voxel grids, 64x64 views with 1 channel, 8 classes``; only the classes, captions and
        views among ``properties`` (None: all) are named (a voxel generator reads no views)."""
        parts = []
        hw, what = (self.image_hw, "images") if self.image_hw else (self.frame_hw, "frames")
        if self.voxel_size:  # reconstruct data: the grids, and the views only for a model of them
            parts.append(f"{self.voxel_size}^3 voxel grids")
            what = "views"
            if properties is not None and "view_size" not in properties:
                hw = None
        if hw:
            parts.append(f"{hw[0]}x{hw[1]} {what} with {self.channels} channel"
                         + ("s" if self.channels != 1 else ""))
        if self.source_channels is not None:
            parts.append(f"{self.source_channels}-channel sources")
        if self.num_classes and (properties is None or "num_classes" in properties):
            parts.append(f"{self.num_classes} classes")
        if self.vocabulary is not None and (properties is None or "vocabulary" in properties):
            parts.append(f"captions of {len(self.vocabulary)} words")
        return ", ".join(parts) or "no images"


def _attribute(dataset: Dataset, name: str):
    """``name`` of ``dataset`` or of a dataset it wraps (``Subset.dataset``, ``.base``), or None."""
    for _ in range(8):
        value = getattr(dataset, name, None)
        if value is not None:
            return value
        inner = getattr(dataset, "dataset", None)
        dataset = inner if inner is not None else getattr(dataset, "base", None)
        if dataset is None:
            return None
    return None


def _square(hw: tuple[int, int]) -> int | None:
    return hw[0] if hw[0] == hw[1] else None


def describe_dataset(dataset: Dataset, name: str) -> DataProperties:
    """The :class:`DataProperties` of a loaded, non-empty dataset (its first item, its attributes)."""
    item = dataset[0]
    values: dict = {"name": name}
    image = item.get("target", item.get("image"))
    if image is not None:
        hw = (int(image.shape[-2]), int(image.shape[-1]))
        values.update(image_hw=hw, image_size=_square(hw), channels=int(image.shape[0]))
    if "source" in item:
        source = item["source"]
        values["source_channels"] = int(source.shape[0])
        if image is not None and image.shape[-1] % source.shape[-1] == 0 \
                and image.shape[-2] * source.shape[-1] == source.shape[-2] * image.shape[-1]:
            values["scale"] = int(image.shape[-1] // source.shape[-1])
    if "frames" in item:  # (T, C, H, W)
        frames = item["frames"]
        hw = (int(frames.shape[-2]), int(frames.shape[-1]))
        values.update(frame_hw=hw, frame_size=_square(hw), channels=int(frames.shape[-3]))
    if "views" in item:  # (V, C, H, W) views of a (D, D, D) voxel grid
        views, voxels = item["views"], item["voxels"]
        hw = (int(views.shape[-2]), int(views.shape[-1]))
        values.update(image_hw=hw, view_size=_square(hw), channels=int(views.shape[-3]),
                      voxel_size=int(voxels.shape[-1]) if len(set(voxels.shape)) == 1 else None,
                      class_names=tuple(str(n) for n in (_attribute(dataset, "class_names") or ())))
    if "mask" in item:
        names = tuple(str(n) for n in (_attribute(dataset, "class_names") or ()))
        count = len(names) or _attribute(dataset, "num_classes")
        if not count:  # only what the first mask shows
            labels = item["mask"][item["mask"] != IGNORE_INDEX]
            count = int(labels.max()) + 1 if labels.numel() else None
        values.update(num_classes=count, class_names=names)
    elif "label" in item:
        labels = _attribute(dataset, "labels")
        if isinstance(labels, torch.Tensor) and labels.numel():
            values["num_classes"] = int(labels.max()) + 1
        else:
            values["num_classes"] = _attribute(dataset, "num_classes") or int(item["label"]) + 1
    if "text" in item:
        vocabulary = _attribute(dataset, "vocabulary")
        if vocabulary:
            values["vocabulary"] = tuple(vocabulary)
        values["max_words"] = int(item["text"].shape[-1])
    return DataProperties(**values)


def describe_data(name: str, **options) -> DataProperties:
    """The :class:`DataProperties` of dataset ``name``'s training split loaded with ``options``.

    Loading and reading the first item leave the global torch RNG as it was (generated datasets
    draw their items from it).

    Raises:
        RnnImgError: as :func:`rnnimg.data.load_dataset` does, or for an empty training split.
    """
    from rnnimg.data.registry import load_dataset
    from rnnimg.errors import RnnImgError

    with torch.random.fork_rng(devices=[]):
        dataset = load_dataset(name, "train", **options)
        if len(dataset) == 0:
            raise RnnImgError(f"dataset {name!r} has no training items.")
        return describe_dataset(dataset, name)
