"""``train()``: build the model and the data once, lay out and lock the run folder, and fit.

    runs/NAME/
      config.json        model name + config + data + training settings (all that rebuilds it)
      model.safetensors  the weights users share and load (no pickle)
      checkpoints/       last.ckpt (resume), best.ckpt (lowest val loss), stepNNNNNNN.ckpt
                         (periodic); loaded with weights_only=True
      metrics.csv        one row per logged step; TensorBoard events in tb/ (with the extra)
      samples/           grids / GIFs written during training
      curves.png         the loss curves
      .rnnimg.lock       while a process trains in it (pid, host)
"""

from __future__ import annotations

import dataclasses
import errno
import importlib.util
import json
import os
import signal
import warnings
from pathlib import Path

import lightning as L

from rnnimg.data.registry import pin_dataset
from rnnimg.errors import RnnImgError
from rnnimg.fileio import atomic_write_bytes, atomic_write_text
from rnnimg.models.base import CONFIG_FILE
from rnnimg.models.checkpoint import read_run_config
from rnnimg.models.registry import create_model
from rnnimg.train.callbacks import (
    LAST_CKPT,
    ExportWeights,
    MetricsCSVLogger,
    PreviewCallback,
    SafeCheckpointIO,
    SignalStop,
    StopForSignal,
    checkpoint_callbacks,
    export_weights,
    load_checkpoint_file,
)
from rnnimg.train.data import build_datasets, make_loaders
from rnnimg.train.datashape import fit_to_data
from rnnimg.train.lit import LitModel, discriminator_parameters
from rnnimg.train.progress import progress_bar
from rnnimg.train.rundir import (
    RunLock,
    check_not_busy,
    check_replaceable,
    checkpoint_files,
    clean_temporary_files,
    clear_folder,
    newest_checkpoint,
    os_error_message,
)
from rnnimg.train.settings import TrainSettings, merge_resume

# config.json of a finished run says at which step it finished; it is the run's last write, so a
# run without it (or with an older step than its newest checkpoint) is finished by --resume.
STEPS_TRAINED = "steps_trained"


class RunComplete(RnnImgError):
    """``--resume`` of a run that already reached its budget and wrote all its files: nothing was
    changed. Not a failure: ``exit_code`` is 0 (a scheduler that re-runs a finished job's command
    must not see it fail)."""

    exit_code = 0


class TrainingInterrupted(RnnImgError):
    """Training stopped on SIGINT / SIGTERM after saving a checkpoint; ``exit_code`` is 130 / 143."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _is_launched_worker() -> bool:
    """True in the processes Lightning's DDP launcher starts for ranks > 0: they re-run the same
    command, and must neither check, lock, clear nor write the run folder that rank 0 prepared."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _check_hardware(s: TrainSettings) -> None:
    """Let Lightning judge --accelerator/--devices/--strategy/--num-nodes/--precision before the
    run folder is written: a typo there was a raw traceback after the folder existed."""
    import logging

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(logging.WARNING)  # the real Trainer prints the "GPU available" lines
    try:
        L.Trainer(accelerator=s.accelerator, devices=s.devices, strategy=s.strategy,
                  num_nodes=s.num_nodes, precision=s.precision, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    except (ValueError, TypeError, RuntimeError, MisconfigurationException) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RnnImgError(f"bad hardware settings (--accelerator {s.accelerator}, --devices "
                          f"{s.devices}, --strategy {s.strategy}, --num-nodes {s.num_nodes}, "
                          f"--precision {s.precision}): {first}") from None
    finally:
        log.setLevel(level)


def tensorboard_available() -> bool:
    """TensorBoard is an extra (``pip install rnnimg[tensorboard]``); metrics.csv is always written."""
    return importlib.util.find_spec("tensorboard") is not None or \
        importlib.util.find_spec("tensorboardX") is not None


def resolve_settings(settings: TrainSettings, given: set[str] | None = None
                     ) -> tuple[TrainSettings, dict | None]:
    """The resolved settings (on --resume: merged with the run's saved ones), and the run's saved
    config.json on --resume (else None)."""
    settings = start_or_resume(settings)
    if not settings.resume:  # a new run: the data shape the model (train/datashape.py)
        return fit_to_data(settings.resolved()), None
    if settings.out is None and settings.model is None:
        raise RnnImgError("--resume needs the run folder: pass --out RUN.")
    out = settings.out if settings.out is not None else settings.resolved().out
    meta = read_run_config(out)  # one-line error if it is not a run folder
    if settings.model is not None and meta["model"] != settings.model:
        raise RnnImgError(f"{out} holds a {meta['model']!r} run, not {settings.model!r}; drop MODEL "
                          "or choose the right --out.")
    saved = meta.get("training")
    if not isinstance(saved, dict):
        raise RnnImgError(f"{Path(out) / CONFIG_FILE} has no training settings; it is a model "
                          "folder, not a run that can be resumed.")
    merged = merge_resume({**saved, "model": meta["model"]},
                          dataclasses.replace(settings, model=meta["model"]), given, Path(out))
    return merged.resolved(), meta


def start_or_resume(settings: TrainSettings) -> TrainSettings:
    """``resume="auto"`` (``--resume auto``) made definite: resume the run in the folder if it
    holds one, else start it (the folder missing or empty). A run that stopped before its first
    checkpoint is started again. So a scheduler can run one command from the first launch on."""
    if settings.resume != "auto":
        return settings
    if settings.out is None and settings.model is None:
        raise RnnImgError("--resume auto needs the run folder: pass --out RUN (or MODEL).")
    out = Path(settings.out if settings.out is not None else settings.resolved().out)
    try:
        meta = json.loads((out / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        meta = None
    if isinstance(meta, dict) and isinstance(meta.get("training"), dict) and \
            (checkpoint_files(out) or (out / "model.safetensors").is_file()):
        return dataclasses.replace(settings, resume=True)
    if settings.model is None:
        raise RnnImgError(f"--resume auto: {out} holds no run to resume, so it starts one, which "
                          "needs the MODEL (and its flags) on the command line.")
    if not isinstance(meta, dict) or not isinstance(meta.get("training"), dict):
        return dataclasses.replace(settings, resume=False)  # nothing to resume: start (or refuse)
    # An rnnimg run that stopped before its first checkpoint: nothing in it can be resumed.
    return dataclasses.replace(settings, resume=False, overwrite=True)


def train(settings: TrainSettings, callbacks: list[L.Callback] | None = None,
          given: set[str] | None = None) -> Path:
    """Train a model as ``settings`` say and return the run folder.

    With ``settings.resume`` the run continues from its newest valid checkpoint (last, periodic or
    best, by step; damaged ones are skipped with a warning) with the settings saved in its
    config.json; the final weights and metrics.csv's rows are those of an uninterrupted run. A run
    killed after its last checkpoint gets its end-of-run files written; a complete run raises
    :class:`RunComplete` and nothing changes. ``resume="auto"`` starts the run if the folder holds
    none (see :func:`start_or_resume`).

    Args:
        settings: what to train.
        callbacks: more Lightning callbacks.
        given: on resume, the fields the user set explicitly (the CLI passes its flags); None
            takes the fields that differ from the defaults.

    Raises:
        RnnImgError: for bad settings, data, run folders or checkpoints, a busy folder, a full or
            read-only disk; NonFiniteLossError on NaN/Inf; TrainingInterrupted on SIGINT/SIGTERM
            (after the checkpoint was saved); RunComplete (exit code 0) on a resume of a complete
            run.
    """
    s, old_meta = resolve_settings(settings, given)
    worker = _is_launched_worker()
    run_dir = Path(s.out)
    _check_hardware(s)
    if not worker:
        _check_out(run_dir, s)

    # The model and the data, once. A bad --set or --data fails here, before anything is touched.
    L.seed_everything(s.seed, workers=True, verbose=False)  # before the model: same weights
    if old_meta is not None:
        model = create_model(old_meta["model"], **old_meta["config"])
    else:
        model = create_model(s.model, s.preset, **{**s.from_data, **s.overrides})
    if s.compile is not None:  # speed only: the weights and their names stay the eager ones
        model.compile_steps(s.compile)
    if old_meta is None:  # an absolute folder: path, the class folder names: saved with the run
        data, data_options = pin_dataset(s.data, s.data_options)
        s = dataclasses.replace(s, data=data, data_options=data_options)
    train_set, val_set = build_datasets(s, model)
    if s.precision == "16-mixed" and discriminator_parameters(model):
        raise RnnImgError(f"--precision 16-mixed is not supported for {model.name}'s adversarial "
                          "training; use bf16-mixed or 32-true.")
    if len(train_set) < s.batch_size:
        warnings.warn(f"the training set has {len(train_set)} items, fewer than the batch size "
                      f"{s.batch_size}; each epoch is one short batch.", stacklevel=2)
    lit = LitModel(model, s.lr, s.weight_decay, grad_clip=s.grad_clip,
                   ckpt_path=run_dir / "checkpoints" / LAST_CKPT)
    resume_path = resume_ckpt = None
    finishing = False  # the newest checkpoint is at the budget: only the end-of-run files remain
    if s.resume:  # refuse a bad checkpoint before anything in the folder changes
        resume_path, resume_ckpt, skipped = newest_checkpoint(run_dir, lit.state_dict())
        step = int(resume_ckpt["global_step"])
        if _budget_reached(s, step, len(train_set)):
            if _is_complete(run_dir, step):
                raise RunComplete(f"{run_dir} is complete: it trained to step {step} "
                                  f"({_budget_flag(s)}); nothing to do. To train it further, pass "
                                  "a larger --max-steps (or --epochs) with --resume.")
            finishing = True
        for reason in skipped:
            warnings.warn(f"skipped a checkpoint: {reason}; resuming from {resume_path} (step "
                          f"{step}).", stacklevel=2)

    meta = {"preset": s.preset, "data": {"name": s.data, "options": {**model.dataset_options(),
                                                                      **s.data_options}},
            "training": s.to_dict()}
    lock = RunLock(run_dir)
    created = not run_dir.exists()
    io = SafeCheckpointIO()
    signals = SignalStop(ExportWeights(run_dir, meta, io))
    try:
        if not worker:
            try:
                _prepare(run_dir, s, lock, model, meta)
            except OSError as err:
                raise RnnImgError(os_error_message(err, run_dir, "write the run folder")
                                  + "; choose another --out.") from None
        if finishing:
            if not worker:
                _finish_from_checkpoint(run_dir, lit, meta, resume_path, resume_ckpt)
            return run_dir

        def abort() -> None:  # a second Ctrl-C: leave the folder as a re-run accepts it
            if not worker and not s.resume and not checkpoint_files(run_dir):
                _remove_failed_run(run_dir, created)
            lock.release()

        signals.on_abort = abort
        signals.install()
        trainer, train_loader, val_loader = _build_trainer(s, run_dir, lit, signals, io, train_set,
                                                           val_set, resume_ckpt, callbacks)
        stopped = False
        try:
            try:
                trainer.fit(lit, train_loader, val_loader, ckpt_path=resume_path, weights_only=True)
            except StopForSignal:
                stopped = True
            io.flush()  # the run's last checkpoints: last.ckpt is the last of them
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT, errno.EPERM):
                raise
            if checkpoint_files(run_dir):
                then = (f"{_last_good(run_dir)}. Free some space (or fix the permissions) and resume "
                        f"with `rnnimg train --resume --out {run_dir}`.")
            else:
                then = "no checkpoint was written yet. Free some space (or fix the permissions) " \
                       "and start the run again."
            raise RnnImgError(os_error_message(err, run_dir, "write to") + "; " + then) from None
        if stopped or (signals.stopped_at is not None and trainer.global_step < _budget_steps(trainer)):
            code = 128 + int(signals.requested or signal.SIGINT)
            raise TrainingInterrupted(
                f"stopped by {signal.Signals(signals.requested or signal.SIGINT).name} at step "
                f"{signals.stopped_at}; checkpoint saved in {run_dir / 'checkpoints' / LAST_CKPT}. "
                f"Continue with `rnnimg train --resume --out {run_dir}`.", code)
        if trainer.is_global_zero:
            finish_run(run_dir, trainer.global_step)
        return run_dir
    except BaseException:
        io.discard()
        if not worker and not s.resume and (lock.held or created) and not checkpoint_files(run_dir):
            _remove_failed_run(run_dir, created)  # a plain re-run must be accepted
        raise
    finally:
        signals.restore()
        lock.release()


def finish_run(run_dir: Path, step: int) -> bool:
    """The end of a run, after its last checkpoint and its weights are on disk: the curves, the
    model card, and last the ``steps_trained`` mark in config.json, which says the run is complete
    (a ``--resume`` then changes nothing). Each write is atomic and can be redone, so a run killed
    between any two of them is finished by ``--resume``. The curves and the card are a convenience:
    if one cannot be written (a full disk), a warning says so and the run is not marked complete.

    Returns:
        whether the run was marked complete.
    """
    from rnnimg.cards import write_model_card

    try:
        write_curves(run_dir)
        write_model_card(run_dir)
    except OSError as err:
        warnings.warn(f"{os_error_message(err, run_dir, 'finish')}; the run and its weights are "
                      f"saved: `rnnimg train --resume --out {run_dir}` writes the rest.", stacklevel=2)
        return False
    meta = json.loads((run_dir / CONFIG_FILE).read_text())
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps({**meta, STEPS_TRAINED: step}, indent=2))
    return True


def _is_complete(run_dir: Path, step: int) -> bool:
    """Whether the run finished at ``step`` and wrote everything (see :func:`finish_run`)."""
    try:
        meta = json.loads((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get(STEPS_TRAINED) == step and \
        (run_dir / "model.safetensors").is_file()


def _finish_from_checkpoint(run_dir: Path, lit: LitModel, meta: dict, path: Path,
                            ckpt: dict) -> None:
    """A run whose newest checkpoint reached the budget, killed before its end-of-run files were
    all written: write them from that checkpoint (the weights, last.ckpt if it was another file,
    the curves, the card, the mark), as the uninterrupted run would have."""
    step = int(ckpt["global_step"])
    lit.load_state_dict(ckpt["state_dict"])
    export_weights(lit.model, run_dir, meta)
    every = meta["training"].get("ckpt_every_n_steps")
    copies = ([f"step{step:07d}.ckpt"] if every and step % every == 0 else []) + [LAST_CKPT]
    for name in copies:  # the periodic one first, last.ckpt last, as the run writes them
        target = run_dir / "checkpoints" / name
        if target != path and (name == LAST_CKPT or not target.is_file()):
            atomic_write_bytes(target, path.read_bytes())
    finish_run(run_dir, step)


def _budget_steps(trainer: L.Trainer) -> float:
    if trainer.max_steps and trainer.max_steps > 0:
        return trainer.max_steps
    return float("inf")


def _check_out(run_dir: Path, s: TrainSettings) -> None:
    """Cheap checks of --out before the model and data are built."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RnnImgError(f"--out {run_dir} is a file; the run needs a folder, so choose another --out.")
    if s.resume:
        check_not_busy(run_dir)
        if not checkpoint_files(run_dir):
            raise RnnImgError(f"{run_dir} has no checkpoint to resume from: it stopped before its "
                              "first checkpoint, so start it again with --overwrite.")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        check_not_busy(run_dir)
        check_replaceable(run_dir, s.overwrite)  # --overwrite deletes only an rnnimg run


def _budget_flag(s: TrainSettings) -> str:
    return f"--max-steps {s.max_steps}" if s.max_steps is not None else f"--epochs {s.epochs or 1}"


def _budget_reached(s: TrainSettings, step: int, train_items: int) -> bool:
    """Whether a run at ``step`` has no steps left under the budget of ``s``."""
    steps_per_epoch = train_items // s.batch_size if train_items > s.batch_size else 1
    epoch_budget = s.epochs if s.epochs is not None else (None if s.max_steps else 1)
    return (s.max_steps is not None and step >= s.max_steps) or \
        (epoch_budget is not None and step >= epoch_budget * steps_per_epoch)


def _prepare(run_dir: Path, s: TrainSettings, lock: RunLock, model, meta: dict) -> None:
    """Create (or on --overwrite clear) the folder, lock it, clean temporary files, write
    config.json (with the settings of this run or resume)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock.acquire()  # the first write: a read-only or full file system fails here, with its errno
    clean_temporary_files(run_dir)
    if s.overwrite and not s.resume:
        clear_folder(run_dir)
    # On --resume too: a raised budget is saved, so a plain --resume after a kill keeps it, and
    # the mark of a finished run goes until the run is finished again.
    atomic_write_text(run_dir / CONFIG_FILE,
                      json.dumps({"model": model.name, "weights_version": model.weights_version,
                                  "config": model.config_dict(), **meta}, indent=2))


def _remove_failed_run(run_dir: Path, created: bool) -> None:
    import shutil

    try:
        if created:
            shutil.rmtree(run_dir)
        elif run_dir.is_dir():
            clear_folder(run_dir)
    except OSError:
        pass


def _last_good(run_dir: Path) -> str:
    steps = []
    for path in checkpoint_files(run_dir):
        try:
            steps.append((int(load_checkpoint_file(path, map_location="cpu")["global_step"]), path))
        except Exception:
            continue
    if not steps:
        return f"no readable checkpoint is left in {run_dir / 'checkpoints'}"
    step, path = max(steps)
    return f"the last good checkpoint is {path} (step {step})"


def _build_trainer(s: TrainSettings, run_dir: Path, lit: LitModel, signals: SignalStop,
                   io: SafeCheckpointIO, train_set, val_set, resume_ckpt: dict | None, callbacks):
    resume_step = int(resume_ckpt["global_step"]) if resume_ckpt is not None else None
    loggers: list = [MetricsCSVLogger(run_dir, resume_step)]
    if tensorboard_available():
        loggers.append(L.pytorch.loggers.TensorBoardLogger(run_dir, name="tb", version="",
                                                           default_hp_metric=False))
    max_epochs = s.epochs if s.epochs is not None else (-1 if s.max_steps else 1)
    trainer = L.Trainer(
        max_epochs=max_epochs, max_steps=s.max_steps or -1,
        gradient_clip_val=None if lit.adversarial else s.grad_clip,
        accelerator=s.accelerator, devices=s.devices, strategy=s.strategy, num_nodes=s.num_nodes,
        precision=s.precision, logger=loggers,
        callbacks=[signals.export, signals,
                   PreviewCallback(run_dir, s.sample_every_n_steps, seed=s.seed),
                   *checkpoint_callbacks(run_dir, s.ckpt_every_n_steps, s.keep_checkpoints,
                                         val_set is not None),
                   *([progress_bar()] if s.progress else []),
                   *(callbacks or [])],
        enable_checkpointing=True, enable_progress_bar=s.progress, enable_model_summary=False,
        num_sanity_val_steps=0, log_every_n_steps=max(1, s.log_every_n_steps),
        limit_val_batches=s.val_batches if s.val_batches is not None else 1.0,
        val_check_interval=s.val_every_n_steps,  # None: Lightning's default, every epoch end
        check_val_every_n_epoch=None if s.val_every_n_steps else 1,
        use_distributed_sampler=False,  # EpochSampler shards the data itself
        default_root_dir=run_dir, plugins=[io],
    )
    # Pinned batches on a GPU: Lightning copies them with non_blocking=True, so the copy of the
    # next batch overlaps the step instead of waiting for it.
    from lightning.pytorch.accelerators import CUDAAccelerator

    train_loader, val_loader, sampler = make_loaders(
        train_set, val_set, s.batch_size, s.seed, s.num_workers,
        pin_memory=isinstance(trainer.accelerator, CUDAAccelerator))
    if resume_step is not None:
        sampler.resume_after(resume_step)  # one batch per step (also for adversarial models)
    return trainer, train_loader, val_loader


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
