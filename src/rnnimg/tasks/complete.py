"""The ``complete`` task (``rnnimg complete``): fill in the hidden part of an image.

A second task of the raster generators (pixelrnn, pixelscan: ``extra_tasks``). Its inference
function is :func:`complete`; its pictures show the occluded input (the hidden part mid-grey) and
completions beside it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.errors import InputError
from rnnimg.limits import check_count, check_temperature
from rnnimg.models.generate.base import check_low_res, low_res_scale
from rnnimg.tasks.generate import check_label
from rnnimg.tasks.registry import Task, assert_unit_range, register_task
from rnnimg.viz import make_grid

# how the unknown region of an input is shown in a completion grid: mid-grey, which no binarized
# image contains
UNKNOWN_FILL = 0.5


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


def check_complete_inputs(model, image: Tensor, known: Tensor, label=None,
                          temperature: float = 1.0, low_res=None) -> None:
    """Everything :func:`complete` takes, checked once before any work (one-line errors).

    Raises:
        RnnImgError: an image of another shape than the model's (``model.check_image``).
        InputError: a mask that is not bool, of another size, or that hides nothing; a bad
            label or temperature.
    """
    model.check_image(image)
    if known.dtype != torch.bool:
        raise InputError("known", f"{{arg}} must be a bool mask, got {known.dtype}.")
    want = (image.shape[0], 1, *image.shape[2:])
    if tuple(known.shape) != want:
        raise InputError("known", f"{{arg}} has shape {tuple(known.shape)}, but the image needs "
                                  f"{want}; make the mask the same size as the image.")
    if bool(known.all()):
        raise InputError("known", "{arg} leaves no pixel unknown, so there is nothing to complete; "
                                  "mark the region to fill.")
    check_label(model, label)
    check_temperature(temperature)
    check_low_res(model, low_res, image.shape[0])


def complete(model, image: Tensor, known: Tensor, *, label=None, temperature: float = 1.0,
             generator: torch.Generator | None = None, low_res: Tensor | None = None) -> Tensor:
    """The image (B, C, H, W) in [0, 1] with the pixels where ``known`` (B, 1, H, W) is False
    drawn by the model; the known pixels come back unchanged.

    A voxel generator takes voxel grids (B, D, D, D) and ``known`` (B, D, D, D) instead, and a
    class index or name as ``label`` (:func:`rnnimg.tasks.volumes.complete_volumes`).

    Raises:
        RnnImgError: an argument the model cannot take (see :func:`check_complete_inputs`).
    """
    from rnnimg.tasks import volumes

    if volumes.is_volume_model(model):
        if low_res is not None:
            raise InputError("low_res", f"a {model.name!r} model completes voxel grids; drop {{arg}}.")
        return volumes.complete_volumes(model, image, known, label=label, temperature=temperature,
                                        generator=generator)
    check_complete_inputs(model, image, known, label, temperature, low_res)
    more = {} if low_res is None else {"low_res": low_res}  # a model with a low_res_scale
    return model.complete(image, known, label=label, generator=generator, temperature=temperature,
                          **more)


def completion_grid(model, image: Tensor, known: Tensor, n: int = 8,
                    generator: torch.Generator | None = None, temperature: float = 1.0,
                    label: int | Tensor | None = None, nrow: int | None = None,
                    low_res: Tensor | None = None) -> Tensor:
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
        low_res: for a model trained with ``low_res_scale`` s (and only for one): the small
            image (C, H / s, W / s) or (1, C, H / s, W / s) that every completion is drawn given.

    Returns:
        (3, H', W') in [0, 1].
    """
    image = image[0] if image.dim() == 4 else image  # (C, H, W)
    known = known[0] if known.dim() == 4 else known  # (1, H, W)
    check_count(n, "n")
    check_complete_inputs(model, image.unsqueeze(0), known.unsqueeze(0), label, temperature, low_res)
    batch = image.unsqueeze(0).expand(n, -1, -1, -1).to(model.device)  # (n, C, H, W)
    masks = known.unsqueeze(0).expand(n, -1, -1, -1).to(model.device)  # (n, 1, H, W)
    more = {} if low_res is None else {"low_res": check_low_res(model, low_res, n)}  # (n, C, h, w)
    completions = model.complete(batch, masks, label=label, generator=generator,
                                 temperature=temperature, **more).cpu()
    rgb = completions.expand(-1, 3, -1, -1) if completions.shape[1] == 1 else completions
    pictures = torch.cat([occlude(image.cpu(), known.cpu()).unsqueeze(0), rgb])  # (n + 1, 3, H, W)
    return make_grid(pictures, nrow=nrow or n + 1)


def completions_view(model, batch, generator) -> dict[str, Tensor]:
    """``completions.png``: up to 4 images with the bottom half hidden; each row is the occluded
    image, then 5 completions. (A voxel generator's completions are in its samples view.)"""
    from rnnimg.tasks import volumes

    if volumes.is_volume_model(model):
        return {}
    images = quantize_for_model(model, batch["image"][:4].to(model.device))
    b, _, h, w = images.shape
    known = torch.ones(b, 1, h, w, dtype=torch.bool, device=model.device)
    known[:, :, h // 2:] = False
    n = 5
    label = None
    if "label" in batch and getattr(model.config, "num_classes", 0):
        label = batch["label"][:4].to(model.device).repeat_interleave(n)
    more = {"low_res": batch["low_res"][:4].to(model.device).repeat_interleave(n, 0)} \
        if low_res_scale(model) else {}
    done = model.complete(images.repeat_interleave(n, 0), known.repeat_interleave(n, 0),
                          label=label, generator=generator, **more).cpu()  # (b * n, C, H, W)
    rows = []
    for i in range(b):
        rows.append(occlude(images[i].cpu(), known[i].cpu()).unsqueeze(0))
        rows.append(done[i * n:(i + 1) * n].expand(-1, 3, -1, -1))
    return {"completions.png": make_grid(torch.cat(rows), nrow=n + 1)}


def contract(model, batch, generator) -> Tensor:
    """The bottom half of ``batch["image"]`` completed: the input's shape, in [0, 1], the known
    pixels unchanged (a voxel generator: the upper half of ``batch["voxels"]``)."""
    from rnnimg.tasks import volumes

    if volumes.is_volume_model(model):
        return volumes.complete_contract(model, batch, generator)
    image = batch["image"]
    b, _, h, w = image.shape
    known = torch.ones(b, 1, h, w, dtype=torch.bool)
    known[:, :, h // 2:] = False
    label = batch.get("label") if getattr(model.config, "num_classes", 0) else None
    more = {"low_res": batch["low_res"]} if low_res_scale(model) else {}
    out = model.complete(image, known, label=label, generator=generator, **more)
    assert out.shape == image.shape, tuple(out.shape)
    assert_unit_range(out)
    assert torch.equal(out[known.expand_as(image)], image[known.expand_as(image)]), "known pixels changed"
    return out


COMPLETE = register_task(Task(
    name="complete", verb="complete", title="Complete", batch_keys=("image",), contract=contract,
    infer=complete, views=(completions_view,), upload="image"))
