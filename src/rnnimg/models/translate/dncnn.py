"""``dncnn``: the non-recurrent baseline of the translate task, a DnCNN-style residual denoiser.

Zhang et al. 2017, "Beyond a Gaussian Denoiser: Residual Learning of Deep CNN for Image
Denoising": a plain stack of ``depth`` 3x3 convolutions (Conv+ReLU, then (depth - 2) x
Conv+BN+ReLU, then Conv) that predicts the residual between the input and the clean image, so
the output is x + DnCNN(x). It is here to answer one question honestly: does the translator's
recurrence pay? Its presets match the ``translator`` presets of the same name in parameter count
(within 10%, checked by a test), and it is trained by the same trainer, on the same data, with the
same loss and budget.

Departures from the paper:
- Width and depth are chosen to match the translator's parameter count (the paper: 17 x 64).
- The output is clamped to [0, 1] with a straight-through gradient, like the translator's.
- For colorization (1 -> 3 channels) the residual is added to the grey input repeated to colour.
- L1 or L2 loss (the paper: L2 on the residual, which is the same L2 on the output).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from rnnimg.models.registry import register_model
from rnnimg.models.translate.base import ImageTranslator, check_translation_config, match_channels
from rnnimg.nn import to_frame_range
from rnnimg.nn.checks import check_at_least


@dataclass
class DnCNNConfig:
    image_size: int = 28  # side the data are resized to (the network itself takes any size)
    in_channels: int = 1  # channels of the source: 1 or 3
    out_channels: int = 1  # channels of the output: 1 or 3
    features: int = 32  # channels of every hidden convolution
    depth: int = 10  # convolutions in the stack (>= 2)
    batch_norm: bool = True  # BN after the middle convolutions, as in the paper
    loss: str = "l1"  # "l1" | "l2" pixel loss

    def __post_init__(self):
        check_translation_config(self)
        check_at_least(self, 1, "features")
        check_at_least(self, 2, "depth")


@register_model("dncnn")
class DnCNN(ImageTranslator):
    config_class = DnCNNConfig
    # Each preset matches the translator preset of the same name in parameter count.
    presets = {
        "debug": dict(image_size=16, features=8, depth=11),
        "denoise": dict(),
        "colour": dict(image_size=32, in_channels=3, out_channels=3, depth=11),
        "colorize": dict(image_size=32, in_channels=1, out_channels=3, depth=11),
    }

    def __init__(self, config: DnCNNConfig) -> None:
        super().__init__(config)
        c = config
        layers: list[nn.Module] = [nn.Conv2d(c.in_channels, c.features, 3, padding=1), nn.ReLU()]
        for _ in range(c.depth - 2):
            layers.append(nn.Conv2d(c.features, c.features, 3, padding=1, bias=not c.batch_norm))
            if c.batch_norm:
                layers.append(nn.BatchNorm2d(c.features))
            layers.append(nn.ReLU())
        layers.append(nn.Conv2d(c.features, c.out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    @property
    def receptive_radius(self) -> int:
        """``depth`` 3x3 convolutions reach one pixel further each (batch norm is per pixel)."""
        return self.config.depth

    def refine(self, source: Tensor) -> Tensor:
        """The output as the one and only step, (B, 1, C_out, H, W)."""
        residual = self.net(source)  # (B, C_out, H, W)
        output = to_frame_range(match_channels(source, self.config.out_channels) + residual, "clamp")
        return output.unsqueeze(1)

    def forward(self, source: Tensor) -> Tensor:
        """The output (B, C_out, H, W), with gradients."""
        return self.refine(source)[:, 0]
