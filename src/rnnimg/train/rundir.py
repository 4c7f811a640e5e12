"""The run folder: one process at a time (a lock file with the owner's pid), leftover temporary
files cleaned on start, and a fresh folder that is removed again if the run fails before it wrote
its first checkpoint (so a plain re-run is accepted)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import time
from pathlib import Path

from rnnimg.errors import RnnImgError

LOCK_FILE = ".rnnimg.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def lock_owner(run_dir: Path) -> dict | None:
    """The live owner of ``run_dir``'s lock (``{"pid", "host", "since"}``), or None if the folder
    is free (no lock, or a stale one left by a process that no longer exists on this host)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        owner = json.loads(path.read_text())
        pid, host = int(owner["pid"]), str(owner["host"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, OSError):
        return None  # a half-written or foreign lock file: treat as stale
    if host == socket.gethostname() and (pid == os.getpid() or not _pid_alive(pid)):
        return None
    return owner


class RunLock:
    """Holds ``run_dir/.rnnimg.lock`` (JSON with pid, host and start time) while a run writes the
    folder. A second train, resume or ``--overwrite`` of a busy folder is a one-line error; a lock
    whose process is gone (kill -9, a crash) is stale and taken over."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self.held = False

    def acquire(self) -> RunLock:
        check_not_busy(self.path.parent)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%d %H:%M:%S")})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                check_not_busy(self.path.parent)  # raced, or stale: the owner is gone
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(record)
            self.held = True
            return self
        check_not_busy(self.path.parent)
        raise RnnImgError(f"{self.path.parent} is being taken by another process; try again.")

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                owner = json.loads(self.path.read_text())
                if int(owner.get("pid", -1)) == os.getpid():
                    self.path.unlink()
            except (OSError, ValueError):
                pass


def check_not_busy(run_dir: Path) -> None:
    """One-line error if another live process holds ``run_dir``."""
    owner = lock_owner(run_dir)
    if owner is not None:
        raise RnnImgError(
            f"{run_dir} is in use by process {owner['pid']} on {owner['host']} (since "
            f"{owner.get('since', '?')}); wait for it to finish or stop it, or choose another --out. "
            f"If no such process runs, delete {Path(run_dir) / LOCK_FILE}."
        )


def clean_temporary_files(run_dir: Path) -> list[Path]:
    """Remove the temporary files an atomic write leaves when its process is killed
    (``.NAME.XXXX.tmp...``). Only called while holding the lock, so no writer is using them."""
    removed = []
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples"):
        if folder.is_dir():
            for path in folder.glob(".*.tmp*"):
                if path.is_file():
                    path.unlink(missing_ok=True)
                    removed.append(path)
    return removed


def clear_folder(run_dir: Path, keep: tuple[str, ...] = (LOCK_FILE,)) -> None:
    """Delete everything in ``run_dir`` except ``keep`` (the lock we hold)."""
    for path in run_dir.iterdir():
        if path.name in keep:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def os_error_message(err: OSError, run_dir: Path, what: str) -> str:
    """One line for a failed write in the run folder (full disk, read-only, no permission)."""
    reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded",
              errno.EPERM: "permission denied"}.get(err.errno, err.strerror or str(err))
    where = f" ({err.filename})" if err.filename else ""
    return f"cannot {what} {run_dir}: {reason}{where}"


# What `rnnimg train` (and `rnnimg evaluate`, which refreshes the card) writes into a run folder.
# --overwrite deletes a folder only if it holds nothing else: the user's own files are never ours
# to delete (a folder of pictures and a thesis was, before).
RUN_ENTRIES = frozenset({"config.json", "model.safetensors", "README.md", "evaluation.json", "card",
                         "checkpoints", "samples", "tb", "metrics.csv", "curves.png", LOCK_FILE})
_RUN_SUBFOLDER_FILES = {"checkpoints": (".ckpt",), "samples": (".png", ".gif", ".mp4"),
                        "card": (".png", ".gif", ".mp4"), "tb": ("events.out.tfevents", ".yaml")}


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and ".tmp" in name  # left by a killed atomic write


def _foreign_in_subfolder(folder: Path, endings: tuple[str, ...]) -> list[str]:
    foreign = []
    for path in folder.iterdir():
        name = path.name
        if _is_temporary(name) or (path.is_file() and not path.is_symlink()
                                   and any(name.endswith(e) or name.startswith(e) for e in endings)):
            continue
        foreign.append(f"{folder.name}/{name}")
    return foreign


def not_a_run_reason(folder: Path) -> str | None:
    """None if ``folder`` is an rnnimg run (a config.json naming a model, and only what a run
    writes), else why not, in words that finish "it is not an rnnimg run: ...". An empty folder,
    or one a killed run left with only its lock and temporary files, counts as a run."""
    folder = Path(folder)
    entries = sorted(folder.iterdir())
    foreign = [p.name for p in entries if p.name not in RUN_ENTRIES and not _is_temporary(p.name)]
    for path in entries:
        endings = _RUN_SUBFOLDER_FILES.get(path.name)
        if endings is not None:
            if not path.is_dir() or path.is_symlink():
                foreign.append(path.name)
            else:
                foreign.extend(_foreign_in_subfolder(path, endings))
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        return f"it holds {', '.join(foreign[:3])}{more}, which a run does not write"
    config = folder / "config.json"
    if not config.exists():
        if any(p.name not in (LOCK_FILE,) and not _is_temporary(p.name) for p in entries):
            return "it has no config.json"
        return None  # only a lock and temporary files: a run killed before it wrote anything
    try:
        meta = json.loads(config.read_text())
    except (OSError, ValueError):
        return "its config.json is not an rnnimg run's"
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str):
        return "its config.json is not an rnnimg run's (it names no model)"
    return None


def check_replaceable(folder: Path, overwrite: bool, flag: str = "--out",
                      other_options: str = "pass --resume to continue it, ") -> None:
    """Refuse a non-empty ``folder`` unless it is an rnnimg run and ``overwrite`` is set: one
    line that suggests --overwrite only where --overwrite would be accepted."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return
    reason = not_a_run_reason(folder)
    if reason is not None:
        raise RnnImgError(f"{flag} {folder} is not empty and not an rnnimg run ({reason}); "
                          f"--overwrite replaces only run folders, so choose another {flag}.")
    if not overwrite:
        raise RnnImgError(f"{folder} already exists; {other_options}--overwrite to replace it, or "
                          f"{flag} to choose another folder.")


def checkpoint_files(run_dir: Path) -> list[Path]:
    """The checkpoint files in ``run_dir/checkpoints`` (last, best and periodic; no temporary
    files)."""
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.ckpt") if p.is_file() and not p.name.startswith("."))


def newest_checkpoint(run_dir: Path, state_dict: dict) -> tuple[Path, dict, list[str]]:
    """The checkpoint a resume continues from: the newest valid one of any kind (last, periodic or
    best), by step. Empty, truncated, foreign or malformed files are skipped.

    Args:
        run_dir: the run folder.
        state_dict: the state dict of the module being resumed (names and shapes must match).

    Returns:
        (path, checkpoint, reasons): ``reasons`` names each skipped file and why.

    Raises:
        RnnImgError: one line when no checkpoint is usable, naming each file's fault (and saying
            to start again with --overwrite only when the folder has no checkpoint at all).
    """
    from rnnimg.train.callbacks import LAST_CKPT, inspect_resume_checkpoint
    from rnnimg.train.lightning_compat import checkpoint_progress

    found, reasons = [], []
    rank = {LAST_CKPT: 2, "best.ckpt": 0}  # on a tie: last.ckpt is written after the others
    for path in checkpoint_files(run_dir):
        try:
            ckpt = inspect_resume_checkpoint(path, state_dict)
        except RnnImgError as err:
            reasons.append(str(err))
            continue
        found.append(((*checkpoint_progress(ckpt), rank.get(path.name, 1)), path, ckpt))
    if found:
        _, path, ckpt = max(found, key=lambda f: f[0])
        return path, ckpt, [_fault(r) for r in reasons]
    if not reasons:
        raise RnnImgError(f"{run_dir} has no checkpoint to resume from: it stopped before its first "
                          "checkpoint, so start it again with --overwrite.")
    if len(reasons) == 1:
        raise RnnImgError(reasons[0])
    raise RnnImgError(f"{run_dir} has no usable checkpoint ({'; '.join(_fault(r) for r in reasons)}); "
                      "restore a good copy into its checkpoints/, or start the run again with "
                      "--overwrite.")


def _fault(message: str) -> str:
    """What is wrong with a checkpoint, without the advice of its one-line error."""
    return message.split("; ")[0].split(". ")[0]
