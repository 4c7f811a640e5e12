"""Evaluation of ``draw`` (:mod:`rnnimg.models.generate.draw`): additive statistics of a split.

What a DRAW model is scored on besides its loss: the negative ELBO and its two terms per image,
the KL of every drawing step, the importance-weighted NLL estimate of Burda et al. 2016 ("Importance
Weighted Autoencoders", ICLR) with Q as the proposal, and, for a conditional model, how often the
shipped digit judge (:mod:`rnnimg.judge`) finds a sample's digit to be the one asked for. The
trainer's evaluator calls them through ``DRAW.evaluation_statistics`` / ``DRAW.reduce_statistics``;
the sums of every batch are reduced once per split.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.metrics import nats_to_bits_per_dim

IMPORTANCE_CHUNK = 64  # importance draws reduced at a time: memory stays that of 64 draws


@torch.no_grad()
def draw_statistics(model, batch: dict[str, Tensor], importance_samples: int = 0,
                    judge: bool | None = None, generator: torch.Generator | None = None,
                    progress: Callable[[int, int], object] | None = None) -> dict[str, Tensor]:
    """Sums over the batch: ``count``, ``bound`` (negative ELBO, nats), ``recon``, ``kl``,
    ``kl_per_step`` (T,), and with ``importance_samples`` = K >= 1 also ``iwae``, the
    importance-weighted NLL estimate -log (1/K sum_k w_k). The bound terms are then averaged
    over the same K draws, so ``iwae`` <= ``bound`` holds item by item. With ``judge`` (a
    conditional model) also ``match`` / ``judged``: samples drawn under each item's label or
    caption that the shipped digit judge finds right (rnnimg.judge). ``judge=None`` (the
    default) judges mnist-captions batches (they carry ``digits``/``places``, so they are
    digits for sure) and nothing else: labels may name classes other than digits.

    The K draws are reduced in chunks (a running log-sum-exp), so memory does not grow with
    K; ``progress(done, K)`` is called after each chunk.

    Args:
        model: a ``DRAW`` model.
        batch: ``image`` (B, C, H, W) and, as the model needs them, ``label`` / ``text``.
    """
    if isinstance(importance_samples, bool) or not isinstance(importance_samples, int) or \
            importance_samples < 0 or judge not in (None, True, False):
        raise RnnImgError(f"importance_samples must be a whole number >= 0 and judge true or "
                          f"false, got {importance_samples!r} and {judge!r}.")
    k, image = importance_samples, batch["image"]
    labels, text = model.batch_labels(batch), model.batch_text(batch)
    draws, sums = max(k, 1), None  # per item, over the draws: recon, kl, log w, log sum w
    for start in range(0, draws, IMPORTANCE_CHUNK):  # memory: one chunk of draws, whatever K
        outs = [model.run(image, labels, text, generator)
                for _ in range(min(IMPORTANCE_CHUNK, draws - start))]
        recon, kl, ratio = (torch.stack([o[key] for o in outs]).double()  # (n, B), (n, B, T)
                            for key in ("recon", "kl", "log_ratio"))
        log_w = ratio - recon  # (n, B)
        chunk = [recon.sum(0), kl.sum(0), log_w.sum(0), torch.logsumexp(log_w, 0)]
        sums = chunk if sums is None else [sums[0] + chunk[0], sums[1] + chunk[1],
                                           sums[2] + chunk[2], torch.logaddexp(sums[3], chunk[3])]
        if progress is not None:
            progress(start + len(outs), draws)
    recon, kl = sums[0] / draws, sums[1] / draws  # (B,), (B, T): means over the draws
    stats = {"count": torch.tensor(float(image.shape[0]), dtype=torch.float64),
             "bound": (recon + kl.sum(1)).sum(), "recon": recon.sum(),
             "kl": kl.sum(1).sum(), "kl_per_step": kl.sum(0)}
    if k:
        iwae = -(sums[3] - math.log(k))  # (B,)
        stats["iwae"] = iwae.sum()
        # the Monte-Carlo bound of the same draws: iwae <= it exactly (Jensen)
        stats["bound_sampled"] = (-sums[2] / k).sum()
        # the analytic-KL bound above differs from it by the KL's sampling noise only
    if judge is None:
        judge = bool(model.config.vocabulary) and "digits" in batch and "places" in batch
    if judge:
        from rnnimg.judge import load_digit_judge, match_statistics

        if not (model.config.num_classes or model.config.vocabulary):
            raise RnnImgError("judge scores conditional models; this one has no labels or captions.")
        if model._judge is None:
            model._judge = [load_digit_judge(model.device)]  # a list: not a submodule
        stats.update(match_statistics(model, batch, model._judge[0], generator))
    return {key: v.detach().cpu() for key, v in stats.items()}


def reduce_draw_statistics(model, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
    """Means per image of the sums of :func:`draw_statistics`: ``nll_bound_nats``,
    ``bits_per_dim_bound``, ``recon_nats``, ``kl_nats``, ``kl_nats_per_step``, and where measured
    ``condition_match`` / ``place_match``, ``nll_iwae_nats`` and ``nll_bound_same_draws_nats``."""
    n = float(stats["count"])
    dims = model.config.channels * model.config.image_size ** 2
    out: dict[str, float | list[float]] = {
        "nll_bound_nats": float(stats["bound"]) / n,
        "bits_per_dim_bound": nats_to_bits_per_dim(float(stats["bound"]) / n, dims),
        "recon_nats": float(stats["recon"]) / n, "kl_nats": float(stats["kl"]) / n,
        "kl_nats_per_step": [float(v) / n for v in stats["kl_per_step"]]}
    if "judged" in stats:
        out["condition_match"] = float(stats["match"]) / float(stats["judged"])
        if "place_match" in stats:
            out["place_match"] = float(stats["place_match"]) / float(stats["judged"])
    if "iwae" in stats:
        out["nll_iwae_nats"] = float(stats["iwae"]) / n
        out["nll_bound_same_draws_nats"] = float(stats["bound_sampled"]) / n
    return out
