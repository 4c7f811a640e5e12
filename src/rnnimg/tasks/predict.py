"""The ``predict`` task (``rnnimg predict``): continue a clip with the frames that come next.

Its inference function is :func:`predict_futures` (one clip in, one future or several sampled ones
out); its pictures put the true clip and the prediction side by side, as a strip and as an
animation. :func:`pad_truth` is how both the CLI and the web page show a clip that ends before the
horizon.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.errors import InputError
from rnnimg.limits import check_count, check_seed
from rnnimg.tasks.registry import Table, Task, assert_unit_range, register_task
from rnnimg.viz import comparison_frames, frames_strip, make_grid

# the stand-in for a true frame the clip does not have, and for the context in a prediction's row
GREY = 0.5


def pad_truth(truth: Tensor, horizon: int, like: Tensor) -> Tensor:
    """The true continuation (T1, C, H, W) of a clip (T1 may be 0) made ``horizon`` frames long:
    grey frames stand in for those the clip does not have, so that each predicted frame still sits
    under (and beside) the frame it predicts. ``like`` is a frame (C, H, W) of the prediction,
    whose shape, dtype and device the grey frames take. The CLI and the web page both show a
    clip that ends before the horizon this way."""
    truth = truth[:horizon]
    if len(truth) < horizon:
        grey = torch.full((horizon - len(truth), *like.shape[-3:]), GREY, dtype=like.dtype,
                          device=like.device)
        truth = torch.cat([truth.to(like.device, like.dtype), grey])
    return truth


def prediction_media(context: Tensor, truth: Tensor | None, prediction: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """The animation and the strip of one predicted clip.

    Args:
        context: (T0, C, H, W) the frames given to the model.
        truth: (T1, C, H, W) the true continuation (grey frames where unknown, :func:`pad_truth`),
            or None.
        prediction: (T1, C, H, W) the model's continuation, or (N, T1, C, H, W) N sampled futures
            (a stochastic model's), shown as N panels side by side and N rows of the strip.

    Returns:
        (frames (T0 + T1, 3, H', W'): truth beside prediction(s), green border on given frames and
        red on predicted ones; strip (3, H'', W''): the true clip above, the prediction(s) below,
        each predicted frame under the frame it predicts).
    """
    context, prediction = context.cpu(), prediction.cpu()
    futures = prediction if prediction.dim() == 5 else prediction.unsqueeze(0)  # (N, T1, C, H, W)
    truth = None if truth is None else truth.cpu()
    frames = comparison_frames(context, truth, futures[0])
    for future in futures[1:]:  # one more panel per sampled future
        spacer = torch.full((len(frames), 3, frames.shape[2], 4), 1.0)
        frames = torch.cat([frames, spacer, comparison_frames(context, None, future)], dim=3)
    names = ["predicted"] if len(futures) == 1 else [f"sample {i + 1}" for i in range(len(futures))]
    if truth is not None:
        rows, labels = [torch.cat([context, truth]), *futures], ["truth", *names]
    else:
        rows, labels = [context, *futures], ["given", *names]
    return frames, frames_strip(rows, labels)


def check_predict_inputs(model, context: Tensor, horizon: int, samples: int = 1, seed: int = 0) -> None:
    """Everything :func:`predict_futures` takes, checked once before any work.

    Raises:
        InputError: a context that is not (T0, C, H, W) with the model's channels, a horizon or a
            number of samples below 1, several samples of a deterministic model, a bad seed.
    """
    channels = model.config.channels
    if context.dim() != 4 or not len(context):
        raise InputError("context", f"{{arg}} must be frames (T, C, H, W), got shape {tuple(context.shape)}.")
    if context.shape[1] != channels:
        raise InputError("context", f"{{arg}} has {context.shape[1]} channel(s), but the model takes "
                                    f"{channels}; convert the clip or train on such clips.")
    check_count(horizon, "horizon")
    check_count(samples, "samples")
    check_seed(seed)
    if samples > 1 and not getattr(model, "stochastic", False):
        raise InputError("samples", f"{model.name} is deterministic: it predicts one future per clip; "
                                    "leave {arg} at 1 (several futures need a stochastic model such as svg).")


def predict_futures(model, context: Tensor, horizon: int, samples: int = 1, seed: int = 0) -> Tensor:
    """``samples`` futures of one clip: context (T0, C, H, W) -> (N, horizon, C, H, W).

    A stochastic model (svg) draws them from ``seed`` (``predict(..., samples=N)``); a deterministic
    one (convlstm, predrnn) has a single future and refuses N > 1 with one line.

    Raises:
        InputError: an argument the model cannot take (see :func:`check_predict_inputs`).
    """
    check_predict_inputs(model, context, horizon, samples, seed)
    given = context.unsqueeze(0).to(model.device)  # (1, T0, C, H, W)
    if getattr(model, "stochastic", False):
        gen = torch.Generator().manual_seed(int(seed))
        return model.predict(given, horizon, generator=gen, samples=samples)[0].cpu()
    return model.predict(given, horizon)[0].unsqueeze(0).cpu()


def prediction_view(model, batch, generator) -> dict[str, Tensor]:
    """``prediction.png``: for up to 4 clips, the true clip in one row and below it the prediction
    from the context (grey cells under the context frames); a stochastic model (svg) shows three
    sampled futures per clip, one per row. ``prediction.gif``: the first clip as an animation,
    truth beside the prediction(s)."""
    c = model.config
    frames = batch["frames"][:4, :c.context + c.horizon].to(model.device)  # (n, T, C, H, W)
    t = frames.shape[1]
    if getattr(model, "stochastic", False):
        futures = model.predict(frames[:, :c.context], t - c.context, generator=generator, samples=3)
    else:
        futures = model.predict(frames[:, :c.context], t - c.context).unsqueeze(1)  # (n, 1, T1, ...)
    blank = torch.full_like(frames[:, :c.context], GREY)
    below = [torch.cat([blank, futures[:, k]], dim=1) for k in range(futures.shape[1])]
    rows = torch.stack([frames, *below], dim=1)  # (n, 1 + N, T, C, H, W)
    animation, _ = prediction_media(frames[0, :c.context], frames[0, c.context:], futures[0])
    return {"prediction.png": make_grid(rows.flatten(0, 2), nrow=t), "prediction.gif": animation}


def contract(model, batch, generator) -> Tensor:
    """``horizon`` frames predicted from the first ``context`` frames of ``batch["frames"]``:
    (B, horizon, C, H, W) in [0, 1] (a stochastic model draws from ``generator``)."""
    c = model.config
    frames = batch["frames"]
    out = model.predict(frames[:, :c.context], c.horizon, generator=generator)
    assert out.shape == (frames.shape[0], c.horizon, *frames.shape[2:]), tuple(out.shape)
    assert_unit_range(out)
    return out


def horizon_bins(length: int, max_rows: int = 20) -> list[tuple[int, int]]:
    """(first, last) 1-based predicted frames of each row of the per-horizon table: one row per
    frame up to ``max_rows`` frames, else ``max_rows`` nearly equal ranges."""
    if length <= max_rows:
        return [(i, i) for i in range(1, length + 1)]
    edges = [round(i * length / max_rows) for i in range(max_rows + 1)]
    return [(edges[i] + 1, edges[i + 1]) for i in range(max_rows)]


def evaluation_tables(metrics: dict, class_names=()) -> list[Table]:
    """What ``rnnimg evaluate`` prints for a frame predictor below its summary: the per-step
    scores (``*_per_step``), one row per predicted frame (or range of frames, averaged), one
    column per score."""
    curves = {k: v for k, v in metrics.items() if k.endswith("_per_step") and isinstance(v, list) and v}
    if not curves:
        return []
    length = len(next(iter(curves.values())))
    rows = []
    for first, last in horizon_bins(length):
        label = f"{first}" if first == last else f"{first}-{last}"
        rows.append((label, *(f"{sum(v[first - 1:last]) / (last - first + 1):.4g}" for v in curves.values())))
    title = "per predicted frame" + (" (means over ranges)" if length > 20 else "")
    return [Table(title, ("frame", *(k.removesuffix("_per_step") for k in curves)), tuple(rows),
                  tuple(curves))]


PREDICT = register_task(Task(
    name="predict", verb="predict", title="Predict", batch_keys=("frames",), contract=contract,
    infer=predict_futures, views=(prediction_view,),
    next_step="rnnimg predict {run} CLIP -o prediction.gif", tables=evaluation_tables))
