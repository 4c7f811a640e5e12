"""``viewpool``: the non-recurrent baseline of ``r2n2``, fusing the views by pooling or learned
weights, after Pix2Vox (Xie, Yao, Sun, Zhou, Zhang 2019, "Pix2Vox: Context-aware 3D
Reconstruction from Single and Multi-view Images", ICCV).

Pix2Vox decodes every view to a coarse volume on its own and fuses the volumes with a
"context-aware fusion": a score per view and voxel, softmax over the views, a weighted sum. Its
point against 3D-R2N2 is that the result cannot depend on the order of the views, and that early
views are not forgotten. Here every view goes through the same encoder as ``r2n2`` to its input
grid, then through a per-view 3D block (3x3x3 convolutions) to a hidden grid of the same shape
as r2n2's recurrent state, and the views' grids are fused by

    mean | max | learned: softmax over views of a per-unit score (a 3x3x3 convolution of the
    view's grid), the Pix2Vox fusion moved from the 32^3 volume to the 4^3 grid,

then decoded by the same 3D decoder. The default is ``mean``: with one view the learned weights
are a softmax over one entry, so a batch of single views gives their score no gradient. ``refine``
convolutions sized so that the default and debug
presets have about r2n2's parameter count (tests check within 10%).

Departures from Pix2Vox: its VGG encoder, per-view decoders to 32^3 and refiner (a 3D U-Net) are
replaced by r2n2's small encoder and decoder, so only the fusion differs between the two models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnimg.models.reconstruct.base import ShapeReconstructor, check_reconstruct_config
from rnnimg.models.registry import register_model

FUSIONS = ("mean", "max", "learned")


@dataclass
class ViewPoolConfig:
    view_size: int = 64  # side of the square views (the data decide)
    channels: int = 1  # of the views: 1 (grey) or 3 (colour)
    voxel_size: int = 32  # side of the output grid = grid * 2^len(decoder_widths)
    num_classes: int = 8  # classes of the data's labels (per-class IoU only)
    class_names: tuple[str, ...] = ()  # a name per class for the IoU table
    widths: tuple[int, ...] = (16, 32, 64, 64)  # encoder, as r2n2
    features: int = 256  # encoder output per view
    grid: int = 4  # N: the fused grid is N^3
    input_channels: int = 8  # channels of the per-view input grid
    hidden: int = 32  # channels of the fused grid (r2n2's hidden state)
    refine: int = 4  # 3x3x3 convolutions of the per-view block (hidden -> hidden after the first)
    fusion: str = "mean"  # "mean", "max" or "learned" (Pix2Vox's context-aware weights)
    decoder_widths: tuple[int, ...] = (32, 16, 8)  # as r2n2
    max_views: int = 5  # training shows 1..max_views views per batch
    eval_views: int = 5  # evaluation scores IoU with 1..eval_views views
    pos_weight: float = 1.0  # weight of the filled voxels' cross-entropy (1: the paper's loss)
    prior_occupancy: float = 0.02  # the output bias starts at this fraction filled (0.5: no prior)
    input_norm: bool = True  # layer-normalise each view's input grid (false: the first version)
    order_augment: bool = True  # random view order in training (pooling ignores order anyway)

    def __post_init__(self):
        check_reconstruct_config(self)
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.refine < 1:
            raise ValueError(f"refine must be >= 1, got {self.refine}")


@register_model("viewpool")
class ViewPool(ShapeReconstructor):
    config_class = ViewPoolConfig
    presets = {
        "debug": dict(widths=(4, 8, 8, 8), features=32, input_channels=4, hidden=8, refine=4,
                      decoder_widths=(8, 4, 4)),
        "shapes3d": dict(pos_weight=3.0),
    }

    def __init__(self, config: ViewPoolConfig) -> None:
        super().__init__(config)
        c = config
        layers, cin = [], c.input_channels
        for _ in range(c.refine):
            layers += [nn.Conv3d(cin, c.hidden, 3, padding=1), nn.LeakyReLU(0.1)]
            cin = c.hidden
        self.block = nn.Sequential(*layers)
        self.score = nn.Conv3d(c.hidden, 1, 3, padding=1) if c.fusion == "learned" else None

    def fuse(self, grids: Tensor) -> Tensor:
        b, v = grids.shape[:2]
        h = self.block(grids.flatten(0, 1)).unflatten(0, (b, v))  # (B, V, hidden, N, N, N)
        if self.config.fusion == "mean":
            return h.mean(1)
        if self.config.fusion == "max":
            return h.amax(1)
        scores = self.score(h.flatten(0, 1)).unflatten(0, (b, v))  # (B, V, 1, N, N, N)
        return (torch.softmax(scores, dim=1) * h).sum(1)
