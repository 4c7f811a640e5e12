"""The translate tab's upscale view, without the web page: a super-resolution model's output beside
PIL's bicubic upscale, on a test photo (downscaled as in training, then scored) or an upload
(upscaled at its own size over tiles). Called by :mod:`rnnimg.serve.app`; the shared page
machinery (served models, messages, test items) is :mod:`rnnimg.serve.core`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.serve.core import ServedModel, named_for_page, refuse_huge, test_item

MAX_UPSCALED_PIXELS = 4096 * 4096  # output pixels the page makes; `rnnimg translate` tiles any size


def upscales(served: ServedModel) -> bool:
    """Whether the model is a super-resolver (a translate model whose output is ``scale`` > 1
    times its input), which the translate tab shows as upload / output / bicubic."""
    return getattr(served.model, "scale", 1) > 1


@dataclass
class Upscaled:
    """What the page shows for one upscaled image: uint8 (H * s, W * s, 3) pictures of the input
    (its pixels enlarged as blocks), the model's output and PIL's bicubic upscale, the original
    where the page made the input by downscaling it, and a caption with the sizes and scores."""

    input: np.ndarray
    output: np.ndarray
    bicubic: np.ndarray
    original: np.ndarray | None
    caption: str


def _rgb(pixels: Tensor) -> np.ndarray:
    """uint8 (C, H, W) -> uint8 (H, W, 3)."""
    return pixels.expand(3, -1, -1).permute(1, 2, 0).numpy() if pixels.shape[0] == 1 else \
        pixels.permute(1, 2, 0).numpy()


def pil_bicubic(pixels: Tensor, scale: int) -> Tensor:
    """uint8 (C, H, W) -> uint8 (C, H * scale, W * scale): PIL's bicubic resize, the upscale
    everybody knows (the models' own floor, ``bicubic_upscale``, is within a grey level of it)."""
    from PIL import Image

    array = pixels[0].numpy() if pixels.shape[0] == 1 else pixels.permute(1, 2, 0).numpy()
    big = np.asarray(Image.fromarray(array).resize((array.shape[1] * scale, array.shape[0] * scale),
                                                   Image.BICUBIC))
    tensor = torch.from_numpy(big.copy())
    return tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def banded_psnr_y(pred: Tensor, target: Tensor, shave: int, rows: int = 256) -> float:
    """:func:`rnnimg.metrics.psnr_y_per_image` of two uint8 images (C, H, W) larger than
    ``2 * shave`` a side, ``rows`` rows at a time, so that a large image is never all float64."""
    from rnnimg.metrics import PSNR_MAX_DB, luma_y

    h, w = target.shape[-2:]
    total = 0.0
    for y in range(shave, h - shave, rows):
        band = (slice(None), slice(y, min(y + rows, h - shave)), slice(shave, w - shave))
        p, t = (luma_y(x[band][None].float() / 255) for x in (pred, target))
        total += float((p - t).pow(2).sum())
    mse = total / ((h - 2 * shave) * (w - 2 * shave))
    return 10.0 * float(np.log10(1.0 / max(mse, 10 ** (-PSNR_MAX_DB / 10))))


@named_for_page()
def upscale(served: ServedModel, pixels: Tensor, original: Tensor | None = None,
            tile: int | None = None) -> Upscaled:
    """Upscale one image, uint8 (C, H, W), with a super-resolution model, over overlapping tiles
    (rnnimg.tiling; ``tile`` None: its default side), so memory follows the tile, not the image.
    With the ``original`` (uint8 (C, H * s, W * s)) the caption gives the PSNR-Y (``s`` pixels
    shaved, as ``evaluate`` scores) of the output and of bicubic against it.

    Raises:
        RnnImgError: a grey image for a colour model (or the reverse), or an output larger than
            :data:`MAX_UPSCALED_PIXELS`.
    """
    from rnnimg.tasks import translate_image
    from rnnimg.tasks.common import check_image_channels
    from rnnimg.tiling import DEFAULT_TILE

    model, s = served.model, served.model.scale
    check_image_channels(pixels, model.config.in_channels)
    c, h, w = pixels.shape
    if h * s * w * s > MAX_UPSCALED_PIXELS:
        raise RnnImgError(f"the image is {w}x{h} pixels, {w * s}x{h * s} at x{s}: the page makes "
                          "outputs up to 4096x4096; use `rnnimg translate RUN IMAGE -o BIG.png`, which "
                          "tiles any size.")
    output = translate_image(model, pixels, tile=tile or DEFAULT_TILE)  # uint8 (C, h s, w s)
    bicubic = pil_bicubic(pixels, s)
    shown = pixels.repeat_interleave(s, dim=1).repeat_interleave(s, dim=2)
    caption = f"**{w}x{h} in, {w * s}x{h * s} out** (x{s})."
    if original is not None and min(original.shape[-2:]) > 2 * s:
        caption += (f" PSNR-Y against the original ({s} pixels shaved from each border): "
                    f"**model {banded_psnr_y(output, original, s):.2f} dB**, bicubic "
                    f"{banded_psnr_y(bicubic, original, s):.2f} dB.")
    return Upscaled(_rgb(shown), _rgb(output), _rgb(bicubic),
                    None if original is None else _rgb(original), caption)


def upscale_test_photo(served: ServedModel, index: int, tile: int | None = None) -> Upscaled:
    """:func:`upscale` on the low-resolution version of the model's test image ``index`` (made by
    its data's downscale), scored against the image itself."""
    item = test_item(served, index)
    if "source" not in item:
        raise RnnImgError(f"the test data of {served.label} hold no inputs to upscale; upload an image.")
    source = item["source"].mul(255).round().byte()
    target = item.get("target")
    s = served.model.scale
    fits = target is not None and tuple(target.shape[-2:]) == (source.shape[-2] * s, source.shape[-1] * s)
    return upscale(served, source, target.mul(255).round().byte() if fits else None, tile=tile)


def upscale_file(served: ServedModel, path: str | os.PathLike, shrink_first: bool = False,
                 tile: int | None = None) -> Upscaled:
    """:func:`upscale` on an uploaded image at its own size; with ``shrink_first`` the upload is
    the original: cut to a multiple of the scale, downscaled as the training data were
    (``corrupt=downscale``: PIL's antialiased bicubic), upscaled, and scored against itself."""
    from rnnimg.data.corrupt import downscale
    from rnnimg.data.images import read_image

    refuse_huge(path)
    pixels = read_image(Path(path))  # uint8 (C, H, W) as stored, grey or RGB
    if not shrink_first:
        return upscale(served, pixels, tile=tile)
    s = served.model.scale
    h, w = pixels.shape[-2] // s * s, pixels.shape[-1] // s * s
    if h == 0 or w == 0:
        raise RnnImgError(f"{Path(path).name} is smaller than {s}x{s} pixels: too small to shrink first.")
    original = pixels[:, :h, :w]
    small = downscale(original.float() / 255, s).mul(255).round().byte()
    return upscale(served, small, original, tile=tile)


