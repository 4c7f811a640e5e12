"""The ``reconstruct`` task (``rnnimg reconstruct``): a voxel occupancy grid from any number of views
of an object (3D-R2N2's job).

Its inference function is :func:`reconstruct_views` (views of one size in, occupancy out); its
pictures render shapes from two cameras (input views | predicted shape | true shape) and turn the
predicted shape on a turntable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.errors import InputError, RnnImgError
from rnnimg.tasks.registry import Table, Task, per_class_table, register_task
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


def reconstruct_view(model, batch, generator) -> dict[str, Tensor]:
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


def read_views(paths: list[str], channels: int, size: int):
    """The view files as float (1, V, C, size, size) in [0, 1]. Views of different sizes are a
    one-line error (they cannot show one object from one camera distance)."""
    from pathlib import Path

    import torch
    import torch.nn.functional as F

    from rnnimg.data.images import read_image

    images = [read_image(Path(p), channels) for p in paths]  # (C, h, w) uint8 each
    first = images[0].shape[-2:]
    for path, image in zip(paths, images):
        if image.shape[-2:] != first:
            raise RnnImgError(f"the views have different sizes: {paths[0]} is {first[1]}x{first[0]}, "
                              f"{path} is {image.shape[-1]}x{image.shape[-2]}; give views of one size.")
    views = torch.stack(images).float() / 255  # (V, C, h, w)
    if tuple(first) != (size, size):
        views = F.interpolate(views, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False).clamp(0, 1)
    return views.unsqueeze(0)


def reconstruct_views(model, views: Tensor) -> Tensor:
    """Occupancy (B, D, D, D) in [0, 1] of the objects seen in ``views`` (B, V, C, S, S) in [0, 1],
    any number V >= 1 of views, each of the model's channels and view size."""
    c = model.config
    if views.dim() != 5 or views.shape[1] < 1:
        raise InputError("views", f"{{arg}} must be (batch, views, channels, height, width) with at "
                         f"least one view, got shape {tuple(views.shape)}.")
    if views.shape[2] != c.channels or tuple(views.shape[-2:]) != (c.view_size, c.view_size):
        raise InputError("views", f"{{arg}} are {views.shape[2]}x{views.shape[-2]}x{views.shape[-1]} "
                         f"(channels x height x width), but the model takes "
                         f"{c.channels}x{c.view_size}x{c.view_size}; resize them first.")
    return model.reconstruct(views.to(model.device))


def contract(model, batch, generator) -> Tensor:
    """Occupancy of ``batch["voxels"]``'s shape in [0, 1], item by item (no coupling across the
    batch), from any number of views."""
    views = batch["views"]
    out = model.reconstruct(views)
    assert out.shape == batch["voxels"].shape, (tuple(out.shape), tuple(batch["voxels"].shape))
    assert torch.allclose(out[:1], model.reconstruct(views[:1]), atol=1e-5)  # no batch coupling
    assert model.reconstruct(views[:, :1]).shape == out.shape  # any number of views
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    return out


def evaluation_tables(metrics: dict, class_names=()) -> list[Table]:
    """What ``rnnimg evaluate`` prints for a reconstruction model below its summary: voxel IoU at
    0.4 (3D-R2N2's protocol, pooled over the split) per number of views, per class (all eval
    views), and how much the prediction changes when the views come in reverse order."""
    tables = []
    per_views = metrics.get("iou_per_views")
    if per_views:
        rows = [(str(k), f"{v:.4f}", "" if k == 1 else f"{v - per_views[0]:+.4f}")
                for k, v in enumerate(per_views, 1)]
        tables.append(Table("IoU by number of views (the first k of the evaluation order)",
                            ("views", "IoU", "vs 1 view"), tuple(rows), ("iou_per_views",)))
    if metrics.get("iou_per_class"):
        tables.append(per_class_table(f"IoU per class ({len(per_views) if per_views else 'all'} views)",
                                      "IoU", metrics["iou_per_class"], class_names, "iou_per_class"))
    if "order_iou_change" in metrics:
        rows = (("IoU", f"{metrics['order_iou_change']:.4f}"),)
        if "order_prob_change" in metrics:
            rows += (("occupancy", f"{metrics['order_prob_change']:.4f}"),)
        tables.append(Table("view order: mean change per shape when the views come in reverse order",
                            ("change of", "mean"), rows, ("order_iou_change", "order_prob_change")))
    return tables


RECONSTRUCT = register_task(Task(
    name="reconstruct", verb="reconstruct", title="Reconstruct 3D", batch_keys=("views", "voxels"),
    contract=contract, infer=reconstruct_views, views=(reconstruct_view,), upload=None, hub_tag="image-to-3d",
    next_step="rnnimg reconstruct {run} VIEW.png [VIEW2.png ...] -o shape.obj --turntable spin.gif",
    tables=evaluation_tables))
