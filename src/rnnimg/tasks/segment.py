"""The ``segment`` task (``rnnimg segment``): label every pixel of an image with a class.

Its inference function is :func:`segment_image` (one image of any size in, its labels out); its
pictures put the image under its labels in the PASCAL VOC palette, with a legend of the classes.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.tasks.common import check_image_channels, check_tiles
from rnnimg.tasks.registry import Task, register_task
from rnnimg.viz import make_grid

IGNORE_COLOUR = (224, 224, 192)  # VOC's "void" colour, for mask pixels labelled 255
def mask_colours(mask: Tensor) -> Tensor:
    """Label map (H, W) -> RGB (3, H, W) in [0, 1]: class k in the PASCAL VOC palette's colour k
    (class 0 black), 255 (ignore) in VOC's void colour."""
    from rnnimg.data.segmentation import voc_palette

    palette = torch.from_numpy(voc_palette()).float() / 255.0  # (256, 3)
    palette[255] = torch.tensor(IGNORE_COLOUR) / 255.0
    return palette[mask.long().cpu().clamp(0, 255)].permute(2, 0, 1)


def mask_overlay(image: Tensor, mask: Tensor, alpha: float = 0.5) -> Tensor:
    """The image (C, H, W) in [0, 1] under its label map (H, W) in palette colours:
    (1 - alpha) * image + alpha * colour, RGB (3, H, W)."""
    rgb = image.float().cpu().expand(3, -1, -1) if image.shape[0] == 1 else image.float().cpu()
    return (1 - alpha) * rgb + alpha * mask_colours(mask)


def class_legend(names: list[str] | tuple[str, ...], labels, width: int,
                 swatch: int = 10) -> Tensor:
    """A legend (3, h, width) in [0, 1]: a palette swatch and the name of each class in
    ``labels`` (class indices; 255 is shown as "ignore"), laid out left to right, wrapping."""
    import numpy as np
    from PIL import Image, ImageDraw

    entries = [(int(k), "ignore" if int(k) == 255 else
                (names[int(k)] if int(k) < len(names) else str(int(k)))) for k in labels]
    cells = [swatch + 4 + 6 * len(text) + 10 for _, text in entries]  # PIL's default font: 6 px
    rows, x = 1, 0
    for cell in cells:
        if x and x + cell > width:
            rows, x = rows + 1, 0
        x += cell
    line = swatch + 4
    img = Image.new("RGB", (width, rows * line + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    x, y = 2, 2
    for (k, text), cell in zip(entries, cells):
        if x > 2 and x + cell > width:
            x, y = 2, y + line
        colour = tuple(int(v * 255) for v in mask_colours(torch.tensor([[k]]))[:, 0, 0])
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=colour, outline=(0, 0, 0))
        draw.text((x + swatch + 3, y), text, fill=(0, 0, 0))
        x += cell
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0


def with_legend(picture: Tensor, names, labels) -> Tensor:
    """``picture`` (3, H, W) with a legend of ``labels`` below it."""
    legend = class_legend(names, labels, picture.shape[-1])
    return torch.cat([picture.cpu(), legend], dim=1)


def segmentation_overlay(model, image: Tensor, labels: Tensor, alpha: float = 0.5) -> Tensor:
    """One picture for ``rnnimg segment --overlay``: the image (C, H, W) under the predicted
    labels (H, W), with a legend naming the classes that occur."""
    present = sorted(int(k) for k in labels.unique())
    return with_legend(mask_overlay(image, labels, alpha), model.class_names, present)


def segment_image(model, image: Tensor, resize: bool = True, *, tile: int | None = None,
                  overlap: int | None = None, progress: bool = False) -> Tensor:
    """Labels (H, W) of one image (C, H, W) in [0, 1] (or uint8) of any size.

    With ``resize`` the image is resized (antialiased bilinear) to the model's training size, as
    the datasets do, and the labels are resized back with nearest neighbour only (no invented
    labels); otherwise the model runs at the image's own size, over overlapping ``tile`` x
    ``tile`` tiles (``model.segment``; None = all at once). A uint8 image gives uint8 labels.
    Either way memory follows a band of rows or a tile, not the image's area, beyond the labels
    themselves (a byte a pixel for uint8): the resize converts the image to floats a band of
    rows at a time (:func:`rnnimg.tiling.resize_banded`, equal to the one-call resize).

    Raises:
        InputError: an image that is not (C, H, W) with the model's channels, bad tiles.
    """
    from rnnimg.data.segmentation import resize_mask
    from rnnimg.tiling import resize_banded

    check_image_channels(image, model.config.channels)
    check_tiles(tile, overlap)
    h, w = image.shape[-2:]
    size = model.config.image_size
    batch = image.unsqueeze(0)
    if resize and (h, w) != (size, size):
        batch = resize_banded(batch, (size, size))
    elif batch.dtype != torch.uint8:
        batch = batch.float()
    labels = model.segment(batch.to(model.device), tile=tile, overlap=overlap, progress=progress)[0]
    if image.dtype == torch.uint8:  # num_classes <= 255: the labels fit a byte
        labels = labels.to(torch.uint8)  # before the resize back: a byte a pixel at the image's size
    return resize_mask(labels.cpu(), (h, w))


def segmentation_view(model, batch, generator) -> dict[str, Tensor]:
    """``segmentation.png``: for up to 8 images, the image, the true mask over it (where ``batch``
    has a ``mask``) and the predicted mask over it, side by side; a legend names every class that
    occurs."""
    images = batch["image"][:8].to(model.device)
    predicted = model.segment(images).cpu()
    truth = batch["mask"][:8].cpu() if "mask" in batch else None
    cells = []
    for i, (image, pred) in enumerate(zip(images.cpu(), predicted)):
        cells.append(image.expand(3, -1, -1) if image.shape[0] == 1 else image)
        if truth is not None:
            cells.append(mask_overlay(image, truth[i]))
        cells.append(mask_overlay(image, pred))
    per_image = len(cells) // len(images)
    grid = make_grid(torch.stack(cells), nrow=2 * per_image if len(images) > 1 else per_image)
    present = set(predicted.unique().tolist()) | (set() if truth is None else set(truth.unique().tolist()))
    return {"segmentation.png": with_legend(grid, model.class_names, sorted(present))}


def contract(model, batch, generator) -> Tensor:
    """Labels of ``batch["image"]``: the shape of ``batch["mask"]``, long, in 0..num_classes-1."""
    out = model.segment(batch["image"])
    assert out.shape == batch["mask"].shape and out.dtype == torch.long, (tuple(out.shape), out.dtype)
    assert out.min() >= 0 and out.max() < model.config.num_classes, (out.min(), out.max())
    return out


SEGMENT = register_task(Task(
    name="segment", verb="segment", title="Segment", batch_keys=("image", "mask"), contract=contract,
    infer=segment_image, views=(segmentation_view,), upload="image", hub_tag="image-segmentation"))
