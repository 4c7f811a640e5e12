"""``espcn``: the non-recurrent baseline of ``recursr``, an ESPCN-style super-resolver.

Shi et al. 2016, "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network": at the low resolution, a 5x5 convolution (``widths[0]`` channels),
tanh, a 3x3 convolution (``widths[1]``), tanh, a 3x3 convolution to C * scale^2 channels, then
pixel shuffle. Three distinct layers where ``recursr`` applies one shared unit K times; the
presets match ``recursr``'s of the same name in parameter count (within 10%, tested), and both are
trained by the same trainer on the same data and budget, so the comparison asks whether the
recursion pays.

Departures from the paper: the output is added to the bicubic upscale of the input (global
residual, as recursr's; the paper predicts the image itself) and clamped to [0, 1] with a
straight-through gradient; L1 loss by default (the paper: L2); widths set by parameter matching
(the paper: 64, 32).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.registry import register_model
from rnnimg.models.translate.superres import SuperResolver, bicubic_upscale, check_superres_config
from rnnimg.nn import to_frame_range


@dataclass
class ESPCNConfig:
    image_size: int = 96  # side of the high-resolution targets in the data (a multiple of scale)
    in_channels: int = 3
    out_channels: int = 3
    scale: int = 4
    widths: tuple[int, ...] = (56, 32)  # channels of the first two convolutions
    loss: str = "l1"

    def __post_init__(self):
        check_superres_config(self)
        self.widths = tuple(self.widths)
        if len(self.widths) != 2 or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise ValueError(f"widths must be two whole numbers >= 1, got {self.widths}")


@register_model("espcn")
class ESPCN(SuperResolver):
    config_class = ESPCNConfig
    # Each preset matches the recursr preset of the same name in parameter count.
    presets = {
        "debug": dict(image_size=16, in_channels=1, out_channels=1, scale=2, widths=(12, 8)),
        "photos-x4": dict(image_size=96, scale=4, widths=(56, 32)),
    }

    def __init__(self, config: ESPCNConfig) -> None:
        super().__init__(config)
        c = config
        self.conv1 = nn.Conv2d(c.in_channels, c.widths[0], 5, padding=2)
        self.conv2 = nn.Conv2d(c.widths[0], c.widths[1], 3, padding=1)
        self.conv3 = nn.Conv2d(c.widths[1], c.out_channels * c.scale ** 2, 3, padding=1)
        with torch.no_grad():  # start at bicubic: a small residual
            self.conv3.weight.mul_(0.1)
            self.conv3.bias.zero_()

    @property
    def receptive_radius(self) -> int:
        """Input pixels: 2 + 1 + 1 from the convolutions; the bicubic's 2 fall within that."""
        return 4

    def refine(self, source: Tensor) -> Tensor:
        """The output as the one and only step, (B, 1, C, h * s, w * s)."""
        x = torch.tanh(self.conv1(source))
        x = torch.tanh(self.conv2(x))
        residual = F.pixel_shuffle(self.conv3(x), self.config.scale)
        return to_frame_range(bicubic_upscale(source, self.config.scale) + residual, "clamp").unsqueeze(1)

    def forward(self, source: Tensor) -> Tensor:
        return self.refine(source)[:, 0]
