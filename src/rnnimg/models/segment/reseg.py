"""``reseg``: ReSeg (Visin, Ciccone, Romero, Kastner, Cho, Bengio, Matteucci, Courville 2016,
"ReSeg: A Recurrent Neural Network-based Model for Semantic Segmentation", CVPR workshops), built
from ReNet layers (Visin et al. 2015, "ReNet: A Recurrent Neural Network Based Alternative to
Convolutional Networks").

The network:

    optional convolutional encoder: per stage a 3x3 convolution, ReLU and 2x2 max-pooling
    len(renet_hidden) x [batch norm, ReNet layer (nn/renet.py): p x p patches, a bidirectional
        GRU (or LSTM) along every row, then one down every column]; every output feature sees
        the whole image
    upsampling: one transposed convolution (kernel = stride = the factor) with ReLU per
        downsampling step (each ReNet patch size > 1, then each encoder stage), back to full size
    1x1 convolution to per-pixel class logits, over the upsampled features and (``skip``) the
        first convolution's full-resolution features

Loss: per-pixel cross-entropy, pixels labelled 255 ignored. Metrics (``evaluate``): mIoU pooled
over the split from one summed confusion matrix (models/segment/base.py), per-class IoU, pixel
accuracy.

Departures from the paper:
  - The encoder is a small convolutional stack trained from scratch, not the first layers of an
    ImageNet-pretrained VGG-16 (no weights can be downloaded here, and the data are small).
  - Sweep order rows-then-columns (the paper: vertical first); the receptive field is the same.
  - Batch normalisation of each ReNet layer's input (``norm``). Without it, under Adam at
    lr 3e-3 (and 1e-3, 3e-4), the GRUs saturated (|h| -> 1, gradients ~1e-7) within 60 steps and
    the model stayed at "all background" even on 4 scenes; with it, it overfits them (measured).
  - ``skip``: the classifier also sees the first convolution's full-resolution features, so stroke
    edges need not pass through the coarse ReNet grid (ReSeg has no skip; ``skip=False`` removes
    it). On mnist-scenes it helped slightly in a 60 s run (val mIoU 0.097 against 0.084).
  - No dropout and no class-frequency weighting of the loss (the paper weights CamVid's classes).
  - The input is scaled to [-1, 1]. Images whose sides are not multiples of the total
    downsampling factor are padded (replicate) and the logits cropped (models/segment/base.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnimg.models.registry import register_model
from rnnimg.models.segment.base import ImageSegmenter, check_segment_config
from rnnimg.nn.checks import check_at_least
from rnnimg.nn.renet import RENET_CELLS, ReNetLayer

MNIST_SCENE_CLASSES = ("background", *(str(d) for d in range(10)))


@dataclass
class ReSegConfig:
    image_size: int = 64  # training side in pixels (segment() takes any size)
    channels: int = 1  # 1 (grey) or 3 (colour)
    num_classes: int = 11  # K, labels 0..K-1; 255 is "ignore"
    class_names: tuple[str, ...] = ()  # a name per class for legends; () = "0".."K-1"
    encoder_channels: tuple[int, ...] = (16,)  # conv stages (3x3 conv, ReLU, 2x2 max-pool); ()
    renet_hidden: tuple[int, ...] = (32, 32)  # units per direction of each ReNet layer
    patch_sizes: tuple[int, ...] = (2, 1)  # patch side of each ReNet layer
    cell: str = "gru"  # "gru" (the paper's) | "lstm"
    upsample_channels: int = 32  # features of the transposed convolutions
    norm: bool = True  # batch-normalise the input of every ReNet layer
    skip: bool = True  # give the classifier the full-resolution features of the first conv stage

    def __post_init__(self):
        check_segment_config(self)
        self.encoder_channels = tuple(self.encoder_channels)
        self.renet_hidden = tuple(self.renet_hidden)
        self.patch_sizes = tuple(self.patch_sizes)
        if self.cell not in RENET_CELLS:
            raise ValueError(f"cell must be one of {RENET_CELLS}, got {self.cell!r}")
        if not self.renet_hidden:
            raise ValueError("renet_hidden must list at least one ReNet layer, got ()")
        if len(self.patch_sizes) != len(self.renet_hidden):
            raise ValueError(f"patch_sizes needs one entry per ReNet layer ({len(self.renet_hidden)} "
                             f"in renet_hidden), got {len(self.patch_sizes)}")
        for name in ("encoder_channels", "renet_hidden", "patch_sizes"):
            if any(not isinstance(v, int) or v < 1 for v in getattr(self, name)):
                raise ValueError(f"{name} must hold whole numbers >= 1, got {getattr(self, name)}")
        check_at_least(self, 1, "upsample_channels")


@register_model("reseg")
class ReSeg(ImageSegmenter):
    config_class = ReSegConfig
    presets = {
        # tiny: seconds per hundred steps on a CPU; tests and the contract use it (classes unnamed,
        # so that any num_classes fits)
        "debug": dict(image_size=32, encoder_channels=(8,), renet_hidden=(8, 8), patch_sizes=(2, 1),
                      upsample_channels=8),
        # mnist-scenes (64x64 grey, background + 10 digits): ~85k parameters
        "scenes": dict(image_size=64, encoder_channels=(16,), renet_hidden=(32, 32),
                       patch_sizes=(2, 1), upsample_channels=32, class_names=MNIST_SCENE_CLASSES),
    }

    def __init__(self, config: ReSegConfig) -> None:
        super().__init__(config)
        c = config
        stages, width = [], c.channels
        for out in c.encoder_channels:
            stages += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.encoder = nn.Sequential(*stages)
        self.renet = nn.ModuleList()
        self.norms = nn.ModuleList()
        for hidden, patch in zip(c.renet_hidden, c.patch_sizes):
            self.norms.append(nn.BatchNorm2d(width) if c.norm else nn.Identity())
            self.renet.append(ReNetLayer(width, hidden, patch, c.cell))
            width = 2 * hidden
        # one upsampling step per downsampling step, undone in reverse order
        factors = [p for p in reversed(c.patch_sizes) if p > 1] + [2] * len(c.encoder_channels)
        ups = []
        for f in factors:
            ups += [nn.ConvTranspose2d(width, c.upsample_channels, f, stride=f), nn.ReLU()]
            width = c.upsample_channels
        self.upsample = nn.Sequential(*ups)
        if c.skip:  # the first stage's pre-pooling features (or the image, without an encoder)
            width += c.encoder_channels[0] if c.encoder_channels else c.channels
        self.classifier = nn.Conv2d(width, c.num_classes, 1)
        self.size_multiple = math.prod(factors)

    def forward(self, image: Tensor) -> Tensor:
        """Logits (B, K, H, W) of ``image`` (B, C, H, W) in [0, 1]; H and W must be multiples of
        ``size_multiple`` (``logits()`` / ``segment()`` pad other sizes)."""
        x = image * 2 - 1
        fine = x
        for i, module in enumerate(self.encoder):
            x = module(x)
            if i == 1:  # after the first convolution and ReLU: (B, E_0, H, W)
                fine = x
        # x: (B, E, H / 2^s, W / 2^s)
        for norm, layer in zip(self.norms, self.renet):
            x = layer(norm(x))  # (B, 2h, ..): every position sees the whole map
        x = self.upsample(x)  # (B, U, H, W)
        if self.config.skip:
            x = torch.cat([x, fine], dim=1)  # (B, U + E_0, H, W)
        return self.classifier(x)  # (B, K, H, W)
