"""``pixelrnn``: PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", ICML), with its two recurrent layers, Row LSTM and Diagonal BiLSTM.

The image is modelled pixel by pixel in raster order, and in colour channel by channel (R, then G
given R, then B given R and G). The network (section 3 and figure 2 of the paper):

    7x7 mask-A convolution -> 2h features
    num_layers x [Row LSTM | Diagonal BiLSTM] (h units) -> 1x1 mask-B convolution to 2h, added to
        its input (the residual connection of section 3.3)
    ReLU -> 1x1 mask-B convolution (head_hidden) -> ReLU -> 1x1 mask-B convolution to the logits

The output is a Bernoulli logit per pixel on binarized data, or a softmax over ``levels`` (256)
intensities per channel on 8-bit data. ``model(image, label)`` returns (B, C, H, W) or
(B, C, K, H, W) logits, so causality can be checked from outside.

Departures from the paper:
  - Class conditioning (not in the PixelRNN paper; as in conditional PixelCNN, van den Oord et al.
    2016b): a learned per-class vector is added to the gates of every recurrent layer.
  - The input image is scaled to [-1, 1] before the first convolution.
  - The colour groups of a feature map are contiguous blocks, so h need not be divisible by 3.
  - Sampling carries the recurrent state (``pixelrnn_sampling.py``) instead of running the whole
    network once per pixel; ``sample_naive`` keeps the straightforward sampler as the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.generate.base import check_generator_config
from rnnimg.models.generate.raster import RasterGenerator
from rnnimg.models.registry import register_model
from rnnimg.nn.diagonal_bilstm import DiagonalBiLSTM
from rnnimg.nn.masked import MaskedConv2d, colour_groups
from rnnimg.nn.row_lstm import RowLSTM

VARIANTS = ("row", "diagonal")


@dataclass
class PixelRNNConfig:
    variant: str = "diagonal"  # "row" (Row LSTM) | "diagonal" (Diagonal BiLSTM)
    image_size: int = 28  # square images, side in pixels
    channels: int = 1  # 1 (grey) or 3 (colour, modelled R then G then B)
    hidden: int = 16  # h: LSTM units per layer (and direction); the residual stream has 2h features
    num_layers: int = 7  # recurrent layers
    head_hidden: int = 32  # features of the hidden 1x1 output convolution (paper: 1024 on CIFAR)
    output: str = "bernoulli"  # "bernoulli" (binarized data) | "categorical" (softmax over levels)
    levels: int = 256  # intensity levels of the softmax (categorical output only)
    binarization: str = "fixed"  # "fixed" | "dynamic" binarization of the data (bernoulli only)
    num_classes: int = 0  # > 0 adds a learned per-class offset to every layer's gates

    def __post_init__(self):
        check_generator_config(self)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
        for name in ("hidden", "head_hidden"):  # every colour group needs at least one feature
            if getattr(self, name) < self.channels:
                raise ValueError(f"{name} must be >= channels ({self.channels}), "
                                 f"got {getattr(self, name)}")


@register_model("pixelrnn")
class PixelRNN(RasterGenerator):
    config_class = PixelRNNConfig
    weights_version = 2  # 2: Row LSTM gates ordered [i, f, g, o] like nn.LSTMCell (1 was [i, f, o, g])
    presets = {
        # tiny and fast: Row LSTM (one step per row), binarized 28x28
        "debug": dict(variant="row", hidden=8, num_layers=2, head_hidden=16),
        # the paper's binarized-MNIST model: Diagonal BiLSTM, 7 layers, h = 16
        "mnist": dict(variant="diagonal", hidden=16, num_layers=7, head_hidden=32),
        # the paper's CIFAR-10 models: 12 layers, h = 128, 1024 output features, 256-way softmax
        "cifar10": dict(variant="diagonal", image_size=32, channels=3, hidden=128, num_layers=12,
                        head_hidden=1024, output="categorical"),
    }

    def __init__(self, config: PixelRNNConfig) -> None:
        super().__init__(config)
        c = config
        h, groups = c.hidden, c.channels
        self.k = c.levels if c.output == "categorical" else 1
        self.input_conv = MaskedConv2d(c.channels, 2 * h, 7, "A", groups)
        layer = RowLSTM if c.variant == "row" else DiagonalBiLSTM
        self.layers = nn.ModuleList(layer(2 * h, h, groups) for _ in range(c.num_layers))
        self.residuals = nn.ModuleList(MaskedConv2d(h, 2 * h, 1, "B", groups)
                                       for _ in range(c.num_layers))
        self.head_hidden = MaskedConv2d(2 * h, c.head_hidden, 1, "B", groups)
        # logits laid out (C, K): feature f is channel f // K
        self.head_out = MaskedConv2d(c.head_hidden, c.channels * self.k, 1, "B", groups,
                                     out_groups=colour_groups(c.channels * self.k, groups))
        self.gates_per_layer = 4 * h * (1 if c.variant == "row" else 2)
        self.label_embedding = (nn.Embedding(c.num_classes, c.num_layers * self.gates_per_layer)
                                if c.num_classes else None)
        if self.label_embedding is not None:
            nn.init.zeros_(self.label_embedding.weight)  # start as the unconditional model

    # --- network ------------------------------------------------------------------------------
    def gate_biases(self, label: Tensor | None) -> list[Tensor | None]:
        """Per-layer gate offsets (B, gates_per_layer) from the labels, or Nones."""
        if self.label_embedding is None or label is None:
            return [None] * self.config.num_layers
        return list(self.label_embedding(label).split(self.gates_per_layer, dim=1))

    def logits_from_features(self, x: Tensor) -> Tensor:
        """Residual stream (B, 2h, H, W) -> logits (B, C, K, H, W), or (B, C, H, W) for Bernoulli."""
        c = self.config
        out = self.head_out(F.relu(self.head_hidden(F.relu(x))))  # (B, C*K, H, W)
        b, _, height, width = out.shape
        out = out.view(b, c.channels, self.k, height, width)  # (B, C, K, H, W)
        return out[:, :, 0] if c.output == "bernoulli" else out

    def forward(self, image: Tensor, label: Tensor | None = None) -> Tensor:
        """Per-pixel logits: (B, C, K, H, W) for a softmax, (B, C, H, W) for Bernoulli.

        The logit of channel c at pixel (i, j) depends only on pixels before (i, j) in raster order,
        on channels < c of (i, j) itself, and on the label.
        """
        x = self.input_conv(image * 2 - 1)  # (B, 2h, H, W)
        for layer, residual, bias in zip(self.layers, self.residuals, self.gate_biases(label)):
            x = x + residual(layer(x, bias))
        return self.logits_from_features(x)

    # --- inference ----------------------------------------------------------------------------
    def pixel_sampler(self, n: int, label: Tensor | None):
        from rnnimg.models.generate.pixelrnn_sampling import PixelSampler

        return PixelSampler(self, n, label)
