"""The ``translate`` task (``rnnimg translate``): turn one image into another (denoise, inpaint,
colorize, A -> B, super-resolution).

Its inference function is :func:`translate_image` (one image of any size in, its translation
out); its pictures show the input, every refinement step and the target, one image a row.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.tasks.common import check_image_channels, check_tiles
from rnnimg.tasks.registry import Table, Task, assert_unit_range, register_task
from rnnimg.viz import frames_strip


def translate_image(model, image: Tensor, *, tile: int | None = None, overlap: int | None = None,
                    progress: bool = False) -> Tensor:
    """The translation (C_out, H', W') of one image (C_in, H, W) in [0, 1] (or uint8, and then
    the output is uint8 too), over overlapping ``tile`` x ``tile`` tiles (None: all at once).

    Raises:
        InputError: an image that is not (C, H, W) with the model's input channels, bad tiles.
    """
    check_image_channels(image, model.config.in_channels)
    check_tiles(tile, overlap)
    return model.translate(image.unsqueeze(0), tile=tile, overlap=overlap, progress=progress)[0].cpu()


def translation_strip(model, source: Tensor, target: Tensor | None = None) -> Tensor:
    """Before / steps / after: one row per image, the input, the estimate after every refinement
    step (the last one is the output), and the target where it is known.

    Args:
        model: a model of the ``translate`` task.
        source: (B, C_in, H, W) in [0, 1].
        target: (B, C_out, H, W) or None.

    Returns:
        (3, H', W') in [0, 1].
    """
    steps = model.translate(source.to(model.device), return_steps=True).cpu()  # (B, K, C, H, W)
    if steps.shape[-2:] != source.shape[-2:]:  # super-resolution: the input's pixels enlarged
        source = torch.nn.functional.interpolate(source.float(), size=steps.shape[-2:], mode="nearest")
    rows = []
    for i in range(len(steps)):
        row = [source[i].cpu().expand(3, -1, -1) if source.shape[1] == 1 else source[i].cpu()]
        row += [s.expand(3, -1, -1) if s.shape[0] == 1 else s for s in steps[i]]
        if target is not None:
            row.append(target[i].cpu().expand(3, -1, -1) if target.shape[1] == 1 else target[i].cpu())
        rows.append(torch.stack(row))  # (1 + K [+ 1], 3, H, W)
    return frames_strip(rows)


def translation_view(model, batch, generator) -> dict[str, Tensor]:
    """``translation.png``: for up to 8 images, the input, every refinement step (the last is the
    output) and the target (where ``batch`` has one), one image a row."""
    target = batch["target"][:8] if "target" in batch else None
    return {"translation.png": translation_strip(model, batch["source"][:8], target)}


def contract(model, batch, generator) -> Tensor:
    """The translation of ``batch["source"]``: the shape of ``batch["target"]``, in [0, 1]."""
    out = model.translate(batch["source"])
    assert out.shape == batch["target"].shape, (tuple(out.shape), tuple(batch["target"].shape))
    assert_unit_range(out)
    return out


def evaluation_tables(metrics: dict, class_names=(), item_names=()) -> list[Table]:
    """What ``rnnimg evaluate`` prints for a super-resolution model below its summary: each test
    image's PSNR and SSIM on the Y channel (``scale`` pixels shaved from each border) of the model
    and of bicubic, the PSNR gain, then their means over the images, which are the summary's
    psnr_y, input_psnr_y, ssim_y and input_ssim_y. Rows are named by ``item_names`` where the data
    name the images (``photos``), else numbered from 0 in the split's order."""
    columns = {"psnr_y": "PSNR-Y", "input_psnr_y": "bicubic PSNR-Y", "gain": "gain dB",
               "ssim_y": "SSIM-Y", "input_ssim_y": "bicubic SSIM-Y"}
    lists = {k: metrics[f"{k}_per_image"] for k in columns if f"{k}_per_image" in metrics}
    if "psnr_y" not in lists or "input_psnr_y" not in lists:
        return []
    lists["gain"] = [a - b for a, b in zip(lists["psnr_y"], lists["input_psnr_y"], strict=True)]
    lists = {k: lists[k] for k in columns if k in lists}  # the columns' order
    names = list(item_names or ())

    def cell(value: float, key: str) -> str:
        return "-" if value != value else (f"{value:+.2f}" if key == "gain" else
                                           f"{value:.2f}" if "psnr" in key else f"{value:.4f}")

    rows = [(names[i] if i < len(names) else str(i), *(cell(v[i], k) for k, v in lists.items()))
            for i in range(len(lists["psnr_y"]))]
    means = {k: [x for x in v if x == x] for k, v in lists.items()}
    rows.append(("mean", *(cell(sum(v) / len(v) if v else float("nan"), k) for k, v in means.items())))
    return [Table("per test image (Y channel, scale pixels shaved from each border; bicubic is the floor)",
                  ("image", *(columns[k] for k in lists)), tuple(rows),
                  tuple(f"{k}_per_image" for k in lists if k != "gain"))]


TRANSLATE = register_task(Task(
    name="translate", verb="translate", title="Translate", batch_keys=("source", "target"),
    contract=contract, infer=translate_image, views=(translation_view,), upload="source",
    hub_tag="image-to-image", tables=evaluation_tables))
