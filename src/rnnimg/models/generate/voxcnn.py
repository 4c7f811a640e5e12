"""``voxcnn``: a 3D PixelCNN, the non-recurrent baseline of ``voxscan`` (same likelihood, same raster).

PixelCNN (van den Oord et al. 2016, "Pixel Recurrent Neural Networks", section 3.5; "Conditional
Image Generation with PixelCNN Decoders") replaces PixelRNN's recurrences with a stack of masked
convolutions: the first (mask A) sees only pixels before the centre in raster order, later ones
(mask B) the centre feature too. Here the kernels are 3x3x3 over the voxel raster (y, z, x) of
:mod:`rnnimg.models.generate.volume`: a tap (dy, dz, dx) is kept when it comes before the centre in that
order. Residual blocks (ReLU, masked 3x3x3, ReLU, 1x1x1) follow the input convolution, and
PixelRNN's head (ReLU, 1x1x1, ReLU, 1x1x1) gives one Bernoulli logit per voxel. Class
conditioning adds a learned per-class vector (zero at initialisation) before every block.

Departures. PixelCNN's stacked masks leave a blind spot (voxels to the right of the centre in the
rows above are never seen); the gated PixelCNN's vertical/horizontal stacks remove it in 2D. This
baseline keeps the plain masks on purpose: it is the convolutional model of matched size that the
recurrent ``voxscan`` (no blind spot) is compared with. Its receptive field is bounded: the logit
of slice k reads slices k - R .. k, R = num_layers + 1, so its sampler runs the network on that
slab of slices only, which gives the same logits as the whole volume (tested) at a fraction of
the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.generate.volume import VolumeGenerator, check_volume_config
from rnnimg.models.registry import register_model


@dataclass
class VoxCNNConfig:
    voxel_size: int = 32  # D: grids of D^3 voxels
    channels: int = 32  # features of every masked convolution
    num_layers: int = 4  # residual blocks after the mask-A input convolution
    head_hidden: int = 32  # features of the hidden layer of the output head
    num_classes: int = 8  # > 0: class-conditional (shapes3d's 8 classes); 0: unconditional
    class_names: tuple[str, ...] = ()  # a name per class (for --label chair); () = "0".."K-1"

    def __post_init__(self):
        for name in ("channels", "num_layers", "head_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_volume_config(self)


def raster_mask(kernel: int, centre: bool) -> Tensor:
    """(k, k, k) float: 1 for the taps (dy, dz, dx) before the centre in raster order, and the
    centre itself if ``centre`` (mask B)."""
    c = kernel // 2
    offsets = torch.arange(kernel) - c
    dy, dz, dx = torch.meshgrid(offsets, offsets, offsets, indexing="ij")
    before = (dy < 0) | ((dy == 0) & (dz < 0)) | ((dy == 0) & (dz == 0) & (dx < 0))
    if centre:
        before |= (dy == 0) & (dz == 0) & (dx == 0)
    return before.float()


class MaskedConv3d(nn.Conv3d):
    """A 3x3x3 (or k^3) convolution over (B, C, Y, Z, X) that reads only voxels before the centre
    in raster order (mask "A") or the centre too (mask "B"); the weight is masked in forward."""

    def __init__(self, cin: int, cout: int, kernel: int, mask: str) -> None:
        super().__init__(cin, cout, kernel, padding=kernel // 2)
        self.register_buffer("mask", raster_mask(kernel, mask == "B"), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv3d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = MaskedConv3d(channels, channels, 3, "B")
        self.mix = nn.Conv3d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


@register_model("voxcnn")
class VoxCNN(VolumeGenerator):
    config_class = VoxCNNConfig
    presets = {
        "debug": dict(voxel_size=8, channels=8, num_layers=2, head_hidden=16),
        # matched to voxscan's shapes16 / shapes32 presets in parameters (9.2k against 9.6k)
        "shapes16": dict(voxel_size=16, channels=12, num_layers=2, head_hidden=32),
        "shapes32": dict(voxel_size=32, channels=12, num_layers=2, head_hidden=32),
    }

    def __init__(self, config: VoxCNNConfig) -> None:
        super().__init__(config)
        c = config
        self.input_conv = MaskedConv3d(1, c.channels, 3, "A")
        self.blocks = nn.ModuleList(ResidualBlock(c.channels) for _ in range(c.num_layers))
        self.head_hidden = nn.Conv3d(c.channels, c.head_hidden, 1)
        self.head_out = nn.Conv3d(c.head_hidden, 1, 1)
        self.label_embedding = (nn.Embedding(c.num_classes, c.num_layers * c.channels)
                                if c.num_classes else None)
        if self.label_embedding is not None:
            nn.init.zeros_(self.label_embedding.weight)

    @property
    def reach(self) -> int:
        """R: the logit of slice k reads slices k - R .. k (each 3x3x3 convolution reaches one back)."""
        return self.config.num_layers + 1

    def raster_logits(self, x: Tensor, label: Tensor | None) -> Tensor:
        h = self.input_conv((x * 2 - 1).unsqueeze(1))  # (B, C, Y, Z, X)
        biases = ([None] * len(self.blocks) if self.label_embedding is None or label is None
                  else self.label_embedding(label).split(self.config.channels, dim=1))
        for block, bias in zip(self.blocks, biases):
            h = block(h if bias is None else h + bias[:, :, None, None, None])
        return self.head_out(F.relu(self.head_hidden(F.relu(h)))).squeeze(1)  # (B, Y, Z, X)

    def voxel_sampler(self, n: int, label: Tensor | None) -> SlabSampler:
        return SlabSampler(self, n, label)


class SlabSampler:
    """Runs the network on slices k - R .. k only (the logit's whole receptive field), once per
    voxel; a slab that starts at the bottom of the grid is zero-padded below exactly like the full
    volume."""

    def __init__(self, model: VoxCNN, n: int, label: Tensor | None) -> None:
        d = model.config.voxel_size
        self.model, self.label = model, label
        self.canvas = model.head_out.weight.new_zeros(n, d, d, d)  # (n, Y, Z, X) raster layout

    def start_row(self, k: int, i: int) -> None:
        pass

    def voxel(self, k: int, i: int, j: int) -> Tensor:
        low = max(0, k - self.model.reach)
        return self.model.raster_logits(self.canvas[:, low:k + 1], self.label)[:, k - low, i, j]

    def set_voxel(self, k: int, i: int, j: int, value: Tensor) -> None:
        self.canvas[:, k, i, j] = value

    def end_row(self, k: int, i: int) -> None:
        pass

    def end_slice(self, k: int) -> None:
        pass
