"""Cached sampling for ``pixelrnn``: each new pixel costs constant work, not a forward pass.

The naive sampler (``PixelRNN.sample_naive``) runs the whole network once per pixel and channel:
O((HW)^2) work. Here the recurrent states are carried in raster order instead. The recurrent
layers step themselves: ``type(layer).raster_steps(...)`` gives the stack a per-row / per-pixel
step API with carried state (:class:`rnnimg.nn.row_lstm.RowLSTMSteps`,
:class:`rnnimg.nn.diagonal_bilstm.DiagonalBiLSTMSteps`, where the Row LSTM's row-at-once K_ss and
the Diagonal BiLSTM's padded cells and batched right-to-left scans are explained). This module
adds what lies between the layers: the 7x7 mask-A input convolution (its rows i-3..i-1 once per
row, the centre row's taps per pixel), the mask-B residual connections and the output head, one
pixel at a time.

Colour: a pixel is visited once per channel; at the pass for channel c, everything the logits of c
depend on is final (mask A and mask B), and the last pass leaves the states final.

Both samplers draw the same uniforms (one per pixel and channel, in raster order) and invert the
same CDF, so they give identical samples; the tests compare the logits too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.runtime.graphs import at, into


class PixelSampler:
    """A PixelRNN one pixel at a time: input convolution, recurrent layers (stepped by their own
    :meth:`raster_steps`), residual connections and head."""

    def __init__(self, model, n: int, label: Tensor | None) -> None:
        c = model.config
        self.model, self.n = model, n
        self.height = self.width = c.image_size
        self.channels, self.hidden, self.num_layers = c.channels, c.hidden, c.num_layers
        w0 = model.input_conv.masked_weight()  # (2h, C, 7, 7)
        self.w0_above = w0[:, :, :3].contiguous()  # rows i-3..i-1
        # centre row, columns j-3..j, flattened (column, channel) to match the canvas layout
        self.w0_row = w0[:, :, 3, :4].permute(2, 1, 0).reshape(4 * c.channels, -1).contiguous()
        self.b0 = model.input_conv.bias
        # canvas in the network's input scale, channels last, padded 3 rows on top, 3 columns a side
        self.canvas = w0.new_zeros(n, self.height + 3, self.width + 6, c.channels)
        self.row0 = w0.new_zeros(n, self.width, w0.shape[0])  # (n, W, 2h): the above part of row i
        self.minus_one = w0.new_full((), -1.0)  # made on the device: nothing crosses from the host
        self.head1 = model.head_hidden.masked_weight()[:, :, 0, 0].t().contiguous()
        self.head1_b = model.head_hidden.bias
        self.head2 = model.head_out.masked_weight()[:, :, 0, 0].t().contiguous()
        self.head2_b = model.head_out.bias
        self.k = model.k
        self.layers = type(model.layers[0]).raster_steps(
            model.layers, n, self.height, self.width, model.gate_biases(label))
        self.res_w = [r.masked_weight()[:, :, 0, 0].t().contiguous() for r in model.residuals]
        self.res_b = [r.bias for r in model.residuals]
        self.top = w0.new_zeros(n, w0.shape[0])  # the residual stream after the last layer

    def set_pixel(self, i: int, j: int, ch: int, value: Tensor) -> None:
        # value * 2 - 1 in one kernel (exact: 2 * value is)
        into(torch.add, self.minus_one, value, alpha=2, out=at(at(self.canvas, 1, i + 3), 1, j + 3)[:, ch])

    def start_row_input(self, i: int) -> None:
        above = self.canvas[:, i:i + 3].permute(0, 3, 1, 2)  # (n, C, 3, W+6): image rows i-3..i-1
        out = F.conv2d(above, self.w0_above, self.b0)  # (n, 2h, 1, W)
        self.row0.copy_(out[:, :, 0].transpose(1, 2))

    def input_features(self, i: int, j: int, out: Tensor | None = None) -> Tensor:
        patch = at(self.canvas, 1, i + 3)[:, j:j + 4].reshape(self.n, -1)  # (n, 4C): columns j-3..j
        return into(torch.addmm, at(self.row0, 1, j), patch, self.w0_row, out=out)  # (n, 2h)

    def head(self, x: Tensor) -> Tensor:
        y = torch.addmm(self.head1_b, x.relu(), self.head1).relu_()
        logits = torch.addmm(self.head2_b, y, self.head2)  # (n, C*K)
        return logits.view(self.n, self.channels, self.k)

    def start_row(self, i: int) -> None:
        self.start_row_input(i)
        self.layers.start_row(i)

    def pixel(self, i: int, j: int) -> Tensor:
        """Logits (n, C, K) of pixel (i, j), every pixel before it (and its channels before the
        one being drawn) already set."""
        steps, num = self.layers, self.model.config.num_layers
        x = self.input_features(i, j, out=steps.input_at(0, j))
        for layer in range(num):
            h = steps.step(layer, j)
            # x + residual(h) is the next layer's input, written straight into its buffer
            out = steps.input_at(layer + 1, j) if layer + 1 < num else self.top
            into(torch.add, torch.addmm(self.res_b[layer], h, self.res_w[layer]), x, out=out)
            x = out
        return self.head(x)

    def end_pixel(self, j: int) -> None:
        pass  # the layers' steppers advance within pixel()

    def end_row(self, i: int) -> None:
        self.layers.end_row(i)
