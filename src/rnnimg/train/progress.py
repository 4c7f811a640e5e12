"""The training progress line: ``step N/max (p%) | epoch e | train/loss x | r steps/s | ETA``,
redrawn in place on a terminal and printed as a plain line every so often when stdout is a file
(a SLURM or Docker log). It replaces Lightning's bars, which count batches of the current epoch
("Epoch 0/-2" on a --max-steps run) and print nothing to a log until the end."""

from __future__ import annotations

import sys
import time

import lightning as L
from lightning.pytorch.callbacks.progress import ProgressBar


class StepProgress(ProgressBar):
    """Training progress counted in optimizer steps, the unit of ``--max-steps`` and of the
    checkpoints: ``step 120/300 (40%) | epoch 1 | train/loss 0.1234 | 12.3 steps/s | ETA 0:00:14``.

    On a terminal the line is redrawn in place at most every ``min_interval`` seconds (Lightning's
    bars redraw after every batch, counted batches of the epoch, and read "Epoch 0/-2" on a
    --max-steps run). When the output is not a terminal (a SLURM log, a pipe) a plain line is
    printed every ``every_s`` seconds instead, so a log shows how a run goes while it runs. The
    first and the last step always get a line.

    Args:
        stream: where to write (default: stdout at the time of writing).
        every_s: seconds between two plain lines when ``stream`` is not a terminal.
    """

    min_interval = 0.2
    every_s = 30.0

    def __init__(self, stream=None, every_s: float | None = None) -> None:
        super().__init__()
        self.stream = stream
        if every_s is not None:
            self.every_s = every_s
        self._enabled = True
        self._drawn_at = float("-inf")
        self._start: tuple[float, int] | None = None  # (time, step) when training started
        self._printed_at: int | None = None
        self._width = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _tty(self) -> bool:
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    @staticmethod
    def total_steps(trainer: L.Trainer) -> int | None:
        """The step the run stops at: --max-steps, else epochs x batches per epoch."""
        if trainer.max_steps and trainer.max_steps > 0:
            return int(trainer.max_steps)
        batches = trainer.num_training_batches
        if trainer.max_epochs and trainer.max_epochs > 0 and batches != float("inf"):
            return int(trainer.max_epochs * batches)
        return None

    def line(self, trainer: L.Trainer) -> str:
        """The progress line of the step that just ended."""
        import datetime

        step, total = trainer.global_step, self.total_steps(trainer)
        parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total else f"step {step}",
                 f"epoch {trainer.current_epoch}"]
        for name, value in trainer.progress_bar_metrics.items():
            if name.endswith("loss"):
                parts.append(f"{name} {float(value):.4g}")
        if self._start is not None:
            elapsed, done = time.monotonic() - self._start[0], step - self._start[1]
            if done > 0 and elapsed > 0:
                rate = done / elapsed
                parts.append(f"{rate:.3g} steps/s" if rate >= 1 else f"{1 / rate:.3g} s/step")
                if total and total > step:
                    left = round((total - step) / rate)
                    parts.append(f"ETA {datetime.timedelta(seconds=left)}")
        return " | ".join(parts)

    def _write(self, text: str, final: bool = False) -> None:
        out = self._out()
        if self._tty():
            pad = max(0, self._width - len(text))
            self._width = len(text)
            out.write("\r" + text + " " * pad + ("\n" if final else ""))
        else:
            out.write(text + "\n")
        out.flush()

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = (time.monotonic(), trainer.global_step)
        self._drawn_at = float("-inf")

    # A step's line is drawn as the next step starts (or training ends): by then its loss was
    # logged and any validation it ended with has run.
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self._enabled or not trainer.is_global_zero or self._start is None or \
                trainer.global_step <= self._start[1]:
            return
        now = time.monotonic()
        first = trainer.global_step == self._start[1] + 1
        if first or now - self._drawn_at >= (self.min_interval if self._tty() else self.every_s):
            self._drawn_at = now
            self._write(self.line(trainer))
            self._printed_at = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        if not self._enabled or not trainer.is_global_zero:
            return
        if self._printed_at != trainer.global_step:
            self._write(self.line(trainer), final=True)
        elif self._tty():
            self._out().write("\n")


def progress_bar() -> ProgressBar:
    """The training progress: step N/max, plain lines when the output is not a terminal."""
    return StepProgress()
