"""Four-direction 2D scans of a linear recurrence over a feature map: ReNet's layout (Visin et al.
2015) with a parallel-scan recurrence inside, as in VMamba (Liu et al. 2024, "VMamba: Visual State
Space Model") and Vision-RWKV (Duan et al. 2024).

Every direction runs the minGRU recurrence (Feng et al. 2024; nn/minrnn.py) with an
input-dependent decay:

    z = sigmoid(W_z x + c_z),  h~ = W_h x,  h_t = (1 - z_t) h_{t-1} + z_t h~_t

computed for a whole row or column at once by :func:`rnnimg.nn.scan.linear_scan`; the axis a scan
does not run along is folded into its batch, so the only Python loop is the scan kernel's.

Two layouts (``layout``):

- ``"renet"``: ReNet's. A scan left to right and one right to left along every row, concatenated
  (2 * hidden features); then a scan top to bottom and one bottom to top along every column of
  that result (2 * hidden features). After the row sweep, position (i, j) depends on row i; after
  the column sweep on every row, so one layer sees the whole image.
- ``"cross"``: VMamba's cross-scan (SS2D). The map is flattened in row-major and in column-major
  order and each sequence of H * W positions is scanned forwards and backwards: four independent
  scans whose outputs are put back on the grid and summed (hidden features). The row-major forward
  scan at (i, j) has seen every pixel before it in raster order, the backward scan every pixel
  after it: together, the whole image.

Departures: VMamba's selective scan is a diagonal state-space model (a discretised per-channel
state of size N with input-dependent step Delta, B and C); here the state is the feature itself
and the decay is minGRU's sigmoid gate, the form pixelscan already uses. Its in-projection,
depthwise convolution and output gate belong to the block that uses this layer (models/segment/scanseg.py),
not to the layer. The gate biases start spread over memory lengths 1 .. ``init_span`` positions
(z = 1 / T), as state-space models spread their time scales, so that some units carry context
across the map from the first step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnimg.nn.scan import linear_scan

SCAN2D_LAYOUTS = ("renet", "cross")


def _gate_bias(hidden: int, init_span: float) -> Tensor:
    """Biases c_z of ``hidden`` units with memory lengths T log-spaced over [1, init_span]: the
    update z = sigmoid(c_z) = 1 / T."""
    spans = torch.logspace(0, math.log10(max(init_span, 1.0)), hidden)
    z = (1.0 / spans).clamp(1e-3, 1 - 1e-3)
    return torch.log(z) - torch.log1p(-z)  # logit(z)


def _mingru(gates: Tensor) -> tuple[Tensor, Tensor]:
    """(a, b) of h_t = a h_{t-1} + b from ``gates`` (B, 2k, ...) laid out [z pre-activations, h~]."""
    z_pre, candidate = gates.chunk(2, dim=1)
    z = torch.sigmoid(z_pre)
    return 1 - z, z * candidate


class Scan2D(nn.Module):
    """Four-direction linear-recurrence scan of a feature map (B, C, H, W).

    Args:
        in_channels: C.
        hidden_size: features of each direction's state.
        layout: ``"renet"`` (rows both ways, then columns both ways; ``2 * hidden_size`` output
            features) or ``"cross"`` (VMamba's cross-scan: row-major and column-major sequences,
            both ways, summed; ``hidden_size`` output features).
        scan_method: :func:`linear_scan`'s method.
        init_span: the longest initial memory of a gate, in positions.
    """

    def __init__(self, in_channels: int, hidden_size: int, layout: str = "renet",
                 scan_method: str = "auto", init_span: float = 16.0) -> None:
        super().__init__()
        if layout not in SCAN2D_LAYOUTS:
            raise ValueError(f"layout must be one of {SCAN2D_LAYOUTS}, got {layout!r}")
        if hidden_size < 1:
            raise ValueError(f"hidden_size must be >= 1, got {hidden_size}")
        self.layout, self.hidden_size, self.scan_method = layout, hidden_size, scan_method
        h = hidden_size
        if layout == "renet":
            # 1x1 convolutions to [z of both directions, h~ of both directions]
            self.rows = nn.Conv2d(in_channels, 4 * h, 1)
            self.columns = nn.Conv2d(2 * h, 4 * h, 1)
            projections = (self.rows, self.columns)
            self.out_channels = 2 * h
        else:
            self.project = nn.Conv2d(in_channels, 8 * h, 1)  # [z of 4 directions, h~ of 4]
            projections = (self.project,)
            self.out_channels = h
        with torch.no_grad():
            for conv in projections:
                directions = conv.out_channels // (2 * h)
                conv.bias[: directions * h].copy_(_gate_bias(h, init_span).repeat(directions))

    def _scan(self, a: Tensor, b: Tensor, dim: int, reverse: bool) -> Tensor:
        return linear_scan(a, b, dim=dim, method=self.scan_method, reverse=reverse)

    def _both_ways(self, gates: Tensor, dim: int) -> Tensor:
        """Scans (B, 4h, H, W) gates along ``dim``: the first h states forwards, the next h
        backwards -> (B, 2h, H, W)."""
        a, b = _mingru(gates)  # each (B, 2h, H, W): [forward h, backward h]
        h = self.hidden_size
        forward = self._scan(a[:, :h], b[:, :h], dim, reverse=False)
        backward = self._scan(a[:, h:], b[:, h:], dim, reverse=True)
        return torch.cat([forward, backward], dim=1)

    def sweep_rows(self, x: Tensor) -> Tensor:
        """``renet``: left-to-right states then right-to-left states of every row:
        (B, C, H, W) -> (B, 2h, H, W)."""
        return self._both_ways(self.rows(x), dim=3)

    def sweep_columns(self, x: Tensor) -> Tensor:
        """``renet``: top-to-bottom states then bottom-to-top states of every column:
        (B, 2h, H, W) -> (B, 2h, H, W)."""
        return self._both_ways(self.columns(x), dim=2)

    def cross_directions(self, x: Tensor) -> Tensor:
        """``cross``: the four directions' states on the grid, (B, 4, h, H, W), in the order
        row-major forwards, row-major backwards, column-major forwards, column-major backwards."""
        bsz, _, height, width = x.shape
        h = self.hidden_size
        a, b = _mingru(self.project(x))  # each (B, 4h, H, W)
        a, b = a.view(bsz, 4, h, height, width), b.view(bsz, 4, h, height, width)
        # row-major sequences: (B, 2, h, H * W); column-major: transpose H and W first
        a_row, b_row = a[:, :2].flatten(3), b[:, :2].flatten(3)
        a_col, b_col = (t[:, 2:].transpose(3, 4).flatten(3) for t in (a, b))
        out = []
        for k, (aa, bb) in enumerate(((a_row, b_row), (a_col, b_col))):
            forward = self._scan(aa[:, 0], bb[:, 0], dim=2, reverse=False)  # (B, h, H * W)
            backward = self._scan(aa[:, 1], bb[:, 1], dim=2, reverse=True)
            pair = torch.stack([forward, backward], 1)  # (B, 2, h, L)
            if k == 0:
                out.append(pair.view(bsz, 2, h, height, width))
            else:  # column-major back to the grid: (B, 2, h, W, H) -> (B, 2, h, H, W)
                out.append(pair.view(bsz, 2, h, width, height).transpose(3, 4))
        return torch.cat(out, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, out_channels, H, W); every output position sees every input one."""
        if self.layout == "renet":
            return self.sweep_columns(self.sweep_rows(x))
        return self.cross_directions(x).sum(dim=1)


class Scan2DBlock(nn.Module):
    """A residual four-direction scan, x + W_out Scan2D(local(norm(x))): (B, C, H, W) -> (B, C, H, W).
    Every output position sees the whole input map; used as global context (models/segment/scanseg.py,
    and the translator's ``context="scan"`` option, where it plays NLRN's non-local block).

    Args:
        channels: C.
        hidden: state features per scan direction.
        layout, scan_method: as :class:`Scan2D`.
        norm: batch-normalise the scan's input.
        local: VMamba's local mixing before the scan (its SS2D block: in-projection, 3x3 depthwise
            convolution, SiLU, scan): a 3x3 depthwise convolution and SiLU, 10 C parameters. Without
            it the block is linear in its input but for the gates; with it, every scan step reads a
            3x3 neighbourhood and the block gains a nonlinearity.
    """

    def __init__(self, channels: int, hidden: int, layout: str = "renet", scan_method: str = "auto",
                 norm: bool = True, local: bool = False) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels) if norm else nn.Identity()
        self.local = (nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.SiLU())
                      if local else nn.Identity())
        self.scan = Scan2D(channels, hidden, layout=layout, scan_method=scan_method)
        self.out = nn.Conv2d(self.scan.out_channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.out(self.scan(self.local(self.norm(x))))
