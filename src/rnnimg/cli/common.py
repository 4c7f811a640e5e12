"""Helpers shared by the CLI commands: argument types, output-file safety, devices."""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rnnimg.errors import RnnImgError


def parse_assignments(items: list[str] | None, flag: str) -> dict[str, Any]:
    """``["a=1", "b=lstm"]`` -> ``{"a": 1, "b": "lstm"}``; values are JSON where they parse."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise RnnImgError(f"{flag} takes KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


class Outputs:
    """The files one command writes: every path is checked before any work, and the files are
    written all or none (each to a temporary file first, renamed into place once all are done).

    Usage: ``outs = Outputs(args.overwrite)``; ``path = outs.add(args.output, "-o", IMAGE_SUFFIXES)``
    for each output flag; after the work ``outs.write(path, lambda tmp: save(..., tmp))`` for each
    file, then ``outs.commit()``.
    """

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self._flags: dict[Path, str] = {}  # resolved path -> the flag that named it
        self._pending: list[tuple[Path, Callable[[str], None]]] = []

    def add(self, path: str | os.PathLike, flag: str, suffixes: tuple[str, ...] | None = None,
            example: str = "") -> Path:
        """Check one output path (named by ``flag``) and return it.

        Raises:
            RnnImgError: a suffix outside ``suffixes``, an existing folder, an existing file
                without --overwrite, a path another flag names too, or a folder that cannot be
                made or written.
        """
        path = Path(path)
        example = example or f"out{suffixes[0] if suffixes else '.png'}"
        if path.is_dir():
            raise RnnImgError(f"{flag} {path} is a folder; {flag} takes a file name such as "
                              f"{path / example}.")
        if suffixes is not None and path.suffix.lower() not in suffixes:
            given = f"ends in {path.suffix}" if path.suffix else "has no suffix"
            raise RnnImgError(f"{flag} {path} {given}; use a file name ending in "
                              f"{' or '.join(suffixes[:4])}{', ...' if len(suffixes) > 4 else ''}.")
        resolved = path.resolve()
        if resolved in self._flags:
            raise RnnImgError(f"{self._flags[resolved]} and {flag} name the same file {path}; "
                              "choose two names.")
        if path.exists() or path.is_symlink():
            if not path.is_file():
                raise RnnImgError(f"{flag} {path} is not a regular file; choose another {flag}.")
            if not self.overwrite:
                raise RnnImgError(f"{path} already exists; pass --overwrite to replace it or choose "
                                  f"another {flag}.")
        folder = path.parent
        while not folder.exists():  # the nearest folder that exists must take new entries
            folder = folder.parent
        if not folder.is_dir():
            raise RnnImgError(f"cannot write {flag} {path}: {folder} is a file, not a folder; "
                              f"choose another {flag}.")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise RnnImgError(f"cannot write {flag} {path}: {folder} is not writable; choose a "
                              f"folder you can write to.")
        self._flags[resolved] = flag
        return path

    def write(self, path: Path, write: Callable[[str], None]) -> None:
        """Queue ``write(tmp_path)``, which fills a temporary file that becomes ``path``."""
        self._pending.append((path, write))

    def commit(self) -> list[Path]:
        """Write every queued file, or none of them (see :func:`rnnimg.fileio.atomic_write_all`)."""
        from rnnimg.fileio import atomic_write_all

        pending, self._pending = self._pending, []
        try:
            return atomic_write_all(pending)
        except OSError as err:
            flag = self._flags.get(Path(err.filename).resolve()) if err.filename else None
            raise RnnImgError(os_error_line(err, flag) + " Nothing was written.") from None


def resolve_device(name: str) -> str:
    """``--device``: auto, cpu, cuda, cuda:N or mps, checked here so a bad value blames the flag."""
    import re

    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", name):
        raise RnnImgError(f"--device {name} is not a device rnnimg runs on; use auto, cpu, cuda, "
                          "cuda:N or mps.")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RnnImgError(f"--device {name} was asked for, but no CUDA GPU is visible; use "
                              "--device cpu.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise RnnImgError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA "
                              "GPU(s) (cuda:0 ...).")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise RnnImgError("--device mps was asked for, but MPS is not available; use --device cpu.")
    return name


MAX_SCALE = 32  # a 64x64 picture at scale 32 is 2048 px a side; more is a typo, not a wish


def check_scale(scale: int, flag: str = "--scale") -> int:
    """Pixel enlargement: 1 .. MAX_SCALE (a huge scale filled the disk and the memory)."""
    if not 1 <= scale <= MAX_SCALE:
        raise RnnImgError(f"{flag} must be in 1..{MAX_SCALE}, got {scale}.")
    return scale


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto",
                   help="cpu, cuda, cuda:1, ... (default: auto = cuda if available, else cpu)")


def add_tile_args(p: argparse.ArgumentParser) -> None:
    """--tile and --overlap: any image size in bounded memory (rnnimg.tiling)."""
    p.add_argument("--tile", type=positive_int, default=512, metavar="N",
                   help="run over overlapping N x N tiles (input pixels) blended without seams, so "
                        "any image size fits in memory (default 512; a smaller image is one tile)")
    p.add_argument("--overlap", type=int, metavar="M", help="pixels neighbouring tiles share "
                   "(default: twice the model's receptive radius + 16, which makes the tiled "
                   "output equal the whole-image one)")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def quiet_libraries() -> None:
    """Keep Lightning's banners (GPU available, the logger tip, "max_steps reached") and
    known-harmless warnings out of the CLI's output. Lightning sets its logger to INFO when it is
    imported, so the commands that train call this again after importing it. Lightning's
    distributed start-up line ("MEMBER: 1/2") stays: it says that DDP started."""
    import sys

    for name in ("lightning.pytorch", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if "lightning.fabric" in sys.modules:
        logging.getLogger("lightning.fabric.utilities.seed").setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*isinstance\\(treespec, LeafSpec\\).*",
                    ".*smaller than the logging interval.*", ".*litlogger.*",
                    ".*You defined a `validation_step` but have no `val_dataloader`.*",
                    ".*could not find the monitored key.*", ".*exists and is not empty.*",
                    ".*that ended before the epoch ended.*"):
        warnings.filterwarnings("ignore", message=pattern)


def os_error_line(err: OSError, flag: str | None = None) -> str:
    """One line for an OSError that reached the command line (no file was half written): the
    file, the flag that named it where known, the reason, and what to do about that reason."""
    import errno

    reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied", errno.EPERM: "permission denied",
              errno.EDQUOT: "the disk quota is exceeded"}.get(err.errno)
    if reason is None:
        reason = err.strerror or (str(err).splitlines()[0] if str(err) else "I/O error")
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        then = f"free some space or choose another {flag or 'output'}"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        then = f"choose {'another ' + flag if flag else 'an output'} in a folder you can write to"
    else:
        then = f"choose another {flag or 'output'}"
    where = f" {flag}" if flag else ""
    where += f" {err.filename}" if err.filename else ""
    return f"cannot write{where} ({reason}); {then}."


OUT_OF_MEMORY_MARKERS = ("out of memory", "can't allocate memory", "failed to allocate memory")
def is_out_of_memory(err: BaseException) -> bool:
    """An allocation failure: MemoryError, torch's OutOfMemoryError (CUDA), or the RuntimeError
    the CPU allocator ("DefaultCPUAllocator: can't allocate memory") or MPS raises."""
    if isinstance(err, MemoryError):
        return True
    import torch

    if isinstance(err, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err).lower() for m in OUT_OF_MEMORY_MARKERS)


@contextmanager
def out_of_memory_hint(doing: str, then: str) -> Iterator[None]:
    """Turn an allocation failure inside the block into one line: "ran out of memory {doing};
    {then}." (exit 2) rather than a long traceback. Other errors pass through."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise RnnImgError(f"ran out of memory {doing}; {then}.") from None


def print_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("metric", "value")) -> None:
    width = max(len(header[0]), *(len(r[0]) for r in rows))
    print(f"{header[0]:<{width}}  {header[1]}")
    print(f"{'-' * width}  {'-' * max(5, len(header[1]))}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")

