"""``predrnn``: next-frame prediction with spatiotemporal LSTMs and a zigzag memory.

Wang et al. 2017, "PredRNN: Recurrent Neural Networks for Predictive Learning using Spatiotemporal
LSTMs" (NeurIPS), and Wang et al. 2022, "PredRNN: A Recurrent Neural Network for Spatiotemporal
Predictive Learning" (TPAMI; PredRNN-V2). A stack of :class:`rnnimg.nn.SpatioTemporalLSTMCell` s
reads each frame as space-to-depth patches. Every layer keeps its own h and temporal memory c; the
spatiotemporal memory m climbs the layers at each step and goes from the top layer at step t-1 to
the bottom layer at step t (the zigzag). A 1x1 convolution of the top h gives the next frame's
patches, mapped to [0, 1] by a clamp with a straight-through gradient (``output="clamp"``), a
sigmoid, or ``"linear"`` (raw in training, as the official code; clipped in eval mode); see
:func:`rnnimg.nn.to_frame_range`.

Training reads, at every step after the context, either the true frame or the model's own previous
prediction, drawn per (clip, step) from Bernoulli(eta) on the model's device (scheduled sampling;
one implementation in :mod:`rnnimg.models.predict.base`, which ``convlstm`` shares):

- ``sampling="scheduled"`` (PredRNN): eta = max(0, 1 - 2e-5 * step), so from iteration 50,000 on
  the model trains exactly as it is tested. The context steps always read the truth.
- ``sampling="reverse"`` (PredRNN-V2's reverse scheduled sampling): the context steps after the
  first read the truth with probability r_eta, which ramps from 0.5 to 1 (exponentially between
  iterations 25,000 and 50,000), while the steps after the context use eta falling linearly from
  0.5 to 0 over the same iterations. See :func:`reverse_schedule`.
- ``sampling="none"``: own predictions after the context from the start (``convlstm``'s default).

**The iteration count** comes from the trainer through ``set_training_step`` (called
before every training step with the number of optimizer steps so far; it is not saved in
checkpoints, so a resumed run must call it again), or per batch as ``batch["step"]`` (an int or a
0-d tensor), which takes precedence. In eval mode (validation, ``predict``) the model always feeds
back its own predictions.

Loss: the MSE (or, with ``loss="mse+l1"``, MSE + L1) of every next-frame prediction, plus, when
``decouple_beta`` > 0, PredRNN-V2's decoupling loss: beta times the mean |cosine similarity|
between the (1x1-adapted) increments of c and of m, per channel over positions, averaged over
layers and steps (training mode only).

Departures: the output is clamped to [0, 1] by default (the official code's is linear:
``output="linear"``); forget biases are learned, starting at 1, instead of a constant +1; the
output gate's memory term is a convolution over [c, m] as in the official code rather than the
paper's Hadamard product; no layer norm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.predict.base import FramePredictor
from rnnimg.models.predict.config import (
    DEBUG_CONV_STACK,
    FramePredictorConfig,
    check_conv_stack_config,
)
from rnnimg.models.registry import register_model
from rnnimg.nn import SpatioTemporalLSTMCell, space_to_depth
from rnnimg.nn.checks import check_at_least


@dataclass
class PredRNNConfig(FramePredictorConfig):
    # frame_size, channels, context, horizon, patch, output, loss, the sampling schedule's fields,
    # grad_checkpoint, tbptt: FramePredictorConfig
    sampling: str = "scheduled"  # "scheduled" (PredRNN) | "reverse" (PredRNN-V2) | "none"
    hidden_size: int = 128  # channels of h, c and m in every layer
    num_layers: int = 4  # stacked ST-LSTM layers
    kernel_size: int = 5  # odd side of the gate convolutions
    forget_bias: float = 1.0  # initial bias of both forget gates
    decouple_beta: float = 0.0  # weight of PredRNN-V2's decoupling loss (V2: 0.1; 0 = off)

    def __post_init__(self):
        super().__post_init__()
        check_conv_stack_config(self)
        check_at_least(self, 0, "decouple_beta")


@register_model("predrnn")
class PredRNN(FramePredictor):
    config_class = PredRNNConfig
    presets = {
        "debug": dict(DEBUG_CONV_STACK),
        # The paper's / OpenSTL's Moving MNIST setting: 4 x 128, kernel 5, patch 4, 10 -> 10,
        # scheduled sampling (eta 0 from step 50,000), clamped head, MSE: issue 12's ablation at
        # equal CPU budget (docs/benchmarks.md) found reverse sampling level with it at equal
        # steps (one seed), and no better head or loss; "mmnist-v2" has the reverse schedule.
        "mmnist": dict(sampling="scheduled", sampling_decay=2e-5, output="clamp", loss="mse"),
        "mmnist-v2": dict(sampling="reverse", decouple_beta=0.1),
    }

    def __init__(self, config: PredRNNConfig) -> None:
        super().__init__(config)
        c = config
        self.build_patch_stack(lambda inputs: SpatioTemporalLSTMCell(
            inputs, c.hidden_size, c.kernel_size, forget_bias=c.forget_bias))
        # V2's adapter exists only when its loss is on: an unused parameter would break DDP.
        self.adapter = nn.Conv2d(c.hidden_size, c.hidden_size, 1, bias=False) if c.decouple_beta else None

    # --- network ------------------------------------------------------------------------------
    def init_state(self, batch_size: int) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """([h] per layer, [c] per layer, m), each map (B, hidden, grid, grid), zeros."""
        p = next(self.parameters())
        zeros = [self.cells[0].init_state(batch_size, self.grid, self.grid, p.device, p.dtype)
                 for _ in range(2 * len(self.cells) + 1)]
        n = len(self.cells)
        return zeros[:n], zeros[n:2 * n], zeros[-1]

    def forward_step(self, frame: Tensor, state: tuple) -> tuple[Tensor, tuple, Tensor | None]:
        c = self.config
        hs, cs, m = state  # m is the top layer's memory from the previous step (the zigzag)
        x = space_to_depth(frame, c.patch)  # (B, C*p*p, grid, grid)
        new_h, new_c, decouple = [], [], []
        for layer, cell in enumerate(self.cells):
            h, cell_c, m, delta_c, delta_m = cell(x, hs[layer], cs[layer], m)
            new_h.append(h)
            new_c.append(cell_c)
            x = h
            if self.adapter is not None and self.training:
                a_c = self.adapter(delta_c).flatten(2)  # (B, hidden, grid*grid)
                a_m = self.adapter(delta_m).flatten(2)
                decouple.append(F.cosine_similarity(a_c, a_m, dim=2).abs().mean())
        patches = self.head(x)  # (B, C*p*p, grid, grid)
        frame_next = self.to_frames(patches)
        aux = c.decouple_beta * torch.stack(decouple).mean() if decouple else None
        return frame_next, (new_h, new_c, m), aux
