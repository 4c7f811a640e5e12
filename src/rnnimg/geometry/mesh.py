"""Meshes from voxel grids: marching cubes (scikit-image), ``.obj``/``.ply`` writing, and the way
back (a closed mesh to voxels, by ray parity), which the round-trip test uses.

Vertices are in rnnimg's grid coordinates (x, y, z) in [-1, 1], y up (the conventions of
:mod:`rnnimg.geometry.render`), so a mesh lines up with the renders and the views.

PITFALLS.md: ``skimage.measure.marching_cubes`` needs a level strictly between the volume's
minimum and maximum, and returns vertices in array order (z, y, x). The grid is padded by one
empty voxel on every side, so shapes that touch the border close and a full grid has a surface;
an empty grid (nothing reaches the level) gives an empty mesh, not a crash.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rnnimg.errors import RnnImgError
from rnnimg.fileio import atomic_write_text

MESH_SUFFIXES = (".obj", ".ply")


class Mesh(NamedTuple):
    """vertices float32 (V, 3) as (x, y, z); faces int64 (F, 3), counter-clockwise seen from
    outside (normals point out of the solid)."""

    vertices: np.ndarray
    faces: np.ndarray


def voxels_to_mesh(voxels, level: float = 0.5) -> Mesh:
    """The ``level`` surface of an occupancy grid (D, H, W) [z, y, x] by marching cubes.

    Args:
        voxels: numpy array or tensor, occupancy in [0, 1] (the predicted probabilities, or 0/1).
        level: the iso-value; 0.5 for 0/1 grids, the IoU threshold (0.4) for predictions.
    """
    from skimage.measure import marching_cubes

    grid = np.asarray(voxels.detach().cpu() if hasattr(voxels, "detach") else voxels, dtype=np.float32)
    if grid.ndim != 3:
        raise ValueError(f"voxels must be (D, H, W), got shape {grid.shape}")
    padded = np.pad(grid, 1)
    if not padded.max() > level:  # nothing inside: marching_cubes would refuse the level
        return Mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64))
    # "ascent": the outside (low values) is behind a face's counter-clockwise side
    verts, faces, _, _ = marching_cubes(padded, level=level, gradient_direction="ascent")
    d, h, w = grid.shape
    zyx = verts - 1  # back to the unpadded grid's index coordinates (voxel centres at integers)
    xyz = np.stack([(zyx[:, 2] + 0.5) / w, (zyx[:, 1] + 0.5) / h, (zyx[:, 0] + 0.5) / d], -1) * 2 - 1
    # swapping to (x, y, z) mirrors the orientation of the faces: flip them back
    return Mesh(xyz.astype(np.float32), faces[:, ::-1].astype(np.int64).copy())


def obj_text(mesh: Mesh) -> str:
    """The mesh as Wavefront ``.obj`` text (``v x y z`` lines, then ``f a b c`` with 1-based
    indices)."""
    lines = ["# rnnimg voxel mesh (marching cubes); x y z in [-1, 1], y up"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in mesh.faces]
    return "\n".join(lines) + "\n"


def ply_text(mesh: Mesh) -> str:
    """The mesh as ASCII ``.ply`` text."""
    lines = ["ply", "format ascii 1.0", f"element vertex {len(mesh.vertices)}", "property float x",
             "property float y", "property float z", f"element face {len(mesh.faces)}",
             "property list uchar int vertex_indices", "end_header"]
    lines += [f"{x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
    lines += [f"3 {a} {b} {c}" for a, b, c in mesh.faces]
    return "\n".join(lines) + "\n"


def check_mesh_path(path: str | os.PathLike) -> Path:
    """Raise a one-line RnnImgError unless ``path`` ends in ``.obj`` or ``.ply``."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise RnnImgError(f"{path}: a mesh is written as .obj or .ply, not "
                          f"{path.suffix or 'no suffix'!r}; pass -o shape.obj.")
    return path


def write_mesh(path: str | os.PathLike, mesh: Mesh) -> Path:
    """Write ``mesh`` as ``.obj`` or ``.ply`` by the suffix of ``path``, atomically."""
    path = check_mesh_path(path)
    text = ply_text(mesh) if path.suffix.lower() == ".ply" else obj_text(mesh)
    return atomic_write_text(path, text)


def read_obj(path: str | os.PathLike) -> Mesh:
    """The vertices and triangles of an ``.obj`` file (``v`` and ``f`` lines; ``f`` entries may be
    ``i``, ``i/t`` or ``i/t/n``; polygons are fanned into triangles)."""
    vertices, faces = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(v) for v in parts[1:4]])
        elif parts[0] == "f":
            idx = [int(p.split("/")[0]) - 1 for p in parts[1:]]
            faces += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
    return Mesh(np.asarray(vertices, np.float32).reshape(-1, 3), np.asarray(faces, np.int64).reshape(-1, 3))


def mesh_to_voxels(mesh: Mesh, size: int) -> np.ndarray:
    """A closed mesh back to bool voxels (size, size, size) [z, y, x]: a voxel is filled when a
    ray from its centre along +z crosses the surface an odd number of times (counted per column
    of voxel centres, all columns at once)."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    v = mesh.vertices.astype(np.float64)[mesh.faces]  # (F, 3 corners, 3 coords)
    out = np.zeros((size, size, size), dtype=bool)
    if not len(v):
        return out
    yy, xx = np.meshgrid(c, c, indexing="ij")  # the columns (y, x)
    # marching cubes puts vertices on lines through voxel centres: nudge the rays off them, so no
    # ray runs exactly through a vertex or an edge (which would count a crossing twice or never)
    px, py = xx.reshape(-1, 1) + 1.37e-5, yy.reshape(-1, 1) + 2.71e-5  # (P, 1)
    a, b, e = v[:, 0], v[:, 1], v[:, 2]  # (F, 3) each
    det = (b[:, 1] - e[:, 1]) * (a[:, 0] - e[:, 0]) + (e[:, 0] - b[:, 0]) * (a[:, 1] - e[:, 1])  # (F,)
    ok = np.abs(det) > 1e-12
    det = np.where(ok, det, 1.0)
    l1 = ((b[:, 1] - e[:, 1]) * (px - e[:, 0]) + (e[:, 0] - b[:, 0]) * (py - e[:, 1])) / det  # (P, F)
    l2 = ((e[:, 1] - a[:, 1]) * (px - e[:, 0]) + (a[:, 0] - e[:, 0]) * (py - e[:, 1])) / det
    l3 = 1 - l1 - l2
    inside = ok & (l1 >= 0) & (l2 >= 0) & (l3 >= 0)
    zs = l1 * a[:, 2] + l2 * b[:, 2] + l3 * e[:, 2]  # (P, F) where each column crosses each face
    for p in np.flatnonzero(inside.any(1)):
        hits = np.sort(zs[p, inside[p]])
        # a centre is inside when an odd number of crossings lie beyond it (+z)
        crossings = (hits[None, :] > c[:, None]).sum(1)  # (size,) over z
        out[:, p // size, p % size] = crossings % 2 == 1
    return out
