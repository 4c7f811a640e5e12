"""``voxels:PATH``: the user's own shapes, for the ``reconstruct`` task.

PATH is one voxel file or a folder of them (``.npy``/``.npz`` arrays, ``.binvox`` files as
ShapeNet's voxelizations come; read by :mod:`rnnimg.geometry.voxio`, axes [z, y, x] with y up).
Every grid must be the same cube. Views:

- where a folder named like the shape's file stem lies beside it (``chair1.binvox`` and
  ``chair1/``), its images are the views, sorted by name, resized to ``view_size`` (antialiased);
  their cameras are unknown (azimuth and elevation NaN). Every views folder must hold the same
  number of images;
- otherwise the views are rendered from the grid with the cameras of ``shapes3d``
  (:func:`rnnimg.data.shapes3d.cameras`), so a folder of .binvox files trains a model at once.

Every shape is class 0 (``shape``). Splits as ``folder:PATH``: every 10th shape (sorted by path)
is the test split; under 10 shapes, train is all of them and test an error.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data.images import IMAGE_SUFFIXES, every_tenth, read_image
from rnnimg.data.registry import register_dataset
from rnnimg.data.shapes3d import cameras
from rnnimg.errors import RnnImgError


def shape_files(root: Path) -> list[Path]:
    from rnnimg.geometry.voxio import VOXEL_SUFFIXES

    if not root.exists():
        raise RnnImgError(f"voxels:{root}: no such file or folder.")
    if root.is_file():
        return [root]
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in VOXEL_SUFFIXES)
    if not files:
        raise RnnImgError(f"voxels:{root}: no voxel files found (looked for {', '.join(VOXEL_SUFFIXES)}).")
    return files


def view_files(shape: Path) -> list[Path] | None:
    """The images of the views folder beside ``shape`` (sorted), or None if it has none."""
    folder = shape.with_suffix("")
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return files or None


class VoxelFiles(Dataset):
    """Shapes read from files on first access (and kept); see the module docstring."""

    class_names = ("shape",)
    num_classes = 1

    def __init__(self, files: list[Path], view_size: int, num_views: int, channels: int,
                 voxel_size: int | None):
        self.files, self.view_size, self.channels = files, view_size, channels
        self.voxel_size = voxel_size
        self.azimuth, self.elevation = cameras(num_views)
        self.labels = torch.zeros(len(files), dtype=torch.long)
        self.view_lists = [view_files(f) for f in files]
        counts = {len(v) for v in self.view_lists if v is not None}
        if len(counts) > 1:
            raise RnnImgError(f"voxels: the views folders hold different numbers of images "
                              f"({', '.join(map(str, sorted(counts)))}); give every shape as many views.")
        self._kept: dict[int, dict[str, Tensor]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def _grid(self, i: int) -> Tensor:
        from rnnimg.geometry.voxio import load_voxels

        grid = torch.from_numpy(load_voxels(self.files[i], size=self.voxel_size))
        if len(set(grid.shape)) != 1:
            raise RnnImgError(f"{self.files[i]}: the grid is {'x'.join(map(str, grid.shape))}; "
                              "shapes must be cubes (D x D x D).")
        return grid

    def _views(self, i: int, grid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        files = self.view_lists[i]
        if files is None:
            from rnnimg.geometry.render import render_voxels

            shade = render_voxels(grid, self.azimuth, self.elevation, self.view_size).shade[0]
            views = shade.unsqueeze(1).expand(-1, self.channels, -1, -1)
            return views, self.azimuth, self.elevation
        images = [read_image(p, self.channels).float().div(255) for p in files]  # (C, h, w) each
        views = torch.stack([F.interpolate(im[None], size=(self.view_size,) * 2, mode="bilinear",
                                           antialias=True, align_corners=False)[0] for im in images])
        nan = torch.full((len(files),), float("nan"))
        return views.clamp(0, 1), nan, nan

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} shapes")
        i %= len(self)
        if i not in self._kept:
            grid = self._grid(i)
            views, azimuth, elevation = self._views(i, grid)
            self._kept[i] = {"views": views.contiguous(), "voxels": (grid >= 0.5).float(),
                             "label": self.labels[i].clone(), "azimuth": azimuth.float(),
                             "elevation": elevation.float()}
        return {k: v.clone() for k, v in self._kept[i].items()}


@lru_cache(maxsize=8)
def _files(root: str) -> tuple[Path, ...]:
    return tuple(shape_files(Path(root)))


def pin_voxels(arg: str, options: dict) -> tuple[str, dict]:
    """``voxels:`` as a run saves it: the absolute path."""
    return str(Path(arg).expanduser().resolve()), options


@register_dataset("voxels", prefix=True, task="reconstruct", pin=pin_voxels,
                  description="your own shapes: .npy/.npz/.binvox voxel grids under PATH, views from "
                              "a folder beside each shape or rendered; every 10th shape is the test split")
def voxels(arg: str, split: str, view_size: int = 64, num_views: int = 12, channels: int = 1,
           voxel_size: int | None = None) -> VoxelFiles:
    root = Path(arg).expanduser()
    files = _files(str(root))
    if channels not in (1, 3):
        raise RnnImgError(f"voxels: channels must be 1 or 3, got {channels!r}.")
    if view_size < 8 or num_views < 1:
        raise RnnImgError(f"voxels: need view_size >= 8 and num_views >= 1, got {view_size} and {num_views}.")
    chosen = every_tenth(list(files), split, f"voxels:{root}", "shapes")
    return VoxelFiles(chosen, view_size, num_views, channels, voxel_size)
