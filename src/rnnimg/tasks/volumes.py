"""The pictures and the contracts of the voxel generators (``voxscan``, ``voxcnn``): sampled shapes
rendered into a grid, completions of the upper half of real shapes from their lower half.

:func:`complete_volumes` is the ``complete`` task's inference for voxel grids, and
:func:`volume_completion_grid` what ``rnnimg complete RUN shape.npy`` draws.

Voxel generators do the ``generate`` and ``complete`` tasks with volumes (n, D, D, D) where image
generators have images; :mod:`rnnimg.tasks.generate` and :mod:`rnnimg.tasks.complete` hand a voxel
generator (:func:`is_volume_model`) to the functions here.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.errors import InputError
from rnnimg.limits import check_count, check_temperature
from rnnimg.tasks.reconstruct import shape_renders
from rnnimg.tasks.registry import assert_unit_range
from rnnimg.viz import make_grid

GRID_CAMERA = 0  # which of tasks.reconstruct.SHAPE_CAMERAS draws a shape in a grid


def volume_grid(volumes: Tensor, size: int = 64, nrow: int = 8) -> Tensor:
    """Occupancy grids (n, D, D, D) rendered from one camera and tiled: (3, H', W') in [0, 1]."""
    return make_grid(shape_renders(volumes, size, level=0.5)[:, GRID_CAMERA], nrow=nrow)


def sample_volumes(model, n: int, *, label=None, temperature: float = 1.0,
                   generator: torch.Generator | None = None) -> Tensor:
    """``n`` volumes of a voxel generator (``label``: an index, a class name or (n,) indices;
    None and a conditional model: classes in turn)."""
    if label is None and model.config.num_classes:
        label = torch.arange(n, device=model.device) % model.config.num_classes
    return model.sample(n, label=label, temperature=temperature, generator=generator)


def lower_half_known(voxels: Tensor) -> Tensor:
    """(B, D, D, D) bool: True on the lower half (y < D / 2) of grids indexed [z, y, x]."""
    known = torch.zeros(voxels.shape, dtype=torch.bool, device=voxels.device)
    known[:, :, :voxels.shape[2] // 2] = True
    return known


def check_volume_inputs(model, voxels: Tensor, known: Tensor, label=None, temperature: float = 1.0):
    """Everything :func:`complete_volumes` takes, checked once before any work (one-line errors);
    returns the label as the model takes it (a class name becomes its index).

    Raises:
        InputError: grids that are not (B, D, D, D) of the model's size or hold values outside
            [0, 1] (``image``: what :func:`rnnimg.tasks.complete` calls its input); a mask that
            is not bool, of another shape, or hides nothing (``known``); a bad temperature.
        RnnImgError: an unknown class name or a label out of range.
    """
    d = model.config.voxel_size
    if voxels.dim() != 4 or tuple(voxels.shape[1:]) != (d, d, d):
        raise InputError("image", f"{{arg}} has shape {tuple(voxels.shape)}, but the model completes "
                                  f"(B, {d}, {d}, {d}) voxel grids; resample it to {d}^3.")
    if voxels.numel() and (not torch.isfinite(voxels).all() or voxels.min() < 0 or voxels.max() > 1):
        raise InputError("image", "{arg} must hold occupancy in [0, 1].")
    if known.dtype != torch.bool:
        raise InputError("known", f"{{arg}} must be a bool mask, got {known.dtype}.")
    if known.shape != voxels.shape:
        raise InputError("known", f"{{arg}} has shape {tuple(known.shape)}, but the grids need "
                                  f"{tuple(voxels.shape)}; make the mask the same size.")
    if bool(known.all()):
        raise InputError("known", "{arg} leaves no voxel unknown, so there is nothing to complete; "
                                  "mark the region to fill.")
    check_temperature(temperature)
    label = model.label_index(label)  # a class name -> its index (one line for an unknown one)
    if label is not None:
        from rnnimg.models.generate.base import check_labels

        check_labels(label, len(voxels), model.config.num_classes, "cpu")
    return label


def complete_volumes(model, voxels: Tensor, known: Tensor, *, label=None, temperature: float = 1.0,
                     generator: torch.Generator | None = None) -> Tensor:
    """Voxel grids (B, D, D, D) with the voxels where ``known`` (B, D, D, D) is False drawn by a
    voxel generator; the known voxels come back exactly (thresholded at 0.5, as the model sees
    them). ``label``: a class index, name or (B,) indices. :func:`rnnimg.tasks.complete` hands a
    voxel generator here."""
    label = check_volume_inputs(model, voxels, known, label, temperature)
    return model.complete(voxels.to(model.device), known.to(model.device), label=label,
                          generator=generator, temperature=temperature)


def completion_picture(voxels: Tensor, known: Tensor, completions: Tensor, size: int = 64) -> Tensor:
    """One picture of a completion: a row per camera of
    :data:`rnnimg.tasks.reconstruct.SHAPE_CAMERAS`, each showing the
    known voxels of ``voxels`` (D, D, D) (``known``, (D, D, D) bool), then the ``completions``
    (n, D, D, D): (3, H', W') in [0, 1]."""
    shapes = torch.cat([(voxels.cpu().float() * known.cpu()).unsqueeze(0), completions.cpu().float()])
    renders = shape_renders(shapes, size, level=0.5)  # (n + 1, cameras, 3, S, S)
    rows = renders.transpose(0, 1).flatten(0, 1)  # camera by camera
    return make_grid(rows, nrow=len(shapes))


def volume_completion_grid(model, voxels: Tensor, known: Tensor, n: int = 8, *, label=None,
                           temperature: float = 1.0, generator: torch.Generator | None = None,
                           size: int = 64) -> tuple[Tensor, Tensor]:
    """``n`` completions of one grid (D, D, D) whose voxels are kept where ``known`` (D, D, D) is
    True, and their picture (:func:`completion_picture`): ((n, D, D, D) in {0, 1}, (3, H', W'))."""
    check_count(n, "n")
    batch = voxels.unsqueeze(0).expand(n, -1, -1, -1)
    masks = known.unsqueeze(0).expand(n, -1, -1, -1)
    done = complete_volumes(model, batch, masks, label=label, temperature=temperature,
                            generator=generator).cpu()
    return done, completion_picture(voxels, known, done, size)


def is_volume_model(model) -> bool:
    """True for a voxel generator: its config has a ``voxel_size`` where image models have an
    ``image_size``."""
    return hasattr(model.config, "voxel_size")


def volume_view(model, batch, generator) -> dict[str, Tensor]:
    """``samples.png``: 16 samples (classes in turn for a conditional model), rendered.
    ``completions.png``: up to 3 real shapes, one row each: the known lower half, 4 completions of
    the upper half, the true shape."""
    pictures = {"samples.png": volume_grid(sample_volumes(model, 16, generator=generator).cpu())}
    if "voxels" in batch:
        voxels = batch["voxels"][:3].to(model.device)
        label = batch.get("label")
        n = 4
        label = None if label is None or not model.config.num_classes else \
            label[:3].to(model.device).repeat_interleave(n)
        known = lower_half_known(voxels)
        done = model.complete(voxels.repeat_interleave(n, 0), known.repeat_interleave(n, 0), label=label,
                              generator=generator).cpu()
        rows = []
        for i in range(len(voxels)):
            rows += [voxels[i].cpu() * known[i].cpu(), *done[i * n:(i + 1) * n], voxels[i].cpu()]
        pictures["completions.png"] = volume_grid(torch.stack(rows), nrow=n + 2)
    return pictures


def sample_contract(model, batch, generator) -> Tensor:
    """Two volumes (classes 0 and 1 for a class-conditional model): (2, D, D, D) in [0, 1]."""
    label = torch.tensor([0, 1]) if model.config.num_classes else None
    out = model.sample(2, label=label, generator=generator)
    assert out.shape == (2, *(model.config.voxel_size,) * 3), tuple(out.shape)
    assert_unit_range(out)
    return out


def complete_contract(model, batch, generator) -> Tensor:
    """The upper half of ``batch["voxels"]`` completed from the lower half: the input's shape, in
    [0, 1], the known voxels unchanged."""
    voxels = batch["voxels"]
    known = lower_half_known(voxels)
    label = batch.get("label") if model.config.num_classes else None
    out = model.complete(voxels, known, label=label, generator=generator)
    assert out.shape == voxels.shape, tuple(out.shape)
    assert_unit_range(out)
    assert torch.equal(out[known], voxels[known]), "known voxels changed"
    return out
