"""The ``generate`` task (``rnnimg sample``): draw new images, from noise, a class or a sentence.

Its inference function is :func:`sample`; its pictures are a grid of samples and, for a model that
draws in steps (DRAW), an animation of the drawing with the write window on each frame.
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor

from rnnimg.errors import InputError, RnnImgError
from rnnimg.limits import check_count, check_temperature
from rnnimg.models.generate.base import check_low_res, low_res_scale
from rnnimg.tasks.registry import Table, Task, assert_unit_range, per_class_table, register_task
from rnnimg.viz import make_grid

# the colour of the write window in drawing animations
WINDOW_COLOUR = (1.0, 0.15, 0.15)


def check_label(model, label, arg: str = "label") -> None:
    """A class for a class-conditional model: None, or an int / tensor of ints in 0..num_classes-1.

    Raises:
        InputError: a label for a model trained without labels, or one out of range.
    """
    if label is None:
        return
    num_classes = getattr(model.config, "num_classes", 0)
    if not num_classes:
        raise InputError(arg, "this model was trained without labels (num_classes=0); drop {arg}.")
    values = torch.as_tensor(label)
    if values.is_floating_point() or values.dtype == torch.bool:
        raise InputError(arg, f"{{arg}} must be a whole number, got {label!r}.")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= num_classes:
        raise InputError(arg, f"{{arg}} {high if high >= num_classes else low} is outside "
                              f"0..{num_classes - 1} (the model has num_classes={num_classes}).")


def check_text(model, text, arg: str = "text") -> None:
    """A caption for a caption model (which has a vocabulary), and none for any other.

    Raises:
        InputError: a caption for a model without one, or none for a caption model.
    """
    captions = bool(getattr(model.config, "vocabulary", ()))
    if text is not None and not captions:
        raise InputError(arg, f"{model.name} was trained without captions; drop {{arg}}.")
    if text is None and captions:
        raise InputError(arg, "this model draws from captions; pass a caption with {arg}.")


def check_sample_inputs(model, n: int, label=None, text=None, temperature: float = 1.0,
                        low_res=None) -> None:
    """Everything :func:`sample` takes, checked once before any work (one-line InputErrors)."""
    check_count(n, "n")
    check_temperature(temperature)
    check_label(model, label)
    check_text(model, text)
    check_low_res(model, low_res, n)


def sample(model, n: int, *, label=None, text=None, temperature: float = 1.0,
           generator: torch.Generator | None = None, low_res: Tensor | None = None) -> Tensor:
    """``n`` new images from a generator: (n, C, H, W) in [0, 1].

    Args:
        model: a model of the ``generate`` task.
        n: number of images (>= 1).
        label: class (int or (n,) tensor) for a class-conditional model.
        text: caption (str, one per image, or token ids) for a caption model.
        temperature: in (0, 10]; below 1 plainer, above 1 wilder pictures.
        generator: for reproducible samples.
        low_res: for a model trained with ``low_res_scale`` s (and only for one): the image
            (C, H / s, W / s) in [0, 1], or (1 or n, C, H / s, W / s), to draw ``n``
            high-resolution versions of.

    Raises:
        InputError: an argument the model cannot take (see :func:`check_sample_inputs`): a
            low-resolution image for a model that takes none, none for one that needs one, or one
            of the wrong size or channels.
    """
    check_sample_inputs(model, n, label, text, temperature, low_res)
    more = {} if low_res is None else {"low_res": low_res}  # models without one keep their verb
    return model.sample(n, label=label, text=text, temperature=temperature, generator=generator,
                        **more)


def bicubic_view(low_res: Tensor, scale: int) -> Tensor:
    """The bicubic upscale (PIL's kernel, clamped to [0, 1]) of (C, h, w) or (B, C, h, w): how the
    low-resolution input is shown beside its samples."""
    from rnnimg.models.translate.superres import bicubic_upscale

    batch = low_res if low_res.dim() == 4 else low_res.unsqueeze(0)
    up = bicubic_upscale(batch.float(), scale).clamp(0, 1)
    return up if low_res.dim() == 4 else up[0]


def sample_grid(model, n: int, *, label=None, text=None, temperature: float = 1.0,
                generator: torch.Generator | None = None, nrow: int = 8,
                low_res: Tensor | None = None) -> Tensor:
    """``n`` samples of a generator tiled into one picture (3, H', W'); given ``low_res`` (one
    image), its bicubic upscale comes first, then the samples. A voxel generator's samples are
    shapes, rendered."""
    from rnnimg.tasks import volumes

    if volumes.is_volume_model(model):
        return volumes.volume_grid(volumes.sample_volumes(model, n, label=label, temperature=temperature,
                                                          generator=generator).cpu(), nrow=nrow)
    images = sample(model, n, label=label, text=text, temperature=temperature, generator=generator,
                    low_res=low_res)
    if low_res is not None:
        low = torch.as_tensor(low_res)
        low = low if low.dim() == 4 else low.unsqueeze(0)  # (1 or n, C, h, w)
        images = torch.cat([bicubic_view(low[:1], low_res_scale(model)).to(images), images])
    return make_grid(images, nrow=nrow)


def draws_in_steps(model) -> bool:
    """True for a generator whose ``sample`` can return its steps (``return_steps=True``)."""
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
                          "animate (draw models can).")
    check_sample_inputs(model, n, label, text, temperature)
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


def samples_view(model, batch, generator) -> dict[str, Tensor]:
    """``samples.png``: 32 samples, cycling through the classes of a class-conditional model (or
    the captions of ``batch`` for a caption model); ``drawing.gif`` for a model that draws in steps:
    8 of them being drawn, with the write window on each frame."""
    from rnnimg.tasks import volumes

    if volumes.is_volume_model(model):  # rendered shapes, and completions of real ones
        return volumes.volume_view(model, batch, generator)
    if low_res_scale(model):  # a row per input: its bicubic upscale, samples, the image itself
        return {"samples.png": low_res_rows(model, batch, generator)}
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


def low_res_rows(model, batch, generator, inputs: int = 4, n: int = 5) -> Tensor:
    """Up to ``inputs`` rows: the bicubic upscale of ``batch["low_res"][i]``, ``n`` samples given
    it, then ``batch["image"][i]`` (the truth)."""
    low = batch["low_res"][:inputs].to(model.device)
    drawn = model.sample(len(low) * n, low_res=low.repeat_interleave(n, 0), generator=generator).cpu()
    rows = []
    for i in range(len(low)):
        rows += [bicubic_view(low[i].cpu(), low_res_scale(model)).unsqueeze(0),
                 drawn[i * n:(i + 1) * n], batch["image"][i:i + 1].cpu().float()]
    return make_grid(torch.cat(rows), nrow=n + 2)


def contract(model, batch, generator) -> Tensor:
    """Two samples (labels 0 and 1 for a class-conditional model): (2, C, H, W) in [0, 1]
    ((2, D, D, D) for a voxel generator)."""
    from rnnimg.tasks import volumes

    if volumes.is_volume_model(model):
        return volumes.sample_contract(model, batch, generator)
    c = model.config
    label = torch.tensor([0, 1]) if getattr(c, "num_classes", 0) else None
    more = {"low_res": batch["low_res"][:2]} if low_res_scale(model) else {}
    out = model.sample(2, label=label, generator=generator, **more)
    assert out.shape == (2, c.channels, c.image_size, c.image_size), tuple(out.shape)
    assert_unit_range(out)
    return out


def next_step_of(config: dict) -> tuple[str, bool] | None:
    """A model that draws from a small image (``low_res_scale`` s) is sampled with ``--low-res``
    and an image of its size / s; every other generator keeps the task's next step."""
    scale = int(config.get("low_res_scale") or 0)
    if not scale:
        return None
    side = int(config["image_size"]) // scale
    kind = "colour" if config.get("channels") == 3 else "grey"
    return (f"rnnimg sample {{run}} --low-res SMALL.png -n 4 -o grid.png  (SMALL.png: a {side}x{side} "
            f"{kind} image)", True)


def evaluation_tables(metrics: dict, class_names=()) -> list[Table]:
    """What ``rnnimg evaluate`` prints for a generator below its summary: the NLL per class where
    the model reports one (a voxel generator's bits per voxel, pooled over each class's shapes)."""
    if metrics.get("bits_per_voxel_per_class"):
        return [per_class_table("bits per voxel per class (pooled over each class's shapes)",
                                "bits/voxel", metrics["bits_per_voxel_per_class"], class_names,
                                "bits_per_voxel_per_class")]
    return []


GENERATE = register_task(Task(
    name="generate", verb="sample", title="Sample", batch_keys=("image",), contract=contract,
    infer=sample, views=(samples_view,), upload="image", hub_tag="unconditional-image-generation",
    next_step="rnnimg sample {run} -n 64 -o grid.png", needs_input=False, next_step_of=next_step_of,
    tables=evaluation_tables))
