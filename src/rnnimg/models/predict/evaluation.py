"""Evaluation of a frame predictor (:class:`rnnimg.models.predict.base.FramePredictor`): the
per-time-step scores of the frames it predicts from the context alone, as additive statistics of a
split that the trainer's evaluator sums over batches and reduces once.
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from rnnimg.errors import InputError
from rnnimg.metrics import mae_per_frame, mse_per_frame, psnr, sample_statistics, ssim
from rnnimg.models.base import as_metric


@torch.no_grad()
def clip_statistics(model, batch: dict[str, Tensor], horizon: int | None = None,
                    samples: int | None = None) -> dict[str, Tensor]:
    """Sums over clips of the per-time-step scores of predicting frames
    context..context+horizon-1 from the first ``context`` frames only (own predictions fed
    back, as :meth:`FramePredictor.predict`): ``mse``, ``mae`` (summed over C, H, W), ``psnr`` and ``ssim``,
    each (horizon,), and the validation ``loss``. ``ssim`` is left out for frames smaller than
    its 11x11 window. :func:`reduce_clip_statistics` makes the means over clips.

    ``horizon`` (default: the config's) scores another number of predicted frames, e.g. a
    long-horizon curve of a model trained on 10 -> 10 (the clips must hold context + horizon
    frames).

    ``samples`` (``evaluate --samples N``): a stochastic model draws N futures per clip (from
    the global RNG, which ``evaluate`` seeds); the plain scores are then the mean of N (the
    expected score of one sample), ``best_*`` the best of N (per clip the sample whose mean
    over the frames scores best, as Denton & Fergus 2018 pick it), and ``diversity`` the mean
    over pairs of samples of their squared distance, summed over (C, H, W) like ``mse``. A
    deterministic model has one future whatever N is: best = mean, diversity 0, ``samples`` 1.

    Args:
        model: a :class:`rnnimg.models.predict.base.FramePredictor`.
        batch: ``frames`` (B, T, C, H, W) with T >= context + horizon.
    """
    c = model.config
    if horizon is None:
        horizon = c.horizon
    if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
        raise InputError("horizon", f"{{arg}} must be a whole number >= 1, got {horizon!r}.")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int)
                                or samples < 1):
        raise InputError("samples", f"{{arg}} must be a whole number >= 1, got {samples!r}.")
    frames = batch["frames"]
    model.check_frames(frames)
    if frames.shape[1] < c.context + horizon:
        raise InputError(
            "frames", f"clips have {frames.shape[1]} frames, but evaluation needs context + "
            f"horizon = {c.context + horizon}; load the data with {{arg}}={c.context + horizon}.")
    frames = frames[:, :c.context + horizon].to(model.device)
    n = frames.shape[0]
    target = frames[:, c.context:].float()
    if model.stochastic:
        # the validation loss on the clip length the model trains on (the bound needs truth)
        loss = model.loss({"frames": frames[:, :c.context + min(horizon, c.horizon)]}).loss
        seed = int(torch.randint(0, 2 ** 62, (1,)))  # from the global RNG: evaluate seeds it
        futures = model.predict(frames[:, :c.context], horizon, samples=samples or 1,
                               generator=torch.Generator().manual_seed(seed)).float()
    else:
        # rollout without a truth mask reads only the context and then its own predictions: the
        # same numbers as predict() (tested), and the validation loss comes with them.
        predictions, aux = model.rollout(frames)  # (B, T-1, C, H, W)
        loss = model.frame_loss(frames, predictions, aux).loss
        futures = predictions[:, c.context - 1:].float().unsqueeze(1)  # (B, 1, horizon, C, H, W)
    per_step = {"mse": mse_per_frame, "mae": mae_per_frame, "psnr": psnr}
    if min(target.shape[-2:]) >= 11:  # SSIM's gaussian window is 11x11
        per_step["ssim"] = ssim
    stats = {"loss": loss.detach().double().cpu() * n,
             "count": torch.tensor(float(n), dtype=torch.float64)}
    if samples is None:
        stats.update({f"{k}_per_step": fn(futures[:, 0], target).double().cpu() * n
                      for k, fn in per_step.items()})
    else:
        stats.update(sample_statistics(futures, target, "ssim" in per_step))
    return stats


def reduce_clip_statistics(stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
    """Means over clips: ``loss``, and for each score its mean over the predicted frames (the
    headline number papers report) and its ``*_per_step`` values."""
    count = stats["count"]
    out: dict[str, float | list[float]] = {"loss": as_metric(stats["loss"] / count)}
    for key, value in stats.items():
        if key.endswith("_per_step"):
            out[key.removesuffix("_per_step")] = as_metric((value / count).mean())
    if "samples" in stats:  # futures per clip (evaluate --samples)
        out["samples"] = as_metric(stats["samples"] / count)
    for key, value in stats.items():
        if key.endswith("_per_step"):
            out[key] = as_metric(value / count)
    return out
