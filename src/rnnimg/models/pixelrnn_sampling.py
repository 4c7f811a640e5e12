"""Cached sampling for ``pixelrnn``: each new pixel costs constant work, not a forward pass.

The naive sampler (``PixelRNN.sample_naive``) runs the whole network once per pixel and channel:
O((HW)^2) work. Here the recurrent states are carried in raster order instead:

Row LSTM. At the start of row i, the state-to-state term K_ss (*) h_{i-1} of every layer and the
part of the 7x7 input convolution that reads rows i-3..i-1 are computed for the whole row (the
previous row is final). Each pixel then adds, per layer, the masked 1 x k input-to-state taps over
the current row (columns j-k//2..j of the layer's input, already computed) and runs the cell.

Diagonal BiLSTM. In image coordinates the left-to-right scan at (i, j) needs the cell above
(i-1, j) and the cell to the left (i, j-1): both are known in raster order, so each pixel runs one
cell per layer (the "above" half of K_ss is done once per row). The skewed cells left of column 0
are not zeros: they carry K_ss's bias, so their states are computed once
(``DiagonalLSTM.padded_states``) and used as the left neighbour of column 0. The right-to-left
scan only ever reaches pixel (i, j) from row i-1 (its output is shifted down one row), and row
i-1's scan needs all of row i-1 of every layer's input: so when a row is finished, the
right-to-left scans of that row run for all layers at once (a batched matmul across layers per
column), and their contribution to the residual stream of the next row is precomputed.

Colour: a pixel is visited once per channel; at the pass for channel c, everything the logits of c
depend on is final (mask A and mask B), and the last pass leaves the states final.

Both samplers draw the same uniforms (one per pixel and channel, in raster order) and invert the
same CDF, so they give identical samples; the tests compare the logits too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class _Common:
    """The 7x7 mask-A input convolution and the output head, one pixel at a time."""

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
        self.head1 = model.head_hidden.masked_weight()[:, :, 0, 0].t().contiguous()
        self.head1_b = model.head_hidden.bias
        self.head2 = model.head_out.masked_weight()[:, :, 0, 0].t().contiguous()
        self.head2_b = model.head_out.bias
        self.k = model.k
        self.biases = model.gate_biases(label)  # per layer (n, gates) or None

    def set_pixel(self, i: int, j: int, ch: int, value: Tensor) -> None:
        self.canvas[:, i + 3, j + 3, ch] = value * 2 - 1

    def start_row_input(self, i: int) -> None:
        above = self.canvas[:, i:i + 3].permute(0, 3, 1, 2)  # (n, C, 3, W+6): image rows i-3..i-1
        out = F.conv2d(above, self.w0_above, self.b0)  # (n, 2h, 1, W)
        self.row0.copy_(out[:, :, 0].transpose(1, 2))

    def input_features(self, i: int, j: int) -> Tensor:
        patch = self.canvas[:, i + 3, j:j + 4].reshape(self.n, -1)  # (n, 4C): columns j-3..j
        return torch.addmm(self.row0[:, j], patch, self.w0_row)  # (n, 2h)

    def head(self, x: Tensor) -> Tensor:
        y = torch.addmm(self.head1_b, x.relu(), self.head1).relu_()
        logits = torch.addmm(self.head2_b, y, self.head2)  # (n, C*K)
        return logits.view(self.n, self.channels, self.k)


def _cell(gates: Tensor, c_prev: Tensor, h_out: Tensor, c_out: Tensor, hidden: int) -> None:
    """LSTM update from [i, f, o, g] pre-activations (..., 4h), written into h_out and c_out."""
    i, f, o = torch.sigmoid(gates[..., :3 * hidden]).chunk(3, dim=-1)
    g = torch.tanh(gates[..., 3 * hidden:])
    torch.addcmul(f * c_prev, i, g, out=c_out)
    torch.mul(o, torch.tanh(c_out), out=h_out)


class RowSampler(_Common):
    """Row LSTM stack, one pixel at a time: K_ss once per row, K_is's taps and the cell per pixel."""

    def __init__(self, model, n: int, label: Tensor | None) -> None:
        super().__init__(model, n, label)
        h, w, L = self.hidden, self.width, self.num_layers
        ref = self.row0
        self.is_w, self.pre_bias, self.res_w, self.res_b = [], [], [], []
        for layer, residual, bias in zip(model.layers, model.residuals, self.biases):
            wk = layer.input_to_state.masked_weight()[:, :, 0]  # (4h, 2h, k)
            self.r = wk.shape[-1] // 2  # taps left of the centre; right taps are masked out
            self.is_w.append(wk[:, :, :self.r + 1].permute(2, 1, 0).reshape(-1, 4 * h).contiguous())
            b = layer.input_to_state.bias.expand(n, -1)
            self.pre_bias.append((b if bias is None else b + bias).unsqueeze(1))  # (n, 1, 4h)
            self.res_w.append(residual.masked_weight()[:, :, 0, 0].t().contiguous())
            self.res_b.append(residual.bias)
        # per layer: its input row (left-padded by r zero columns), gates pre-computed for the row,
        # and h, c of the previous and the current row
        self.x = ref.new_zeros(L + 1, n, w + self.r, 2 * h)
        self.pre = ref.new_zeros(L, n, w, 4 * h)
        self.h_prev, self.c_prev = ref.new_zeros(L, n, w, h), ref.new_zeros(L, n, w, h)
        self.h_cur, self.c_cur = ref.new_zeros(L, n, w, h), ref.new_zeros(L, n, w, h)

    def start_row(self, i: int) -> None:
        self.start_row_input(i)
        for layer in range(self.num_layers):
            ss = self.model.layers[layer].state_to_state_row(self.h_prev[layer])  # (n, W, 4h)
            torch.add(ss, self.pre_bias[layer], out=self.pre[layer])

    def pixel(self, i: int, j: int) -> Tensor:
        r, h = self.r, self.hidden
        x = self.x
        x[0, :, j + r] = self.input_features(i, j)
        for layer in range(self.num_layers):
            window = x[layer, :, j:j + r + 1].reshape(self.n, -1)  # (n, (r+1)*2h)
            gates = torch.addmm(self.pre[layer, :, j], window, self.is_w[layer])
            h_new, c_new = self.h_cur[layer, :, j], self.c_cur[layer, :, j]
            _cell(gates, self.c_prev[layer, :, j], h_new, c_new, h)
            torch.add(torch.addmm(self.res_b[layer], h_new, self.res_w[layer]), x[layer, :, j + r],
                      out=x[layer + 1, :, j + r])
        return self.head(x[-1, :, j + r])

    def end_row(self, i: int) -> None:
        self.h_prev, self.h_cur = self.h_cur, self.h_prev
        self.c_prev, self.c_cur = self.c_cur, self.c_prev


class DiagonalSampler(_Common):
    """Diagonal BiLSTM stack, one pixel at a time: the left-to-right cell per pixel, the
    right-to-left scans of a finished row for all layers at once."""

    def __init__(self, model, n: int, label: Tensor | None) -> None:
        super().__init__(model, n, label)
        h, w, L, H = self.hidden, self.width, self.num_layers, self.height
        ref = self.row0

        def packed(lstm):
            wi = lstm.input_to_state.masked_weight()[:, :, 0, 0].t()  # (2h, 4h)
            ws = lstm.state_to_state.weight  # (4h, h, 2): [above, left]
            bias = lstm.input_to_state.bias + lstm.state_to_state.bias
            return wi, ws[:, :, 0].t(), ws[:, :, 1].t(), bias

        fwd = [packed(layer.forward_lstm) for layer in model.layers]
        bwd = [packed(layer.backward_lstm) for layer in model.layers]
        self.f_in = [p[0].contiguous() for p in fwd]
        self.f_above = torch.stack([p[1] for p in fwd])  # (L, h, 4h)
        self.f_left = [p[2].contiguous() for p in fwd]
        self.b_in_above = torch.stack([torch.cat([p[0], p[1]]) for p in bwd])  # (L, 3h, 4h)
        self.b_left = torch.stack([p[2] for p in bwd])  # (L, h, 4h)
        f_bias, b_bias = [], []
        for (*_, fb), (*_, bb), bias in zip(fwd, bwd, self.biases):
            lf, lb = (None, None) if bias is None else bias.chunk(2, dim=1)
            f_bias.append(fb.expand(n, -1) if lf is None else fb + lf)
            b_bias.append(bb.expand(n, -1) if lb is None else bb + lb)
        self.f_bias = torch.stack(f_bias).unsqueeze(2)  # (L, n, 1, 4h)
        self.b_bias = torch.stack(b_bias).unsqueeze(2)
        self.res_w = torch.stack([r.masked_weight()[:, :, 0, 0].t() for r in model.residuals])
        self.res_b = torch.stack([r.bias for r in model.residuals]).view(L, 1, 1, 2 * h)
        self.res_w_list = [rw.contiguous() for rw in self.res_w]
        # left neighbours of column 0 (left to right) and of column W-1 (right to left), per row
        pads_f = [layer.forward_lstm.padded_states(H) for layer in model.layers]
        pads_b = [layer.backward_lstm.padded_states(H) for layer in model.layers]
        self.pad_hf = torch.stack([p[0] for p in pads_f])  # (L, H, h)
        self.pad_cf = torch.stack([p[1] for p in pads_f])
        self.pad_hb = torch.stack([p[0] for p in pads_b])
        self.pad_cb = torch.stack([p[1] for p in pads_b])
        # state: x = each layer's input row (and the output); hf, cf = left-to-right states of the
        # current row, slot 0 the padded left neighbour; hb = right-to-left states of the last
        # finished row; pre_f = gates of the row from above + biases; pre_res = residual from the
        # right-to-left states of the row above + the residual bias
        self.x = ref.new_zeros(L + 1, n, w, 2 * h)
        self.hf, self.cf = ref.new_zeros(L, n, w + 1, h), ref.new_zeros(L, n, w + 1, h)
        self.hb = ref.new_zeros(L, n, w, h)
        self.cb = ref.new_zeros(L, n, w, h)
        self.pre_f = ref.new_zeros(L, n, w, 4 * h)
        self.pre_res = ref.new_zeros(L, n, w, 2 * h)
        self.pre_b = ref.new_zeros(L, n, w, 4 * h)
        self._rows_done = 0

    def start_row(self, i: int) -> None:
        L, n, w, h = self.num_layers, self.n, self.width, self.hidden
        self.start_row_input(i)
        above = self.hf[:, :, 1:].reshape(L, n * w, h) if i else self.hf.new_zeros(L, n * w, h)
        torch.add(torch.bmm(above, self.f_above).view(L, n, w, 4 * h), self.f_bias, out=self.pre_f)
        hb = self.hb.reshape(L, n * w, h)  # row i-1 (zeros for i = 0), shifted down onto row i
        torch.add(torch.bmm(hb, self.res_w).view(L, n, w, 2 * h), self.res_b, out=self.pre_res)
        self.hf[:, :, 0] = self.pad_hf[:, i].unsqueeze(1)
        self.cf[:, :, 0] = self.pad_cf[:, i].unsqueeze(1)

    def pixel(self, i: int, j: int) -> Tensor:
        h, x = self.hidden, self.x
        x[0, :, j] = self.input_features(i, j)
        for layer in range(self.num_layers):
            xl = x[layer, :, j]
            gates = torch.addmm(self.pre_f[layer, :, j], xl, self.f_in[layer])
            gates.addmm_(self.hf[layer, :, j], self.f_left[layer])
            h_new = self.hf[layer, :, j + 1]
            _cell(gates, self.cf[layer, :, j], h_new, self.cf[layer, :, j + 1], h)
            torch.add(torch.addmm(self.pre_res[layer, :, j], h_new, self.res_w_list[layer]), xl,
                      out=x[layer + 1, :, j])
        return self.head(x[-1, :, j])

    def end_row(self, i: int) -> None:
        """Right-to-left scans of row i, every layer at once: (L, n, ...) batched matmuls."""
        L, n, w, h = self.num_layers, self.n, self.width, self.hidden
        inp = torch.cat([self.x[:L], self.hb], dim=-1).view(L, n * w, 3 * h)  # [x, h above]
        torch.add(torch.bmm(inp, self.b_in_above).view(L, n, w, 4 * h), self.b_bias, out=self.pre_b)
        h_left = self.pad_hb[:, i].unsqueeze(1).expand(L, n, h)
        c_left = self.pad_cb[:, i].unsqueeze(1).expand(L, n, h)
        for j in range(w - 1, -1, -1):  # right to left; the left neighbour is column j + 1
            gates = torch.baddbmm(self.pre_b[:, :, j], h_left, self.b_left)  # (L, n, 4h)
            _cell(gates, c_left, self.hb[:, :, j], self.cb[:, :, j], h)
            h_left, c_left = self.hb[:, :, j], self.cb[:, :, j]


def generate_cached(model, canvas: Tensor, known: Tensor | None, label: Tensor | None,
                    temperature: float, u: Tensor) -> Tensor:
    """Fill ``canvas`` (n, C, H, W) in raster order, keeping pixels where ``known`` (n, 1, H, W).

    ``u`` (H, W, C, n) holds the uniforms; ``canvas`` is filled in place and returned.
    """
    n, channels, height, width = canvas.shape
    sampler_class = RowSampler if model.config.variant == "row" else DiagonalSampler
    sampler = sampler_class(model, n, label)
    bernoulli = model.config.output == "bernoulli"
    for i in range(height):
        sampler.start_row(i)
        for j in range(width):
            for ch in range(channels):
                logits = sampler.pixel(i, j)[:, ch]  # (n, K)
                value = model.draw(logits[:, 0] if bernoulli else logits, u[i, j, ch], temperature)
                if known is not None:
                    value = torch.where(known[:, 0, i, j], canvas[:, ch, i, j], value)
                canvas[:, ch, i, j] = value
                sampler.set_pixel(i, j, ch, value)
        sampler.end_row(i)
    return canvas


@torch.inference_mode()
def cached_logits(model, image: Tensor, label: Tensor | None = None) -> Tensor:
    """The logits of ``image`` computed by the cached sampler's step functions, as ``model(image)``
    lays them out. For tests: they must equal the full forward pass."""
    n, channels, height, width = image.shape
    sampler_class = RowSampler if model.config.variant == "row" else DiagonalSampler
    sampler = sampler_class(model, n, label)
    out = image.new_zeros(n, channels, model.k, height, width)
    for i in range(height):
        sampler.start_row(i)
        for j in range(width):
            for ch in range(channels):
                out[:, ch, :, i, j] = sampler.pixel(i, j)[:, ch]
                sampler.set_pixel(i, j, ch, image[:, ch, i, j])
        sampler.end_row(i)
    return out[:, :, 0] if model.config.output == "bernoulli" else out
