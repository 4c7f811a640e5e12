"""The one place the trainer reaches into Lightning's internals, because no public API does the job
(tested on its own in ``tests/test_lightning_compat.py``, so a Lightning release that moves one of
them fails there by name; ``pyproject.toml`` says which Lightning the exact resume was tested with).

- :func:`is_log_step`: whether Lightning writes a logger row after the step that is ending. The
  trainer logs its metrics on exactly those steps, so it asks Lightning's own test
  (``trainer._logger_connector.should_update_logs``) rather than recomputing it: a copy of the rule
  (``log_every_n_steps``, the stop flag, the loop's step counter) would drift from Lightning's.
- :func:`is_last_batch`: whether the batch that just ended is the last of its epoch, as the fit
  loop knows it (``trainer.fit_loop.epoch_loop.batch_progress``); ``batch_idx`` and
  ``num_training_batches`` are public but do not say it on a resumed epoch.
- :func:`align_logging_step`: sets the counter Lightning numbers logger rows by
  (``epoch_loop._batches_that_stepped``) to the global step. After some resume points (a checkpoint
  at the last batch of a finished run) Lightning restores it one off.
- :func:`checkpoint_progress`: how far a saved checkpoint got, read from the loop state Lightning
  writes into it (``checkpoint["loops"]["fit_loop"]``), which has no public reader.
"""

from __future__ import annotations

from typing import Any

import lightning as L


def is_log_step(trainer: L.Trainer) -> bool:
    """Whether Lightning writes a logger row after the current training step (asked after the
    callbacks' batch end, so a stop requested there, which also writes a row, counts)."""
    return bool(trainer._logger_connector.should_update_logs)


def is_last_batch(trainer: L.Trainer) -> bool:
    """Whether the training batch that just ended is the last of its epoch."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


def align_logging_step(trainer: L.Trainer) -> None:
    """Number the next logger row by the global step. Valid before a batch when every batch takes
    an optimizer step (no gradient accumulation), as in rnnimg's trainer."""
    trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step


def checkpoint_progress(checkpoint: dict[str, Any]) -> tuple[int, int, int]:
    """(global step, validation batches completed, epochs completed) of a Lightning checkpoint:
    two checkpoints of one step differ by whether the step's validation had run. Counts the
    checkpoint lacks read as 0."""
    loops = checkpoint.get("loops")
    fit = loops.get("fit_loop", {}) if isinstance(loops, dict) else {}

    def completed(key: str) -> int:
        try:
            return int(fit[key]["total"]["completed"])
        except (KeyError, TypeError, ValueError):
            return 0

    return (int(checkpoint["global_step"]), completed("epoch_loop.val_loop.batch_progress"),
            completed("epoch_progress"))
