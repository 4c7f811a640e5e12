"""The pictures and the contracts of the voxel generators (``voxscan``, ``voxcnn``): sampled shapes
rendered into a grid, completions of the upper half of real shapes from their lower half.

Voxel generators do the ``generate`` and ``complete`` tasks with volumes (n, D, D, D) where image
generators have images; :mod:`rnnimg.tasks.generate` and :mod:`rnnimg.tasks.complete` hand a voxel
generator (:func:`is_volume_model`) to the functions here.
"""

from __future__ import annotations

import torch
from torch import Tensor

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
