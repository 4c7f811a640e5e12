"""The low-resolution condition of a raster generator (``pixelscan --set low_res_scale=N``).

Pixel Recursive Super Resolution (Dahl, Norouzi, Shlens 2017) models a high-resolution image
pixel by pixel given its low-resolution version: a conditioning network reads the small image and
its output is added to the logits of a PixelCNN prior; the multi-scale PixelRNN (van den Oord et
al. 2016, section 3.5) instead feeds the small image, upsampled, to every layer of the large
image's model as an extra input. This follows the second: a small convolutional net reads the
low-resolution image (B, C, h, w), a sub-pixel convolution (ESPCN, Shi et al. 2016) brings its
features to the full size (B, F, H, W), so every position of a ``scale`` x ``scale`` block gets
features of its own, and a 1x1 map turns them into one offset per layer and stream, added where
the class offsets enter (every layer's scan inputs). The condition reads no pixel of the
high-resolution image, so the model stays causal in it (tested as pixelscan's causality is).

Departures: Dahl et al. use a ResNet conditioning net with a logit-level sum and a PixelCNN
prior; here the net is three convolutions and the prior is pixelscan. The output map starts at
zero, so a new model starts as the unconditional one (as the class offsets do).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class LowResEncoder(nn.Module):
    """(B, C, h, w) in [0, 1] -> per-pixel offsets (B, h * scale, w * scale, out_features).

    Args:
        channels: of the low-resolution image (the model's channels).
        scale: side of the high-resolution image / side of the low-resolution one.
        features: F, the features of the convolutions.
        out_features: the offsets per high-resolution pixel (layers x 2 streams x D).
    """

    def __init__(self, channels: int, scale: int, features: int, out_features: int) -> None:
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(channels, features, 3, padding=1), nn.GELU(),
            nn.Conv2d(features, features, 3, padding=1), nn.GELU())
        self.up = nn.Conv2d(features, features * scale * scale, 3, padding=1)  # sub-pixel conv
        self.out = nn.Linear(features, out_features)
        nn.init.zeros_(self.out.weight)  # start as the unconditional model
        nn.init.zeros_(self.out.bias)

    def forward(self, low_res: Tensor) -> Tensor:
        x = self.body(low_res * 2 - 1)  # (B, F, h, w), the input in [-1, 1] like the image's
        x = F.pixel_shuffle(self.up(x), self.scale)  # (B, F, H, W)
        return self.out(F.gelu(x).permute(0, 2, 3, 1))  # (B, H, W, out_features)
