"""Lightning plumbing for the trainer: safe checkpoint I/O, the run checkpoint callback and the
sample-preview callback. Nothing here names a model; everything goes through the model contract."""

from __future__ import annotations

import csv
import io
import os
import pickle
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.loggers.logger import Logger
from lightning.pytorch.utilities import rank_zero_only

from rnnimg.errors import RnnImgError
from rnnimg.fileio import atomic_write_bytes

LAST_CKPT = "last.ckpt"


class SafeCheckpointIO(TorchCheckpointIO):
    """Writes checkpoints atomically (temporary file, then rename) and loads them with
    ``torch.load(weights_only=True)``, so a pickle payload planted in a run folder is refused,
    never executed."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        atomic_write_bytes(path, buf.getvalue())

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return load_checkpoint_file(path, map_location=map_location)


def load_checkpoint_file(path: str | os.PathLike, map_location=None) -> dict[str, Any]:
    """Load a resume checkpoint with ``weights_only=True``; refuse anything else with one line."""
    path = Path(path)
    if not path.is_file():
        raise RnnImgError(f"{path}: no checkpoint there; train first or drop --resume.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "not a tensor-only file"
        raise RnnImgError(
            f"{path} was refused: it holds Python objects beyond tensors and plain data, which "
            f"rnnimg never unpickles ({first[:120]}). Delete it or restore a trusted copy."
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise RnnImgError(f"{path} is corrupt or unreadable ({str(err).splitlines()[0][:120]}); "
                          "delete it to start over, or restore a copy.") from None


class RunCheckpoint(L.Callback):
    """Saves ``checkpoints/last.ckpt`` every ``every_n_steps`` steps, at each epoch end and when
    training ends, and exports ``model.safetensors`` + ``config.json`` (the shareable weights) at
    the same moments. Nothing is written on an exception, so the last good checkpoint stays."""

    def __init__(self, run_dir: Path, every_n_steps: int, run_meta: dict[str, Any]) -> None:
        self.run_dir, self.every_n_steps, self.run_meta = Path(run_dir), every_n_steps, run_meta
        self._last_saved_step = -1

    @property
    def ckpt_path(self) -> Path:
        return self.run_dir / "checkpoints" / LAST_CKPT

    def _save(self, trainer: L.Trainer, pl_module) -> None:
        if trainer.global_step == self._last_saved_step or trainer.sanity_checking:
            return
        self._last_saved_step = trainer.global_step
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)  # all ranks call; rank 0 writes
        if trainer.is_global_zero:
            pl_module.model.save_pretrained(self.run_dir, extra=self.run_meta)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        self._save(trainer, pl_module)


class PreviewCallback(L.Callback):
    """Writes the model's preview pictures (sample grids, prediction strips) into ``samples/``
    every ``every_n_steps`` steps and at the end, with a fixed generator so grids are comparable."""

    def __init__(self, run_dir: Path, every_n_steps: int, seed: int = 0) -> None:
        self.dir, self.every_n_steps, self.seed = Path(run_dir) / "samples", every_n_steps, seed
        self._batch = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._batch is None:
            self._batch = {k: v[:8].detach().clone() for k, v in batch.items()}

    def write(self, trainer, pl_module, tag: str) -> list[Path]:
        from rnnimg.tasks import preview, save_picture

        if not trainer.is_global_zero or self._batch is None:
            return []
        model = pl_module.model
        gen = torch.Generator(device=model.device).manual_seed(self.seed)
        written = []
        for name, picture in preview(model, self._batch, gen).items():
            stem, suffix = os.path.splitext(name)
            for path in (self.dir / f"{stem}_{tag}{suffix}", self.dir / f"{stem}_latest{suffix}"):
                written.append(save_picture(picture, path, scale=2))
        return written

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self.write(trainer, pl_module, f"step{trainer.global_step:07d}")

    def on_train_end(self, trainer, pl_module) -> None:
        self.write(trainer, pl_module, f"step{trainer.global_step:07d}")


def _kept(row: dict[str, str], resume_step: int) -> bool:
    """Rows logged before the checkpoint survive a resume. A training row at the checkpoint's own
    step came from the step that is about to run again, so it goes; validation rows stay."""
    step = int(float(row.get("step") or 0))
    is_train = any(k.startswith("train/") and v not in ("", None) for k, v in row.items())
    return step < resume_step or (step == resume_step and not is_train)


class MetricsCSVLogger(Logger):
    """Writes ``metrics.csv`` (one row per logged step) in the run folder. Unlike Lightning's
    CSVLogger it keeps the rows of an interrupted run when training resumes (see :func:`_kept`)."""

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        super().__init__()
        self.path = Path(run_dir) / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if _kept(r, resume_step)]

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
        self.rows.append(row)

    @rank_zero_only
    def save(self) -> None:
        keys = sorted({k for r in self.rows for k in r} - {"step", "epoch"})
        fields = ["step", "epoch", *keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_bytes(self.path, buf.getvalue().encode())

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()
