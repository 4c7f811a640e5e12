"""``voxscan``: pixelscan's linear-recurrence PixelRNN carried to voxel grids, with exact likelihood.

PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016) models an image pixel by pixel in raster
order; ``pixelscan`` (this package) does so with minGRU/minLSTM recurrences (Feng et al. 2024,
"Were RNNs All We Needed?") whose updates are linear in the state, so training runs parallel scans
(:func:`rnnimg.nn.scan.linear_scan`) and sampling carries a constant-size state. Here the raster
has one axis more: slices k (y, from the floor up), rows i (z) in a slice, voxels j (x) in a row
(:mod:`rnnimg.models.generate.volume`). The gated PixelCNN's two streams (van den Oord et al. 2016b)
become three, each a summary of a prefix of the raster, all channels last (B, Y, Z, X, D):

    slice s:      at (k, i, j) every voxel of slices <= k
        s <- s + Linear(GELU(scan over slices, causal, of (scan over rows, both ways, of
             (scan over the row, both ways)(s))))
    plane v:      at (k, i, j) every voxel of rows <= i of slice k, and of slices < k
        p = s shifted up one slice (slices < k)
        v <- v + Linear(GELU(scan over rows, causal, of (scan over the row, both ways)(v + p)))
    horizontal h: at (k, i, j) every voxel before (k, i, j) in raster order
        h <- h + Linear(GELU(scan along the row, causal, of h + (v shifted one row) + p))

The horizontal stream starts from each voxel's left neighbour (a mask-A 1x1x2 kernel), the other
two from the voxel itself. After one block the logit of voxel (k, i, j) sees its whole causal past
and nothing else (tested with gradients on every voxel: no blind spot). The head is PixelRNN's:
ReLU, Linear, ReLU, Linear to one Bernoulli logit per voxel. Class conditioning adds a learned
per-class vector (zero at initialisation) to the input of each stream's scans, as pixelscan does.

Departures. The model is from no paper: it puts Feng et al.'s cells into PixelRNN's raster with a
third stream for the third axis. Both directions of a two-way scan share one set of gates (as in
pixelscan). The voxels are scaled to [-1, 1]. The 7x7 mask-A input convolution of PixelRNN is
replaced by the left neighbour alone: the recurrences already see the whole past, and a k^3
masked kernel would cost k^3 per voxel in the sampler.

Sampling carries the states (:class:`VoxScanSampler`): the horizontal scan's state along the row
per voxel; when a row is done, the plane stream of that row (its two-way row scan in parallel,
the causal row-over-rows scan one step); when a slice is done, the slice stream of that slice
(two-way scans over the slice in parallel, the scan over slices one step). ``sample_naive`` runs
the full forward per voxel; both draw the same uniforms and give the same volumes (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.generate.volume import VolumeGenerator, check_volume_config
from rnnimg.models.registry import register_model
from rnnimg.nn.minrnn import CELLS, make_min_rnn
from rnnimg.nn.scan import SCAN_METHODS, linear_scan


@dataclass
class VoxScanConfig:
    voxel_size: int = 32  # D: grids of D^3 voxels
    hidden: int = 16  # features of the three streams and state size of every scan
    num_layers: int = 2  # blocks of (slice, plane, horizontal) scans
    head_hidden: int = 32  # features of the hidden layer of the output head
    cell: str = "mingru"  # "mingru" | "minlstm": the linear recurrence of every scan
    scan_method: str = "auto"  # linear_scan method: auto | doubling | log | sequential
    num_classes: int = 8  # > 0: class-conditional (shapes3d's 8 classes); 0: unconditional
    class_names: tuple[str, ...] = ()  # a name per class (for --label chair); () = "0".."K-1"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {self.cell!r}")
        if self.scan_method not in SCAN_METHODS:
            raise ValueError(f"scan_method must be one of {SCAN_METHODS}, got {self.scan_method!r}")
        for name in ("hidden", "num_layers", "head_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        check_volume_config(self)


class TwoWay(nn.Module):
    """A scan both ways along one axis with one set of gates: at every position a summary of the
    whole line."""

    def __init__(self, cell: str, d: int, scan_method: str) -> None:
        super().__init__()
        self.rnn = make_min_rnn(cell, d, d, 1, scan_method)

    def forward(self, x: Tensor, dim: int) -> Tensor:
        a, b = self.rnn.coefficients(self.rnn.project(x))
        method = self.rnn.scan_method
        return (linear_scan(a, b, dim=dim, method=method)
                + linear_scan(a, b, dim=dim, method=method, reverse=True))


class VoxScanBlock(nn.Module):
    """One layer of the three streams; tensors are (B, Y, Z, X, D) (or fewer leading axes in the
    sampler, with the axes given as arguments)."""

    def __init__(self, cell: str, d: int, scan_method: str) -> None:
        super().__init__()
        self.slice_rows = TwoWay(cell, d, scan_method)  # along x
        self.slice_cols = TwoWay(cell, d, scan_method)  # along z
        self.slice_up = make_min_rnn(cell, d, d, 1, scan_method)  # along y, causal
        self.slice_out = nn.Linear(d, d)
        self.plane_rows = TwoWay(cell, d, scan_method)  # along x
        self.plane_up = make_min_rnn(cell, d, d, 1, scan_method)  # along z, causal
        self.plane_out = nn.Linear(d, d)
        self.row = make_min_rnn(cell, d, d, 1, scan_method)  # along x, causal
        self.row_out = nn.Linear(d, d)

    def slice_summary(self, s: Tensor, bias: Tensor | None) -> Tensor:
        """s (..., Z, X, D) -> every position's summary of its whole slice."""
        x = s if bias is None else s + bias
        return self.slice_cols(self.slice_rows(x, dim=-2), dim=-3)

    def row_summary(self, v: Tensor, below: Tensor, bias: Tensor | None) -> Tensor:
        """v, below (..., X, D) -> every position's summary of its whole row of v + below."""
        x = v + below if bias is None else v + below + bias
        return self.plane_rows(x, dim=-2)


@register_model("voxscan")
class VoxScan(VolumeGenerator):
    config_class = VoxScanConfig
    presets = {
        # tiny and fast: 8^3 grids
        "debug": dict(voxel_size=8, hidden=8, num_layers=1, head_hidden=16),
        # shapes3d at 16^3, sized for a CPU
        "shapes16": dict(voxel_size=16, hidden=16, num_layers=2, head_hidden=32),
        # shapes3d at 3D-R2N2's 32^3
        "shapes32": dict(voxel_size=32, hidden=16, num_layers=2, head_hidden=32),
    }

    def __init__(self, config: VoxScanConfig) -> None:
        super().__init__(config)
        c = config
        d = c.hidden
        self.slice_in = nn.Linear(1, d)
        self.plane_in = nn.Linear(1, d)
        self.row_in = nn.Linear(1, d)  # reads the left neighbour
        self.blocks = nn.ModuleList(VoxScanBlock(c.cell, d, c.scan_method) for _ in range(c.num_layers))
        self.head_hidden = nn.Linear(d, c.head_hidden)
        self.head_out = nn.Linear(c.head_hidden, 1)
        self.label_embedding = nn.Embedding(c.num_classes, c.num_layers * 3 * d) if c.num_classes else None
        if self.label_embedding is not None:
            nn.init.zeros_(self.label_embedding.weight)  # start as the unconditional model

    def layer_biases(self, label: Tensor | None) -> list[tuple[Tensor | None, ...]]:
        """Per layer (slice, plane, horizontal) offsets (B, D) from the labels, or Nones."""
        if self.label_embedding is None or label is None:
            return [(None, None, None)] * self.config.num_layers
        parts = self.label_embedding(label).split(self.config.hidden, dim=1)
        return [tuple(parts[3 * n:3 * n + 3]) for n in range(self.config.num_layers)]

    def head(self, h: Tensor) -> Tensor:
        """(..., D) -> logits (...)."""
        return self.head_out(F.relu(self.head_hidden(F.relu(h)))).squeeze(-1)

    def raster_logits(self, x: Tensor, label: Tensor | None) -> Tensor:
        e = (x * 2 - 1).unsqueeze(-1)  # (B, Y, Z, X, 1) in [-1, 1]
        s, v = self.slice_in(e), self.plane_in(e)  # (B, Y, Z, X, D)
        h = self.row_in(F.pad(e, (0, 0, 1, 0))[..., :-1, :])  # the left neighbour (0 at the row start)
        for block, (bs, bv, bh) in zip(self.blocks, self.layer_biases(label)):
            bs, bv, bh = (None if b is None else b[:, None, None, None] for b in (bs, bv, bh))
            s = s + block.slice_out(F.gelu(block.slice_up(block.slice_summary(s, bs), dim=1)))
            below = F.pad(s, (0, 0, 0, 0, 0, 0, 1, 0))[:, :-1]  # (B, Y, Z, X, D): slices < k
            v = v + block.plane_out(F.gelu(block.plane_up(block.row_summary(v, below, bv), dim=2)))
            u = h + F.pad(v, (0, 0, 0, 0, 1, 0))[:, :, :-1] + below  # rows < i, slices < k
            if bh is not None:
                u = u + bh
            h = h + block.row_out(F.gelu(block.row(u, dim=3)))
        return self.head(h)

    def voxel_sampler(self, n: int, label: Tensor | None) -> VoxScanSampler:
        return VoxScanSampler(self, n, label)


class VoxScanSampler:
    """The network one voxel at a time (see the module docstring), in raster order:
    ``start_row(k, i)``, per voxel ``voxel(k, i, j)`` then ``set_voxel``, ``end_row(k, i)``, and
    ``end_slice(k)``."""

    def __init__(self, model: VoxScan, n: int, label: Tensor | None) -> None:
        c = model.config
        self.model, self.n, self.size = model, n, c.voxel_size
        self.biases = model.layer_biases(label)
        ref = model.head_out.weight
        layers, d, w = c.num_layers, c.hidden, c.voxel_size
        self.below = ref.new_zeros(layers, n, w, w, d)  # per layer: the slice stream of slice k - 1
        self.up_state = ref.new_zeros(layers, n, w, w, d)  # the scans over slices
        self.plane_state = ref.new_zeros(layers, n, w, d)  # the scans over rows, within a slice
        self.above = ref.new_zeros(layers, n, w, d)  # the plane stream of row i - 1
        self.slice = ref.new_zeros(n, w, w)  # voxels of the current slice in [-1, 1]
        self.row_gates = [None] * layers  # per layer: the horizontal scan's gates from above/below
        self.state = [None] * layers  # the horizontal scans' states at (k, i, j - 1)
        self.left = ref.new_zeros(n, 1)  # the left neighbour in [-1, 1] (0 at a row's start)

    def start_row(self, k: int, i: int) -> None:
        for layer, (block, (_, _, bh)) in enumerate(zip(self.model.blocks, self.biases)):
            u = self.below[layer][:, i] + (self.above[layer] if i else 0)  # (n, X, D)
            if bh is not None:
                u = u + bh[:, None]
            self.row_gates[layer] = block.row.project(u)  # the gates are linear in u: once per row
        self.state = [None] * len(self.state)
        self.left.zero_()

    def voxel(self, k: int, i: int, j: int) -> Tensor:
        h = self.model.row_in(self.left)  # (n, D)
        for layer, block in enumerate(self.model.blocks):
            gates = self.row_gates[layer][:, j] + F.linear(h, block.row.project.masked_weight())
            prev = self.state[layer]
            s = block.row.coefficients(gates)[1] if prev is None else block.row.update(gates, prev)
            self.state[layer] = s
            h = h + block.row_out(F.gelu(s))
        return self.model.head(h)

    def set_voxel(self, k: int, i: int, j: int, value: Tensor) -> None:
        e = value * 2 - 1
        self.slice[:, i, j] = e
        self.left[:, 0] = e

    def end_row(self, k: int, i: int) -> None:
        """Row i of slice k is done: its plane stream for every layer (``above`` for row i + 1)."""
        v = self.model.plane_in(self.slice[:, i].unsqueeze(-1))  # (n, X, D)
        for layer, (block, (_, bv, _)) in enumerate(zip(self.model.blocks, self.biases)):
            rows = block.row_summary(v, self.below[layer][:, i], None if bv is None else bv[:, None])
            state = block.plane_up.step(rows, self.plane_state[layer] if i else None)
            self.plane_state[layer] = state
            v = v + block.plane_out(F.gelu(state))
            self.above[layer] = v

    def end_slice(self, k: int) -> None:
        """Slice k is done: its slice stream for every layer (``below`` for slice k + 1)."""
        s = self.model.slice_in(self.slice.unsqueeze(-1))  # (n, Z, X, D)
        for layer, (block, (bs, _, _)) in enumerate(zip(self.model.blocks, self.biases)):
            summary = block.slice_summary(s, None if bs is None else bs[:, None, None])
            state = block.slice_up.step(summary, self.up_state[layer] if k else None)
            self.up_state[layer] = state
            s = s + block.slice_out(F.gelu(state))
            self.below[layer] = s
