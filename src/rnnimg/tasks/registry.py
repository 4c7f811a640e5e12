"""The task registry: one :class:`Task` record per task, registered by its module in
:mod:`rnnimg.tasks`.

A task is what a model is for (``model.task``, ``model.tasks()``). Its record says everything the
layers above the models key on: the CLI verb, the batch keys, what an upload stands for on the web
page, the Hub's pipeline tag, the tab's title, what to run after training, the contract the tests
check, the typed inference function and the pictures. The CLI, the page, the cards, the demo and
the contract tests iterate :func:`list_tasks`, so none of them names a task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnimg.errors import RnnImgError

# f(model, batch, generator) -> {file name: picture}: a picture is (3, H, W) in [0, 1] (written as
# PNG) or frames (T, 3, H, W) in [0, 1] (written as GIF)
View = Callable[..., dict[str, Tensor]]
# f(model, batch, generator) -> the verb's output, after asserting its shape and range
Contract = Callable[..., Tensor]


@dataclass(frozen=True)
class Table:
    """A table of scores that ``rnnimg evaluate`` prints below its summary (see ``Task.tables``).

    Attributes:
        title: one line above the table (what its rows run over).
        columns: the column headers.
        rows: the cells, already formatted, one tuple per row (as long as ``columns``).
        metrics: the metrics the table shows in full; the summary leaves them out.
    """

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    metrics: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The title, the header, a rule and the rows; the first column left-aligned, the others
        right-aligned."""
        cells = [self.columns, *self.rows]
        widths = [max(len(row[k]) for row in cells) for k in range(len(self.columns))]

        def line(row) -> str:
            return "  ".join(c.ljust(w) if k == 0 else c.rjust(w)
                             for k, (c, w) in enumerate(zip(row, widths))).rstrip()

        return [f"{self.title}:", line(self.columns), "  ".join("-" * w for w in widths),
                *(line(r) for r in self.rows)]


# f(metrics, class_names) -> the task's tables of one evaluation (``rnnimg evaluate``): metrics as
# the model's reduce_statistics returns them, class_names the run's (possibly empty); a task whose
# models have item_scores also takes item_names= (the scored items' names, when the data keep them)
Tables = Callable[..., list[Table]]


def per_class_table(title: str, column: str, values: list[float], class_names, metric: str,
                    digits: int = 4) -> Table:
    """A per-class metric as a table: one row per class (named where ``class_names`` names it),
    ``-`` for a class absent from the split (NaN), then the mean over the classes present."""
    names = list(class_names or ())
    rows = [(names[k] if k < len(names) else str(k), "-" if v != v else f"{v:.{digits}f}")
            for k, v in enumerate(values)]
    kept = [v for v in values if v == v]
    rows.append(("mean over classes", f"{sum(kept) / len(kept):.{digits}f}" if kept else "-"))
    return Table(title, ("class", column), tuple(rows), (metric,))


@dataclass(frozen=True)
class Task:
    """What the layers above the models know of a task.

    Attributes:
        name: the task, as models name it in ``task`` / ``extra_tasks``.
        verb: the model's inference method and the CLI command (``rnnimg VERB``).
        title: the title of the task's tab on the web page (and its button).
        batch_keys: the keys every batch of the task holds (docs/architecture.md, "Tasks, verbs and batches").
        contract: ``f(model, batch, generator)``: runs the verb on a batch of the model's
            ``example_batch``, asserts the output's shape and range, and returns it (the contract
            tests call it for every registered model).
        infer: the typed inference function (checks its inputs once, up front, with one-line
            :class:`~rnnimg.errors.InputError` messages, then calls the verb).
        views: the task's pictures, ``f(model, batch, generator) -> {file name: picture}``; see
            :func:`rnnimg.tasks.preview`.
        upload: the batch key that one uploaded image stands for on the web page (None: the task
            takes no single image; the page offers test items only).
        hub_tag: the Hugging Face Hub ``pipeline_tag`` of the model card (None where none fits).
        next_step: what ``rnnimg train`` suggests running on the new run folder, with ``{run}``
            for it (None: only ``rnnimg evaluate``).
        needs_input: whether the verb needs an input beside the run folder (an image, a clip);
            the demo suggests trying a verb that does not.
        next_step_of: for models whose next step departs from ``next_step`` (a generator that
            draws from a small image needs ``--low-res``): ``f(model config as in config.json)
            -> (next step, needs_input)``, or None to keep the two fields; see :meth:`after_training`.
        tables: ``f(metrics, class_names) -> [Table]``: what ``rnnimg evaluate`` prints below its
            summary for a model of the task (per class, per number of views, ...); None: the
            summary alone.
    """

    name: str
    verb: str
    title: str
    batch_keys: tuple[str, ...]
    contract: Contract
    infer: Callable[..., Tensor]
    views: tuple[View, ...] = ()
    upload: str | None = None
    hub_tag: str | None = None
    next_step: str | None = None
    needs_input: bool = True
    next_step_of: Callable[[dict], tuple[str, bool] | None] | None = None
    tables: Tables | None = None

    def after_training(self, config: dict) -> tuple[str | None, bool]:
        """(the next step, with ``{run}``; whether it needs an input beside the run folder) for a
        model of this task with ``config`` (the ``"config"`` of its config.json)."""
        departs = self.next_step_of(config) if self.next_step_of is not None else None
        return departs if departs is not None else (self.next_step, self.needs_input)


_TASKS: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry (its module calls this once, on import); returns it.

    Raises:
        ValueError: if its name or verb is taken.
    """
    if task.name in _TASKS:
        raise ValueError(f"task {task.name!r} is registered twice")
    taken = {t.verb: t.name for t in _TASKS.values()}
    if task.verb in taken:
        raise ValueError(f"the verb {task.verb!r} of task {task.name!r} belongs to {taken[task.verb]!r}")
    _TASKS[task.name] = task
    return task


def unregister_task(name: str) -> Task:
    """Remove a task (tests that register a toy task put the registry back with it)."""
    return _TASKS.pop(name)


def _ensure_builtin_tasks() -> None:
    import rnnimg.tasks  # noqa: F401  (importing the package registers every built-in task)


def list_tasks() -> list[Task]:
    """Every registered task, in the order registered (the page's tabs follow it)."""
    _ensure_builtin_tasks()
    return list(_TASKS.values())


def get_task(name: str) -> Task:
    """The task called ``name``.

    Raises:
        RnnImgError: for a task nobody registered.
    """
    _ensure_builtin_tasks()
    if name not in _TASKS:
        raise RnnImgError(f"unknown task {name!r}; the tasks are {', '.join(_TASKS)}.")
    return _TASKS[name]


def task_of_verb(verb: str) -> Task:
    """The task whose CLI verb is ``verb``.

    Raises:
        RnnImgError: for a verb no task has.
    """
    for task in list_tasks():
        if task.verb == verb:
            return task
    raise RnnImgError(f"unknown verb {verb!r}; the verbs are {', '.join(t.verb for t in _TASKS.values())}.")


def preview(model, batch: dict[str, Tensor], generator: torch.Generator | None = None
            ) -> dict[str, Tensor]:
    """The pictures of ``model`` on ``batch``: the views of each task in ``model.tasks()``.

    The model is put in eval mode for the call and restored afterwards.

    Args:
        model: any registered model.
        batch: a few items of the model's data (the views use at most the first 8).
        generator: for reproducible pictures (on the model's device or the CPU).
    """
    was_training = model.training
    model.eval()
    try:
        pictures: dict[str, Tensor] = {}
        for name in model.tasks():
            for view in get_task(name).views:
                pictures.update(view(model, batch, generator))
        return pictures
    finally:
        model.train(was_training)


def assert_unit_range(out: Tensor) -> None:
    """For contracts: finite values in [0, 1]."""
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, \
        f"values outside [0, 1]: {out.min()}..{out.max()}"
