"""Helpers shared by the CLI commands: argument types, output-file safety, devices."""

from __future__ import annotations

import argparse
import json
import logging
import os
import warnings
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


def check_output(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``--overwrite``; make the parent folder."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise RnnImgError(f"{path} already exists; pass --overwrite to replace it or choose another -o.")
    if path.is_dir():
        raise RnnImgError(f"{path} is a folder; -o takes a file name such as grid.png.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where a folder should be, no permission, ...
        raise RnnImgError(f"cannot make the folder for -o {path}: {err.strerror or err}.") from None
    if not os.access(path.parent, os.W_OK):
        raise RnnImgError(f"cannot write -o {path}: {path.parent} is not writable.")
    return path


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


def check_seed(seed: int, flag: str = "--seed") -> int:
    """Seeds run 0 .. 2**32 - 1 everywhere (NumPy's range, which train enforces too)."""
    if not 0 <= seed <= 2**32 - 1:
        raise RnnImgError(f"{flag} must be in 0..{2**32 - 1}, got {seed}.")
    return seed


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


def os_error_line(err: OSError) -> str:
    """One line for an OSError that reached the command line (no file was half written)."""
    import errno

    reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"
              }.get(err.errno, err.strerror or str(err).splitlines()[0] if str(err) else "I/O error")
    where = f": {err.filename}" if err.filename else ""
    return f"cannot write{where} ({reason}); free some space or choose another output."


def print_table(rows: list[tuple[str, str]], header: tuple[str, str] = ("metric", "value")) -> None:
    width = max(len(header[0]), *(len(r[0]) for r in rows))
    print(f"{header[0]:<{width}}  {header[1]}")
    print(f"{'-' * width}  {'-' * max(5, len(header[1]))}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
