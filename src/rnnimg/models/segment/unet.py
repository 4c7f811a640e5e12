"""``unet``: a compact U-Net (Ronneberger, Fischer, Brox 2015, "U-Net: Convolutional Networks for
Biomedical Image Segmentation", MICCAI), the non-recurrent baseline of ``reseg``.

It exists so that ReSeg is compared, on the same data and the same wall-clock budget, with a
convolutional network of about the same number of parameters (``scenes`` preset: ~90k against
reseg's ~88k): does the recurrent whole-image context pay?

    encoder: per level two 3x3 convolutions with ReLU, then 2x2 max-pooling (not after the last)
    decoder: per level a 2x2 transposed convolution (stride 2), concatenation with the encoder's
        features of that level (the skip connection), two 3x3 convolutions with ReLU
    1x1 convolution to per-pixel class logits

Departures from the paper: padded ("same") convolutions, so the output has the input's size and
no cropping of skip connections is needed; far fewer features per level (``widths``); no dropout;
the input is scaled to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnimg.models.registry import register_model
from rnnimg.models.segment.base import ImageSegmenter, check_segment_config
from rnnimg.models.segment.reseg import MNIST_SCENE_CLASSES


@dataclass
class UNetConfig:
    image_size: int = 64  # training side in pixels (segment() takes any size)
    channels: int = 1  # 1 (grey) or 3 (colour)
    num_classes: int = 11  # K, labels 0..K-1; 255 is "ignore"
    class_names: tuple[str, ...] = ()  # a name per class for legends; () = "0".."K-1"
    widths: tuple[int, ...] = (14, 28, 56)  # features per level; len - 1 poolings

    def __post_init__(self):
        check_segment_config(self)
        self.widths = tuple(self.widths)
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least 2 levels, got {self.widths}")
        if any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths must hold whole numbers >= 1, got {self.widths}")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU())


@register_model("unet")
class UNet(ImageSegmenter):
    config_class = UNetConfig
    presets = {
        "debug": dict(image_size=32, widths=(4, 8)),
        # parameter-matched to reseg's "scenes" preset
        "scenes": dict(image_size=64, widths=(14, 28, 56), class_names=MNIST_SCENE_CLASSES),
    }

    def __init__(self, config: UNetConfig) -> None:
        super().__init__(config)
        c = config
        w = c.widths
        self.down = nn.ModuleList(_block(c.channels if i == 0 else w[i - 1], w[i])
                                  for i in range(len(w)))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2)
                                for i in range(len(w) - 1))
        self.merge = nn.ModuleList(_block(2 * w[i], w[i]) for i in range(len(w) - 1))
        self.classifier = nn.Conv2d(w[0], c.num_classes, 1)
        self.size_multiple = 2 ** (len(w) - 1)

    @property
    def receptive_radius(self) -> int:
        """An upper bound in pixels: two 3x3 convolutions per level on the way down and up, each
        reaching 2^level pixels, plus a pooling window per level below the top."""
        levels = len(self.config.widths)
        down = sum(2 * 2 ** i for i in range(levels))
        up = sum(2 * 2 ** i + 2 ** i for i in range(levels - 1))
        return down + up

    def forward(self, image: Tensor) -> Tensor:
        """Logits (B, K, H, W); H and W must be multiples of ``size_multiple``."""
        x = image * 2 - 1
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)  # (B, w_i, H / 2^i, W / 2^i)
            if i < len(self.down) - 1:
                skips.append(x)
                x = self.pool(x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](x)  # (B, w_i, H / 2^i, W / 2^i)
            x = self.merge[i](torch.cat([x, skips[i]], dim=1))
        return self.classifier(x)  # (B, K, H, W)
