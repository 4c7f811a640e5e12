"""``pixelscan``: a PixelRNN whose recurrences are linear, so that training runs parallel scans.

PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016, "Pixel Recurrent Neural Networks") models
an image pixel by pixel in raster order, and in colour channel by channel, with LSTMs that walk the
image one row (Row LSTM) or one diagonal (Diagonal BiLSTM) at a time. Here every recurrence is a
minGRU or minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): its state update is linear in the
state, so training computes a whole row or column of states at once with
:func:`rnnimg.nn.scan.linear_scan`, and sampling still carries a constant-size state per position.

Two streams, as in the gated PixelCNN (van den Oord et al. 2016b, "Conditional Image Generation
with PixelCNN Decoders"), but recurrent instead of convolutional, which removes its blind spot:

    vertical v (B, H, W, D): at (i, j) a summary of every pixel of rows <= i
        v <- v + Linear(GELU(column scan, top to bottom, of (row scan left->right + row scan
             right->left)(v)))       (both row scans share one minGRU's gates)
    horizontal h (B, H, W, D): at (i, j) a summary of every pixel before (i, j) in raster order
        u = h + (v shifted down one row)                (all of rows < i)
        h <- h + MaskedLinear(GELU(row scan left to right of u, mask-B colour groups))

The horizontal stream starts from a 7x7 mask-A convolution of the image (PixelRNN's first layer)
and the vertical one from a per-pixel linear map. After one layer the logit of (i, j) depends on
every pixel of rows < i (the row scans cover a whole row, the column scan every row above) and on
every pixel left of it on row i (the causal row scan over the mask-A features): the whole causal
past, with no blind spot (tested with gradients on every pixel). The output head is PixelRNN's:
ReLU, 1x1 mask-B, ReLU, 1x1 mask-B to a Bernoulli logit or a softmax over ``levels`` per channel.
``model(image, label)`` returns (B, C, H, W) or (B, C, K, H, W) logits; the likelihood is
:class:`ImageGenerator`'s, exact.

Colour: the features of the horizontal stream are split into R/G/B groups (mask A on the input
convolution, mask B on every later map, an elementwise recurrence), so G sees R of its own pixel
and B sees R and G; the vertical stream only ever reaches a pixel from the rows above, so it needs
no groups.

Departures. The model as a whole is from no paper: it puts Feng et al.'s cells into PixelRNN's
setting (raster order, masks, colour groups, output head) with the gated PixelCNN's two streams.
The two directions of the vertical row scan share one set of gates (the input projection is most
of a layer's cost). Class conditioning adds a learned per-class vector (zero at initialisation)
to the input of every layer's scans; with ``low_res_scale`` s the model draws the image given its
downscale by s (the multi-scale PixelRNN's second stage, section 3.5), whose per-pixel offsets
(``lowres_condition.py``) enter at the same place. The image is scaled to [-1, 1]. minGRU's
candidate h~ is the plain linear map (the exact scans take any sign, see ``nn/minrnn.py``).
Sampling carries the states (``pixelscan_sampling.py``); ``sample_naive`` keeps the full forward
per pixel as the reference, and both draw the same uniforms in raster order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.errors import RnnImgError
from rnnimg.models.generate.lowres_condition import LowResEncoder
from rnnimg.models.generate.raster import RasterGenerator
from rnnimg.models.registry import register_model
from rnnimg.nn.masked import MaskedConv2d, colour_groups
from rnnimg.nn.minrnn import CELLS, MaskedLinear, make_min_rnn
from rnnimg.nn.scan import SCAN_METHODS, linear_scan


@dataclass
class PixelScanConfig:
    image_size: int = 28  # square images, side in pixels
    channels: int = 1  # 1 (grey) or 3 (colour, modelled R then G then B)
    hidden: int = 32  # D: features of both streams and state size of every scan
    num_layers: int = 4  # blocks of (vertical scans, horizontal scan)
    head_hidden: int = 32  # features of the hidden 1x1 output layer
    cell: str = "mingru"  # "mingru" | "minlstm": the linear recurrence of every scan
    input_kernel: int = 7  # side of the mask-A input convolution (odd)
    scan_method: str = "auto"  # linear_scan method: auto | doubling | log | sequential
    output: str = "bernoulli"  # "bernoulli" (binarized data) | "categorical" (softmax over levels)
    levels: int = 256  # intensity levels of the softmax (categorical output only)
    binarization: str = "fixed"  # "fixed" | "dynamic" binarization of the data (bernoulli only)
    num_classes: int = 0  # > 0 adds a learned per-class vector to every layer's scan inputs
    low_res_scale: int = 0  # 2 | 3 | 4: model the image given its downscale by this (0: unconditional)
    low_res_hidden: int = 32  # features of the low-resolution encoder (low_res_scale > 0 only)

    def __post_init__(self):
        choices = {"cell": CELLS, "scan_method": SCAN_METHODS, "output": ("bernoulli", "categorical"),
                   "binarization": ("fixed", "dynamic")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be in 2..256, got {self.levels}")
        for name in ("image_size", "num_layers", "input_kernel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.input_kernel % 2 == 0:
            raise ValueError(f"input_kernel must be odd, got {self.input_kernel}")
        for name in ("hidden", "head_hidden"):  # every colour group needs at least one feature
            if getattr(self, name) < self.channels:
                raise ValueError(f"{name} must be >= channels ({self.channels}), "
                                 f"got {getattr(self, name)}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if self.low_res_scale not in (0, 2, 3, 4):
            raise ValueError(f"low_res_scale must be 0 (unconditional), 2, 3 or 4, got {self.low_res_scale}")
        if self.low_res_scale and self.image_size % self.low_res_scale:
            raise ValueError(f"image_size must be a multiple of low_res_scale ({self.low_res_scale}), "
                             f"got {self.image_size}")
        if self.low_res_hidden < 1:
            raise ValueError(f"low_res_hidden must be >= 1, got {self.low_res_hidden}")


class ScanBlock(nn.Module):
    """One layer: the vertical stream's row and column scans, then the horizontal row scan.

    Args:
        cell: "mingru" | "minlstm".
        hidden: D, features of both streams.
        groups: colour groups of the horizontal stream.
        scan_method: :func:`linear_scan` method.
    """

    def __init__(self, cell: str, hidden: int, groups: int, scan_method: str) -> None:
        super().__init__()
        d = hidden
        # one set of gates, scanned left to right and right to left: the two directions share
        # the input projection, which is most of the cost
        self.row_both = make_min_rnn(cell, d, d, 1, scan_method)
        self.column = make_min_rnn(cell, d, d, 1, scan_method)  # top to bottom
        self.vertical_out = nn.Linear(d, d)
        self.row = make_min_rnn(cell, d, d, groups, scan_method)  # causal, left to right
        self.horizontal_out = MaskedLinear(d, d, groups)

    def row_scans(self, v: Tensor, dim: int) -> Tensor:
        """Left-to-right plus right-to-left scan of v (..., W, D) along ``dim``: at every position
        a summary of the whole row."""
        a, b = self.row_both.coefficients(self.row_both.project(v))
        method = self.row_both.scan_method
        return (linear_scan(a, b, dim=dim, method=method)
                + linear_scan(a, b, dim=dim, method=method, reverse=True))

    def vertical(self, v: Tensor, bias: Tensor | None) -> Tensor:
        """(B, H, W, D) -> (B, H, W, D); row i depends on rows <= i only."""
        x = v if bias is None else v + bias
        column = self.column(self.row_scans(x, dim=2), dim=1)  # (B, H, W, D): scan over rows
        return v + self.vertical_out(F.gelu(column))

    def horizontal(self, h: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        """h (B, H, W, D), v the new vertical stream (B, H, W, D) -> the new h."""
        u = h + F.pad(v, (0, 0, 0, 0, 1, 0))[:, :-1]  # (B, H, W, D): row i gets rows < i
        if bias is not None:
            u = u + bias
        return h + self.horizontal_out(F.gelu(self.row(u, dim=2)))


@register_model("pixelscan")
class PixelScan(RasterGenerator):
    config_class = PixelScanConfig
    presets = {
        # tiny and fast, binarized 28x28
        "debug": dict(hidden=8, num_layers=2, head_hidden=16),
        # binarized MNIST, sized for this CPU: parameters of the order of pixelrnn's mnist preset
        "mnist": dict(hidden=32, num_layers=4, head_hidden=32),
        # CIFAR-10 at PixelRNN's width: 12 layers, 128 features, 1024 head features, 256-way softmax
        "cifar10": dict(image_size=32, channels=3, hidden=128, num_layers=12, head_hidden=1024,
                        output="categorical"),
    }

    def __init__(self, config: PixelScanConfig) -> None:
        super().__init__(config)
        c = config
        d, groups = c.hidden, c.channels
        self.k = c.levels if c.output == "categorical" else 1
        self.input_conv = MaskedConv2d(c.channels, d, c.input_kernel, "A", groups)
        self.vertical_in = nn.Linear(c.channels, d)
        self.blocks = nn.ModuleList(ScanBlock(c.cell, d, groups, c.scan_method)
                                    for _ in range(c.num_layers))
        self.head_hidden = MaskedLinear(d, c.head_hidden, groups)
        # logits laid out (C, K): feature f is channel f // K
        self.head_out = MaskedLinear(c.head_hidden, c.channels * self.k, groups,
                                     out_groups=colour_groups(c.channels * self.k, groups))
        self.label_embedding = (nn.Embedding(c.num_classes, c.num_layers * 2 * d)
                                if c.num_classes else None)
        if self.label_embedding is not None:
            nn.init.zeros_(self.label_embedding.weight)  # start as the unconditional model
        self.low_res_encoder = (LowResEncoder(c.channels, c.low_res_scale, c.low_res_hidden,
                                              c.num_layers * 2 * d) if c.low_res_scale else None)

    # --- network ------------------------------------------------------------------------------
    def layer_biases(self, label: Tensor | None, low_res: Tensor | None = None
                     ) -> list[tuple[Tensor | None, Tensor | None]]:
        """Per layer (vertical, horizontal) offsets from the labels (B, 1, 1, D) plus the
        low-resolution image (B, H, W, D), or Nones without either."""
        offsets = None
        if self.label_embedding is not None and label is not None:
            offsets = self.label_embedding(label)[:, None, None]  # (B, 1, 1, L*2*D)
        if self.low_res_encoder is not None:
            if low_res is None:
                raise RnnImgError("this pixelscan draws an image given its low-resolution version "
                                  f"(low_res_scale={self.config.low_res_scale}); pass low_res.")
            maps = self.low_res_encoder(low_res)  # (B, H, W, L*2*D)
            offsets = maps if offsets is None else offsets + maps
        if offsets is None:
            return [(None, None)] * self.config.num_layers
        parts = offsets.split(self.config.hidden, dim=-1)
        return list(zip(parts[0::2], parts[1::2]))

    def head(self, h: Tensor) -> Tensor:
        """Horizontal stream (..., D) -> logits (..., C, K)."""
        out = self.head_out(F.relu(self.head_hidden(F.relu(h))))  # (..., C*K)
        return out.unflatten(-1, (self.config.channels, self.k))

    def forward(self, image: Tensor, label: Tensor | None = None, low_res: Tensor | None = None
                ) -> Tensor:
        """Per-pixel logits: (B, C, K, H, W) for a softmax, (B, C, H, W) for Bernoulli.

        The logit of channel c at pixel (i, j) depends on every pixel before (i, j) in raster
        order, on channels < c of (i, j) itself, on the label, on the low-resolution image
        ``low_res`` (B, C, H / s, W / s) of a model with ``low_res_scale`` s, and on nothing else.
        """
        x = image * 2 - 1  # (B, C, H, W)
        h = self.input_conv(x).permute(0, 2, 3, 1)  # (B, H, W, D)
        v = self.vertical_in(x.permute(0, 2, 3, 1))  # (B, H, W, D)
        for block, (bias_v, bias_h) in zip(self.blocks, self.layer_biases(label, low_res)):
            v = block.vertical(v, bias_v)
            h = block.horizontal(h, v, bias_h)
        logits = self.head(h).permute(0, 3, 4, 1, 2)  # (B, H, W, C, K) -> (B, C, K, H, W)
        return logits[:, :, 0] if self.config.output == "bernoulli" else logits

    # --- inference ----------------------------------------------------------------------------
    def pixel_sampler(self, n: int, label: Tensor | None, low_res: Tensor | None = None):
        from rnnimg.models.generate.pixelscan_sampling import ScanSampler

        return ScanSampler(self, n, label, low_res)
