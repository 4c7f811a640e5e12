"""The ``segment`` task's base class: :class:`ImageSegmenter`, shared by ``reseg`` and its
non-recurrent baseline ``unet``.

A segmenter maps an image (B, C, H, W) in [0, 1] to per-pixel class logits (B, K, H, W). This
class holds what every segmenter shares: the config checks, the loss (cross-entropy with
``ignore_index=255``), the ``segment`` verb, the dataset check and the evaluation as additive
statistics (one confusion matrix summed over the whole split, reduced once to mIoU).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.metrics import confusion_matrix, segmentation_scores
from rnnimg.models.base import LossOutput, RnnImgModel, first_item
from rnnimg.tiling import tile_settings, tiled_map

IGNORE_INDEX = 255


def check_segment_config(c: Any) -> None:
    """Validate the fields every ``segment`` config shares (ValueError naming the field)."""
    if c.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {c.channels}")
    if c.image_size < 4:
        raise ValueError(f"image_size must be >= 4, got {c.image_size}")
    if not 2 <= c.num_classes <= IGNORE_INDEX:
        raise ValueError(f"num_classes must be in 2..{IGNORE_INDEX}, got {c.num_classes}")
    c.class_names = tuple(str(n) for n in c.class_names)  # JSON gives a list back
    if c.class_names and len(c.class_names) != c.num_classes:
        raise ValueError(f"class_names must name all {c.num_classes} classes (num_classes), "
                         f"got {len(c.class_names)} names")


def _base_dataset(dataset):
    from torch.utils.data import Subset

    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return dataset


class ImageSegmenter(RnnImgModel):
    """A model of the ``segment`` task. Config fields used here: ``image_size``, ``channels``,
    ``num_classes``, ``class_names``. Subclasses define ``forward(image) -> logits (B, K, H, W)``
    for any H, W that are multiples of ``size_multiple``; :meth:`logits` pads other sizes."""

    task = "segment"
    data_fields: ClassVar[dict[str, str]] = {"image_size": "image_size", "channels": "channels",
                                             "num_classes": "num_classes", "class_names": "class_names"}
    size_multiple: int = 1

    @classmethod
    def fit_to_data(cls, values, data, user):
        """The default, but the data's class names only when they name the model's classes (the
        user may set num_classes alone)."""
        fitted, notes = super().fit_to_data(values, data, user)
        names = fitted.get("class_names")
        if names and len(names) != fitted.get("num_classes", values["num_classes"]):
            fitted["class_names"] = ()
        return fitted, notes

    @property
    def receptive_radius(self) -> int | None:
        """How far (pixels) an output pixel's view of the input reaches in each direction, an
        upper bound; None = the whole image (ReSeg's sweeps), where tiles only approximate the
        whole-image labels. See rnnimg.tiling."""
        return None

    @property
    def class_names(self) -> tuple[str, ...]:
        c = self.config
        return c.class_names or tuple(str(k) for k in range(c.num_classes))

    def check_image(self, image: Tensor, what: str = "image") -> None:
        c = self.config
        if image.dim() != 4:
            raise RnnImgError(f"{what} has shape {tuple(image.shape)}; the model takes (B, C, H, W).")
        if image.shape[1] != c.channels:
            kind = {1: "grey", 3: "colour"}
            raise RnnImgError(
                f"{what} has {image.shape[1]} channel(s), but the model takes {c.channels} "
                f"({kind.get(c.channels, '?')}); convert the image to "
                f"{kind.get(c.channels, c.channels)} or train a model with channels="
                f"{image.shape[1]}.")

    def logits(self, image: Tensor) -> Tensor:
        """Logits (B, K, H, W) for an image of any size: padded (replicate) up to a multiple of
        ``size_multiple``, then cropped back."""
        m = self.size_multiple
        h, w = image.shape[-2:]
        pad_h, pad_w = -h % m, -w % m
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
        return self(image)[..., :h, :w]

    # --- training -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """Cross-entropy over the pixels whose mask is not 255, averaged over those pixels; also
        reports the batch's pixel accuracy and (batch-pooled) mIoU for the training log."""
        image, mask = batch["image"], batch["mask"]
        logits = self.logits(image)  # (B, K, H, W)
        valid = mask != IGNORE_INDEX
        if not bool(valid.any()):  # all ignored: cross_entropy would return NaN
            return LossOutput(logits.sum() * 0.0, {})
        loss = F.cross_entropy(logits, mask, ignore_index=IGNORE_INDEX)
        with torch.no_grad():
            pred = logits.argmax(1)
            conf = confusion_matrix(pred, mask, self.config.num_classes, IGNORE_INDEX)
            scores = segmentation_scores(conf)
        return LossOutput(loss, {"pixel_accuracy": scores["pixel_accuracy"],
                                 "miou_batch": scores["miou"]})

    # --- evaluation as additive statistics ----------------------------------------------------
    evaluation_options = ()
    pooled_validation_metrics = ("miou",)  # val/miou: one confusion matrix over the split

    @torch.no_grad()
    def evaluation_statistics(self, batch: dict[str, Tensor], **options) -> dict[str, Tensor]:
        """Sums over the batch that add up across batches and ranks: the confusion matrix
        (K, K) (rows = target, columns = prediction, ignore pixels left out), the summed
        cross-entropy of the counted pixels, the number of counted pixels and of images."""
        if options:
            raise RnnImgError(f"{self.name} takes no evaluation options, got {', '.join(options)}.")
        image, mask = batch["image"], batch["mask"]
        logits = self.logits(image)
        conf = confusion_matrix(logits.argmax(1), mask, self.config.num_classes, IGNORE_INDEX)
        nll = F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX, reduction="sum")
        pixels = (mask != IGNORE_INDEX).sum()
        return {"confusion": conf.double(), "nll_sum": nll.double(), "pixels": pixels.double(),
                "count": torch.tensor(float(image.shape[0]), dtype=torch.float64)}

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        """mIoU pooled over the split (classes absent from both target and prediction left out),
        per-class IoU (NaN for an absent class), pixel accuracy and the mean cross-entropy per
        counted pixel."""
        scores = segmentation_scores(stats["confusion"])
        pixels = float(stats["pixels"])
        return {"miou": float(scores["miou"]), "pixel_accuracy": float(scores["pixel_accuracy"]),
                "iou_per_class": [float(v) for v in scores["iou_per_class"]],
                "loss": float(stats["nll_sum"]) / pixels if pixels else float("nan")}

    # --- inference ----------------------------------------------------------------------------
    @torch.inference_mode()
    def segment(self, image: Tensor, *, generator: torch.Generator | None = None,
                tile: int | None = None, overlap: int | None = None, progress: bool = False) -> Tensor:
        """Class labels (B, H, W) long of ``image`` (B, C, H, W) in [0, 1], any H and W.

        A uint8 image is read as value / 255 and gives uint8 labels (a byte a pixel for a large
        photo). ``tile``: run over overlapping tiles of this side, blending their logits without
        seams (rnnimg.tiling); equal to the whole-image labels (up to float rounding of the logits)
        when ``overlap >= 2 * receptive_radius + 1``, an approximation for a whole-image receptive
        field. ``overlap`` defaults to 2 x ``receptive_radius`` + 16 (64 for a whole-image one);
        ``progress`` shows a bar over the tiles. ``generator`` is accepted for the task-verb
        signature; segmentation draws nothing.
        """
        self.check_image(image)
        if tile is None and image.dtype != torch.uint8:
            return self.logits(image.to(self.device, torch.float32)).argmax(1)
        m = self.size_multiple
        if tile is None:  # one tile: the whole image
            tile, overlap = -(-max(image.shape[-2:]) // m) * m, 0
        tile, overlap, margin = tile_settings(tile, overlap, self.receptive_radius, m)
        dtype = torch.uint8 if image.dtype == torch.uint8 else torch.long
        return tiled_map(lambda x: self.logits(x.to(self.device, torch.float32)), image, tile=tile,
                         overlap=overlap, margin=margin, multiple=m,
                         finish=lambda band: band.argmax(1).to(dtype), progress=progress,
                         desc="segmenting")

    # --- data ---------------------------------------------------------------------------------
    def dataset_options(self) -> dict[str, Any]:
        return {"image_size": self.config.image_size, "channels": self.config.channels}

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        c = self.config
        image = torch.rand(batch_size, c.channels, c.image_size, c.image_size, generator=generator)
        mask = torch.randint(0, c.num_classes, (batch_size, c.image_size, c.image_size),
                             generator=generator)
        mask[:, 0, 0] = IGNORE_INDEX  # every batch exercises the ignore label
        return {"image": image, "mask": mask}

    def check_dataset(self, dataset, name: str) -> None:
        """The data must have masks whose labels are classes of this model (or 255) and images of
        its channel count. Datasets from :mod:`rnnimg.data.segmentation` answer for all their
        masks (``label_error``); for others the first item is checked."""
        c = self.config
        base = _base_dataset(dataset)
        item = first_item(dataset, name, ("mask", "image"), "a segmentation model needs images with "
                          "masks", "masks", f"{self.name} needs a segmentation dataset such as "
                          "mnist-scenes or masks:IMAGES,MASKS.")
        if item["image"].shape[0] != c.channels:
            raise RnnImgError(f"{name} has {item['image'].shape[0]}-channel images, but the model "
                              f"takes {c.channels}; pass --set channels={item['image'].shape[0]}.")
        label_error = getattr(base, "label_error", None)
        problem = label_error(c.num_classes) if callable(label_error) else None
        if problem is None and not callable(label_error):
            labels = item["mask"].unique()
            bad = labels[(labels >= c.num_classes) & (labels != IGNORE_INDEX)]
            if len(bad):
                problem = f"mask label {int(bad[0])} in item 0"
        if problem:
            known = len(getattr(base, "class_names", ()) or ()) or getattr(base, "num_classes", None)
            raise RnnImgError(
                f"{name}: {problem} is neither a class (0..{c.num_classes - 1}) nor "
                f"{IGNORE_INDEX} (ignore); set num_classes to the data's number of classes "
                f"(--set num_classes={known or 'N'}, or drop it: the data decide) or fix the mask.")
