"""Any image size in bounded memory: run a fully convolutional map over overlapping tiles and blend
them without seams.

The image is cut into a grid of tiles of side ``tile`` (the last row and column are cut to end at
the image's edge) whose neighbours share ``overlap`` pixels. Each tile's output is weighted by a
separable window that is 1 inside the tile, 0 on the outer ``margin`` pixels of every edge it
shares with a neighbour, and rises along a raised-cosine ramp in between; the weights are
normalised so that they sum to 1 at every pixel. Edges on the image's border get no ramp.

Why tiled equals whole: an output pixel of a map whose receptive field reaches ``radius`` pixels
in every direction (the models' ``receptive_radius``) depends only on the input pixels within that
radius. A tile's output pixel at least ``radius`` pixels from every edge it shares with a
neighbour therefore sees exactly the input the whole image would give it (at the image's own
border the tile pads just as the whole image does, provided tiles start on multiples of the
model's ``size_multiple``). With ``margin >= radius`` every pixel that gets weight is such a pixel,
so the blended result is the whole-image output up to float rounding: that holds when
``overlap >= 2 * radius + 1``. Models whose receptive field is the whole image (ReSeg's ReNet
sweeps) have ``receptive_radius = None``: their tiled output is an approximation, each tile seeing
only its own context, and the blending only hides the seams.

Memory: the input may stay uint8 (converted to [0, 1] floats one tile at a time); the blended output
is accumulated a tile at a time and handed to ``finish`` (quantise, argmax) as soon as no later tile
touches it: the columns of a tile row up to the next tile's start once that tile is done, except
the rows the next tile row shares, which are carried (``overlap`` rows by the image's width). Peak
memory grows with the tile, and with the image's width only through that carried strip, not with
its area.

Only torch here (and tqdm for the progress bar); ``rnnimg.models`` builds its verbs on this.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from rnnimg.errors import RnnImgError

DEFAULT_TILE = 512  # pixels a side: a few tens of MB of activations for the shipped models


def tile_spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """The [start, end) spans along one axis of ``length`` pixels: starts on multiples of
    ``multiple``, each span at most ``tile`` long, neighbours sharing at least ``overlap`` pixels,
    the last one ending at ``length``."""
    if length <= tile:
        return [(0, length)]
    stride = tile - overlap
    last_start = -(-(length - tile) // multiple) * multiple  # the first aligned start that reaches the end
    spans = [(0, tile)]
    while spans[-1][1] < length:
        start = min(spans[-1][0] + stride, last_start)
        spans.append((start, min(start + tile, length)))
    return spans


def _ramp(n: int, margin: int, width: int) -> Tensor:
    """Weights of the ``n`` pixels next to a shared edge, by distance from it: 0 on the first
    ``margin``, a raised cosine from 0 to 1 over the next ``width - 2 * margin``, then 1."""
    d = torch.arange(n, dtype=torch.float64) + 0.5
    t = ((d - margin) / max(width - 2 * margin, 1)).clamp(0, 1)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


def blend_weights(spans: list[tuple[int, int]], length: int, overlap: int, margin: int,
                  scale: int = 1) -> list[Tensor]:
    """Per span its normalised window (float32, ``(end - start) * scale`` long) in output pixels:
    the windows placed at their spans sum to 1 at every output pixel."""
    raw = []
    for start, end in spans:
        n = (end - start) * scale
        w = torch.ones(n, dtype=torch.float64)
        if start > 0:
            w = w * _ramp(n, margin * scale, overlap * scale)
        if end < length:
            w = w * _ramp(n, margin * scale, overlap * scale).flip(0)
        raw.append(w)
    total = torch.zeros(length * scale, dtype=torch.float64)
    for (start, end), w in zip(spans, raw):
        total[start * scale:end * scale] += w
    if bool((total <= 0).any()):  # cannot happen for spans from tile_spans with margin < overlap / 2
        raise ValueError("the tiles leave pixels without weight; raise the overlap")
    return [(w / total[s * scale:e * scale]).float() for (s, e), w in zip(spans, raw)]


def tile_settings(tile: int | None, overlap: int | None, radius: int | None,
                  multiple: int = 1) -> tuple[int, int, int]:
    """Check and complete the user's ``tile`` and ``overlap`` for a model whose receptive field
    reaches ``radius`` pixels (None: the whole image) and that wants sizes and starts on multiples
    of ``multiple``. Returns (tile, overlap, margin), tile and overlap rounded to ``multiple``
    (tile down, overlap up).

    Defaults: tile :data:`DEFAULT_TILE`; overlap 2 x radius + 16: the two margins, which make the
    tiles exact, and a 16-pixel ramp between them; 64 for a whole-image receptive field. Raises RnnImgError
    (naming --tile / --overlap) for a tile not larger than the overlap.
    """
    if tile is None:
        tile = DEFAULT_TILE
    if overlap is None:
        overlap = 2 * radius + 16 if radius is not None else 64
    if tile < 1 or overlap < 0:
        raise RnnImgError(f"--tile {tile} / --overlap {overlap}: the tile must be at least 1 pixel "
                          "and the overlap at least 0.")
    overlap = -(-overlap // multiple) * multiple
    rounded = tile // multiple * multiple
    if rounded <= overlap:
        raise RnnImgError(f"--tile {tile} is not larger than the overlap ({overlap} pixels, rounded to "
                          f"a multiple of {multiple}); pass a larger --tile or a smaller --overlap.")
    margin = min(radius if radius is not None else overlap // 4, (overlap - 1) // 2) if overlap else 0
    return rounded, overlap, margin


def tiled_map(fn: Callable[[Tensor], Tensor], image: Tensor, *, tile: int, overlap: int,
              margin: int, multiple: int = 1, scale: int = 1,
              finish: Callable[[Tensor], Tensor] | None = None, progress: bool = False,
              desc: str = "tiles") -> Tensor:
    """Apply ``fn`` to ``image`` tile by tile and blend the tiles' outputs.

    Args:
        fn: maps a float batch (B, C, h, w) in [0, 1] to (B, C', h * scale, w * scale); it is
            called once per tile (on the tile's own device handling is fn's business).
        image: (B, C, H, W), uint8 (read as value / 255) or float in [0, 1]; kept as given, each
            tile converted on its own.
        tile, overlap, margin: from :func:`tile_settings`; ``margin`` output-free pixels (in input
            pixels) along every edge shared with a neighbour.
        multiple: tile starts fall on multiples of it (the model's ``size_multiple``).
        scale: output pixels per input pixel (super-resolution; 1 otherwise).
        finish: maps a finished block of the blended output (B, C', rows, columns) to what is
            stored, pixel by pixel (for example quantised to uint8, or the argmax over classes (B,
            rows, columns)); the identity by default. The block is never read again, so
            ``finish`` may overwrite it (:func:`quantize_` does, and needs no float temporaries).
        progress: show a progress bar over the tiles (stderr) when there is more than one.

    Returns:
        the finished output, (..., H * scale, W * scale), on the CPU.
    """
    from tqdm.auto import tqdm

    height, width = image.shape[-2:]
    rows = tile_spans(height, tile, overlap, multiple)
    cols = tile_spans(width, tile, overlap, multiple)
    wy = blend_weights(rows, height, overlap, margin, scale)
    wx = blend_weights(cols, width, overlap, margin, scale)
    finish = finish or (lambda band: band)
    out, carry = None, None  # carry: the rows a tile row shares with the next, blended so far
    bar = tqdm(total=len(rows) * len(cols), desc=desc, unit="tile",
               disable=not progress or len(rows) * len(cols) == 1, leave=False)
    try:
        for i, (ys, ye) in enumerate(rows):
            done = ((rows[i + 1][0] if i + 1 < len(rows) else height) - ys) * scale  # rows it finishes
            shared, left = None, 0  # the open columns [left, previous tile's end), all rows
            below = None  # the rows shared with the next tile row, over the image's width
            for j, (xs, xe) in enumerate(cols):
                piece = image[..., ys:ye, xs:xe]
                piece = piece.float() / 255.0 if piece.dtype == torch.uint8 else piece
                y = fn(piece)  # (B, C', (ye - ys) * scale, (xe - xs) * scale)
                # the columns [left, xe) of this tile row: the open ones, then the tile's new ones
                # with the carried rows added first (the order of sums of one whole-width band)
                acc = y.new_zeros(*y.shape[:-1], (xe - left) * scale)
                opened = 0 if shared is None else shared.shape[-1]
                if shared is not None:
                    acc[..., :opened] = shared
                if carry is not None:
                    acc[..., :carry.shape[-2], opened:] += carry[..., left * scale + opened:xe * scale]
                weight = (wy[i].to(y.device)[:, None] * wx[j].to(y.device)[None, :])
                acc[..., (xs - left) * scale:] += y * weight
                del y, weight
                # columns before the next tile's start get nothing more from this tile row: the
                # rows it finishes go out, the rows it shares with the next tile row are carried
                closed = ((cols[j + 1][0] if j + 1 < len(cols) else width) - left) * scale
                part = finish(acc[..., :done, :closed]).cpu()
                if out is None:
                    out = part.new_empty(*part.shape[:-2], height * scale, width * scale)
                if below is None:
                    below = acc.new_empty(*acc.shape[:-2], acc.shape[-2] - done, width * scale)
                out[..., ys * scale:ys * scale + done, left * scale:left * scale + closed] = part
                below[..., left * scale:left * scale + closed] = acc[..., done:, :closed]
                shared = acc[..., closed:].clone()  # a copy: acc itself is freed
                left += closed // scale
                del acc, part
                bar.update()
            carry = below
    finally:
        bar.close()
    return out


def quantize(band: Tensor) -> Tensor:
    """[0, 1] floats to uint8 by rounding, as rnnimg.viz writes images."""
    return (band.clamp(0, 1) * 255).round().to(torch.uint8)


def quantize_(band: Tensor) -> Tensor:
    """:func:`quantize` computed in ``band``'s own memory (which it overwrites): the same bytes
    with no float temporaries of its size (a finished block of tiled_map is read no more)."""
    return band.clamp_(0, 1).mul_(255).round_().to(torch.uint8)


def resize_banded(image: Tensor, size: tuple[int, int], rows: int = 256) -> Tensor:
    """``F.interpolate(image / 255 if uint8, size, mode="bilinear", antialias=True)`` of (B, C, H, W),
    clamped to [0, 1], without making the whole image float.

    The antialiased filter is separable and torch applies it width first: each band of ``rows``
    input rows is converted and resized in width alone (an identity in height), then the (B, C, H,
    size[1]) result in height. Peak memory is a band plus H x the output's width, not H x W floats;
    the result equals the one-call resize exactly (the same weights, the same order of sums).
    """
    import torch.nn.functional as F

    def floats(x: Tensor) -> Tensor:
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    height, width = image.shape[-2:]
    out_h, out_w = size
    if width != out_w:
        image = torch.cat([F.interpolate(floats(image[..., y:y + rows, :]),
                                         size=(min(rows, height - y), out_w), mode="bilinear",
                                         antialias=True, align_corners=False)
                           for y in range(0, height, rows)], dim=-2)
    out = F.interpolate(floats(image), size=(out_h, out_w), mode="bilinear", antialias=True,
                        align_corners=False) if height != out_h else floats(image)
    return out.clamp(0, 1)


def nearest_indices(length: int, size: int) -> Tensor:
    """The source index of each of ``size`` outputs when ``length`` inputs are resized with
    ``F.interpolate(mode="nearest-exact")``: torch's own choice, from an interpolated ramp."""
    import torch.nn.functional as F

    ramp = torch.arange(length, dtype=torch.float32).view(1, 1, length)  # as the masks were
    return F.interpolate(ramp, size=size, mode="nearest-exact")[0, 0].long()
