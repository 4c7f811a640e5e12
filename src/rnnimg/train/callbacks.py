"""Lightning plumbing for the trainer: safe checkpoint I/O, Lightning's ModelCheckpoint set up for
periodic, last and best checkpoints, the safetensors export, the Ctrl-C / SIGTERM stop, the
sample-preview callback and the metrics.csv logger. Nothing here names a model."""

from __future__ import annotations

import csv
import io
import os
import pickle
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from rnnimg.errors import RnnImgError
from rnnimg.fileio import atomic_write_bytes, commit_temporary, write_temporary
from rnnimg.train.lightning_compat import align_logging_step, is_last_batch

LAST_CKPT = "last.ckpt"
BEST_CKPT = "best.ckpt"


class SafeCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints atomically (temporary file, then rename) and loads them with
    ``torch.load(weights_only=True)``, so a pickle payload planted in a run folder is refused,
    never executed.

    While training, checkpoints are *held back* (:meth:`hold`): Lightning takes a checkpoint in a
    step's ``on_train_batch_end``, before that step's metrics row and its scheduled validation are
    written, and a resume skips both. So each checkpoint is written to a temporary file beside its
    name at once, and renamed into place at the next :meth:`flush` (the next step's start, or the
    end of training), once everything it counts as done is on disk; ``best.ckpt`` first (it is
    taken after a validation, which the others, taken before it at the same step, count as done),
    ``last.ckpt`` last. A process killed in between leaves only temporary files (removed at the
    next start): the folder still resumes, from the newest checkpoint on disk, to the same end.
    """

    def __init__(self) -> None:
        super().__init__()
        self._held: dict[Path, Path | None] | None = None  # path -> temporary file, or None: remove

    def hold(self) -> None:
        """From now on keep writes (and removals) until :meth:`flush`."""
        if self._held is None:
            self._held = {}

    def _take(self) -> dict[Path, Path | None]:
        held, self._held = self._held or {}, ({} if self._held is not None else None)
        return held

    def flush(self) -> None:
        """Put what was held in place: ``best.ckpt`` first, ``last.ckpt`` last."""
        order = {BEST_CKPT: 0, LAST_CKPT: 2}
        held = self._take()
        try:
            for path in sorted(held, key=lambda p: order.get(p.name, 1)):  # stable otherwise
                tmp = held.pop(path)
                if tmp is None:
                    path.unlink(missing_ok=True)
                else:
                    commit_temporary(tmp, path)
        finally:
            _remove_temporary(held.values())  # (what a failed rename left)

    def discard(self) -> None:
        """Drop what was held (an exception: put nothing more in place, as a killed process
        would not)."""
        _remove_temporary(self._take().values())

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        if self._held is None:
            atomic_write_bytes(path, buf.getvalue())
            return
        tmp = write_temporary(path, buf.getvalue())
        _remove_temporary([self._held.pop(Path(path), None)])  # the newest write wins
        self._held[Path(path)] = tmp

    def remove_checkpoint(self, path) -> None:
        if self._held is None:
            super().remove_checkpoint(path)
        else:
            _remove_temporary([self._held.pop(Path(path), None)])
            self._held[Path(path)] = None

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location=map_location)


def _remove_temporary(paths) -> None:
    for tmp in paths:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def load_checkpoint_file(path: str | os.PathLike, map_location=None) -> dict[str, Any]:
    """Load a resume checkpoint with ``weights_only=True``; refuse anything else with one line."""
    path = Path(path)
    if not path.is_file():
        raise RnnImgError(f"{path}: no checkpoint there; train first or drop --resume.")
    if path.stat().st_size == 0:
        raise RnnImgError(f"{path} is empty (0 bytes); its write was cut off: delete it, or "
                          "restore a copy.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "global" not in text.lower():  # not a planted object: just bytes that are no checkpoint
            reason = text.strip().splitlines()[-1][:120] if text.strip() else "unpickling failed"
            raise RnnImgError(f"{path} is corrupt or unreadable ({reason}); delete it to start over, "
                              "or restore a copy.") from None
        first = text.strip().splitlines()[0] if text.strip() else "not a tensor-only file"
        raise RnnImgError(
            f"{path} was refused: it holds Python objects beyond tensors and plain data, which "
            f"rnnimg never unpickles ({first[:120]}). Delete it or restore a trusted copy."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:120] if str(err).strip() else type(err).__name__
        raise RnnImgError(f"{path} is corrupt or unreadable ({first}); delete it to start over, "
                          "or restore a copy.") from None


def inspect_resume_checkpoint(path: Path, state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Load ``path`` and check that it is a resume checkpoint of a module with ``state_dict``.

    Returns:
        the checkpoint (a dict with ``global_step``, ``epoch``, ``state_dict``, ...).

    Raises:
        RnnImgError: one line for a missing, empty, truncated, malformed or foreign checkpoint.
    """
    ckpt = load_checkpoint_file(path, map_location="cpu")
    if not isinstance(ckpt, dict):
        raise RnnImgError(f"{path} holds a {type(ckpt).__name__}, not a training checkpoint; delete "
                          "it or restore the run's own last.ckpt.")
    missing = [k for k in ("global_step", "epoch", "state_dict", "loops", "optimizer_states")
               if k not in ckpt]
    if missing or not isinstance(ckpt.get("state_dict"), dict) or \
            not isinstance(ckpt.get("global_step"), int):
        raise RnnImgError(f"{path} is not a training checkpoint written by rnnimg (it lacks "
                          f"{', '.join(missing) or 'a valid state_dict or global_step'}); delete it "
                          "or restore the run's own last.ckpt.")
    theirs = ckpt["state_dict"]
    wrong = sorted(set(state_dict) ^ set(theirs))
    wrong += [k for k in state_dict if k in theirs and (not isinstance(theirs[k], torch.Tensor) or
                                                          theirs[k].shape != state_dict[k].shape)]
    if wrong:
        raise RnnImgError(f"{path} holds the weights of another model ({len(wrong)} tensors differ, "
                          f"e.g. {wrong[0]}); it does not belong to this run folder. Restore the "
                          "run's own last.ckpt or start a new run.")
    return ckpt


def checkpoint_callbacks(run_dir: Path, every_n_steps: int, keep: int,
                         with_validation: bool) -> list[ModelCheckpoint]:
    """Lightning's ModelCheckpoint: ``checkpoints/stepNNNNNNN.ckpt`` every N steps (the newest
    ``keep`` are kept) with ``checkpoints/last.ckpt`` beside them, and ``checkpoints/best.ckpt``,
    the lowest validation loss so far, when there is validation."""
    folder = Path(run_dir) / "checkpoints"
    periodic = ModelCheckpoint(dirpath=folder, filename="step{step:07d}", monitor="step", mode="max",
                               save_top_k=keep if every_n_steps else 0, save_last=True,
                               every_n_train_steps=every_n_steps or None,
                               auto_insert_metric_name=False, enable_version_counter=False)
    callbacks = [periodic]
    if with_validation:
        callbacks.append(ModelCheckpoint(dirpath=folder, filename="best", monitor="val/loss",
                                         mode="min", save_top_k=1, save_last=False,
                                         save_on_train_epoch_end=False, auto_insert_metric_name=False,
                                         enable_version_counter=False))
    return callbacks


def export_weights(model, run_dir: Path, meta: dict[str, Any]) -> None:
    """``model.save_pretrained`` with safetensors' I/O errors as the OSError they are (a full disk
    is "SafetensorError: ... No space left on device (os error 28)"), so the trainer reports it in
    one line like any other failed write."""
    import re

    from safetensors import SafetensorError

    try:
        model.save_pretrained(run_dir, extra=meta)
    except SafetensorError as err:
        code = re.search(r"os error (\d+)", str(err))
        if code is None:
            raise
        number = int(code.group(1))
        raise OSError(number, os.strerror(number), str(Path(run_dir) / "model.safetensors")) from None


def is_final_step(trainer: L.Trainer) -> bool:
    """Whether the step that just ended is the last of the budget (--max-steps or --epochs)."""
    last_step = 0 < trainer.max_steps <= trainer.global_step
    last_epoch = is_last_batch(trainer) and 0 < trainer.max_epochs <= trainer.current_epoch + 1
    return bool(last_step or last_epoch)


class ExportWeights(L.Callback):
    """Exports ``model.safetensors`` + ``config.json`` (the shareable weights) whenever a
    checkpoint is saved, and saves ``last.ckpt`` when training ends or is stopped by a signal.

    With ``io`` it also decides when checkpoints reach the disk: they are held from the start of
    training and written at the start of the next step (see :class:`SafeCheckpointIO`); the
    trainer writes the last ones after ``fit`` returns. Nothing held is written on an exception,
    so the last good checkpoint stays, with everything it counts as done."""

    def __init__(self, run_dir: Path, run_meta: dict[str, Any], io: SafeCheckpointIO | None = None
                 ) -> None:
        self.run_dir, self.run_meta, self.io = Path(run_dir), run_meta, io

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoints" / LAST_CKPT

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        # The trainer watches for NaN/Inf without a host sync per step; before any weights are
        # written it reads what it watched, and raises if a step went bad.
        check_finite = getattr(pl_module, "check_finite", None)
        if check_finite is not None:
            check_finite()
        if trainer.is_global_zero:
            export_weights(pl_module.model, self.run_dir, self.run_meta)

    def save_last(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)  # all ranks call; rank 0 writes

    def on_train_start(self, trainer, pl_module) -> None:
        if self.io is not None:
            self.io.hold()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.io is not None:  # the previous step's rows and validation are on disk now
            self.io.flush()
        # Lightning's logging step counts the batches that stepped; after some resume points
        # (a checkpoint at the last batch of a finished run) it comes back off by one. Every
        # batch steps here (no accumulation), so before a batch it is the global step.
        align_logging_step(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # The last step of the budget is saved here, at a step's end like the periodic ones: a
        # checkpoint taken in on_train_end resumes with Lightning's logging step off by one.
        if is_final_step(trainer):
            self.save_last(trainer)

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.io is not None:
            self.io.discard()


class StopForSignal(Exception):
    """Raised by :class:`SignalStop` at the start of the step after the one it saved."""


class SignalStop(L.Callback):
    """SIGINT (Ctrl-C) or SIGTERM: finish the current step (with its metrics row and any
    validation it ends with), save ``last.ckpt`` and stop before the next step, raising
    :class:`StopForSignal`; a second signal stops at once. The rows are then those of an
    uninterrupted run up to that step: stopping through ``trainer.should_stop`` would log an extra
    row and run an extra validation. Under DDP the ranks agree at every step, so all stop at the
    same one.

    The handlers are installed by :meth:`install` (before training, to cover the setup) and again
    when training starts, after Lightning has put in its own SIGTERM handler.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, export: ExportWeights) -> None:
        self.export = export
        self.requested: int | None = None
        self.stopped_at: int | None = None
        self.on_abort: Any = None  # called before a second signal ends the process at once
        self._saved: dict[int, Any] = {}

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in self.SIGNALS:
            previous = signal.signal(sig, self._handle)
            self._saved.setdefault(sig, previous)

    def restore(self) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved = {}

    def _handle(self, signum, frame) -> None:
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        if self.requested is not None:
            folder = self.export.ckpt_path.parent
            resumable = folder.is_dir() and any(p.suffix == ".ckpt" and not p.name.startswith(".")
                                                for p in folder.iterdir())
            if self.on_abort is not None:
                try:
                    self.on_abort()  # release the lock; a fresh run without a checkpoint goes
                except Exception:
                    pass
            then = (f"resume from the last checkpoint with `rnnimg train --resume --out "
                    f"{self.export.run_dir}`" if resumable else "no checkpoint had been written, so "
                    "the run folder was removed")
            sys.stderr.write(f"\nrnnimg: {name} again: stopped at once; {then}\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.requested = signum
        sys.stderr.write(f"\nrnnimg: {name}: finishing the current step, then saving a checkpoint "
                         "(press Ctrl-C again to stop at once) ...\n")
        sys.stderr.flush()

    def on_train_start(self, trainer, pl_module) -> None:
        self.install()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.stopped_at is not None:  # ExportWeights, before us, has written the checkpoint
            raise StopForSignal(f"stopped at step {self.stopped_at}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        stop = self.requested is not None
        if trainer.world_size > 1:
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop and self.stopped_at is None:
            if not is_final_step(trainer):  # (the final step is saved anyway)
                self.export.save_last(trainer)
            self.stopped_at = trainer.global_step


class PreviewCallback(L.Callback):
    """Writes the model's preview pictures (sample grids, prediction strips) into ``samples/``
    every ``every_n_steps`` steps and at the end, with a fixed generator so grids are comparable."""

    def __init__(self, run_dir: Path, every_n_steps: int, seed: int = 0) -> None:
        self.dir, self.every_n_steps, self.seed = Path(run_dir) / "samples", every_n_steps, seed
        self._batch = None
        self._written_at: int | None = None  # the step whose pictures were drawn last

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._batch is None:
            self._batch = {k: v[:8].detach().clone() for k, v in batch.items()}

    def write(self, trainer, pl_module, tag: str) -> list[Path]:
        from rnnimg.tasks import preview, save_picture

        if not trainer.is_global_zero or self._batch is None:
            return []
        model = pl_module.model
        gen = torch.Generator(device=model.device).manual_seed(self.seed)
        # The pictures must not move the training RNG streams (a resumed run would differ).
        with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
            pictures = preview(model, self._batch, gen)
        written = []
        for name, picture in pictures.items():
            stem, suffix = os.path.splitext(name)
            # Encoded once (PNG/GIF encoding is most of a preview's cost: 40 ms at the debug
            # size, 240 ms at 64x64), then copied to the _latest name.
            path = save_picture(picture, self.dir / f"{stem}_{tag}{suffix}", scale=2)
            latest = path.with_name(f"{stem}_latest{path.suffix}")
            written += [path, atomic_write_bytes(latest, path.read_bytes())]
        return written

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # The final pictures are drawn here too, before the run's last checkpoint reaches the
        # disk: a run killed after that checkpoint then has all its pictures.
        if (self.every_n_steps and trainer.global_step % self.every_n_steps == 0) or \
                is_final_step(trainer):
            self.write(trainer, pl_module, f"step{trainer.global_step:07d}")
            self._written_at = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        if self._written_at != trainer.global_step:
            self.write(trainer, pl_module, f"step{trainer.global_step:07d}")


def _kept(row: dict[str, str], resume_step: int) -> bool:
    """Rows logged before the checkpoint survive a resume. Lightning logs a training row with the
    index of its step (0 for the first) and a validation row with the index of the step before
    it, so a checkpoint after ``resume_step`` steps covers exactly the rows with a smaller step;
    the resumed run logs the others again."""
    try:
        return int(float(row.get("step") or 0)) < resume_step
    except ValueError:
        return False


class MetricsCSVLogger(Logger):
    """Writes ``metrics.csv`` (one row per logged step) in the run folder, appending the new rows
    at every save. The file is rewritten only when a new metric name adds a column, and on the
    first save of a resumed run, which drops the rows logged after the checkpoint (they will be
    logged again), so a resumed run neither loses nor duplicates rows. Nothing is touched before
    the first save, so a resume refused at the start leaves the file as it was."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.resume_step = resume_step
        self._pending: list[dict[str, Any]] = []
        self._fields: list[str] | None = None

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass  # config.json holds them

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        row = {k: (v.item() if isinstance(v, torch.Tensor) else v) for k, v in metrics.items()}
        row["step"] = step
        self._pending.append(row)

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        if not self.path.is_file():
            return [], []
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            rows = [r for r in reader if None not in r]  # a torn last line has extra/missing cells
            return list(reader.fieldnames or []), rows

    def _rewrite(self, fields: list[str], rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())
        self._fields = fields

    @rank_zero_only
    def save(self) -> None:
        if not self._pending:
            return
        if self._fields is None:  # first save: adopt (and on resume trim) the existing file
            fields, rows = self._read()
            if self.resume_step is not None:
                kept = [r for r in rows if _kept(r, self.resume_step)]
            else:
                kept = []
            self._fields = fields if fields and kept == rows else None
            if self._fields is None and (kept or fields):
                self._rewrite(fields or ["step", "epoch"], kept)
        keys = {k for r in self._pending for k in r}
        if self._fields is None or not keys <= set(self._fields):
            old = self._fields or []
            fields = ["step", "epoch", *sorted((keys | set(old)) - {"step", "epoch"})]
            rows = self._read()[1] if self.path.is_file() else []
            self._rewrite(fields, rows + self._pending)
        else:
            buf = io.StringIO()
            csv.DictWriter(buf, fieldnames=self._fields).writerows(self._pending)
            with open(self.path, "a", newline="") as f:
                f.write(buf.getvalue())
                f.flush()
        self._pending = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
