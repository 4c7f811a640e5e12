"""``scanseg``: a segmenter whose whole-image context comes from four-direction linear-recurrence
scans (nn/scan2d.py): ReNet's sweeps (Visin et al. 2015, 2016) with a minGRU recurrence computed by
parallel scans (Feng et al. 2024), in the manner of VMamba (Liu et al. 2024, "VMamba: Visual State
Space Model") and Vision-RWKV (Duan et al. 2024).

The network has the U-Net's encoder and decoder (models/segment/unet.py) with the coarsest level's second
convolution replaced by scan blocks, at about the same number of parameters (``scenes``: ~90k,
like ``unet`` and ``reseg``), so that the comparison asks one question: does whole-image recurrent
context at the bottleneck beat more convolution there?

    encoder: per level but the last, two 3x3 convolutions with ReLU, then 2x2 max-pooling
    bottleneck: ``bottleneck_convs`` 3x3 convolutions with ReLU, then ``scan_blocks`` x
        x <- x + W_out Scan2D(BatchNorm(x))      (residual; every position sees the whole map)
    decoder: per level a 2x2 transposed convolution, concatenation with the encoder's features of
        that level, two 3x3 convolutions with ReLU (as the U-Net)
    1x1 convolution to per-pixel class logits

Loss, metrics and the ``segment`` verb are the segmenters' (models/segment/base.py).

Departures from VMamba: its block also has a gated MLP, a depthwise convolution and a SiLU output
gate, and its scan is a selective state-space model with a state of N per channel; here the
recurrence is minGRU's (the state is the feature; the decay is an input-dependent sigmoid gate),
the block is a plain residual scan, and the network is the U-Net's, not a hierarchy of scan
stages. ``layout="cross"`` uses VMamba's cross-scan (flattened row-major and column-major
sequences) instead of ReNet's row-then-column sweeps. ``local_conv=True`` adds the depthwise 3x3
convolution and SiLU that VMamba's block puts before its scan (2 x 560 parameters at ``scenes``); it
measured level with the default (0.592 against 0.591 test mIoU at 240 CPU-s, seed 0,
docs/benchmarks.md), so it stays off. The input is scaled to [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnimg.models.registry import register_model
from rnnimg.models.segment.base import ImageSegmenter, check_segment_config
from rnnimg.models.segment.reseg import MNIST_SCENE_CLASSES
from rnnimg.models.segment.unet import _block
from rnnimg.nn.scan import SCAN_METHODS
from rnnimg.nn.scan2d import SCAN2D_LAYOUTS, Scan2DBlock


@dataclass
class ScanSegConfig:
    image_size: int = 64  # training side in pixels (segment() takes any size)
    channels: int = 1  # 1 (grey) or 3 (colour)
    num_classes: int = 11  # K, labels 0..K-1; 255 is "ignore"
    class_names: tuple[str, ...] = ()  # a name per class for legends; () = "0".."K-1"
    widths: tuple[int, ...] = (14, 28, 56)  # features per level (the U-Net's); len - 1 poolings
    scan_hidden: int = 26  # state features per scan direction
    scan_blocks: int = 2  # residual scan blocks at the coarsest level
    bottleneck_convs: int = 1  # 3x3 convolutions (with ReLU) before the scan blocks; 2 = the U-Net's
    layout: str = "renet"  # "renet" (rows, then columns, both ways) | "cross" (VMamba's cross-scan)
    local_conv: bool = False  # VMamba's 3x3 depthwise convolution + SiLU before each scan
    scan_method: str = "auto"  # linear_scan method (nn/scan.py)

    def __post_init__(self):
        check_segment_config(self)
        self.widths = tuple(self.widths)
        if len(self.widths) < 2:
            raise ValueError(f"widths needs at least 2 levels, got {self.widths}")
        for name in ("widths", "scan_hidden", "scan_blocks", "bottleneck_convs"):
            values = getattr(self, name)
            values = values if isinstance(values, tuple) else (values,)
            if any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(f"{name} must hold whole numbers >= 1, got {getattr(self, name)}")
        if self.layout not in SCAN2D_LAYOUTS:
            raise ValueError(f"layout must be one of {SCAN2D_LAYOUTS}, got {self.layout!r}")
        if self.scan_method not in SCAN_METHODS:
            raise ValueError(f"scan_method must be one of {SCAN_METHODS}, got {self.scan_method!r}")


@register_model("scanseg")
class ScanSeg(ImageSegmenter):
    config_class = ScanSegConfig
    presets = {
        "debug": dict(image_size=32, widths=(4, 8), scan_hidden=4, scan_blocks=1),
        # mnist-scenes: parameter-matched to unet's and reseg's "scenes" presets (~90k)
        "scenes": dict(image_size=64, widths=(14, 28, 56), scan_hidden=26, scan_blocks=2,
                       class_names=MNIST_SCENE_CLASSES),
    }

    def __init__(self, config: ScanSegConfig) -> None:
        super().__init__(config)
        c = config
        w = c.widths
        self.down = nn.ModuleList(_block(c.channels if i == 0 else w[i - 1], w[i])
                                  for i in range(len(w) - 1))
        self.pool = nn.MaxPool2d(2)
        convs = []
        for i in range(c.bottleneck_convs):
            convs += [nn.Conv2d(w[-2] if i == 0 else w[-1], w[-1], 3, padding=1), nn.ReLU()]
        self.bottleneck = nn.Sequential(*convs)
        self.scans = nn.Sequential(*(Scan2DBlock(w[-1], c.scan_hidden, c.layout, c.scan_method,
                                                 local=c.local_conv)
                                     for _ in range(c.scan_blocks)))
        self.up = nn.ModuleList(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2)
                                for i in range(len(w) - 1))
        self.merge = nn.ModuleList(_block(2 * w[i], w[i]) for i in range(len(w) - 1))
        self.classifier = nn.Conv2d(w[0], c.num_classes, 1)
        self.size_multiple = 2 ** (len(w) - 1)

    def forward(self, image: Tensor) -> Tensor:
        """Logits (B, K, H, W); H and W must be multiples of ``size_multiple``."""
        x = image * 2 - 1
        skips = []
        for block in self.down:
            x = block(x)  # (B, w_i, H / 2^i, W / 2^i)
            skips.append(x)
            x = self.pool(x)
        x = self.scans(self.bottleneck(x))  # (B, w_L, H / 2^L, W / 2^L): whole-map context
        for i in reversed(range(len(self.up))):
            x = self.up[i](x)  # (B, w_i, H / 2^i, W / 2^i)
            x = self.merge[i](torch.cat([x, skips[i]], dim=1))
        return self.classifier(x)  # (B, K, H, W)
