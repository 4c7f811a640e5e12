"""The task layer: what people look at, per task.

Models return tensors; this module turns a model plus inputs into pictures and animations (sample
grids, completion grids, prediction strips and GIFs, ...), and prepares user inputs for a model
(quantising an image for completion, loading a run for a verb). The CLI, the training callbacks,
the demo and the web page all call it, so a picture looks the same wherever it is made.

A task registers one *view* with :func:`task_view`; :func:`preview` runs the view of every task a
model does (``model.tasks()``), so a new task brings its pictures by adding one function here and
nothing in the trainer, the demo or the CLI changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.viz import comparison_frames, frames_strip, make_grid, save_image, write_video

# how the unknown region of an input is shown in a completion grid: mid-grey, which no binarized
# image contains
UNKNOWN_FILL = 0.5

View = Callable[..., dict[str, Tensor]]
_VIEWS: dict[str, View] = {}

# CLI verb -> the task a model must do for it
VERB_TASKS = {"sample": "generate", "complete": "complete", "predict": "predict",
              "segment": "segment", "translate": "translate", "reconstruct": "reconstruct"}


def task_view(task: str) -> Callable[[View], View]:
    """Register ``f(model, batch, generator) -> {file name: picture}`` as the view of ``task``.

    A picture is (3, H, W) in [0, 1] (written as PNG) or frames (T, 3, H, W) (written as GIF).
    """

    def wrap(view: View) -> View:
        if task in _VIEWS:
            raise ValueError(f"task {task!r} has a view already")
        _VIEWS[task] = view
        return view

    return wrap


def preview(model, batch: dict[str, Tensor], generator: torch.Generator | None = None
            ) -> dict[str, Tensor]:
    """The pictures of ``model`` on ``batch``: the view of each task in ``model.tasks()``.

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
        for task in getattr(model, "view_tasks", None) or model.tasks():  # voxel generators: their own
            if task in _VIEWS:
                pictures.update(_VIEWS[task](model, batch, generator))
        return pictures
    finally:
        model.train(was_training)


def save_picture(picture: Tensor, path: str | os.PathLike, scale: int = 2, fps: float = 4) -> Path:
    """Write a picture (3, H, W) as an image file, or frames (T, 3, H, W) as a GIF, atomically.

    For frames the suffix of ``path`` is replaced by ``.gif``. Returns the path written.
    """
    path = Path(path)
    if picture.dim() == 4:
        return write_video(picture, path.with_suffix(".gif"), fps=fps, scale=scale)
    return save_image(picture, path, scale=scale)


# ---------------------------------------------------------------------------------------------
# generate


def sample_grid(model, n: int, *, label=None, text=None, temperature: float = 1.0,
                generator: torch.Generator | None = None, nrow: int = 8) -> Tensor:
    """``n`` samples of a generator tiled into one picture (3, H', W')."""
    images = model.sample(n, label=label, text=text, temperature=temperature, generator=generator)
    return make_grid(images, nrow=nrow)


@task_view("generate")
def _generate_view(model, batch, generator) -> dict[str, Tensor]:
    """``samples.png``: 32 samples, cycling through the classes of a class-conditional model (or
    the captions of ``batch`` for a caption model); ``drawing.gif`` for a model that draws in steps:
    8 of them being drawn, with the write window on each frame."""
    n = 32
    num_classes = getattr(model.config, "num_classes", 0)
    label = torch.arange(n, device=model.device) % num_classes if num_classes else None
    text = None
    if getattr(model.config, "vocabulary", ()) and "text" in batch:  # a caption model
        text = batch["text"][torch.arange(n) % len(batch["text"])].to(model.device)
    pictures = {"samples.png": sample_grid(model, n, label=label, text=text, generator=generator)}
    if draws_in_steps(model):
        pictures["drawing.gif"] = drawing_animation(
            model, 8, label=None if label is None else label[:8],
            text=None if text is None else text[:8], generator=generator, nrow=4)
    return pictures


# the colour of the write window in drawing animations
WINDOW_COLOUR = (1.0, 0.15, 0.15)


def draws_in_steps(model) -> bool:
    """True for a generator whose ``sample`` can return its steps (``return_steps=True``)."""
    import inspect

    return "return_steps" in inspect.signature(model.sample).parameters


def outline_boxes(images: Tensor, boxes: Tensor, colour=WINDOW_COLOUR) -> Tensor:
    """Draw one rectangle outline per image.

    Args:
        images: (n, 3, H, W) in [0, 1].
        boxes: (n, 4) left, top, right, bottom in 0-indexed pixel coordinates; rounded and
            clipped to the image (a window larger than the image shows as the image border).

    Returns:
        a copy of ``images`` with the outlines.
    """
    out = images.clone()
    _, _, h, w = out.shape
    rgb = torch.tensor(colour, dtype=out.dtype, device=out.device).view(3, 1)
    for img, (x0, y0, x1, y1) in zip(out, boxes.round().long().tolist()):
        x0, x1 = max(0, min(x0, w - 1)), max(0, min(x1, w - 1))
        y0, y1 = max(0, min(y0, h - 1)), max(0, min(y1, h - 1))
        img[:, y0, x0:x1 + 1] = rgb
        img[:, y1, x0:x1 + 1] = rgb
        img[:, y0:y1 + 1, x0] = rgb
        img[:, y0:y1 + 1, x1] = rgb
    return out


def drawing_animation(model, n: int, *, label=None, text=None, temperature: float = 1.0,
                      generator: torch.Generator | None = None, nrow: int = 8, hold: int = 4
                      ) -> Tensor:
    """Frames (T + hold, 3, H', W') of ``n`` samples being drawn: the canvas after every step, with
    the step's write window as a rectangle where the model has one, then the finished grid held
    for ``hold`` frames.

    Raises:
        RnnImgError: for a model that does not draw in steps.
    """
    if not draws_in_steps(model):
        raise RnnImgError(f"a {model.name!r} model does not draw in steps, so there is nothing to "
                          "animate; drop --animate (draw models can).")
    _, steps = model.sample(n, label=label, text=text, temperature=temperature, generator=generator,
                            return_steps=True)
    canvases = steps["canvases"].cpu()  # (T, n, C, H, W)
    boxes = steps.get("write_boxes")
    frames = []
    for t in range(canvases.shape[0]):
        rgb = canvases[t].expand(-1, 3, -1, -1) if canvases.shape[2] == 1 else canvases[t]
        if boxes is not None:
            rgb = outline_boxes(rgb, boxes[t].cpu())
        frames.append(make_grid(rgb, nrow=nrow))
    final = canvases[-1].expand(-1, 3, -1, -1) if canvases.shape[2] == 1 else canvases[-1]
    frames += [make_grid(final, nrow=nrow)] * hold
    return torch.stack(frames)


# ---------------------------------------------------------------------------------------------
# complete


def quantize_for_model(model, image: Tensor) -> Tensor:
    """Put an image (B, C, H, W) in [0, 1] on the grid of values the model was trained on.

    A model trained on binarized data sees pixels thresholded at 0.5; a model of ``levels``
    intensity levels sees the nearest level. The data options the model asks for
    (``model.dataset_options()``) say which.
    """
    options = model.dataset_options()
    if options.get("binarize"):
        return (image > 0.5).float()
    levels = options.get("levels")
    if levels:
        return torch.round(image * (levels - 1)) / (levels - 1)
    return image


def occlude(image: Tensor, known: Tensor) -> Tensor:
    """(C, H, W) in [0, 1] with (1, H, W) ``known`` -> RGB (3, H, W), the unknown part mid-grey."""
    rgb = image.float().expand(3, -1, -1) if image.shape[0] == 1 else image.float()
    return torch.where(known.to(rgb.device), rgb, torch.full_like(rgb, UNKNOWN_FILL))


def completion_grid(model, image: Tensor, known: Tensor, n: int = 8,
                    generator: torch.Generator | None = None, temperature: float = 1.0,
                    label: int | Tensor | None = None, nrow: int | None = None) -> Tensor:
    """One picture: the occluded input first, then ``n`` completions of it.

    Args:
        model: a model of the ``complete`` task.
        image: (C, H, W) or (1, C, H, W) in [0, 1].
        known: (1, H, W) or (1, 1, H, W) bool, True where the pixel is kept.
        n: number of completions.
        generator: for reproducible completions.
        temperature: passed to ``model.complete``.
        label: class index for a class-conditional model (one for all completions).
        nrow: pictures per grid row (default: all n + 1 in one row).

    Returns:
        (3, H', W') in [0, 1].
    """
    image = image[0] if image.dim() == 4 else image  # (C, H, W)
    known = known[0] if known.dim() == 4 else known  # (1, H, W)
    batch = image.unsqueeze(0).expand(n, -1, -1, -1).to(model.device)  # (n, C, H, W)
    masks = known.unsqueeze(0).expand(n, -1, -1, -1).to(model.device)  # (n, 1, H, W)
    completions = model.complete(batch, masks, label=label, generator=generator,
                                 temperature=temperature).cpu()
    rgb = completions.expand(-1, 3, -1, -1) if completions.shape[1] == 1 else completions
    pictures = torch.cat([occlude(image.cpu(), known.cpu()).unsqueeze(0), rgb])  # (n + 1, 3, H, W)
    return make_grid(pictures, nrow=nrow or n + 1)


@task_view("complete")
def _complete_view(model, batch, generator) -> dict[str, Tensor]:
    """``completions.png``: up to 4 images with the bottom half hidden; each row is the occluded
    image, then 5 completions."""
    images = quantize_for_model(model, batch["image"][:4].to(model.device))
    b, _, h, w = images.shape
    known = torch.ones(b, 1, h, w, dtype=torch.bool, device=model.device)
    known[:, :, h // 2:] = False
    n = 5
    label = None
    if "label" in batch and getattr(model.config, "num_classes", 0):
        label = batch["label"][:4].to(model.device).repeat_interleave(n)
    done = model.complete(images.repeat_interleave(n, 0), known.repeat_interleave(n, 0),
                          label=label, generator=generator).cpu()  # (b * n, C, H, W)
    rows = []
    for i in range(b):
        rows.append(occlude(images[i].cpu(), known[i].cpu()).unsqueeze(0))
        rows.append(done[i * n:(i + 1) * n].expand(-1, 3, -1, -1))
    return {"completions.png": make_grid(torch.cat(rows), nrow=n + 1)}


# ---------------------------------------------------------------------------------------------
# predict


def prediction_media(context: Tensor, truth: Tensor | None, prediction: Tensor
                     ) -> tuple[Tensor, Tensor]:
    """The animation and the strip of one predicted clip.

    Args:
        context: (T0, C, H, W) the frames given to the model.
        truth: (T1, C, H, W) the true continuation (grey frames where unknown), or None.
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


def predict_futures(model, context: Tensor, horizon: int, samples: int = 1, seed: int = 0) -> Tensor:
    """``samples`` futures of one clip: context (T0, C, H, W) -> (N, horizon, C, H, W).

    A stochastic model (svg) draws them from ``seed`` (``predict(..., samples=N)``); a deterministic
    one (convlstm, predrnn) has a single future and refuses N > 1 with one line."""
    if samples < 1:
        raise RnnImgError(f"-n/--samples must be >= 1, got {samples}.")
    given = context.unsqueeze(0).to(model.device)  # (1, T0, C, H, W)
    if getattr(model, "stochastic", False):
        gen = torch.Generator().manual_seed(int(seed))
        return model.predict(given, horizon, generator=gen, samples=samples)[0].cpu()
    if samples > 1:
        raise RnnImgError(f"{model.name} is deterministic: it predicts one future per clip; drop "
                          "-n/--samples (several futures need a stochastic model such as svg).")
    return model.predict(given, horizon)[0].unsqueeze(0).cpu()


@task_view("predict")
def _predict_view(model, batch, generator) -> dict[str, Tensor]:
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
    blank = torch.full_like(frames[:, :c.context], 0.5)
    below = [torch.cat([blank, futures[:, k]], dim=1) for k in range(futures.shape[1])]
    rows = torch.stack([frames, *below], dim=1)  # (n, 1 + N, T, C, H, W)
    animation, _ = prediction_media(frames[0, :c.context], frames[0, c.context:], futures[0])
    return {"prediction.png": make_grid(rows.flatten(0, 2), nrow=t), "prediction.gif": animation}


# ---------------------------------------------------------------------------------------------
# segment

IGNORE_COLOUR = (224, 224, 192)  # VOC's "void" colour, for mask pixels labelled 255


def mask_colours(mask: Tensor) -> Tensor:
    """Label map (H, W) -> RGB (3, H, W) in [0, 1]: class k in the PASCAL VOC palette's colour k
    (class 0 black), 255 (ignore) in VOC's void colour."""
    from rnnimg.data.segmentation import voc_palette

    palette = torch.from_numpy(voc_palette()).float() / 255.0  # (256, 3)
    palette[255] = torch.tensor(IGNORE_COLOUR) / 255.0
    return palette[mask.long().cpu().clamp(0, 255)].permute(2, 0, 1)


def mask_overlay(image: Tensor, mask: Tensor, alpha: float = 0.5) -> Tensor:
    """The image (C, H, W) in [0, 1] under its label map (H, W) in palette colours:
    (1 - alpha) * image + alpha * colour, RGB (3, H, W)."""
    rgb = image.float().cpu().expand(3, -1, -1) if image.shape[0] == 1 else image.float().cpu()
    return (1 - alpha) * rgb + alpha * mask_colours(mask)


def class_legend(names: list[str] | tuple[str, ...], labels, width: int,
                 swatch: int = 10) -> Tensor:
    """A legend (3, h, width) in [0, 1]: a palette swatch and the name of each class in
    ``labels`` (class indices; 255 is shown as "ignore"), laid out left to right, wrapping."""
    import numpy as np
    from PIL import Image, ImageDraw

    entries = [(int(k), "ignore" if int(k) == 255 else
                (names[int(k)] if int(k) < len(names) else str(int(k)))) for k in labels]
    cells = [swatch + 4 + 6 * len(text) + 10 for _, text in entries]  # PIL's default font: 6 px
    rows, x = 1, 0
    for cell in cells:
        if x and x + cell > width:
            rows, x = rows + 1, 0
        x += cell
    line = swatch + 4
    img = Image.new("RGB", (width, rows * line + 4), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    x, y = 2, 2
    for (k, text), cell in zip(entries, cells):
        if x > 2 and x + cell > width:
            x, y = 2, y + line
        colour = tuple(int(v * 255) for v in mask_colours(torch.tensor([[k]]))[:, 0, 0])
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=colour, outline=(0, 0, 0))
        draw.text((x + swatch + 3, y), text, fill=(0, 0, 0))
        x += cell
    return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0


def with_legend(picture: Tensor, names, labels) -> Tensor:
    """``picture`` (3, H, W) with a legend of ``labels`` below it."""
    legend = class_legend(names, labels, picture.shape[-1])
    return torch.cat([picture.cpu(), legend], dim=1)


def segmentation_overlay(model, image: Tensor, labels: Tensor, alpha: float = 0.5) -> Tensor:
    """One picture for ``rnnimg segment --overlay``: the image (C, H, W) under the predicted
    labels (H, W), with a legend naming the classes that occur."""
    present = sorted(int(k) for k in labels.unique())
    return with_legend(mask_overlay(image, labels, alpha), model.class_names, present)


def segment_image(model, image: Tensor, resize: bool = True, *, tile: int | None = None,
                  overlap: int | None = None, progress: bool = False) -> Tensor:
    """Labels (H, W) of one image (C, H, W) in [0, 1] (or uint8) of any size.

    With ``resize`` the image is resized (antialiased bilinear) to the model's training size, as
    the datasets do, and the labels are resized back with nearest neighbour only (no invented
    labels); otherwise the model runs at the image's own size, over overlapping ``tile`` x
    ``tile`` tiles (``model.segment``; None = all at once). A uint8 image gives uint8 labels.
    """
    import torch.nn.functional as F

    from rnnimg.data.segmentation import resize_mask

    h, w = image.shape[-2:]
    size = model.config.image_size
    batch = image.unsqueeze(0)
    if resize and (h, w) != (size, size):
        batch = batch.float() / 255.0 if batch.dtype == torch.uint8 else batch.float()
        batch = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1)
    elif batch.dtype != torch.uint8:
        batch = batch.float()
    labels = model.segment(batch.to(model.device), tile=tile, overlap=overlap, progress=progress)[0]
    return resize_mask(labels.cpu(), (h, w))


@task_view("segment")
def _segment_view(model, batch, generator) -> dict[str, Tensor]:
    """``segmentation.png``: for up to 8 images, the image, the true mask over it (where ``batch``
    has a ``mask``) and the predicted mask over it, side by side; a legend names every class that
    occurs."""
    images = batch["image"][:8].to(model.device)
    predicted = model.segment(images).cpu()
    truth = batch["mask"][:8].cpu() if "mask" in batch else None
    cells = []
    for i, (image, pred) in enumerate(zip(images.cpu(), predicted)):
        cells.append(image.expand(3, -1, -1) if image.shape[0] == 1 else image)
        if truth is not None:
            cells.append(mask_overlay(image, truth[i]))
        cells.append(mask_overlay(image, pred))
    per_image = len(cells) // len(images)
    grid = make_grid(torch.stack(cells), nrow=2 * per_image if len(images) > 1 else per_image)
    present = set(predicted.unique().tolist()) | (set() if truth is None else set(truth.unique().tolist()))
    return {"segmentation.png": with_legend(grid, model.class_names, sorted(present))}


# ---------------------------------------------------------------------------------------------
# translate


def translation_strip(model, source: Tensor, target: Tensor | None = None) -> Tensor:
    """Before / steps / after: one row per image, the input, the estimate after every refinement
    step (the last one is the output), and the target where it is known.

    Args:
        model: a model of the ``translate`` task.
        source: (B, C_in, H, W) in [0, 1].
        target: (B, C_out, H, W) or None.

    Returns:
        (3, H', W') in [0, 1].
    """
    steps = model.translate(source.to(model.device), return_steps=True).cpu()  # (B, K, C, H, W)
    if steps.shape[-2:] != source.shape[-2:]:  # super-resolution: the input's pixels enlarged
        source = torch.nn.functional.interpolate(source.float(), size=steps.shape[-2:], mode="nearest")
    rows = []
    for i in range(len(steps)):
        row = [source[i].cpu().expand(3, -1, -1) if source.shape[1] == 1 else source[i].cpu()]
        row += [s.expand(3, -1, -1) if s.shape[0] == 1 else s for s in steps[i]]
        if target is not None:
            row.append(target[i].cpu().expand(3, -1, -1) if target.shape[1] == 1 else target[i].cpu())
        rows.append(torch.stack(row))  # (1 + K [+ 1], 3, H, W)
    return frames_strip(rows)


@task_view("translate")
def _translate_view(model, batch, generator) -> dict[str, Tensor]:
    """``translation.png``: for up to 8 images, the input, every refinement step (the last is the
    output) and the target (where ``batch`` has one), one image a row."""
    target = batch["target"][:8] if "target" in batch else None
    return {"translation.png": translation_strip(model, batch["source"][:8], target)}


# ---------------------------------------------------------------------------------------------
# loading a model for a verb


def load_model_for(run: str | os.PathLike, verb: str, device: str = "cpu"):
    """Load the model in ``run`` (a run or model folder) for the CLI verb ``verb``.

    Raises:
        RnnImgError: if the folder holds no model, or one that cannot do ``verb``; the message
            names the models that can.
    """
    from rnnimg.models.checkpoint import load_pretrained
    from rnnimg.models.registry import list_models

    task = VERB_TASKS[verb]
    model = load_pretrained(run, map_location=device)
    if task not in model.tasks():
        able = ", ".join(list_models(task)) or "none yet"
        raise RnnImgError(f"{run} holds a {model.name!r} model ({'/'.join(model.tasks())}), which "
                          f"cannot {verb}; models that can: {able}.")
    return model


# the views and pictures of the reconstruct task and of the voxel generators live beside this
# module (tasks.py is at its size limit); importing them registers their views
from rnnimg import tasks_reconstruct, tasks_voxgen  # noqa: E402, F401
