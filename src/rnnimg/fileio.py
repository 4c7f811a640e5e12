"""Atomic file writing: the ground floor every layer that writes a file stands on.

A file is written to a temporary file in the same folder and renamed over the target, so a crash,
a full disk or a Ctrl-C never leaves a half-written file behind: the reader sees the old file or
the new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def default_file_mode() -> int:
    """0o666 less the umask: the mode ``open()`` would give a new file (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` to fill a temporary file beside ``path``, then rename it to ``path``.

    For writers that want a file name (safetensors, ffmpeg). The temporary file is removed if
    ``write`` raises, whatever it raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_temporary(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` (fsynced) to a new temporary file beside ``path`` and return its name;
    :func:`commit_temporary` renames it over ``path`` later. Until then ``path`` is unchanged,
    and a temporary file left by a killed process has the name ``.NAME.*.tmp*`` that run folders
    clean up. The temporary file is removed if the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, default_file_mode())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return Path(tmp)


def commit_temporary(tmp: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Rename a file from :func:`write_temporary` over ``path`` (atomic on one file system)."""
    os.replace(tmp, path)
    return Path(path)
