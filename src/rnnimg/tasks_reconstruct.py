"""The ``reconstruct`` task's pictures: shapes rendered from two cameras, turntables, and the
task view (input views | predicted shape | true shape). Part of the task layer (:mod:`rnnimg.tasks`
imports it so the view is registered); kept in its own file because tasks.py is at its size limit.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.tasks import task_view
from rnnimg.viz import make_grid

SHAPE_CAMERAS = ((30.0, 25.0), (210.0, 25.0))  # (azimuth, elevation) of the shape renders


def shape_renders(voxels: Tensor, size: int, level: float = 0.4) -> Tensor:
    """Occupancy grids (B, D, D, D) drawn from :data:`SHAPE_CAMERAS`: (B, cameras, 3, S, S) on a
    black background (as the views); a voxel is filled at >= ``level`` (0.4: the IoU threshold)."""
    from rnnimg.geometry.render import render_voxels

    azimuth, elevation = zip(*SHAPE_CAMERAS)
    shade = render_voxels(voxels.detach().float().cpu(), azimuth, elevation, size, level=level,
                          background=0.0).shade  # (B, cameras, S, S)
    return shade.unsqueeze(2).expand(-1, -1, 3, -1, -1)


def shape_turntable(voxels: Tensor, frames: int = 24, size: int = 96, level: float = 0.4) -> Tensor:
    """Frames (T, 3, S, S) of one grid (D, D, D) turning once, black background."""
    from rnnimg.geometry.render import turntable

    grid = voxels.detach().float().cpu()
    return turntable(grid, frames=frames, size=size, level=level, background=0.0).expand(-1, 3, -1, -1)


@task_view("reconstruct")
def _reconstruct_view(model, batch, generator) -> dict[str, Tensor]:
    """``reconstruction.png``: for up to 4 items, one row each: the input views (the first
    ``eval_views`` of the model's evaluation order), the predicted shape from two cameras, the
    true shape from the same two. ``reconstruction.gif``: the first item's prediction turning,
    beside its true shape."""
    views = batch["views"][:4]
    order = model.eval_order(views.shape[1])[:min(model.config.eval_views, views.shape[1])]
    given = views[:, order]  # (n, k, C, H, W)
    predicted = model.reconstruct(given.to(model.device)).cpu()  # (n, D, D, D)
    size = views.shape[-1]
    rows = []
    for i in range(len(given)):
        row = [v.expand(3, -1, -1) if v.shape[0] == 1 else v for v in given[i].cpu()]
        row += list(shape_renders(predicted[i:i + 1], size)[0])
        if "voxels" in batch:
            row += list(shape_renders(batch["voxels"][i:i + 1], size)[0])
        rows.append(torch.stack(row))
    pictures = {"reconstruction.png": make_grid(torch.cat(rows), nrow=len(rows[0]))}
    spin = shape_turntable(predicted[0], frames=16, size=size)
    if "voxels" in batch:
        truth = shape_turntable(batch["voxels"][0], frames=16, size=size)
        spin = torch.cat([spin, torch.full_like(spin[..., :2], 0.5), truth], dim=-1)
    pictures["reconstruction.gif"] = spin
    return pictures
