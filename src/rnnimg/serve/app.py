"""The Gradio page of ``rnnimg serve``: one tab per task of the served models.

Tabs are built per task, not per model: a task with a tab builder here (sample, complete, predict)
gets its controls; any other task (segment, translate, and whatever comes next) gets a tab that
shows its task-layer pictures (:func:`rnnimg.tasks.preview`) on a test item or an uploaded image.
So serving a model of a new task brings its tab without an edit here. The work itself is in
:mod:`rnnimg.serve.core`; this module lays out controls and turns RnnImgError into page messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from rnnimg.errors import RnnImgError
from rnnimg.serve import core

TabBuilder = Callable[[list[core.ServedModel], Path], None]
_TABS: dict[str, tuple[str, TabBuilder]] = {}


def web_tab(task: str, title: str) -> Callable[[TabBuilder], TabBuilder]:
    """Register ``build(models, workdir)`` as the tab of ``task``, called inside ``gr.Tab(title)``."""

    def wrap(build: TabBuilder) -> TabBuilder:
        _TABS[task] = (title, build)
        return build

    return wrap


_PATH = re.compile(r"(?<![\w.~])(?:[A-Za-z]:)?[/\\](?:[^\s/\\'\"]+[/\\])+([^\s/\\'\":;,]+)")


def page_message(text: str) -> str:
    """``text`` with every absolute path cut to its file name: the page must not show the
    server's folders (the temporary ones that uploads land in, or any other)."""
    return _PATH.sub(r"\1", text)


def _page_errors(fn):
    """Run ``fn`` and show a user mistake (or a failure) as a message in the page, not a trace."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RnnImgError as err:
            raise gr.Error(page_message(str(err))) from None
        except (ValueError, TypeError, RuntimeError) as err:  # bad widget values, shapes
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise gr.Error(f"could not do that: {page_message(first)}") from None

    wrapped.__name__ = fn.__name__
    return wrapped


def _choices(models: list[core.ServedModel]) -> list[str]:
    return [m.label for m in models]


# ---------------------------------------------------------------------------------------------


@web_tab("generate", "Sample")
def _sample_tab(models, workdir) -> None:
    first = models[0]
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(_choices(models), value=first.label, label="model")
            label = gr.Dropdown(core.labels_of(first), value="any", label="label (class-conditional models)",
                                visible=len(core.labels_of(first)) > 1)
            text = gr.Textbox(label="sentence (caption models)", visible=core.takes_text(first),
                              placeholder="e.g. the digit 3 is at the top left")
            n = gr.Slider(1, core.MAX_SAMPLES, value=16, step=1, label="number of samples")
            seed = gr.Number(0, precision=0, label="seed")
            temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="temperature")
            run = gr.Button("Sample", variant="primary", elem_id="sample-button")
        with gr.Column(scale=2):
            grid = gr.Image(label="samples", type="numpy", elem_id="sample-output", interactive=False)
            more = gr.Button("Task-layer pictures (animations, ...)", size="sm")
            gallery = gr.Gallery(label="pictures from rnnimg.tasks.preview", columns=2)

    def on_model(name):
        served = core.pick(models, name, "generate")
        labels = core.labels_of(served)
        return (gr.update(choices=labels, value="any", visible=len(labels) > 1),
                gr.update(visible=core.takes_text(served)))

    model.change(on_model, model, [label, text])

    @_page_errors
    def on_sample(name, lab, sentence, count, s, t, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        progress(0, desc="sampling pixel by pixel")
        return core.sample(core.pick(models, name, "generate"), count, lab, s, t, sentence)

    run.click(on_sample, [model, label, text, n, seed, temperature], grid)

    @_page_errors
    def on_more(name, s, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        progress(0, desc="drawing")
        return core.task_pictures(core.pick(models, name, "generate"), workdir, "generate", 0, seed=s)

    more.click(on_more, [model, seed], gallery)


@web_tab("complete", "Complete")
def _complete_tab(models, workdir) -> None:
    first = models[0]
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(_choices(models), value=first.label, label="model")
            source = gr.Radio(["test digit", "upload", "drawing"], value="test digit", label="input",
                              elem_id="complete-source")
            index = gr.Number(0, precision=0, label="test digit number")
            # a File, not an Image: Gradio's Image decodes uploads itself and fails without a word
            upload = gr.File(label="upload an image", type="filepath", elem_id="complete-upload",
                             visible=False)
            drawing = gr.Sketchpad(label="draw a digit", type="numpy", canvas_size=(280, 280),
                                   visible=False)
            region = gr.Radio(list(core.REGIONS), value=core.REGIONS[0], label="hidden region")
            n = gr.Slider(1, 16, value=5, step=1, label="completions")
            seed = gr.Number(0, precision=0, label="seed")
            temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="temperature")
            run = gr.Button("Complete", variant="primary", elem_id="complete-button")
        with gr.Column(scale=2):
            given = gr.Image(label="what the model sees (quantized)", type="numpy", interactive=False,
                             elem_id="complete-input")
            grid = gr.Image(label="hidden part grey, then the completions", type="numpy",
                            interactive=False, elem_id="complete-output")

    @_page_errors
    def on_complete(name, how, i, path, sketch, where, count, s, t, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        served = core.pick(models, name, "complete")
        shape = core.input_shape(served.model, "complete")
        if how == "upload":
            if not path:
                raise RnnImgError("upload an image first, or choose 'test digit'.")
            image = core.image_from_file(path, shape)
        elif how == "drawing":
            layers = (sketch or {}).get("composite") if isinstance(sketch, dict) else sketch
            if layers is None:
                raise RnnImgError("draw a digit first, or choose 'test digit'.")
            image = core.image_from_array(layers, shape)
        else:
            image = core.test_item(served, i)["image"].unsqueeze(0).float()
        progress(0, desc="completing pixel by pixel")
        return core.complete(served, image, where, count, s, t)

    run.click(on_complete, [model, source, index, upload, drawing, region, n, seed, temperature],
              [given, grid])
    source.change(lambda how: (gr.update(visible=how == "test digit"), gr.update(visible=how == "upload"),
                               gr.update(visible=how == "drawing")), source, [index, upload, drawing])


@web_tab("predict", "Predict")
def _predict_tab(models, workdir) -> None:
    first = models[0]
    with gr.Row():
        with gr.Column(scale=1):
            model = gr.Dropdown(_choices(models), value=first.label, label="model")
            source = gr.Radio(["test clip", "upload"], value="test clip", label="input")
            index = gr.Number(0, precision=0, label="test clip number (Moving MNIST test set)")
            upload = gr.File(label="upload a clip (.gif, .mp4, .npy, .npz)", type="filepath",
                             file_types=[".gif", ".mp4", ".npy", ".npz", ".avi", ".mov", ".webm"],
                             visible=False)
            horizon = gr.Slider(1, 30, value=first.model.config.horizon, step=1, label="frames to predict")
            futures = gr.Slider(1, 8, value=1, step=1, label="futures (sampled; svg)")
            run = gr.Button("Predict", variant="primary", elem_id="predict-button")
        with gr.Column(scale=2):
            gif = gr.Image(label="truth (left) beside prediction (right); green: given, red: predicted",
                           type="filepath", interactive=False, elem_id="predict-output")
            strip = gr.Image(label="the clip above, the prediction below", type="numpy", interactive=False)

    @_page_errors
    def on_predict(name, how, i, path, h, n, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        served = core.pick(models, name, "predict")
        if how == "upload":
            if not path:
                raise RnnImgError("upload a clip first, or choose 'test clip'.")
            clip = core.clip_from_file(path, served)
        else:
            clip = core.test_item(served, i)["frames"]
        progress(0, desc="predicting")
        return core.predict(served, clip, workdir, h, futures=int(n))

    run.click(on_predict, [model, source, index, upload, horizon, futures], [gif, strip])
    source.change(lambda how: (gr.update(visible=how == "test clip"), gr.update(visible=how == "upload")),
                  source, [index, upload])


def _pictures_tab(task: str):
    """The tab of a task without a builder: its task-layer pictures on a test item or an upload."""

    def build(models, workdir) -> None:
        with gr.Row():
            with gr.Column(scale=1):
                model = gr.Dropdown(_choices(models), value=models[0].label, label="model")
                index = gr.Number(0, precision=0, label="test item number")
                upload = gr.File(label="or upload an image", type="filepath",
                                 visible=task in core.UPLOAD_KEYS)
                seed = gr.Number(0, precision=0, label="seed")
                run = gr.Button("Run", variant="primary", elem_id=f"{task}-button")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label=f"{task}: pictures from rnnimg.tasks", columns=2)

        @_page_errors
        def on_run(name, i, path, s, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
            served = core.pick(models, name, task)
            progress(0, desc=task)
            image = core.image_from_file(path, core.input_shape(served.model, task)) if path else None
            return core.task_pictures(served, workdir, task, i, upload=image, seed=s)

        run.click(on_run, [model, index, upload, seed], gallery)

    return build


def build_app(models: list[core.ServedModel], workdir: Path) -> gr.Blocks:
    """The page: a header listing the served models, then one tab per task they do."""
    with gr.Blocks(title="rnnimg", analytics_enabled=False) as app:
        gr.Markdown("# rnnimg\nImage generation with recurrent neural networks. Served: "
                    + ", ".join(f"`{m.label}` ({'/'.join(m.tasks)})" for m in models))
        # tasks with a tab of their own first (sample, complete, predict), then the others
        order = list(_TABS)
        tasks = sorted(core.tasks_of(models), key=lambda t: order.index(t) if t in order else len(order))
        for task in tasks:
            title, build = _TABS.get(task, (task.capitalize(), _pictures_tab(task)))
            with gr.Tab(title, id=task):
                build(core.for_task(models, task), workdir)
    return app
