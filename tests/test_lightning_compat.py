"""The one adapter to Lightning's internals (rnnimg.train.lightning_compat), checked on its own with
a tiny model: a Lightning release that moves one of them fails here, by name."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger

from rnnimg.train.lightning_compat import (
    align_logging_step,
    checkpoint_progress,
    is_last_batch,
    is_log_step,
)

BATCHES = 3  # per epoch


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        data = torch.utils.data.TensorDataset(torch.randn(BATCHES * 2, 2))
        return torch.utils.data.DataLoader(data, batch_size=2)


class Rows(Logger):
    """Records the step of every row Lightning writes."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    name, version = "rows", 0

    def log_metrics(self, metrics, step=None):
        self.steps.append(step)

    def log_hyperparams(self, *args, **kwargs):
        pass


class Ask(L.Callback):
    """At each batch end: (global step, batch index, is_last_batch, is_log_step)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, bool, bool]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen.append((trainer.global_step, batch_idx, is_last_batch(trainer), is_log_step(trainer)))


class Drift(L.Callback):
    """Puts Lightning's row counter off, as some resume points do (and optionally realigns it)."""

    def __init__(self, align: bool) -> None:
        self.align = align

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        trainer.fit_loop.epoch_loop._batches_that_stepped += 1
        if self.align:
            align_logging_step(trainer)


def fit(tmp_path, callbacks, max_steps=5, every=2):
    torch.manual_seed(0)
    rows = Rows()
    trainer = L.Trainer(accelerator="cpu", max_steps=max_steps, log_every_n_steps=every, logger=rows,
                        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(Tiny())
    return trainer, rows


def test_last_batch_and_log_step_are_lightnings(tmp_path):
    ask = Ask()
    _, rows = fit(tmp_path, [ask])
    assert [s[0] for s in ask.seen] == [1, 2, 3, 4, 5]
    assert [s[2] for s in ask.seen] == [idx == BATCHES - 1 for _, idx, _, _ in ask.seen]
    assert sum(s[2] for s in ask.seen) == 1  # the second epoch stops at max_steps, before its end
    # a row follows exactly the steps the adapter calls log steps (Lightning numbers it step - 1)
    assert [s[0] - 1 for s in ask.seen if s[3]] == rows.steps and rows.steps == [1, 3]


def test_align_logging_step_numbers_rows_by_the_global_step(tmp_path):
    _, plain = fit(tmp_path, [], every=1)
    _, drifted = fit(tmp_path, [Drift(align=False)], every=1)
    _, aligned = fit(tmp_path, [Drift(align=True)], every=1)
    assert plain.steps == [0, 1, 2, 3, 4]
    assert drifted.steps != plain.steps  # the drift shows in the rows ...
    assert aligned.steps == plain.steps  # ... and aligning before each batch removes it


class SaveAt(L.Callback):
    def __init__(self, step: int, path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:  # at a step's end, as rnnimg's checkpoints are taken
            trainer.save_checkpoint(self.path)


def test_checkpoint_progress_reads_the_saved_loop_state(tmp_path):
    fit(tmp_path, [SaveAt(4, tmp_path / "x.ckpt")], max_steps=5)
    ckpt = torch.load(tmp_path / "x.ckpt", weights_only=True)
    assert checkpoint_progress(ckpt) == (4, 0, 1)  # one full epoch of 3 behind it, no validation
    assert checkpoint_progress({"global_step": 9}) == (9, 0, 0)
    assert checkpoint_progress({"global_step": 9, "loops": "junk"}) == (9, 0, 0)
    with pytest.raises(KeyError):
        checkpoint_progress({})
