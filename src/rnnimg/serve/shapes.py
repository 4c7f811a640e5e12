"""The Reconstruct 3D tab, without the web page: a reconstruct model's mesh, turntable and views from
a test object or uploaded views, written under the page's work folder. Called by
:mod:`rnnimg.serve.app`; the shared page machinery is :mod:`rnnimg.serve.core`.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import torch

from rnnimg.errors import RnnImgError
from rnnimg.serve.core import ServedModel, named_for_page, refuse_huge, test_item

MAX_UPLOADED_VIEWS = 24


@named_for_page(views="the views", level="the level")
def reconstruct(served: ServedModel, workdir: Path, index: int = 0, uploads: list | None = None,
                level: float = 0.4) -> tuple[str, str, str, str]:
    """The shape seen in the views of test item ``index`` (the model's evaluation views, in its
    evaluation order), or in the uploaded view images ``uploads`` (paths, in the order given,
    resized as ``rnnimg reconstruct`` does). Writes under ``workdir`` the mesh (``.obj``, marching
    cubes at ``level``), the turntable GIF and the views as a strip; returns their paths and a
    one-line summary.

    Raises:
        RnnImgError: views of different sizes or not images, a level outside (0, 1), or no voxel
            reaching the level.
    """
    from rnnimg.geometry.mesh import voxels_to_mesh, write_mesh
    from rnnimg.tasks import reconstruct_views, save_picture, shape_turntable
    from rnnimg.tasks.reconstruct import read_views
    from rnnimg.viz import make_grid

    try:
        level = float(level)
    except (TypeError, ValueError):
        raise RnnImgError(f"the level must be a number, got {level!r}.") from None
    if not 0 < level < 1:
        raise RnnImgError(f"the level must lie between 0 and 1, got {level}.")
    model, c = served.model, served.model.config
    paths = [str(getattr(u, "name", u)) for u in (uploads or []) if u]  # Gradio gives paths or files
    if paths:
        if len(paths) > MAX_UPLOADED_VIEWS:
            raise RnnImgError(f"{len(paths)} views uploaded; the page takes up to {MAX_UPLOADED_VIEWS}.")
        for path in paths:
            refuse_huge(path)
        views = read_views(paths, c.channels, c.view_size)  # (1, V, C, S, S)
        source = f"{len(paths)} uploaded view(s)"
    else:
        item_views = test_item(served, index)["views"]  # (V, C, S, S)
        order = model.eval_order(item_views.shape[0])[:min(c.eval_views, item_views.shape[0])]
        views = item_views[order].unsqueeze(0).float()
        source = f"{views.shape[1]} view(s) of test item {int(index)}"
    with torch.no_grad():
        prob = reconstruct_views(model, views)[0].cpu()  # (D, D, D)
    mesh = voxels_to_mesh(prob, level=level)
    if not len(mesh.faces):
        raise RnnImgError(f"no voxel reaches the level {level:g} (the highest occupancy is "
                          f"{float(prob.max()):.2f}); lower the level.")
    folder = Path(workdir) / f"shape-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    obj = write_mesh(folder / "shape.obj", mesh)
    spin = save_picture(shape_turntable(prob, frames=24, size=128, level=level), folder / "spin.gif",
                        scale=1, fps=12)
    shown = views[0].cpu()
    shown = shown.expand(-1, 3, -1, -1) if shown.shape[1] == 1 else shown
    strip = save_picture(make_grid(shown, nrow=len(shown)), folder / "views.png", scale=2)
    filled = int((prob >= level).sum())
    summary = (f"{len(mesh.vertices)} vertices, {len(mesh.faces)} triangles ({filled} of {prob.numel()} "
               f"voxels at >= {level:g}) from {source}.")
    return str(obj), str(spin), str(strip), summary
