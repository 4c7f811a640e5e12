"""The task layer: what people look at and what they may ask, per task.

Models return tensors; this package turns a model plus inputs into pictures and animations (sample
grids, completion grids, prediction strips and GIFs, ...), checks what a user asks of a model once,
up front, and prepares user inputs for a model (quantising an image for completion, loading a run
for a verb). The CLI, the training callbacks, the demo, the model cards and the web page all call
it, so a picture looks the same, and an input is refused with the same line, wherever it is made.

One module per task (``generate``, ``complete``, ``predict``, ``segment``, ``translate``), each
registering one :class:`Task` record (:mod:`rnnimg.tasks.registry`): the CLI verb, batch keys,
what an upload stands for on the web page, the Hub's pipeline tag, the tab's title, the next step
after training, the contract the tests check, the typed inference function and the pictures.
The limits of what a user may ask (seeds, temperatures, counts) are in :mod:`rnnimg.limits`.

Adding a task
-------------
1. Write ``rnnimg/tasks/NAME.py``:

   * an inference function taking the model and typed inputs, which checks them first (raising
     :class:`~rnnimg.errors.InputError` with ``{arg}`` where the argument is named, so the CLI
     names its flag and the page its control; :mod:`rnnimg.limits` checks seeds, temperatures
     and counts) and then calls the model's verb;
   * the views, ``f(model, batch, generator) -> {file name: picture}``;
   * the contract, ``f(model, batch, generator) -> output``: run the verb on a batch of the model's
     ``example_batch`` and assert the output's shape and range;
   * optionally the evaluation tables, ``f(metrics, class_names) -> [Table]``: what
     ``rnnimg evaluate`` prints below its summary (per class, per number of views, ...);
   * ``register_task(Task(name=..., verb=..., title=..., batch_keys=..., contract=..., infer=...,
     views=(...), upload=..., hub_tag=..., next_step=..., tables=...))``.

2. Import it in this ``__init__.py``: importing a task module registers its task, and the order of
   registration is the order of the web page's tabs.
3. Write the models (``models/NAME/``) with ``task = "NAME"`` and the verb as a method.

Then ``rnnimg train`` suggests the next step, the contract tests run the contract on every model
of the task, the model cards carry the Hub tag, the web page gives the task a tab (a test image or
an upload through the views; a custom tab is a ``@web_tab(NAME)`` builder in
``rnnimg.serve.app``), the training callbacks and the demo draw its pictures, and
``load_model_for(run, VERB)`` loads its models. A CLI command of its own (``rnnimg VERB``) is the
one edit outside: a module in ``rnnimg/cli/`` that parses the arguments and calls the inference
function (an InputError then names the command's flags by itself; ``args.argument_flags`` maps an
argument whose flag has another name).

A view registered with the former ``@task_view(NAME)`` of ``rnnimg/tasks.py`` becomes one entry of
``views=(...)`` in the task's record.
"""

from __future__ import annotations

# Importing a task module registers its task. The registry keeps that order, which the web page's
# tabs follow: generate (imported by complete), complete, predict, reconstruct, segment, translate.
from rnnimg.tasks.common import load_model_for, save_picture
from rnnimg.tasks.complete import (
    UNKNOWN_FILL,
    complete,
    completion_grid,
    occlude,
    quantize_for_model,
)
from rnnimg.tasks.generate import (
    WINDOW_COLOUR,
    drawing_animation,
    draws_in_steps,
    outline_boxes,
    sample,
    sample_grid,
)
from rnnimg.tasks.predict import pad_truth, predict_futures, prediction_media
from rnnimg.tasks.reconstruct import reconstruct_views, shape_renders, shape_turntable
from rnnimg.tasks.registry import (
    Table,
    Task,
    get_task,
    list_tasks,
    preview,
    register_task,
    task_of_verb,
    unregister_task,
)
from rnnimg.tasks.segment import (
    IGNORE_COLOUR,
    class_legend,
    mask_colours,
    mask_overlay,
    segment_image,
    segmentation_overlay,
    with_legend,
)
from rnnimg.tasks.translate import translate_image, translation_strip

__all__ = [
    "IGNORE_COLOUR", "UNKNOWN_FILL", "WINDOW_COLOUR", "Table", "Task", "class_legend", "complete",
    "completion_grid", "drawing_animation", "draws_in_steps", "get_task", "list_tasks",
    "load_model_for", "mask_colours", "mask_overlay", "occlude", "outline_boxes", "pad_truth",
    "predict_futures", "prediction_media", "preview", "quantize_for_model", "reconstruct_views",
    "register_task", "shape_renders", "shape_turntable",
    "sample", "sample_grid", "save_picture", "segment_image", "segmentation_overlay",
    "task_of_verb", "translate_image", "translation_strip", "unregister_task", "with_legend",
]
