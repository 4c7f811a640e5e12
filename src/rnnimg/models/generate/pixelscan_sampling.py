"""State-carrying sampling for ``pixelscan``: constant work per pixel, no forward pass per pixel.

In raster order, when pixel (i, j) is drawn:

- the horizontal stream needs, per layer, its row-scan state at (i, j-1) (carried along the row,
  zero at the start of a row, as the parallel scan starts from zero) and the vertical stream of
  row i-1 (computed once when row i-1 was finished);
- the vertical stream of a row needs the whole row (both row scans), and the column scan's state
  of the row above: so when row i is finished it is computed for all layers at once, with the
  row scans run in parallel over the row and the column scan advanced one step.

Colour: a pixel is visited once per channel. At the pass for channel c every feature that the
logits of c read is final (mask A and mask B); no feature of (i, j) reads its last channel, so the
states computed at the last pass are the final ones and are kept.

Both samplers draw the same uniforms (one per pixel and channel, raster order) and invert the same
CDF, so they give identical samples; the tests compare the logits of
:meth:`RasterGenerator.cached_logits` with the full forward pass too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.runtime.graphs import at, into


class ScanSampler:
    """The network one pixel at a time. ``start_row(i)``, then per pixel ``pixel(i, j)`` once per
    channel (after ``set_pixel`` of the channels before), ``end_pixel(j)``, then ``end_row(i)``."""

    def __init__(self, model, n: int, label: Tensor | None, low_res: Tensor | None = None) -> None:
        c = model.config
        self.model, self.n = model, n
        self.size, self.channels, self.hidden = c.image_size, c.channels, c.hidden
        self.blocks = list(model.blocks)
        # per layer (vertical, horizontal) offsets (n, H | 1, W | 1, D), or None
        self.biases = model.layer_biases(label, low_res)
        w0 = model.input_conv.masked_weight()  # (D, C, k, k)
        self.pad = w0.shape[-1] // 2
        # rows i-pad..i of the patch around (i, j); mask A zeroes the rest of row i
        self.w0 = w0[:, :, :self.pad + 1].reshape(w0.shape[0], -1).t().contiguous()  # (C*(p+1)*k, D)
        self.b0 = model.input_conv.bias
        # the canvas in the network's input scale, zero padded like the convolution
        p = self.pad
        self.canvas = w0.new_zeros(n, c.channels, c.image_size + p, c.image_size + 2 * p)
        self.minus_one = w0.new_full((), -1.0)  # made on the device: nothing crosses from the host
        self.row_w, self.row_b, self.out_w, self.out_b = [], [], [], []
        for block in self.blocks:
            self.row_w.append(block.row.project.masked_weight().t().contiguous())
            self.row_b.append(block.row.project.bias)
            self.out_w.append(block.horizontal_out.masked_weight().t().contiguous())
            self.out_b.append(block.horizontal_out.bias)
        self.head1 = model.head_hidden.masked_weight().t().contiguous()
        self.head1_b = model.head_hidden.bias
        self.head2 = model.head_out.masked_weight().t().contiguous()
        self.head2_b = model.head_out.bias
        self.k = model.k
        L, d, w = len(self.blocks), c.hidden, c.image_size
        ref = w0
        gates = self.row_w[0].shape[1]
        self.above_gates = ref.new_zeros(L, n, w, gates)  # row-scan gates of (v above + label)
        self.column_state = ref.new_zeros(L, n, w, d)  # the column scans' states
        self.state = ref.new_zeros(L, n, d)  # row-scan states at (i, j-1)
        self.new_state = ref.new_zeros(L, n, d)  # ... at (i, j), from the latest pass
        self._set_above(ref.new_zeros(L + 1, n, w, d), 0)  # row 0: the zero padding above the image

    def _set_above(self, v: Tensor, row: int) -> None:
        """``above`` for ``row`` from the vertical streams v (L + 1, n, W, D) (input, layers) of
        the row before it."""
        for layer, (_, bias_h) in enumerate(self.biases):
            above = v[layer + 1] if bias_h is None else v[layer + 1] + offsets_of_row(bias_h, row)
            # the row scan's gates are linear in u = h + above: their above part, once per row
            torch.addmm(self.row_b[layer], above.reshape(-1, self.hidden), self.row_w[layer],
                        out=self.above_gates[layer].view(-1, self.above_gates.shape[-1]))

    def set_pixel(self, i: int, j: int, ch: int, value: Tensor) -> None:
        # value * 2 - 1 in one kernel (exact: 2 * value is)
        into(torch.add, self.minus_one, value, alpha=2,
             out=at(at(self.canvas[:, ch], 1, i + self.pad), 1, j + self.pad))

    def start_row(self, i: int) -> None:
        self.state.zero_()

    def pixel(self, i: int, j: int) -> Tensor:
        """Logits (n, C, K) of pixel (i, j) given the canvas so far."""
        k = 2 * self.pad + 1
        patch = self.canvas[:, :, i:i + self.pad + 1, j:j + k].reshape(self.n, -1)
        h = torch.addmm(self.b0, patch, self.w0)  # (n, D)
        for layer, block in enumerate(self.blocks):
            gates = torch.addmm(at(self.above_gates[layer], 1, j), h, self.row_w[layer])
            s = block.row.update(gates, self.state[layer])
            self.new_state[layer] = s
            h = h + torch.addmm(self.out_b[layer], F.gelu(s), self.out_w[layer])
        # the model's head with the masked weights packed once
        y = torch.addmm(self.head1_b, F.relu(h), self.head1).relu_()
        return torch.addmm(self.head2_b, y, self.head2).view(self.n, self.channels, self.k)

    def end_pixel(self, j: int) -> None:
        self.state, self.new_state = self.new_state, self.state

    def end_row(self, i: int) -> None:
        """Row i is complete: the vertical stream of row i for every layer, and ``above`` for
        row i + 1."""
        p = self.pad
        x = self.canvas[:, :, i + p, p:p + self.size].transpose(1, 2)  # (n, W, C) in [-1, 1]
        v = self.model.vertical_in(x)  # (n, W, D)
        vs = [v]
        for layer, (block, (bias_v, _)) in enumerate(zip(self.blocks, self.biases)):
            inp = v if bias_v is None else v + offsets_of_row(bias_v, i)
            rows = block.row_scans(inp, dim=1)  # (n, W, D): both directions over the row
            self.column_state[layer] = block.column.step(
                rows, self.column_state[layer] if i else None)
            v = v + block.vertical_out(F.gelu(self.column_state[layer]))
            vs.append(v)
        self._set_above(torch.stack(vs), i + 1)


def offsets_of_row(offsets: Tensor, row: int) -> Tensor:
    """Row ``row`` (n, W | 1, D) of per-layer offsets (n, H | 1, W | 1, D): a class offset is the
    same on every row; past the last row (the ``above`` that no pixel reads) the last one."""
    return offsets[:, min(row, offsets.shape[1] - 1)]
