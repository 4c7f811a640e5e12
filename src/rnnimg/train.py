"""The training engine: one LightningModule that wraps ANY registered model through
``model.loss(batch)``, the data loaders, and :func:`train`, which lays out the run folder.

    runs/NAME/
      config.json        model name + config + data + training settings (all that rebuilds it)
      model.safetensors  the weights users share and load (no pickle)
      checkpoints/       last.ckpt, Lightning's resume checkpoint (loaded with weights_only=True)
      metrics.csv        one row per logged step; TensorBoard events in tb/
      samples/           grids / GIFs written during training
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from rnnimg.callbacks import (
    LAST_CKPT,
    MetricsCSVLogger,
    PreviewCallback,
    RunCheckpoint,
    SafeCheckpointIO,
)
from rnnimg.data.registry import dataset_task, get_dataset_entry, load_dataset
from rnnimg.errors import NonFiniteLossError, RnnImgError
from rnnimg.models.base import CONFIG_FILE, RnnImgModel
from rnnimg.models.checkpoint import read_run_config
from rnnimg.models.registry import create_model, get_model_class


@dataclass
class TrainSettings:
    """Everything a training run needs besides the model config. Saved in config.json."""

    model: str  # registered model name
    data: str = "mnist-5k"  # registered dataset name (or folder:PATH, ...)
    preset: str | None = None  # model preset; also picks the preset's training defaults
    overrides: dict[str, Any] = field(default_factory=dict)  # model config fields over the preset
    data_options: dict[str, Any] = field(default_factory=dict)  # data_dir, download, strict, ...
    out: str | None = None  # run folder; default runs/MODEL[-PRESET]
    epochs: int | None = None  # stop after this many epochs ...
    max_steps: int | None = None  # ... or this many optimizer steps (default: 1 epoch)
    batch_size: int | None = None  # default: the preset's, else 64
    lr: float | None = None  # Adam learning rate; default: the preset's, else 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # clip the gradient norm to this (None: off)
    seed: int = 0  # seeds Python, NumPy, torch and the data loader workers
    val_fraction: float = 0.05  # held out of train for validation where the data have no val split
    val_batches: int | None = 20  # validation batches per epoch (None: all)
    ckpt_every_n_steps: int = 200
    sample_every_n_steps: int = 200
    log_every_n_steps: int = 10
    num_workers: int = 0
    accelerator: str = "auto"  # passed to Lightning
    devices: Any = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    resume: bool = False  # continue from checkpoints/last.ckpt
    overwrite: bool = False  # replace an existing run folder
    progress: bool = True  # show the progress bar

    def resolved(self) -> TrainSettings:
        """Fill the preset's training defaults into the fields the user left at None."""
        cls = get_model_class(self.model)
        defaults = cls.training_presets.get(self.preset or "", {})
        s = dataclasses.replace(self)
        if s.batch_size is None:
            s.batch_size = int(defaults.get("batch_size", 64))
        if s.lr is None:
            s.lr = float(defaults.get("lr", 1e-3))
        if s.out is None:
            s.out = str(Path("runs") / (self.model + (f"-{self.preset}" if self.preset else "")))
        for name in ("batch_size", "ckpt_every_n_steps", "sample_every_n_steps", "log_every_n_steps"):
            if getattr(s, name) < 0 or (name == "batch_size" and s.batch_size < 1):
                raise RnnImgError(f"--{name.replace('_', '-')} must be positive, got {getattr(s, name)}.")
        if s.grad_clip is not None:
            if s.grad_clip == 0:
                s.grad_clip = None  # 0 means off, as the CLI's --grad-clip 0 does
            elif not 0 < s.grad_clip < math.inf:  # a negative norm flips every gradient's sign
                raise RnnImgError(f"--grad-clip must be > 0 (or 0 for off), got {s.grad_clip}.")
        if not 0 <= s.seed <= 2**32 - 1:  # NumPy's seed range, which Lightning enforces
            raise RnnImgError(f"--seed must be in 0..{2**32 - 1}, got {s.seed}.")
        if s.num_workers < 0:
            raise RnnImgError(f"--num-workers must be >= 0, got {s.num_workers}.")
        if not s.lr > 0:
            raise RnnImgError(f"--lr must be > 0, got {s.lr}.")
        if not 0 <= s.val_fraction < 1:
            raise RnnImgError(f"--val-fraction must be in [0, 1), got {s.val_fraction}.")
        return s


class LitModel(L.LightningModule):
    """Wraps any rnnimg model: the training step is ``model.loss(batch)``; metrics are logged as
    the model reports them. A NaN or Inf loss or gradient stops training with a clear message."""

    def __init__(self, model: RnnImgModel, lr: float, weight_decay: float = 0.0,
                 ckpt_path: Path | None = None) -> None:
        super().__init__()
        self.model, self.lr, self.weight_decay, self.ckpt_path = model, lr, weight_decay, ckpt_path

    def _log_metrics(self, prefix: str, out, batch_size: int) -> None:
        on_step = prefix == "train"
        self.log(f"{prefix}/loss", out.loss.detach(), prog_bar=True, batch_size=batch_size,
                 on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
        for key, value in out.metrics.items():
            value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if value.numel() != 1:
                value = value.float().mean()  # per-time-step metrics are logged as their mean
            self.log(f"{prefix}/{key}", value, batch_size=batch_size, on_step=on_step,
                     on_epoch=not on_step, sync_dist=not on_step)

    @staticmethod
    def _batch_size(batch: dict) -> int:
        return len(next(iter(batch.values())))

    def training_step(self, batch, batch_idx):
        if hasattr(self.model, "set_training_step"):  # step-dependent schedules (PredRNN)
            self.model.set_training_step(self.global_step)
        out = self.model.loss(batch)
        if not torch.isfinite(out.loss):
            self._stop(f"the loss became {out.loss.item()}")
        self._log_metrics("train", out, self._batch_size(batch))
        return out.loss

    def on_before_optimizer_step(self, optimizer) -> None:
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.detach().abs().max() for g in grads])).all():
            self._stop("a gradient became NaN or Inf")

    def _stop(self, what: str) -> None:
        where = f"; the last good checkpoint is {self.ckpt_path}" if self.ckpt_path and \
            self.ckpt_path.is_file() else "; no checkpoint was written before it"
        raise NonFiniteLossError(
            f"{what} at step {self.global_step}, so training stopped{where}. "
            "Try a lower --lr, a smaller --grad-clip, or check the data for NaN."
        )

    def validation_step(self, batch, batch_idx):
        out = self.model.loss(batch)
        self._log_metrics("val", out, self._batch_size(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    # The global RNG states go into the checkpoint, so a resumed run draws the same numbers.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        np_state = np.random.get_state()
        checkpoint["rnnimg_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rnnimg_rng")
        if state:
            torch.set_rng_state(state["torch"])
            n = state["numpy"]
            np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
            p = state["python"]
            random.setstate((p[0], tuple(p[1]), p[2]))


def build_datasets(settings: TrainSettings, model: RnnImgModel) -> tuple[Dataset, Dataset | None]:
    """Train and validation sets. Validation comes from the dataset's own ``val`` split, or else a
    fixed ``val_fraction`` of ``train`` (the same images whatever the seed); never from test."""
    entry, _ = get_dataset_entry(settings.data)
    options = {**model.dataset_options(), **settings.data_options}
    task = dataset_task(settings.data, options)  # corrupt=... makes an image dataset a translate one
    if task not in model.tasks():
        raise RnnImgError(f"dataset {settings.data!r} is for the {task!r} task, but "
                          f"{settings.model!r} does {'/'.join(model.tasks())}; pick a matching one.")
    train_set = load_dataset(settings.data, "train", **options)
    model.check_dataset(train_set, settings.data)
    if "val" in entry.splits:
        return train_set, load_dataset(settings.data, "val", **options)
    n_val = int(len(train_set) * settings.val_fraction)
    if n_val == 0:
        return train_set, None
    perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0)).tolist()
    return Subset(train_set, perm[n_val:]), Subset(train_set, perm[:n_val])


def _is_launched_worker() -> bool:
    """True in the processes Lightning's DDP launcher starts for ranks > 0: they re-run the same
    command, and must neither check, clear nor write the run folder that rank 0 prepared."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _check_hardware(s: TrainSettings) -> None:
    """Let Lightning judge --accelerator/--devices/--strategy/--precision before the run folder is
    written: a typo there was a raw traceback that also left a config-only run folder behind."""
    import logging

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(logging.WARNING)  # the real Trainer prints the "GPU available" lines
    try:
        L.Trainer(accelerator=s.accelerator, devices=s.devices, strategy=s.strategy,
                  precision=s.precision, logger=False, enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False)
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RnnImgError(f"bad hardware settings (--accelerator {s.accelerator}, --devices "
                          f"{s.devices}, --strategy {s.strategy}, --precision {s.precision}): "
                          f"{first}") from None
    finally:
        log.setLevel(level)


def _prepare_run_dir(s: TrainSettings) -> tuple[Path, dict | None]:
    run_dir = Path(s.out)
    if _is_launched_worker():
        return run_dir, read_run_config(run_dir) if s.resume else None
    if run_dir.exists() and not run_dir.is_dir():
        raise RnnImgError(f"--out {run_dir} is a file; the run needs a folder, so choose another --out.")
    existing = run_dir.exists() and any(run_dir.iterdir())
    if s.resume:
        meta = read_run_config(run_dir)  # one-line error if it is not a run folder
        if not (run_dir / "checkpoints" / LAST_CKPT).is_file():
            raise RnnImgError(f"{run_dir} has no checkpoints/{LAST_CKPT} to resume from.")
        return run_dir, meta
    if existing and not s.overwrite:
        raise RnnImgError(f"{run_dir} already exists; pass --resume to continue it, --overwrite to "
                          "replace it, or --out to choose another folder.")
    if existing:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir, None


def train(settings: TrainSettings, callbacks: list[L.Callback] | None = None) -> Path:
    """Train a model as ``settings`` say and return the run folder.

    Raises:
        RnnImgError: for bad settings, data or run folders; NonFiniteLossError on NaN/Inf.
    """
    s = settings.resolved()
    _check_hardware(s)
    if not s.resume:  # a bad --set or --data fails before --overwrite deletes the old run
        L.seed_everything(s.seed, workers=True, verbose=False)  # before the model: same weights
        model = create_model(s.model, s.preset, **s.overrides)
        train_set, val_set = build_datasets(s, model)
    run_dir, old_meta = _prepare_run_dir(s)
    if old_meta is not None:  # resume: the saved config rebuilds the same model
        L.seed_everything(s.seed, workers=True, verbose=False)
        if old_meta["model"] != s.model:
            raise RnnImgError(f"{run_dir} holds a {old_meta['model']!r} run, not {s.model!r}.")
        model = create_model(old_meta["model"], **old_meta["config"])
        saved = old_meta.get("training", {})
        s = dataclasses.replace(s, data=saved.get("data", s.data),
                                data_options=saved.get("data_options", s.data_options))
        train_set, val_set = build_datasets(s, model)
    if len(train_set) < s.batch_size:
        warnings.warn(f"the training set has {len(train_set)} items, fewer than the batch size "
                      f"{s.batch_size}; each epoch is one short batch.", stacklevel=2)
    loader_kw = dict(batch_size=s.batch_size, num_workers=s.num_workers,
                     persistent_workers=s.num_workers > 0)
    train_loader = DataLoader(train_set, shuffle=True, drop_last=len(train_set) > s.batch_size,
                              **loader_kw)
    val_loader = DataLoader(val_set, shuffle=False, **loader_kw) if val_set is not None else None

    meta = {"preset": s.preset, "data": {"name": s.data, "options": {**model.dataset_options(),
                                                                      **s.data_options}},
            "training": dataclasses.asdict(s)}
    if old_meta is None and not _is_launched_worker():
        (run_dir / CONFIG_FILE).write_text(json.dumps(
            {"model": model.name, "config": model.config_dict(), **meta}, indent=2))

    ckpt_cb = RunCheckpoint(run_dir, s.ckpt_every_n_steps, meta)
    preview_cb = PreviewCallback(run_dir, s.sample_every_n_steps, seed=s.seed)
    lit = LitModel(model, s.lr, s.weight_decay, ckpt_path=ckpt_cb.ckpt_path)
    max_epochs = s.epochs if s.epochs is not None else (-1 if s.max_steps else 1)
    resume_step = None
    if s.resume:
        from rnnimg.callbacks import load_checkpoint_file

        # Fail before Lightning prints anything if the checkpoint is refused or corrupt.
        resume_step = int(load_checkpoint_file(ckpt_cb.ckpt_path, map_location="cpu")["global_step"])
    loggers: list = [MetricsCSVLogger(run_dir, resume_step)]
    try:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(run_dir, name="tb", version="",
                                                           default_hp_metric=False))
    except ModuleNotFoundError:  # tensorboard is a dependency, but stay usable without it
        pass
    trainer = L.Trainer(
        max_epochs=max_epochs, max_steps=s.max_steps or -1, gradient_clip_val=s.grad_clip,
        accelerator=s.accelerator, devices=s.devices, strategy=s.strategy, precision=s.precision,
        callbacks=[ckpt_cb, preview_cb, *(callbacks or [])], logger=loggers,
        enable_checkpointing=False, enable_progress_bar=s.progress, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=max(1, s.log_every_n_steps),
        limit_val_batches=s.val_batches if s.val_batches is not None else 1.0,
        default_root_dir=run_dir, plugins=[SafeCheckpointIO()],
    )
    ckpt = ckpt_cb.ckpt_path if s.resume else None
    trainer.fit(lit, train_loader, val_loader, ckpt_path=ckpt, weights_only=True)
    if trainer.is_global_zero:
        write_curves(run_dir)
    return run_dir


def write_curves(run_dir: Path) -> Path | None:
    """Plot metrics.csv into curves.png beside it (None if nothing was logged)."""
    from rnnimg.viz import plot_curves, read_metrics_csv

    csv_path = Path(run_dir) / "metrics.csv"
    if not csv_path.is_file():
        return None
    series = read_metrics_csv(csv_path)
    series = {k: v for k, v in series.items() if not k.endswith("_epoch") or "val" in k}
    if not series:
        return None
    return plot_curves({Path(run_dir).name: series}, Path(run_dir) / "curves.png",
                       title=f"{Path(run_dir).name}: training curves")


@torch.no_grad()
def evaluate(run_dir: str | Path, data: str | None = None, split: str = "test",
             batch_size: int = 64, max_batches: int | None = None, device: str = "cpu",
             data_options: dict | None = None, progress: bool = True) -> dict[str, Any]:
    """Score the model on a dataset split: the model's ``evaluation_statistics`` summed over all
    batches, then ``reduce_statistics`` once (so pooled metrics are exact).

    Returns:
        {"model", "data", "split", "num_items", "metrics": {name: float or [per-step floats]},
         "data_options"}; generators report ``nll_nats`` and ``bits_per_dim``.
    """
    from tqdm.auto import tqdm

    from rnnimg.models.checkpoint import load_pretrained

    meta = read_run_config(run_dir)
    model = load_pretrained(run_dir, map_location=device).eval()
    saved = meta.get("data", {})
    name = data or saved.get("name") or "mnist-5k"
    options = {**model.dataset_options(), **(saved.get("options", {}) if data is None else {}),
               **(data_options or {})}
    task = dataset_task(name, options)
    if task not in model.tasks():
        raise RnnImgError(f"dataset {name!r} is for the {task!r} task, but {run_dir} holds a "
                          f"{meta['model']!r} model ({'/'.join(model.tasks())}); pick a matching one.")
    if options.get("binarize") == "dynamic":
        options["binarize"] = "fixed"  # a test set is scored on one fixed binarization
    dataset = load_dataset(name, split, **options)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    model.check_dataset(dataset, name)
    total: dict[str, torch.Tensor] = {}
    total_batches = len(loader) if max_batches is None else min(max_batches, len(loader))
    for i, batch in enumerate(tqdm(loader, total=total_batches, desc="evaluate", disable=not progress,
                                   leave=False)):
        if max_batches is not None and i >= max_batches:
            break
        batch = {k: v.to(device) for k, v in batch.items()}
        for key, value in model.evaluation_statistics(batch).items():
            total[key] = total.get(key, 0) + value.detach().double().cpu()
    count = int(total["count"].item()) if total else 0
    metrics = model.reduce_statistics(total) if total else {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            warnings.warn(f"metric {key} is {value}", stacklevel=2)
    return {"model": meta["model"], "data": name, "split": split, "num_items": count,
            "data_options": options, "metrics": metrics}
