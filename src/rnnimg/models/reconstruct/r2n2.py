"""``r2n2``: 3D-R2N2 (Choy, Xu, Gwak, Chen, Savarese 2016, "3D-R2N2: A Unified Approach for Single
and Multi-view 3D Object Reconstruction", ECCV): views in, one at a time, voxels out.

    encoder    a 2D CNN maps each view to a feature vector (shared weights over views)
    3D-GRU     a 4 x 4 x 4 grid of recurrent units (3D ConvGRU, or the paper's 3D LSTM), each with
               a local (3x3x3) receptive field over its neighbours' states, updated once per view
               in the order the views come
    decoder    3D transposed convolutions up to the 32^3 grid; a logit per voxel, trained with
               voxel-wise cross-entropy (two classes, empty/filled: a sigmoid per voxel)

``reconstruct(views)`` takes any number of views: the grid simply runs one more step per view.

Departures from the paper (see also :mod:`rnnimg.nn.convgru3d` and
:mod:`rnnimg.models.reconstruct.base`): a shallow encoder without residual connections; the
features reach the grid through one small linear map to an input grid and a 3x3x3 convolution
instead of a fully connected map per unit (about 25M weights in the paper); far fewer channels
(CPU-sized presets); the output bias starts at the prior occupancy and each view's input grid
is layer-normalised (without both, Adam saturates the GRU within ~30 steps and nothing crosses
the 0.4 threshold: :mod:`rnnimg.models.reconstruct.base`). ``order_augment`` (on by default)
shows each training batch its views in a random order, the remedy for the order dependence that
Pix2Vox (Xie et al. 2019) criticises; ``bidirectional`` runs a second grid over the reversed
sequence and averages the two states.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rnnimg.models.reconstruct.base import ShapeReconstructor, check_reconstruct_config
from rnnimg.models.registry import register_model
from rnnimg.nn.convgru3d import ConvGRU3dCell, ConvLSTM3dCell


@dataclass
class R2N2Config:
    view_size: int = 64  # side of the square views (the data decide)
    channels: int = 1  # of the views: 1 (grey) or 3 (colour)
    voxel_size: int = 32  # side of the output grid = grid * 2^len(decoder_widths)
    num_classes: int = 8  # classes of the data's labels (per-class IoU only; no conditioning)
    class_names: tuple[str, ...] = ()  # a name per class for the IoU table; () = "0".."K-1"
    widths: tuple[int, ...] = (16, 32, 64, 64)  # encoder: features per 3x3 conv + 2x2 pool
    features: int = 256  # encoder output per view
    grid: int = 4  # N: the recurrent grid is N^3 units (4 in the paper)
    input_channels: int = 8  # channels of the per-view input grid x_t
    hidden: int = 32  # channels of each unit's hidden state (128 in the paper)
    cell: str = "gru"  # "gru" (the paper's best) or "lstm" (its 3D LSTM, no output gate)
    bidirectional: bool = False  # a second grid over the reversed views; states averaged
    decoder_widths: tuple[int, ...] = (32, 16, 8)  # features per 2x upsampling of the decoder
    max_views: int = 5  # training shows 1..max_views views per batch
    eval_views: int = 5  # evaluation scores IoU with 1..eval_views views
    pos_weight: float = 1.0  # weight of the filled voxels' cross-entropy (1: the paper's loss)
    prior_occupancy: float = 0.02  # the output bias starts at this fraction filled (0.5: no prior)
    input_norm: bool = True  # layer-normalise each view's input grid (false: the first version)
    order_augment: bool = True  # random view order in training (else camera order)

    def __post_init__(self):
        check_reconstruct_config(self)
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")


def _cell(c: R2N2Config):
    kind = ConvGRU3dCell if c.cell == "gru" else ConvLSTM3dCell
    return kind(c.input_channels, c.hidden, 3)


@register_model("r2n2")
class R2N2(ShapeReconstructor):
    config_class = R2N2Config
    presets = {
        "debug": dict(widths=(4, 8, 8, 8), features=32, input_channels=4, hidden=8,
                      decoder_widths=(8, 4, 4)),
        "shapes3d": dict(pos_weight=3.0),
    }

    def __init__(self, config: R2N2Config) -> None:
        super().__init__(config)
        self.cell = _cell(config)
        self.backward_cell = _cell(config) if config.bidirectional else None

    def _run(self, cell, grids: Tensor) -> Tensor:
        """The grid's hidden state after reading grids (B, V, C_in, N, N, N) in order."""
        state = None
        for t in range(grids.shape[1]):  # the recurrence: one update per view
            state = cell(grids[:, t], state)
        return state if isinstance(cell, ConvGRU3dCell) else state[0]

    def fuse(self, grids: Tensor) -> Tensor:
        h = self._run(self.cell, grids)  # (B, hidden, N, N, N)
        if self.backward_cell is not None:
            h = (h + self._run(self.backward_cell, grids.flip(1))) / 2
        return h
