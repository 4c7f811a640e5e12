"""The voxel generators' pictures: sampled shapes rendered into a grid, completions of the upper half
of real shapes from their lower half, and the task view that training previews show. Part of the
task layer (:mod:`rnnimg.tasks` imports it so the view is registered); kept in its own file because
tasks.py is at its size limit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.tasks import task_view
from rnnimg.tasks_reconstruct import shape_renders
from rnnimg.viz import make_grid

GRID_CAMERA = 0  # which of tasks_reconstruct.SHAPE_CAMERAS draws a shape in a grid


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


@task_view("generate-volume")
def _generate_volume_view(model, batch, generator) -> dict[str, Tensor]:
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
