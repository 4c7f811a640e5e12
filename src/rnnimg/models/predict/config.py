"""The configuration every frame predictor shares: :class:`FramePredictorConfig`, its checks, and
the scheduled-sampling schedules that :class:`rnnimg.models.predict.base.FramePredictor` draws its
training truth masks from.

:class:`FramePredictorConfig` holds the fields every frame predictor shares, among them the three
training options both ``convlstm`` and ``predrnn`` take from here (one implementation):

- ``sampling``: what a training clip reads after the context. ``"none"``: its own predictions from
  step 0 on, exactly as at test time. ``"scheduled"`` (PredRNN; OpenSTL): the true frame with
  probability eta = max(0, sampling_start - sampling_decay * step), drawn per (clip, step).
  ``"reverse"`` (PredRNN-V2): see :func:`reverse_schedule`. The step comes from the trainer
  through :meth:`rnnimg.models.predict.base.FramePredictor.set_training_step` or from ``batch["step"]``.
- ``output``: how the head's values become a frame, see :func:`rnnimg.nn.to_frame_range`:
  ``"clamp"`` (straight-through clamp), ``"sigmoid"``, or ``"linear"`` (raw in training, fed back
  unclipped during the training rollout as OpenSTL does; clipped to [0, 1] in eval mode).
- ``loss``: ``"mse"`` or ``"mse+l1"``, see :meth:`rnnimg.models.predict.base.FramePredictor.frame_loss`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnimg.nn.checks import check_at_least, check_kernel_size
from rnnimg.nn.patching import FRAME_OUTPUTS

SAMPLING_KINDS = ("none", "scheduled", "reverse")
LOSS_KINDS = ("mse", "mse+l1")


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
class FramePredictorConfig:
    """The fields every frame predictor's config shares (a subclass adds its network's fields and
    may change a default, as ``predrnn`` does for ``sampling``)."""

    frame_size: int = 64  # square frames, side in pixels (any size: padded to a multiple of patch)
    channels: int = 1  # channels per frame
    context: int = 10  # frames given before the prediction starts
    horizon: int = 10  # frames predicted in training (predict() takes any horizon)
    patch: int = 4  # space-to-depth patch side (1 = no patching)
    output: str = "clamp"  # "clamp" (straight-through) | "sigmoid" | "linear" (raw in training)
    loss: str = "mse"  # "mse" | "mse+l1" (MSE plus mean absolute error, weight 1 each)
    sampling: str = "none"  # after the context: "none" (own predictions) | "scheduled" | "reverse"
    sampling_start: float = 1.0  # eta at iteration 0 ("scheduled")
    sampling_decay: float = 2e-5  # eta falls by this much per iteration ("scheduled")
    reverse_start: int = 25_000  # iteration where the reverse schedule starts moving
    reverse_end: int = 50_000  # iteration where it reaches r_eta = 1, eta = 0
    reverse_alpha: float = 5_000.0  # time constant of r_eta's exponential ramp
    grad_checkpoint: bool = False  # recompute each step in backward (less memory, more time)
    tbptt: int = 0  # detach the state every tbptt steps (truncated BPTT); 0 = full BPTT

    def __post_init__(self):
        check_frame_config(self)


# The ``debug`` preset of the stacked convolutional predictors (convlstm, predrnn): seconds per
# hundred steps on a CPU.
DEBUG_CONV_STACK = dict(frame_size=16, context=4, horizon=4, patch=2, hidden_size=16, num_layers=2,
                        kernel_size=3)


def check_conv_stack_config(config: Any) -> None:
    """Validate ``hidden_size``, ``num_layers`` and ``kernel_size`` of a stacked convolutional
    recurrent predictor (convlstm, predrnn); raises ValueError naming the field."""
    check_at_least(config, 1, "hidden_size", "num_layers")
    check_kernel_size(config.kernel_size)


def check_frame_config(config: Any) -> None:
    """Validate the fields of :class:`FramePredictorConfig` (raises ValueError naming the field)."""
    for name, kinds in (("output", FRAME_OUTPUTS), ("loss", LOSS_KINDS), ("sampling", SAMPLING_KINDS)):
        if getattr(config, name) not in kinds:
            raise ValueError(f"{name} must be one of {kinds}, got {getattr(config, name)!r}")
    for name in ("frame_size", "channels", "context", "horizon", "patch"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.tbptt < 0:
        raise ValueError(f"tbptt must be >= 0 (0 = full backpropagation), got {config.tbptt}")
    if not 0.0 <= config.sampling_start <= 1.0:
        raise ValueError(f"sampling_start must be in [0, 1], got {config.sampling_start}")
    if config.sampling_decay < 0:
        raise ValueError(f"sampling_decay must be >= 0, got {config.sampling_decay}")
    if not 0 <= config.reverse_start < config.reverse_end:
        raise ValueError(f"need 0 <= reverse_start < reverse_end, got {config.reverse_start}, "
                         f"{config.reverse_end}")
    if config.reverse_alpha <= 0:
        raise ValueError(f"reverse_alpha must be > 0, got {config.reverse_alpha}")
