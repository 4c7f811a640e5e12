"""``evaluate``: score a trained model on a dataset split through the model's additive
evaluation statistics (summed over batches, then reduced once), so pooled metrics are exact."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from rnnimg.data.registry import dataset_task, load_dataset, task_mismatch_hint
from rnnimg.errors import RnnImgError
from rnnimg.models.checkpoint import load_run
from rnnimg.train.data import check_dataset


def check_evaluation_options(model, options: dict[str, Any]) -> None:
    """Refuse options the model's ``evaluation_statistics`` does not take, with one line."""
    allowed = tuple(model.evaluation_options)
    for key in options:
        if key not in allowed:
            takes = ", ".join(allowed) if allowed else "none"
            raise RnnImgError(f"{model.name} takes no evaluation option {key!r} (it takes: {takes}); "
                              f"drop --{key.replace('_', '-')}.")


def sum_statistics(total: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> None:
    """Add one batch's statistics into ``total`` (float64, on the CPU)."""
    for key, value in stats.items():
        value = torch.as_tensor(value).detach().to("cpu", torch.float64)
        total[key] = total[key] + value if key in total else value.clone()


def all_reduce_statistics(total: dict[str, torch.Tensor], device) -> dict[str, torch.Tensor]:
    """Sum the statistics over DDP processes (a no-op in a single process). Every process must
    hold the same keys."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return total
    out = {}
    for key in sorted(total):
        value = total[key].to(device)
        dist.all_reduce(value)
        out[key] = value.cpu()
    return out


# a model's item_scores are listed per item up to this many scored items (a table of five test
# photos, or of Set14's fourteen, reads well; one of a 10,000-image test set does not)
MAX_ITEM_SCORES = 100
_ITEM = "_item"  # the key that carries an item's position in the split through the loader


class _Numbered(Dataset):
    """``dataset``'s items, each with its position in the split under ``_ITEM`` (a 0-dim tensor,
    the same shape for every item, so :func:`collate_by_size` groups as before)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return {**self.dataset[index], _ITEM: torch.tensor(index)}


def item_names(dataset) -> list[str] | None:
    """The names of a dataset's items where it keeps them (``photos``' test photo names, the stems
    of paired files), looking through wrappers (``corrupt=``'s ``base``); None where it keeps none."""
    for _ in range(4):
        for attr in ("names", "stems"):
            names = getattr(dataset, attr, None)
            if isinstance(names, list | tuple) and len(names) == len(dataset):
                return [str(n) for n in names]
        dataset = getattr(dataset, "base", None)
        if dataset is None:
            return None
    return None


def collate_by_size(items: list[dict]) -> list[dict]:
    """The items of one loader batch as one batch per shape, in the order each shape first occurs.

    Whole test photos (``photos``, a ``folder:`` of the user's pictures) differ in size and cannot
    be stacked; the statistics are sums over items, so scoring each group of one size and adding
    gives what one batch of each item alone gives. Items of one size make one batch, as
    ``default_collate`` makes it.
    """
    groups: dict[tuple, list[dict]] = {}
    for item in items:
        key = tuple((k, tuple(getattr(v, "shape", ()))) for k, v in item.items())
        groups.setdefault(key, []).append(item)
    return [default_collate(group) for group in groups.values()]


@torch.no_grad()
def evaluate(run_dir: str | Path, *args: Any, seed: int = 0, device: str = "cpu", **kwargs: Any
             ) -> dict[str, Any]:
    """Score the model in ``run_dir`` on a dataset split; see :func:`_evaluate` for the arguments.

    Random draws of a stochastic evaluation (DRAW's latents, importance samples) are seeded with
    ``seed``, so the same call gives the same numbers, and the caller's RNG state is restored.
    """
    cuda = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        return _evaluate(run_dir, *args, seed=seed, device=device, **kwargs)


def _evaluate(run_dir: str | Path, data: str | None = None, split: str = "test",
             batch_size: int = 64, max_batches: int | None = None, device: str = "cpu",
             data_options: dict | None = None, progress: bool = True,
             options: dict[str, Any] | None = None, seed: int = 0) -> dict[str, Any]:
    """Score the model in ``run_dir`` on a dataset split.

    Each batch gives ``model.evaluation_statistics(batch, **options)`` (sums over its items); the
    sums of the split go through ``model.reduce_statistics`` once. A batch whose items differ in
    size (whole test photos) is scored one size at a time (:func:`collate_by_size`), so no
    ``batch_size=1`` is needed for such a split. A model with ``item_scores`` (super-resolution)
    is asked for them item by item too, when at most :data:`MAX_ITEM_SCORES` items are scored:
    the metrics then hold ``NAME_per_image``, one value per scored item in the split's order (NaN
    where an item had none), whose mean is the split's ``NAME``.

    Args:
        run_dir: a run folder (config.json + model.safetensors).
        data: dataset name (default: the one the run was trained on).
        split: "train", "val" or "test".
        batch_size, max_batches: how to batch, and how many batches to score at most.
        device: where the model runs.
        data_options: dataset options over the run's saved ones.
        progress: show a progress bar.
        options: evaluation options the model lists in ``evaluation_options``
            (e.g. ``{"importance_samples": 100}``).
        seed: seeds the random draws of a stochastic evaluation (DRAW's latents, importance
            samples), so the same call gives the same numbers; the caller's RNG state is restored.

    Returns:
        {"model", "data", "split", "num_items", "metrics": {name: float or list}, "data_options",
        "options"}, and "item_names" (the scored items' names, where the dataset keeps them) with
        per-item scores.
    """
    from tqdm.auto import tqdm

    options = dict(options or {})
    run = load_run(run_dir, map_location=device)
    model, meta = run.model, run.metadata
    check_evaluation_options(model, options)
    saved = meta.get("data", {}) if isinstance(meta.get("data"), dict) else {}
    name = data or saved.get("name") or "mnist-5k"
    data_opts = {**model.dataset_options(), **(saved.get("options", {}) if data is None else {}),
                 **model.evaluation_dataset_options(**options), **(data_options or {})}
    task = dataset_task(name, data_opts)  # corrupt=... makes an image dataset a translate one
    if not model.takes_data_of(task):
        raise RnnImgError(f"dataset {name!r} is for the {task!r} task, but {run_dir} holds a "
                          f"{model.name!r} model ({'/'.join(model.tasks())}); "
                          f"{task_mismatch_hint(task, model.tasks())}.")
    if data_opts.get("binarize") == "dynamic":
        data_opts["binarize"] = "fixed"  # a test set is scored on one fixed binarization
    dataset = load_dataset(name, split, **data_opts)
    check_dataset(model, dataset, name)
    n_batches = -(-len(dataset) // batch_size)
    n_batches = n_batches if max_batches is None else min(max_batches, n_batches)
    scored = min(len(dataset), n_batches * batch_size)  # the first ones: the loader keeps the order
    item_scores = tuple(model.item_scores) if scored <= MAX_ITEM_SCORES else ()
    each: dict[str, dict[int, float]] = {metric: {} for metric in item_scores}
    loader = DataLoader(_Numbered(dataset) if item_scores else dataset, batch_size=batch_size,
                        shuffle=False, collate_fn=collate_by_size)
    total: dict[str, torch.Tensor] = {}
    torch.manual_seed(seed)  # inside the caller's fork_rng (see evaluate)
    # K importance samples (DRAW): one batch can take minutes, so a bar counts the draws as well
    draws = tqdm(desc="draws", unit="draw", disable=not progress, leave=False, position=1,
                 mininterval=0) if model.evaluation_reports_progress else None  # chunks: seconds apart

    def show_draws(done: int, of: int) -> None:  # done of the batch's ``of`` draws
        draws.total = of * n_batches
        draws.update(i * of + done - draws.n)

    for i, batches in enumerate(tqdm(loader, total=n_batches, desc="evaluate", disable=not progress,
                                     leave=False)):
        if i >= n_batches:
            break
        for batch in batches:  # one per image size: a single one unless the items differ in size
            index = batch.pop(_ITEM).tolist() if item_scores else []
            batch = {k: v.to(device) for k, v in batch.items()}
            more = {"progress": show_draws} if draws is not None else {}
            if item_scores:
                more["per_item"] = True
            stats = model.evaluation_statistics(batch, **options, **more)
            for metric in item_scores:
                values = stats.pop(f"{metric}_per_image", None)
                if values is not None:
                    each[metric].update(zip(index, values.tolist(), strict=True))
            sum_statistics(total, stats)
    if draws is not None:
        draws.close()
    if not total:
        raise RnnImgError(f"dataset {name!r} [{split}] has no items to evaluate.")
    total = all_reduce_statistics(total, device)
    metrics = model.reduce_statistics(total)
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            warnings.warn(f"metric {key} is {value}", stacklevel=2)
    for key, values in each.items():
        if values:
            metrics[f"{key}_per_image"] = [values.get(i, math.nan) for i in range(scored)]
    result = {"model": model.name, "data": name, "split": split,
              "num_items": int(total["count"].item()), "data_options": data_opts,
              "options": options, "metrics": metrics}
    names = item_names(dataset) if any(each.values()) else None
    if names:
        result["item_names"] = names[:scored]
    return result
