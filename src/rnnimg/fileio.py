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
    return atomic_write_all([(path, write)])[0]


def atomic_write_all(writes: list[tuple[str | os.PathLike, Callable[[str], None]]]) -> list[Path]:
    """Write several files all or none: each ``write(tmp_path)`` fills a temporary file beside its
    target, and only when every one has succeeded are they renamed into place.

    A failure in any writer (a full disk on the second file, a bug) removes every temporary file
    and every folder this call made, so none of the targets appears. A rename within a folder does
    not need space; if one fails all the same, the targets renamed before it are removed again when
    they are new (a replaced file is then gone: the new one is removed, not the old one restored).
    """
    targets = [Path(p) for p, _ in writes]
    made: list[Path] = []
    staged: list[tuple[str, Path]] = []
    renamed: list[Path] = []
    existed = {p: p.exists() for p in targets}
    try:
        for path, (_, write) in zip(targets, writes, strict=True):
            made.extend(_make_folders(path.parent))
            staged.append((_stage(path, write), path))
        for tmp, path in staged:
            try:
                os.replace(tmp, path)
            except OSError as err:
                raise _naming(err, tmp, path) from None
            renamed.append(path)
    except BaseException:
        for tmp, _ in staged:
            _unlink(tmp)
        for path in renamed:
            if not existed[path]:
                _unlink(path)
        for folder in reversed(made):
            try:
                folder.rmdir()
            except OSError:
                pass
        raise
    return targets


def _stage(path: Path, write: Callable[[str], None]) -> str:
    """A filled temporary file beside ``path`` (removed again if ``write`` fails). An OSError names
    ``path``, not the hidden temporary name the user never chose."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                   suffix=".tmp" + path.suffix)
    except OSError as err:
        raise _naming(err, err.filename, path) from None
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())
    except OSError as err:
        _unlink(tmp)
        raise _naming(err, tmp, path) from None
    except BaseException:
        _unlink(tmp)
        raise
    return tmp


def _naming(err: OSError, tmp, path: Path) -> OSError:
    """``err`` with ``path`` as its file name where it named the temporary file (or none)."""
    if err.filename is None or str(err.filename) == str(tmp):
        err.filename = str(path)
    return err


def _make_folders(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; returns those made, outermost first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    made = []
    for f in reversed(missing):
        try:
            f.mkdir()
        except FileExistsError:  # another process made it meanwhile: not ours to remove
            continue
        made.append(f)
    return made


def _unlink(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


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
