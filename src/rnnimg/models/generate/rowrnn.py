"""``rowrnn``: the seed article's Keras example made into an image generator.

The rows of an image are the time steps. At step t the recurrent layer reads row t-1 (a start flag
stands in for row -1) and a dense layer predicts every pixel of row t: a softmax over ``levels``
intensity levels per pixel (the article: LSTM 128, dropout 0.2, dense softmax, Adam and
cross-entropy), or a Bernoulli logit on binarized data. The cell can be ``rnn`` (the textbook
equations of :class:`rnnimg.nn.RNN`), ``lstm`` or ``gru``.

Limitation, by construction: the pixels *within* a row are independent given the rows above, so
the model cannot coordinate neighbours in one row (strokes look speckled at high temperature).
PixelRNN (``pixelrnn``) removes this by conditioning every pixel on all earlier pixels.

Departures from the article: the article classifies MNIST digits from rows; here the same stack
predicts the next row. A start flag and an optional label embedding are appended to each step's
input, so the first row and class-conditional generation are well defined.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnimg.models.generate.base import ImageGenerator, check_generator_config, uniforms
from rnnimg.models.registry import register_model
from rnnimg.nn import RECURRENT_KINDS, make_recurrent


@dataclass
class RowRNNConfig:
    image_size: int = 28  # square images, side in pixels
    channels: int = 1  # 1 (grey) or 3 (colour)
    cell: str = "lstm"  # "rnn" | "lstm" | "gru"
    hidden_size: int = 128  # recurrent units
    num_layers: int = 1  # stacked recurrent layers
    dropout: float = 0.2  # dropout on the recurrent output, as in the article
    output: str = "categorical"  # "categorical" (softmax over levels) | "bernoulli" (binary data)
    levels: int = 256  # intensity levels of the softmax (categorical output only)
    binarization: str = "fixed"  # "fixed" | "dynamic" binarization of the data (bernoulli only)
    num_classes: int = 0  # > 0 adds a label embedding for class-conditional generation
    label_dim: int = 16  # size of that embedding

    def __post_init__(self):
        check_generator_config(self)
        if self.cell not in RECURRENT_KINDS:
            raise ValueError(f"cell must be one of {RECURRENT_KINDS}, got {self.cell!r}")
        for name in ("hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register_model("rowrnn")
class RowRNN(ImageGenerator):
    config_class = RowRNNConfig
    presets = {
        "debug": dict(hidden_size=32, output="bernoulli", dropout=0.0),
        "mnist": dict(),  # the article: LSTM 128, dropout 0.2, 256-way softmax, 28x28
        "binarized-mnist": dict(output="bernoulli"),
        "cifar10": dict(image_size=32, channels=3, hidden_size=512),
    }

    def __init__(self, config: RowRNNConfig) -> None:
        super().__init__(config)
        c = config
        self.row_dim = c.channels * c.image_size  # one row, all channels, flattened
        self.k = c.levels if c.output == "categorical" else 1
        in_dim = self.row_dim + 1 + (c.label_dim if c.num_classes else 0)
        self.label_embedding = nn.Embedding(c.num_classes, c.label_dim) if c.num_classes else None
        self.rnn = make_recurrent(c.cell, in_dim, c.hidden_size, c.num_layers)
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.hidden_size, self.row_dim * self.k)

    # --- network ------------------------------------------------------------------------------
    def _step_inputs(self, prev_rows: Tensor, first: Tensor, label: Tensor | None) -> Tensor:
        """prev_rows: (B, T, C*W) in [0, 1]; first: (T,) flags. Returns (B, T, in_dim)."""
        b, t, _ = prev_rows.shape
        parts = [prev_rows * 2 - 1, first.view(1, t, 1).expand(b, t, 1)]
        if self.label_embedding is not None and label is not None:
            parts.append(self.label_embedding(label).unsqueeze(1).expand(b, t, -1))
        elif self.label_embedding is not None:  # unconditional use of a conditional model
            parts.append(prev_rows.new_zeros(b, t, self.config.label_dim))
        return torch.cat(parts, dim=-1)

    def _logits_from_hidden(self, hidden: Tensor) -> Tensor:
        """(B, T, hidden) -> logits (B, C, K, T, W) (K dropped for Bernoulli)."""
        c = self.config
        b, t, _ = hidden.shape
        out = self.head(self.dropout(hidden)).view(b, t, c.channels, c.image_size, self.k)
        out = out.permute(0, 2, 4, 1, 3)  # (B, C, K, T, W)
        return out[:, :, 0] if c.output == "bernoulli" else out

    def forward(self, image: Tensor, label: Tensor | None = None) -> Tensor:
        """Per-pixel logits: (B, C, K, H, W) for a softmax, (B, C, H, W) for Bernoulli.

        The logits of row r depend only on rows < r (and the label).
        """
        b, ch, h, w = image.shape
        rows = image.permute(0, 2, 1, 3).reshape(b, h, ch * w)  # (B, H, C*W)
        prev = torch.cat([rows.new_zeros(b, 1, ch * w), rows[:, :-1]], dim=1)  # row t-1 at step t
        first = torch.zeros(h, device=image.device, dtype=image.dtype)
        first[0] = 1
        hidden, _ = self.rnn(self._step_inputs(prev, first, label))
        return self._logits_from_hidden(hidden)

    # --- sampling -----------------------------------------------------------------------------
    @torch.inference_mode()
    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` images row by row, carrying the recurrent state (one step per row).

        Args:
            n: number of images.
            label: class index (int or (n,) tensor) for a conditional model.
            text: unsupported by this model (must be None).
            temperature: logits are divided by it; > 0.
            generator: a ``torch.Generator`` on the model's device or on the CPU, for
                reproducible draws.

        Returns:
            (n, C, H, W) in [0, 1].
        """
        label = self.check_sample_args(n, label, text, temperature)
        c, dev = self.config, self.device
        rows = torch.zeros(n, c.image_size, self.row_dim, device=dev)
        prev = torch.zeros(n, 1, self.row_dim, device=dev)
        state = None
        for t in range(c.image_size):
            first = torch.full((1,), float(t == 0), device=dev)
            hidden, state = self.rnn(self._step_inputs(prev, first, label), state)
            logits = self._logits_from_hidden(hidden)[:, :, ..., 0, :] / temperature  # row t
            u = uniforms(logits.shape[:2] + logits.shape[-1:] if c.output == "categorical"
                         else logits.shape, generator, dev)  # (n, C, W)
            if c.output == "bernoulli":
                values = (u < torch.sigmoid(logits)).float()  # (n, C, W)
            else:
                cdf = logits.softmax(dim=2).cumsum(dim=2)  # (n, C, K, W)
                level = (cdf < u.unsqueeze(2)).sum(dim=2).clamp(max=c.levels - 1)
                values = level.float() / (c.levels - 1)  # (n, C, W)
            prev = values.reshape(n, 1, self.row_dim)  # (n, 1, C*W) in the forward layout
            rows[:, t] = prev[:, 0]
        return rows.view(n, c.image_size, c.channels, c.image_size).permute(0, 2, 1, 3)
