"""The Gradio page of ``rnnimg serve``: one tab per task of the served models.

Tabs are built per task, not per model, one per registered task (:func:`rnnimg.tasks.list_tasks`,
in its order, titled by the task's record) that a served model does: a task with a tab builder here
(sample, with an upload for the small image a pixelscan with ``low_res_scale`` draws from; complete,
predict; translate, which shows super-resolution models as input / output /
bicubic side by side; reconstruct, which shows the mesh in a 3D viewer beside its turntable)
gets its controls; any other task (segment, and whatever comes next), and translate where no
super-resolver is served, gets a tab that runs the model on a test image or an uploaded one
(where the task's record says what an upload stands for) and shows the task's pictures
(:func:`rnnimg.tasks.preview`).
So serving a model of a new task brings its tab without an edit here. Every tab shows a first
result when the page opens (its default model on the first test item), so nobody meets a page of
empty panels. The work itself is in :mod:`rnnimg.serve.core`;
this module lays out controls and turns RnnImgError into page messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from rnnimg import limits
from rnnimg.errors import RnnImgError
from rnnimg.serve import core, shapes, upscale
from rnnimg.tasks import Task


@dataclass
class TabRun:
    """What a tab's main button does: ``fn(*inputs) -> outputs``; the page also runs it once when it
    opens, with the controls' first values, so that the tab shows a first result."""

    button: gr.Button
    fn: Callable
    inputs: list
    outputs: list


TabBuilder = Callable[[list[core.ServedModel], Path], TabRun]
_TABS: dict[str, TabBuilder] = {}


def web_tab(task: str) -> Callable[[TabBuilder], TabBuilder]:
    """Register ``build(models, workdir) -> TabRun`` as the tab of ``task``, called inside
    ``gr.Tab(title)`` with the title of the task's record."""

    def wrap(build: TabBuilder) -> TabBuilder:
        _TABS[task] = build
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


# ---------------------------------------------------------------------------------------------
# controls more than one tab has


def _model_choice(models: list[core.ServedModel], elem_id: str | None = None) -> gr.Dropdown:
    return gr.Dropdown([m.label for m in models], value=models[0].label, label="model", elem_id=elem_id)


def _seed_and_temperature(tab: str, temperature: bool = True):
    seed = gr.Number(0, precision=0, label="seed (the same seed gives the same pictures)",
                     elem_id=f"{tab}-seed")
    if not temperature:
        return seed, None
    return seed, gr.Slider(0.05, 2.0, value=1.0, step=0.05,
                           label="temperature (lower: safer, plainer pictures; higher: wilder)")


def _input_choice(choices: list[str], elem_id: str) -> gr.Radio:
    """A radio of where the input comes from (the first choice at first)."""
    return gr.Radio(choices, value=choices[0], label="input", elem_id=elem_id)


def _show_chosen(source: gr.Radio, panels: list) -> None:
    """Show only the panel of the chosen input (``panels`` in the order of the choices)."""
    choices = [c[0] if isinstance(c, tuple) else c for c in source.choices]
    source.change(lambda how: [gr.update(visible=how == c) for c in choices], source,
                  panels[:len(choices)], queue=False)  # not behind a running model


def _upload(elem_id: str, what: str = "your image (PNG, JPEG, ...)", **kwargs) -> gr.File:
    # a File, not an Image: Gradio's Image decodes uploads itself and fails without a word
    return gr.File(label=what, type="filepath", elem_id=elem_id, visible=False, **kwargs)


# ---------------------------------------------------------------------------------------------


@web_tab("generate")
def _sample_tab(models, workdir) -> TabRun:
    first = models[0]
    with gr.Row():
        with gr.Column(scale=1):
            model = _model_choice(models, "sample-model")
            label = gr.Dropdown(core.labels_of(first), value="any", label="digit to draw (models trained "
                                "with labels)", visible=len(core.labels_of(first)) > 1)
            text = gr.Textbox(label="sentence to draw (caption models)", visible=core.takes_text(first),
                              value=core.example_sentence(first), elem_id="sample-text",
                              placeholder="e.g. the digit 3 is at the top left")
            small = gr.File(label=_small_label(first), type="filepath", elem_id="sample-low-res",
                            visible=core.low_res_scale(first) > 0, file_types=["image"])
            n = gr.Slider(1, limits.PAGE_MAX_SAMPLES, value=16, step=1, label="number of pictures")
            seed, temperature = _seed_and_temperature("sample")
            run = gr.Button("Sample", variant="primary", elem_id="sample-button")
        with gr.Column(scale=2):
            # PNG: Gradio's default WebP is lossy, and smears grids of small pictures
            grid = gr.Image(label="pictures the model made up", type="numpy", elem_id="sample-output",
                            interactive=False, format="png")
            more = gr.Button("More: 32 pictures, and an animation for models that draw step by step",
                             size="sm", elem_id="sample-more")
            gallery = gr.Gallery(label="more pictures of this model", columns=2, elem_id="sample-gallery")

    def on_model(name):
        served = core.pick(models, name, "generate")
        labels = core.labels_of(served)
        return (gr.update(choices=labels, value="any", visible=len(labels) > 1),
                gr.update(visible=core.takes_text(served), value=core.example_sentence(served)),
                gr.update(visible=core.low_res_scale(served) > 0, value=None, label=_small_label(served)))

    model.change(on_model, model, [label, text, small])

    @_page_errors
    def on_sample(name, lab, sentence, count, s, t, path, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        served = core.pick(models, name, "generate")
        progress(0, desc="making pictures")
        return core.sample(served, count, lab, s, t, sentence, low_res=core.low_res_for(served, path))

    @_page_errors
    def on_more(name, s, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        progress(0, desc="drawing")
        return core.task_pictures(core.pick(models, name, "generate"), workdir, "generate", 0, seed=s)

    more.click(on_more, [model, seed], gallery)
    return TabRun(run, on_sample, [model, label, text, n, seed, temperature, small], [grid])


def _small_label(served: core.ServedModel) -> str:
    """The label of the Sample tab's small-image upload, with the size the model takes."""
    scale = core.low_res_scale(served)
    if not scale:
        return "the small image"
    c = served.model.config
    side, kind = c.image_size // scale, "colour" if c.channels == 3 else "grey"
    return (f"the small image ({side}x{side} {kind}) to draw {c.image_size}x{c.image_size} versions of; "
            "empty: the first test image's")


@web_tab("complete")
def _complete_tab(models, workdir) -> TabRun:
    with gr.Row():
        with gr.Column(scale=1):
            model = _model_choice(models)
            source = _input_choice(["test digit", "upload", "drawing"], "complete-source")
            index = gr.Number(0, precision=0, label="test digit number")
            upload = _upload("complete-upload")
            drawing = gr.Sketchpad(label="draw a digit", type="numpy", canvas_size=(280, 280),
                                   visible=False)
            _show_chosen(source, [index, upload, drawing])
            region = gr.Radio(list(core.REGIONS), value=core.REGIONS[0], label="part to hide and fill in")
            n = gr.Slider(1, limits.PAGE_MAX_COMPLETIONS, value=5, step=1, label="number of completions")
            seed, temperature = _seed_and_temperature("complete")
            run = gr.Button("Complete", variant="primary", elem_id="complete-button")
        with gr.Column(scale=2):
            given = gr.Image(label="the picture as the model sees it", type="numpy", interactive=False,
                             elem_id="complete-input")
            grid = gr.Image(label="hidden part in grey, then the model's completions", type="numpy",
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

    return TabRun(run, on_complete, [model, source, index, upload, drawing, region, n, seed, temperature],
                  [given, grid])


@web_tab("predict")
def _predict_tab(models, workdir) -> TabRun:
    first = models[0]
    with gr.Row():
        with gr.Column(scale=1):
            model = _model_choice(models)
            source = _input_choice(["test clip", "upload"], "predict-source")
            index = gr.Number(0, precision=0, label="test clip number (Moving MNIST test set)")
            upload = _upload("predict-upload", "your clip (.gif, .mp4, .npy, .npz)",
                             file_types=[".gif", ".mp4", ".npy", ".npz", ".avi", ".mov", ".webm"])
            _show_chosen(source, [index, upload])
            horizon = gr.Slider(1, limits.PAGE_MAX_HORIZON, value=first.model.config.horizon, step=1,
                                label="frames to predict")
            futures = gr.Slider(1, limits.PAGE_MAX_FUTURES, value=1, step=1, label="futures (sampled; svg)")
            run = gr.Button("Predict", variant="primary", elem_id="predict-button")
        with gr.Column(scale=2):
            gif = gr.Image(label="real clip (left), prediction (right); green: given, red: predicted",
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

    return TabRun(run, on_predict, [model, source, index, upload, horizon, futures], [gif, strip])


@web_tab("translate")
def _translate_tab(models, workdir) -> TabRun:
    """The generic pictures tab, and for super-resolution models (``scale`` > 1) the upscale view:
    the input, the model's output and PIL's bicubic side by side, at the input's own size (tiled),
    with the output's size and, where the page downscaled a test image or the upload, the PSNR-Y
    of both against the original."""
    from rnnimg.tasks import get_task

    pictures = _pictures_tab(get_task("translate"))
    if not any(upscale.upscales(m) for m in models):
        return pictures(models, workdir)
    first = upscale.upscales(models[0])
    with gr.Row():
        with gr.Column(scale=1):
            model = _model_choice(models)
            source = _input_choice(["test image", "upload"], "translate-source")
            index = gr.Number(0, precision=0, label="test image number (shown downscaled, then upscaled)")
            upload = _upload("translate-upload")
            _show_chosen(source, [index, upload])
            shrink = gr.Checkbox(False, label="shrink my upload first (to compare with it)",
                                 visible=first, elem_id="translate-shrink")
            seed, _ = _seed_and_temperature("translate", temperature=False)
            run = gr.Button("Translate", variant="primary", elem_id="translate-button")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="the picture, the right answer (test images only), then the "
                                 "model's answer", columns=1, object_fit="contain", height="auto",
                                 elem_id="translate-output", visible=not first)
            caption = gr.Markdown(elem_id="upscale-caption", visible=first)
            with gr.Row():
                shown = gr.Image(label="input (pixels enlarged)", type="numpy", interactive=False,
                                 elem_id="upscale-input", visible=first, format="png")
                output = gr.Image(label="the model's upscale", type="numpy", interactive=False,
                                  elem_id="upscale-output", visible=first, format="png")
                bicubic = gr.Image(label="bicubic", type="numpy", interactive=False,
                                   elem_id="upscale-bicubic", visible=first, format="png")
            original = gr.Image(label="the original (the input is its downscale)", type="numpy",
                                interactive=False, elem_id="upscale-original", visible=first, format="png")
    panels = [caption, shown, output, bicubic, original]  # PNG: Gradio's default WebP is lossy

    def on_model(name):
        up = upscale.upscales(core.pick(models, name, "translate"))
        return [gr.update(visible=not up), gr.update(visible=up)] + [gr.update(visible=up)] * len(panels)

    model.change(on_model, model, [gallery, shrink, *panels], queue=False)

    @_page_errors
    def on_run(name, how, i, path, small, s, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        served = core.pick(models, name, "translate")
        if not upscale.upscales(served):
            paths = _run_pictures(served, workdir, "translate", how, i, path, s, progress)
            return [gr.update(value=paths, visible=True)] + [gr.update(value=None, visible=False)] * 5
        progress(0, desc="upscaling")
        if how == "upload":
            if not path:
                raise RnnImgError("upload an image first, or choose 'test image'.")
            result = upscale.upscale_file(served, path, shrink_first=bool(small))
        else:
            result = upscale.upscale_test_photo(served, i)
        shows = [result.caption, result.input, result.output, result.bicubic]
        return [gr.update(visible=False), *(gr.update(value=v, visible=True) for v in shows),
                gr.update(value=result.original, visible=result.original is not None)]

    return TabRun(run, on_run, [model, source, index, upload, shrink, seed], [gallery, *panels])


@web_tab("reconstruct")
def _reconstruct_tab(models, workdir) -> TabRun:
    """The shape seen in a test item's views or in uploaded views: the mesh in a 3D viewer, the
    turntable beside it, the views below."""
    with gr.Row():
        with gr.Column(scale=1):
            model = _model_choice(models)
            index = gr.Number(0, precision=0, label="test object number (its views are used unless you "
                              "upload views)")
            uploads = gr.File(label="or your views of one object (images of one size, in order)",
                              file_count="multiple", type="filepath", elem_id="reconstruct-upload")
            level = gr.Slider(0.1, 0.9, value=0.4, step=0.05, label="level: occupancy at which the "
                              "surface lies (lower: fuller shapes)")
            run = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct-button")
        with gr.Column(scale=2):
            message = gr.Markdown(elem_id="reconstruct-message")
            with gr.Row():
                # Gradio's own light background: where a browser cannot light the mesh, its
                # silhouette still shows (black on black would show nothing)
                mesh = gr.Model3D(label="the mesh (.obj; drag to turn it)", elem_id="reconstruct-mesh",
                                  height=320)
                spin = gr.Image(label="turntable", type="filepath", interactive=False,
                                elem_id="reconstruct-spin")
            views = gr.Image(label="the views the model saw", type="filepath", interactive=False,
                             elem_id="reconstruct-views")

    @_page_errors
    def on_reconstruct(name, i, paths, lev, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
        progress(0, desc="reconstructing")
        obj, gif, strip, summary = shapes.reconstruct(core.pick(models, name, "reconstruct"), workdir, i,
                                                    paths, lev)
        return obj, gif, strip, page_message(summary)

    return TabRun(run, on_reconstruct, [model, index, uploads, level], [mesh, spin, views, message])


def _run_pictures(served, workdir, key: str, how: str, i, path, s, progress) -> list[str]:
    """The pictures tab's work: the task's pictures of a test image or of an upload."""
    progress(0, desc="running the model")
    image = None
    if how == "upload":
        if not path:
            raise RnnImgError("upload an image first, or choose 'test image'.")
        image = core.image_from_file(path, core.input_shape(served.model, key), invert_light=False)
    return core.task_pictures(served, workdir, key, i, upload=image, seed=s)


def _pictures_tab(task: Task) -> TabBuilder:
    """The tab of a task without a builder: the model run on a test image or an upload, shown as
    the task's pictures (with the true answer beside it where the test item has one)."""
    key = task.name

    def build(models, workdir) -> TabRun:
        takes_upload = task.upload is not None
        with gr.Row():
            with gr.Column(scale=1):
                model = _model_choice(models)
                source = _input_choice(["test image", "upload"] if takes_upload else ["test image"],
                                       f"{key}-source")
                index = gr.Number(0, precision=0, label="test image number")
                upload = _upload(f"{key}-upload")
                _show_chosen(source, [index, upload])
                seed, _ = _seed_and_temperature(key, temperature=False)
                run = gr.Button(task.title, variant="primary", elem_id=f"{key}-button")
            with gr.Column(scale=2):
                gallery = gr.Gallery(label="the picture, the right answer (test images only), then the "
                                     "model's answer", columns=1, object_fit="contain", height="auto",
                                     elem_id=f"{key}-output")

        @_page_errors
        def on_run(name, how, i, path, s, progress=gr.Progress()):  # noqa: B008 (Gradio reads the default)
            return _run_pictures(core.pick(models, name, key), workdir, key, how, i, path, s, progress)

        return TabRun(run, on_run, [model, source, index, upload, seed], [gallery])

    return build


def build_app(models: list[core.ServedModel], workdir: Path) -> gr.Blocks:
    """The page: a header naming the served models, then one tab per registered task they do (in
    the registry's order), each showing a first result when the page opens."""
    tasks = core.page_tasks(models)
    titles = {t.name: t.title for t in tasks}
    with gr.Blocks(title="rnnimg", analytics_enabled=False) as app:
        gr.Markdown("# rnnimg\nPictures made, completed, predicted and changed by recurrent neural "
                    "networks. Each tab is one thing the models can do; choose a model, change the "
                    "settings and press the button. Models on this page: "
                    + "; ".join(f"**{m.label}** ({', '.join(titles[t] for t in m.tasks)})" for m in models))
        for task in tasks:
            build = _TABS.get(task.name) or _pictures_tab(task)
            with gr.Tab(task.title, id=task.name):
                tab = build(core.for_task(models, task.name), workdir)
            tab.button.click(tab.fn, tab.inputs, tab.outputs, api_name=task.name)
            app.load(tab.fn, tab.inputs, tab.outputs, api_name=f"{task.name}_on_open")  # a first result
    return app
