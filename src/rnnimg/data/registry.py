"""The dataset registry: ``register_dataset``, ``load_dataset``, ``list_datasets``.

A dataset factory takes ``split`` and keyword options and returns a ``torch.utils.data.Dataset``
whose items are dicts with the batch keys of docs/architecture.md (without the batch dimension). Names with a
prefix, such as ``folder:PATH``, pass the part after the colon to the factory as ``arg``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from torch.utils.data import Dataset

from rnnimg.errors import RnnImgError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    factory: Callable[..., Dataset]
    description: str
    prefix: bool  # True for "folder:PATH"-style names
    task: str  # the batch keys it yields: "generate" (image[, label]), "predict" (frames), ...
    splits: tuple[str, ...]  # splits the factory makes itself; "val" otherwise comes from the trainer
    # (arg, options) -> (arg, options) fixed for good, saved with a run (an absolute path, the
    # class names), so the run reads the same data later from anywhere; None: nothing to fix.
    pin: Callable[..., tuple] | None = None


_DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str,
    *,
    description: str,
    task: str = "generate",
    prefix: bool = False,
    splits: tuple[str, ...] = ("train", "test"),
    pin: Callable[..., tuple] | None = None,
):
    """Function decorator registering a dataset factory ``f(split, **options)`` under ``name``.

    With ``prefix=True`` the name is used as ``name:ARG`` and the factory is ``f(arg, split, ...)``.
    """

    def wrap(factory):
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = DatasetEntry(name, factory, description, prefix, task, splits, pin)
        return factory

    return wrap


def pin_dataset(name: str, options: dict) -> tuple[str, dict]:
    """The dataset name and options as a run should save them (see ``DatasetEntry.pin``): for
    ``folder:PATH`` the absolute path and the class folder names, so every split and every later
    command numbers the classes the same way."""
    entry, arg = get_dataset_entry(name)
    if entry.pin is None:
        return name, dict(options)
    arg, options = entry.pin(arg, dict(options))
    return (f"{entry.name}:{arg}" if entry.prefix else name), options


def _ensure_builtin_datasets() -> None:
    import rnnimg.data  # noqa: F401  (importing the package registers the built-in datasets)


def get_dataset_entry(name: str) -> tuple[DatasetEntry, str | None]:
    """The registry entry for ``name`` and, for prefixed names, the argument after the colon."""
    _ensure_builtin_datasets()
    key, arg = name, None
    if ":" in name:
        key, arg = name.split(":", 1)
    entry = _DATASETS.get(key)
    if entry is None or entry.prefix != (arg is not None):
        shown = [f"{e.name}:PATH" if e.prefix else e.name for e in _DATASETS.values()]
        close = difflib.get_close_matches(name, shown, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RnnImgError(f"unknown dataset {name!r}.{hint} Available: {', '.join(shown)}.")
    if entry.prefix and not arg:
        raise RnnImgError(f"dataset {key}: needs a path after the colon, e.g. {key}:./my_images")
    return entry, arg


def load_dataset(name: str, split: str = "train", **options) -> Dataset:
    """Load dataset ``name`` (see :func:`list_datasets`) for ``split``.

    Args:
        name: a registered name, or ``prefix:ARG`` such as ``folder:./images``.
        split: ``"train"`` or ``"test"`` (and ``"val"`` where the dataset makes one itself).
        **options: dataset options such as ``image_size``, ``channels``, ``binarize``,
            ``data_dir``, ``download``, ``strict``; each dataset documents its own. ``corrupt``
            (with ``sigma``, ``amount``, ``boxes``, ``corrupt_seed``) turns any image dataset into
            source/target pairs (see :mod:`rnnimg.data.corrupt`); ``low_res=SCALE`` adds each
            image's downscale as ``low_res`` (see :mod:`rnnimg.data.lowres`).

    Raises:
        RnnImgError: for an unknown name or option, a missing file or a bad split.
    """
    from rnnimg.data.corrupt import CorruptedDataset, split_corruption_options

    entry, arg = get_dataset_entry(name)
    corruption, options = split_corruption_options(options)  # corrupt=... wraps any image dataset
    if corruption is not None and entry.task != "generate":
        raise RnnImgError(f"corrupt= applies to image datasets; {name!r} is a {entry.task!r} dataset.")
    low_res = options.pop("low_res", None)  # low_res=SCALE adds each image's downscale
    if low_res is not None and (corruption is not None or entry.task != "generate"):
        raise RnnImgError("low_res= adds a low-resolution copy to an image dataset's items; "
                          + ("drop corrupt= (it makes translation pairs)." if corruption is not None
                             else f"{name!r} is a {entry.task!r} dataset."))
    if split not in entry.splits:
        raise RnnImgError(
            f"dataset {name!r} has no split {split!r}; it has {', '.join(entry.splits)}."
        )
    params = inspect.signature(entry.factory).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(options) - set(params))
        if unknown:
            accepted = sorted(k for k in params if k not in ("arg", "split"))
            raise RnnImgError(
                f"dataset {entry.name!r} takes no option(s) {', '.join(unknown)}; "
                f"it takes: {', '.join(accepted) or 'none'}."
            )
    dataset = entry.factory(arg, split, **options) if entry.prefix else entry.factory(split, **options)
    if low_res is not None:
        from rnnimg.data.lowres import LowResDataset

        return LowResDataset(dataset, low_res)
    return CorruptedDataset(dataset, split, corruption) if corruption is not None else dataset


def dataset_task(name: str, options: dict | None = None) -> str:
    """The task whose batches ``load_dataset(name, **options)`` yields: the registered task, or
    "translate" for an image dataset with a ``corrupt`` option (it then yields source/target pairs)."""
    entry, _ = get_dataset_entry(name)
    if entry.task == "generate" and (options or {}).get("corrupt") is not None:
        return "translate"
    return entry.task


def task_mismatch_hint(task: str, model_tasks: tuple[str, ...] | list[str]) -> str:
    """The next step when a dataset of ``task`` cannot feed a model of ``model_tasks``: for an
    image dataset and a translate model, the --data-opt that turns it into corrupted/clean pairs."""
    if task == "generate" and "translate" in model_tasks:
        from rnnimg.data.corrupt import CORRUPTIONS

        return (f"add --data-opt corrupt=denoise (or corrupt={', '.join(CORRUPTIONS[1:])}) to make "
                "pairs of its images, or pick a translate dataset")
    return "pick a matching one"


def list_datasets(task: str | None = None) -> list[DatasetEntry]:
    """The registered datasets (entries with ``name``, ``description``, ``task``)."""
    _ensure_builtin_datasets()
    return [e for e in _DATASETS.values() if task is None or e.task == task]
