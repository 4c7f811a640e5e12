"""``predrnn``: next-frame prediction with spatiotemporal LSTMs and a zigzag memory.

Wang et al. 2017, "PredRNN: Recurrent Neural Networks for Predictive Learning using Spatiotemporal
LSTMs" (NeurIPS), and Wang et al. 2022, "PredRNN: A Recurrent Neural Network for Spatiotemporal
Predictive Learning" (TPAMI; PredRNN-V2). A stack of :class:`rnnimg.nn.SpatioTemporalLSTMCell` s
reads each frame as space-to-depth patches. Every layer keeps its own h and temporal memory c; the
spatiotemporal memory m climbs the layers at each step and goes from the top layer at step t-1 to
the bottom layer at step t (the zigzag). A 1x1 convolution of the top h gives the next frame's
patches, mapped to [0, 1] by a clamp with a straight-through gradient (``output="clamp"``) or a
sigmoid (see :func:`rnnimg.nn.to_frame_range` for why the clamp is the default).

Training reads, at every step after the context, either the true frame or the model's own previous
prediction, drawn per (clip, step) from Bernoulli(eta) on the model's device (scheduled sampling):

- ``sampling="scheduled"`` (PredRNN): eta = max(0, 1 - 2e-5 * step), so from iteration 50,000 on
  the model trains exactly as it is tested. The context steps always read the truth.
- ``sampling="reverse"`` (PredRNN-V2's reverse scheduled sampling): the context steps after the
  first read the truth with probability r_eta, which ramps from 0.5 to 1 (exponentially between
  iterations 25,000 and 50,000), while the steps after the context use eta falling linearly from
  0.5 to 0 over the same iterations. See :func:`reverse_schedule`.
- ``sampling="none"``: own predictions after the context from the start (as ``convlstm``).

**The iteration count** comes from the trainer through :meth:`PredRNN.set_training_step` (called
before every training step with the number of optimizer steps so far; it is not saved in
checkpoints, so a resumed run must call it again), or per batch as ``batch["step"]`` (an int or a
0-d tensor), which takes precedence. In eval mode (validation, ``predict``) the model always feeds
back its own predictions.

Loss: the MSE of every next-frame prediction, plus, when ``decouple_beta`` > 0, PredRNN-V2's
decoupling loss: beta times the mean |cosine similarity| between the (1x1-adapted) increments of c
and of m, per channel over positions, averaged over layers and steps (training mode only).

Departures: the output is clamped to [0, 1] (the official code's is linear); forget biases are
learned, starting at 1, instead of a constant +1; the output gate's memory term is a convolution
over [c, m] as in the official code rather than the paper's Hadamard product; no layer norm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.predictor import FramePredictor, check_conv_stack_config, check_frame_config
from rnnimg.models.registry import register_model
from rnnimg.nn import (
    SpatioTemporalLSTMCell,
    depth_to_space,
    patched_size,
    space_to_depth,
    to_frame_range,
)

SAMPLING_KINDS = ("scheduled", "reverse", "none")


def scheduled_sampling_eta(step: int, start: float = 1.0, decay: float = 2e-5) -> float:
    """PredRNN's probability of reading the true frame after the context at iteration ``step``.

    eta = max(0, start - decay * step): 1.0 at step 0, 0.5 at 25,000, 0 from 50,000 on.
    """
    return max(0.0, start - decay * step)


def reverse_schedule(step: int, start: int = 25_000, end: int = 50_000,
                     alpha: float = 5_000.0) -> tuple[float, float]:
    """PredRNN-V2's reverse scheduled sampling at iteration ``step``: (r_eta, eta).

    r_eta, the probability that a context step reads the true frame, is 0.5 before ``start``,
    1 - 0.5 exp(-(step - start) / alpha) up to ``end``, then 1. eta, the same probability for the
    steps after the context, is 0.5 before ``start``, falls linearly to 0 at ``end``, then stays 0.
    (The official code's defaults: 25,000, 50,000, 5,000.)
    """
    if step < start:
        return 0.5, 0.5
    if step < end:
        return (1.0 - 0.5 * math.exp(-(step - start) / alpha),
                0.5 - 0.5 * (step - start) / (end - start))
    return 1.0, 0.0


@dataclass
class PredRNNConfig:
    frame_size: int = 64  # square frames, side in pixels (any size: padded to a multiple of patch)
    channels: int = 1  # channels per frame
    context: int = 10  # frames given before the prediction starts
    horizon: int = 10  # frames predicted in training (predict() takes any horizon)
    patch: int = 4  # space-to-depth patch side (1 = no patching)
    output: str = "clamp"  # "clamp" (to [0, 1], straight-through gradient) | "sigmoid"
    hidden_size: int = 128  # channels of h, c and m in every layer
    num_layers: int = 4  # stacked ST-LSTM layers
    kernel_size: int = 5  # odd side of the gate convolutions
    forget_bias: float = 1.0  # initial bias of both forget gates
    sampling: str = "scheduled"  # "scheduled" (PredRNN) | "reverse" (PredRNN-V2) | "none"
    sampling_start: float = 1.0  # eta at iteration 0 ("scheduled")
    sampling_decay: float = 2e-5  # eta falls by this much per iteration ("scheduled")
    reverse_start: int = 25_000  # iteration where the reverse schedule starts moving
    reverse_end: int = 50_000  # iteration where it reaches r_eta = 1, eta = 0
    reverse_alpha: float = 5_000.0  # time constant of r_eta's exponential ramp
    decouple_beta: float = 0.0  # weight of PredRNN-V2's decoupling loss (V2: 0.1; 0 = off)
    grad_checkpoint: bool = False  # recompute each step in backward: ~32% less memory, ~1.3x time
    tbptt: int = 0  # detach the state every tbptt steps (truncated BPTT); 0 = full BPTT

    def __post_init__(self):
        check_frame_config(self)
        check_conv_stack_config(self)
        if self.sampling not in SAMPLING_KINDS:
            raise ValueError(f"sampling must be one of {SAMPLING_KINDS}, got {self.sampling!r}")
        if not 0.0 <= self.sampling_start <= 1.0:
            raise ValueError(f"sampling_start must be in [0, 1], got {self.sampling_start}")
        if self.sampling_decay < 0:
            raise ValueError(f"sampling_decay must be >= 0, got {self.sampling_decay}")
        if not 0 <= self.reverse_start < self.reverse_end:
            raise ValueError(f"need 0 <= reverse_start < reverse_end, got {self.reverse_start}, "
                             f"{self.reverse_end}")
        if self.reverse_alpha <= 0:
            raise ValueError(f"reverse_alpha must be > 0, got {self.reverse_alpha}")
        if self.decouple_beta < 0:
            raise ValueError(f"decouple_beta must be >= 0, got {self.decouple_beta}")


@register_model("predrnn")
class PredRNN(FramePredictor):
    config_class = PredRNNConfig
    presets = {
        "debug": dict(frame_size=16, context=4, horizon=4, patch=2, hidden_size=16, num_layers=2,
                      kernel_size=3),
        # The paper's / OpenSTL's Moving MNIST setting: 4 x 128, kernel 5, patch 4, 10 -> 10.
        "mmnist": dict(),
        "mmnist-v2": dict(sampling="reverse", decouple_beta=0.1),
    }
    # OpenSTL trains the mmnist model with Adam, lr 5e-4, batch 16.
    training_presets = {"debug": dict(lr=3e-3, batch_size=8), "mmnist": dict(lr=5e-4, batch_size=16),
                        "mmnist-v2": dict(lr=5e-4, batch_size=16)}
    # `rnnimg demo`: the debug stack on 32x32 Moving MNIST, 5 -> 5 frames, short epochs so that
    # validation (fixed clips of training digits) runs a few times; eta reaches 0 by step 400
    # (the paper's 2e-5 per step would keep the demo teacher-forced throughout).
    demo = dict(preset="debug", data="moving-mnist", max_steps=500, batch_size=8,
                overrides=dict(frame_size=32, patch=4, context=5, horizon=5, sampling_decay=2.5e-3),
                data_options=dict(train_clips=800, val_clips=64))
    # Shipped weights (scripts/train_pretrained.py): the same small stack and data as
    # convlstm-mmnist, half the steps (a PredRNN step costs about twice a ConvLSTM step on the CPU);
    # eta reaches 0 at step 200 of 300.
    pretrained = {"predrnn-mmnist": dict(
        preset="debug", data="moving-mnist", max_steps=300, batch_size=16, lr=2e-3,
        overrides=dict(frame_size=64, patch=8, context=10, horizon=10, hidden_size=32, num_layers=2,
                       kernel_size=3, sampling_decay=5e-3),
        data_options=dict(train_clips=4000, val_clips=64, test_clips=1000),
        evaluate=dict(batch_size=50))}

    def __init__(self, config: PredRNNConfig) -> None:
        super().__init__(config)
        c = config
        self.grid = patched_size(c.frame_size, c.patch)  # side of the patch grid
        patch_channels = c.channels * c.patch ** 2
        self.cells = nn.ModuleList(
            SpatioTemporalLSTMCell(patch_channels if layer == 0 else c.hidden_size, c.hidden_size,
                                   c.kernel_size, forget_bias=c.forget_bias)
            for layer in range(c.num_layers)
        )
        self.head = nn.Conv2d(c.hidden_size, patch_channels, 1)  # top h -> next frame's patches
        # V2's adapter exists only when its loss is on: an unused parameter would break DDP.
        self.adapter = nn.Conv2d(c.hidden_size, c.hidden_size, 1, bias=False) if c.decouple_beta else None
        self.iteration = 0  # optimizer steps so far, set by the trainer through set_training_step()

    def set_training_step(self, step: int) -> None:
        """The number of optimizer steps so far; drives the scheduled-sampling probabilities."""
        self.iteration = int(step)

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
        frame_next = to_frame_range(depth_to_space(patches, c.patch, c.frame_size, c.frame_size),
                                    c.output)
        aux = c.decouple_beta * torch.stack(decouple).mean() if decouple else None
        return frame_next, (new_h, new_c, m), aux

    # --- training -----------------------------------------------------------------------------
    def truth_mask(self, batch_size: int, length: int, step: int,
                   device: torch.device | None = None) -> Tensor | None:
        """(B, length-1) bool: which steps of a training clip read the true frame.

        ``None`` (context true, own predictions after it) in eval mode or with ``sampling="none"``.
        Drawn from the global RNG on ``device``.
        """
        c = self.config
        if not self.training or c.sampling == "none":
            return None
        t = torch.arange(length - 1, device=device)  # (T-1,) input step index
        u = torch.rand(batch_size, length - 1, device=device)  # one draw per (clip, step)
        if c.sampling == "scheduled":
            eta = scheduled_sampling_eta(step, c.sampling_start, c.sampling_decay)
            return (t < c.context) | (u < eta)
        r_eta, eta = reverse_schedule(step, c.reverse_start, c.reverse_end, c.reverse_alpha)
        return (t == 0) | torch.where(t < c.context, u < r_eta, u < eta)

    def forward(self, frames: Tensor, step: int | None = None) -> Tensor:
        """Next-frame predictions (B, T-1, C, H, W) of a clip (B, T, C, H, W) as in training
        (scheduled sampling in train mode); [:, t] depends on frames[:, :t+1] only."""
        step = self.iteration if step is None else step
        mask = self.truth_mask(frames.shape[0], frames.shape[1], step, frames.device)
        return self.rollout(frames, mask)[0]

    def training_truth_mask(self, batch: dict[str, Any]) -> tuple[Tensor | None, dict[str, float]]:
        """Scheduled sampling at iteration ``batch["step"]`` (or the trainer's step): the mask
        drawn by :meth:`truth_mask`, and the probabilities it was drawn with (``eta``, and
        ``r_eta`` for the reverse schedule) to log."""
        frames = batch["frames"]
        step = int(batch.get("step", self.iteration))
        mask = self.truth_mask(frames.shape[0], frames.shape[1], step, frames.device)
        c, schedule = self.config, {}
        if mask is not None and c.sampling == "scheduled":
            schedule["eta"] = scheduled_sampling_eta(step, c.sampling_start, c.sampling_decay)
        elif mask is not None:
            schedule["r_eta"], schedule["eta"] = reverse_schedule(step, c.reverse_start,
                                                                  c.reverse_end, c.reverse_alpha)
        return mask, schedule
