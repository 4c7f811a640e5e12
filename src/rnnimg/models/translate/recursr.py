"""``recursr``: recurrent (recursive) super-resolution, one residual unit applied again and again
with shared weights at the input's resolution, then a sub-pixel upsampler (issue 19, item 2).

    f_0 = ReLU(Conv_in(x))                                      features of the low-resolution x
    f_k = f_0 + Conv_b(ReLU(Conv_a(ReLU(f_{k-1}))))             k = 1..K, ONE unit, shared weights
    y_k = clamp(bicubic_s(x) + PixelShuffle_s(Conv_up(f_k)))    every step an image, s x larger

The recursion is DRRN's recursive residual unit (Tai et al. 2017, "Image Super-Resolution via
Deep Recursive Residual Network": the unit's weights shared across its U applications, each
starting again from the first features f_0, "multi-path" identity) and every step's estimate is
supervised as in DRCN (Kim et al. 2016, "Deeply-Recursive Convolutional Network for Image
Super-Resolution": recursive supervision), so that every y_k can be looked at, like the
translator's steps. On Set5 x4 DRCN and DRRN reach 31.5-31.7 dB PSNR-Y against bicubic's 28.4 dB.

Departures from the papers:
- The network runs at the LOW resolution and ends in a sub-pixel upsampler (ESPCN, Shi et al.
  2016) plus the bicubic upscale (global residual): DRCN and DRRN run at the high resolution on a
  bicubic-upscaled input, scale^2 times the cost. FSRCNN/ESPCN-style low-resolution processing is
  what lets a CPU train it in minutes.
- No batch norm (DRRN has it before each convolution); K (``steps``) small by default (DRCN: 16
  recursions, DRRN: 25 units); DRCN's learned ensemble of the step outputs is replaced by the
  sequence loss (step k weighted ``step_gamma``^(K-k), see models/translate/base.py) and the last
  step as the output.
- L1 loss by default (DRCN, DRRN: L2).

The non-recurrent baseline of matched parameter count is ``espcn``.
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
class RecurSRConfig:
    image_size: int = 96  # side of the high-resolution targets in the data (a multiple of scale)
    in_channels: int = 3  # 1 or 3; the output has as many
    out_channels: int = 3
    scale: int = 4  # 2, 3 or 4: output pixels per input pixel along each side
    features: int = 32  # channels of the recursive unit
    steps: int = 8  # K, applications of the shared unit (every one gives an estimate)
    loss: str = "l1"  # "l1" | "l2"
    step_gamma: float = 0.8  # step k weighs gamma^(K-1-k) in the loss; 0 = the output only

    def __post_init__(self):
        check_superres_config(self)
        for name in ("features", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.step_gamma <= 1:
            raise ValueError(f"step_gamma must be in [0, 1], got {self.step_gamma}")


@register_model("recursr")
class RecurSR(SuperResolver):
    config_class = RecurSRConfig
    presets = {
        "debug": dict(image_size=16, in_channels=1, out_channels=1, scale=2, features=8, steps=3),
        # x4 colour photos (photos with corrupt=downscale, scale=4): ~33k parameters
        "photos-x4": dict(image_size=96, scale=4, features=32, steps=8),
    }

    def __init__(self, config: RecurSRConfig) -> None:
        super().__init__(config)
        c = config
        self.step_gamma = c.step_gamma
        self.head = nn.Conv2d(c.in_channels, c.features, 3, padding=1)
        self.conv_a = nn.Conv2d(c.features, c.features, 3, padding=1)  # the one recursive unit
        self.conv_b = nn.Conv2d(c.features, c.features, 3, padding=1)
        self.up = nn.Conv2d(c.features, c.out_channels * c.scale ** 2, 3, padding=1)
        with torch.no_grad():  # start at bicubic: a small residual
            self.up.weight.mul_(0.1)
            self.up.bias.zero_()

    @property
    def receptive_radius(self) -> int:
        """Input pixels: the head, two convolutions per step, the upsampler's convolution; the
        bicubic's 2 pixels fall within that."""
        return 2 * self.config.steps + 2

    def step(self, first: Tensor, features: Tensor) -> Tensor:
        """One application of the shared unit: f_{k-1} -> f_k, (B, F, h, w)."""
        return first + self.conv_b(F.relu(self.conv_a(F.relu(features))))

    def upsample(self, features: Tensor, base: Tensor) -> Tensor:
        """The estimate from features: (B, C, h * s, w * s) in [0, 1]."""
        residual = F.pixel_shuffle(self.up(features), self.config.scale)
        return to_frame_range(base + residual, "clamp")

    def refine(self, source: Tensor) -> Tensor:
        """Every estimate y_1..y_K, (B, K, C, h * s, w * s); y_K is the output."""
        base = bicubic_upscale(source, self.config.scale)
        first = F.relu(self.head(source))
        features, steps = first, []
        for _ in range(self.config.steps):  # the loop runs along the recursion only
            features = self.step(first, features)
            steps.append(self.upsample(features, base))
        return torch.stack(steps, dim=1)

    def forward(self, source: Tensor) -> Tensor:
        """The output y_K (B, C, h * s, w * s), with gradients: ``refine(source)[:, -1]`` without
        upsampling the K - 1 earlier estimates (K full-size images a tile: 400 MB at a 512-pixel
        colour tile x4, what ``rnnimg translate`` needs least)."""
        first = F.relu(self.head(source))
        features = first
        for _ in range(self.config.steps):
            features = self.step(first, features)
        return self.upsample(features, bicubic_upscale(source, self.config.scale))
