"""Voxel files: ``.npy``/``.npz`` arrays and ``.binvox``, read by our own small reader.

``.binvox`` (Patrick Min's format, used for ShapeNet's voxelizations and so by 3D-R2N2) is a
text header and a run-length body::

    #binvox 1
    dim D0 D1 D2
    translate tx ty tz
    scale s
    data
    <bytes: (value, count) pairs, value 0 or 1, count 1..255>

The body lists the voxels with y running fastest, then z, then x: the flat array reshaped to
``(D0, D1, D2)`` is indexed [x, z, y] (PITFALLS.md: readers that assume x-y-z transpose every
shape). rnnimg's grids are [z, y, x] with y up (:mod:`rnnimg.geometry.render`), so the reader
transposes (1, 2, 0) and the writer back. Every malformed file is a one-line RnnImgError that
names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rnnimg.errors import RnnImgError
from rnnimg.fileio import atomic_write_bytes

VOXEL_SUFFIXES = (".npy", ".npz", ".binvox")


def read_binvox(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """A ``.binvox`` file as bool (D, H, W) indexed [z, y, x], and its ``translate``/``scale``.

    Raises:
        RnnImgError: a missing file, a wrong header, or a body shorter or longer than ``dim`` says.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise RnnImgError(f"cannot read {path}: {err.strerror or err}; check the path.") from None
    lines, pos = [], 0
    while len(lines) < 8 and not (lines and lines[-1] == b"data"):
        end = raw.find(b"\n", pos)
        if end < 0:
            break
        lines.append(raw[pos:end].strip())
        pos = end + 1
    if not lines or not lines[0].startswith(b"#binvox"):
        raise RnnImgError(f"{path} is not a .binvox file: its first line is not '#binvox 1'; "
                          "export the voxels with binvox or save them as .npy.")
    fields = {ln.split()[0]: ln.split()[1:] for ln in lines[1:] if ln.split()}
    if b"data" not in fields or b"dim" not in fields:
        raise RnnImgError(f"{path}: the .binvox header has no 'dim' or no 'data' line; the file "
                          "is damaged, export it again.")
    try:
        dims = tuple(int(v) for v in fields[b"dim"])
        translate = [float(v) for v in fields.get(b"translate", [0, 0, 0])]
        scale = float(fields.get(b"scale", [1])[0])
    except ValueError:
        raise RnnImgError(f"{path}: unreadable numbers in the .binvox header; export it again.") from None
    if len(dims) != 3 or min(dims) < 1:
        raise RnnImgError(f"{path}: 'dim' must give 3 positive sizes, got {dims}.")
    body = np.frombuffer(raw, dtype=np.uint8, offset=pos)
    total = int(np.prod(dims))
    if len(body) % 2:
        raise RnnImgError(f"{path}: the .binvox body is truncated (an odd number of bytes); "
                          "export it again.")
    values, counts = body[0::2], body[1::2].astype(np.int64)
    if counts.sum() != total:
        what = "truncated" if counts.sum() < total else "longer than its dim"
        raise RnnImgError(f"{path}: the .binvox body is {what} ({int(counts.sum())} voxels for dim "
                          f"{' '.join(map(str, dims))} = {total}); export it again.")
    flat = np.repeat(values > 0, counts)
    grid = flat.reshape(dims).transpose(1, 2, 0)  # [x, z, y] -> [z, y, x]
    return np.ascontiguousarray(grid), {"translate": translate, "scale": scale}


def binvox_bytes(voxels: np.ndarray, translate=(0.0, 0.0, 0.0), scale: float = 1.0) -> bytes:
    """bool (D, H, W) [z, y, x] -> the bytes of a ``.binvox`` file."""
    grid = np.asarray(voxels, dtype=bool).transpose(2, 0, 1)  # [z, y, x] -> [x, z, y]
    flat = grid.reshape(-1).astype(np.uint8)
    header = (f"#binvox 1\ndim {' '.join(map(str, grid.shape))}\n"
              f"translate {' '.join(str(float(t)) for t in translate)}\nscale {float(scale)}\ndata\n")
    out = bytearray(header.encode())
    if flat.size:
        change = np.flatnonzero(np.diff(flat)) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [flat.size]]))
        for start, length in zip(starts, lengths):
            value = int(flat[start])
            while length > 0:
                run = min(int(length), 255)
                out += bytes((value, run))
                length -= run
    return bytes(out)


def write_binvox(path: str | os.PathLike, voxels: np.ndarray, translate=(0.0, 0.0, 0.0),
                 scale: float = 1.0) -> Path:
    """Write bool (D, H, W) [z, y, x] as ``.binvox`` (atomically)."""
    atomic_write_bytes(path, binvox_bytes(voxels, translate, scale))
    return Path(path)


def load_voxels(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """A voxel file as float32 (D, H, W) occupancy in [0, 1], indexed [z, y, x] with y up.

    ``.npy`` holds one array; ``.npz`` the array ``voxels`` or its only array; ``.binvox`` as
    :func:`read_binvox`. Boolean and 0/1 integer arrays are read as occupancy.

    Args:
        size: the side the grid must have (a model's ``voxel_size``), or None for any cube.

    Raises:
        RnnImgError: an unknown suffix, a missing or unreadable file, an array that is not 3-D,
            not a cube of ``size``, or has values outside [0, 1].
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VOXEL_SUFFIXES:
        raise RnnImgError(f"{path}: voxel files are {', '.join(VOXEL_SUFFIXES)}, "
                          f"not {suffix or 'no suffix'!r}.")
    if suffix == ".binvox":
        grid = read_binvox(path)[0]
    else:
        try:
            loaded = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise RnnImgError(f"cannot read {path} as {suffix}: {err}; check the file.") from None
        if suffix == ".npz":
            keys = list(loaded.keys())
            if "voxels" not in keys and len(keys) != 1:
                raise RnnImgError(f"{path} holds arrays {', '.join(keys)}; name the grid 'voxels' "
                                  "or keep one array in the file.")
            grid = loaded["voxels" if "voxels" in keys else keys[0]]
        else:
            grid = loaded
    grid = np.asarray(grid)
    if grid.ndim != 3:
        raise RnnImgError(f"{path}: a voxel grid must be 3-D (D, H, W), got shape {grid.shape}.")
    if size is not None and grid.shape != (size,) * 3:
        raise RnnImgError(f"{path}: the grid is {'x'.join(map(str, grid.shape))}, but the model takes "
                          f"{size}x{size}x{size}; resample it to that size.")
    if grid.dtype.kind not in "biuf":
        raise RnnImgError(f"{path}: voxels must be numbers or booleans, got {grid.dtype}.")
    grid = grid.astype(np.float32)
    if grid.size and (not np.isfinite(grid).all() or grid.min() < 0 or grid.max() > 1):
        raise RnnImgError(f"{path}: occupancy must lie in [0, 1], got values in "
                          f"[{grid.min():g}, {grid.max():g}].")
    return grid


def save_voxels(path: str | os.PathLike, voxels: np.ndarray) -> Path:
    """Write a grid (D, H, W) as ``.npy`` (float32 occupancy) or ``.binvox`` (filled at >= 0.5),
    by ``path``'s suffix, atomically."""
    import io

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".binvox":
        return write_binvox(path, np.asarray(voxels) >= 0.5)
    if suffix != ".npy":
        raise RnnImgError(f"{path}: write voxels as .npy or .binvox, not {suffix or 'no suffix'!r}.")
    buf = io.BytesIO()
    np.save(buf, np.asarray(voxels, dtype=np.float32))
    atomic_write_bytes(path, buf.getvalue())
    return path
