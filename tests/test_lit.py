"""The LightningModule's hooks: adversarial training with two optimizers, the metrics.csv logger
that appends, evaluation through additive statistics, and tensorboard as an extra."""

import copy
import csv
from dataclasses import dataclass

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from rnnimg.models.base import LossOutput, RnnImgModel
from rnnimg.train import LitModel
from rnnimg.train.callbacks import MetricsCSVLogger


@dataclass
class TinyGANConfig:
    size: int = 4


class TinyGAN(RnnImgModel):
    """Test-only adversarial model: a linear generator and a linear discriminator whose losses
    each reach the other's parameters (no detach), so a leak would show."""

    name = "tiny-gan-test"
    task = "translate"
    config_class = TinyGANConfig

    def __init__(self, config=None):
        super().__init__(config or TinyGANConfig())
        self.gen = nn.Linear(4, 4)
        self.disc = nn.Linear(4, 1)

    def discriminator_parameters(self):
        return list(self.disc.parameters())

    def discriminator_loss(self, batch):
        fake = self.gen(batch["source"])
        real_score, fake_score = self.disc(batch["target"]), self.disc(fake)
        loss = nn.functional.softplus(-real_score).mean() + nn.functional.softplus(fake_score).mean()
        return LossOutput(loss, {"real": real_score.mean().detach()})

    def loss(self, batch):
        fake = self.gen(batch["source"])
        adv = nn.functional.softplus(-self.disc(fake)).mean()
        l1 = (fake - batch["target"]).abs().mean()
        return LossOutput(l1 + 0.5 * adv, {"l1": l1.detach()})


def tiny_batches(n=3):
    g = torch.Generator().manual_seed(0)
    return [{"source": torch.randn(8, 4, generator=g), "target": torch.randn(8, 4, generator=g)}
            for _ in range(n)]


def reference_steps(model, batches, lr):
    """What the contract says, written out with plain torch: per batch, one Adam step of the
    discriminator on its loss, then one Adam step of the generator on its loss."""
    d_opt = torch.optim.Adam(model.disc.parameters(), lr=lr)
    g_opt = torch.optim.Adam(model.gen.parameters(), lr=lr)
    for batch in batches:
        d_grads = torch.autograd.grad(model.discriminator_loss(batch).loss,
                                      list(model.disc.parameters()))
        for p, grad in zip(model.disc.parameters(), d_grads):
            p.grad = grad
        d_opt.step()
        g_grads = torch.autograd.grad(model.loss(batch).loss, list(model.gen.parameters()))
        for p, grad in zip(model.gen.parameters(), g_grads):
            p.grad = grad
        g_opt.step()
    return model


def test_adversarial_models_train_each_part_on_its_own_loss(tmp_path):
    torch.manual_seed(0)
    model = TinyGAN()
    expected = reference_steps(copy.deepcopy(model), tiny_batches(), lr=0.01)
    lit = LitModel(model, lr=0.01)
    assert not lit.automatic_optimization
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=3, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, DataLoader(tiny_batches(), batch_size=None))
    assert trainer.global_step == 3  # one step per batch, not one per optimizer
    for (name, got), want in zip(model.state_dict().items(), expected.state_dict().values()):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-6, msg=name)
    # And the discriminator's parameters really moved (by its loss), as did the generator's.
    assert not torch.equal(model.disc.weight, TinyGAN().disc.weight)


def test_a_generator_loss_leaking_into_the_discriminator_would_be_caught():
    """The reference above is sensitive: stepping the discriminator on the sum of both losses
    (the bug the contract forbids) ends somewhere else."""
    torch.manual_seed(0)
    model = TinyGAN()
    good = reference_steps(copy.deepcopy(model), tiny_batches(), lr=0.01)
    leaky = copy.deepcopy(model)
    opt = torch.optim.Adam(leaky.parameters(), lr=0.01)
    for batch in tiny_batches():
        opt.zero_grad()
        (leaky.discriminator_loss(batch).loss + leaky.loss(batch).loss).backward()
        opt.step()
    assert not torch.allclose(good.disc.weight, leaky.disc.weight, atol=1e-4)


def test_metrics_csv_appends_rows_and_rewrites_only_for_a_new_column(tmp_path):
    logger = MetricsCSVLogger(tmp_path)
    logger.log_metrics({"train/loss": 1.0, "epoch": 0}, step=0)
    logger.save()
    inode = (tmp_path / "metrics.csv").stat().st_ino
    logger.log_metrics({"train/loss": 0.5, "epoch": 0}, step=1)
    logger.save()
    assert (tmp_path / "metrics.csv").stat().st_ino == inode  # appended in place
    logger.log_metrics({"val/loss": 0.7, "epoch": 0}, step=1)  # a new column: one rewrite
    logger.save()
    logger.log_metrics({"train/loss": 0.25, "epoch": 1}, step=2)
    logger.save()
    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], r["train/loss"], r["val/loss"]) for r in rows] == [
        ("0", "1.0", ""), ("1", "0.5", ""), ("1", "", "0.7"), ("2", "0.25", "")]
    # A resumed run at step 2 drops the rows of step >= 2 (they are logged again) on its first
    # save, and not before (a refused resume leaves the file alone).
    before = (tmp_path / "metrics.csv").read_bytes()
    resumed = MetricsCSVLogger(tmp_path, resume_step=2)
    assert (tmp_path / "metrics.csv").read_bytes() == before
    resumed.log_metrics({"train/loss": 0.2, "epoch": 1}, step=2)
    resumed.save()
    with open(tmp_path / "metrics.csv") as f:
        assert [r["step"] for r in csv.DictReader(f)] == ["0", "1", "1", "2"]


def test_training_without_tensorboard_still_writes_metrics_and_curves(tmp_path, monkeypatch):
    import rnnimg.train.run as run_module
    from rnnimg.train import TrainSettings, train

    monkeypatch.setattr(run_module, "tensorboard_available", lambda: False)
    run = train(TrainSettings("rowrnn", preset="debug", max_steps=3, batch_size=4, progress=False,
                              log_every_n_steps=1, accelerator="cpu", out=str(tmp_path / "run")))
    assert (run / "metrics.csv").is_file() and (run / "curves.png").is_file()
    assert not (run / "tb").exists()


def test_evaluate_pools_statistics_over_batches(tmp_path):
    """Scoring in batches of 7 gives what one batch of the whole split gives."""
    from rnnimg import create_model, load_dataset
    from rnnimg.train import evaluate

    model = create_model("rowrnn", "debug")
    model.save_pretrained(tmp_path / "gen")
    result = evaluate(tmp_path / "gen", batch_size=7, max_batches=3, progress=False)
    assert result["num_items"] == 21
    data = load_dataset("mnist-5k", "test", **{**model.dataset_options(), "binarize": "fixed"})
    batch = torch.utils.data.default_collate([data[i] for i in range(21)])
    whole = model.reduce_statistics(model.evaluation_statistics(batch))
    assert result["metrics"].keys() == whole.keys()
    for key in whole:
        assert result["metrics"][key] == pytest.approx(whole[key], rel=1e-6), key


def test_evaluate_refuses_options_the_model_does_not_take(tmp_path, capsys):
    from rnnimg import create_model
    from rnnimg.cli import main

    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    code = main(["evaluate", str(tmp_path / "gen"), "--importance-samples", "4", "--max-batches", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "rowrnn takes no evaluation option 'importance_samples'" in err


def test_adversarial_training_resumes_exactly(tmp_path):
    """Both optimizers' states go into the checkpoint: 3 steps, then resume to 8 == 8 steps.
    The data come through train()'s EpochSampler, so the resumed run sees the same batches."""
    from rnnimg.train.data import make_loaders

    items = [{"source": b["source"][i], "target": b["target"][i]} for b in tiny_batches(4)
             for i in range(8)]

    class SaveAt(L.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 3:
                trainer.save_checkpoint(tmp_path / "step3.ckpt")

    def fit(max_steps, ckpt=None):
        torch.manual_seed(0)
        model = TinyGAN()
        loader, _, sampler = make_loaders(items, None, batch_size=8, seed=0, num_workers=0)
        if ckpt:
            sampler.resume_after(3)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[SaveAt()])
        trainer.fit(LitModel(model, lr=0.01), loader, ckpt_path=ckpt, weights_only=True)
        return model

    straight = fit(8)
    resumed = fit(8, ckpt=tmp_path / "step3.ckpt")
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


# --- the loop's own cost (issue 12): NaN/Inf watched on the device, metrics at the log cadence ---

def test_finite_watch_names_the_first_bad_step_and_never_skips_one():
    """Values are read back only when asked, or when more than `window` steps are unread: a NaN
    recorded long before anyone asks is still the one reported, with its step and kind."""
    from rnnimg.train.lit import FiniteWatch

    watch = FiniteWatch(window=4)
    for step in range(3):
        assert watch.record("the loss", step, [torch.tensor(1.0)]) is None
        assert watch.record("a gradient", step, [torch.tensor(2.0), torch.tensor(3.0)]) is None
    assert watch.first_bad() is None and watch.first_bad() is None  # read, nothing pending
    watch.record("the loss", 3, [torch.tensor(1.0)])
    watch.record("a gradient", 3, [torch.tensor(1.0), torch.tensor(float("inf"))])
    watch.record("the loss", 4, [torch.tensor(float("nan"))])  # later: not the first
    for step in range(5, 7):
        assert watch.record("the loss", step, [torch.tensor(1.0)]) is None
    # Step 7 would be the 5th unread step: the watch reads the 4 it holds first.
    assert watch.record("the loss", 7, [torch.tensor(1.0)]) == (3, "a gradient", float("inf"))
    assert watch.first_bad() is None  # step 7 alone, finite


def _train_rowrnn(tmp_path, image_folder, callbacks=None, **kw):
    from rnnimg.train import TrainSettings, train

    base = dict(model="rowrnn", preset="debug", data=f"folder:{image_folder}", max_steps=10,
                batch_size=4, val_fraction=0.0, progress=False, accelerator="cpu",
                sample_every_n_steps=0, ckpt_every_n_steps=0, log_every_n_steps=10,
                out=str(tmp_path / "run"))
    return train(TrainSettings(**{**base, **kw}), callbacks=callbacks)


def test_a_nan_between_log_steps_never_reaches_a_checkpoint(tmp_path, image_folder, monkeypatch):
    """The NaN check is read at the log cadence (10 here) AND before every checkpoint: the loss
    turns NaN at step 5, the checkpoint due after step 6 is refused (not written, nor
    model.safetensors), the error names step 5, and last.ckpt stays the step-4 one."""
    from safetensors.torch import load_file

    from rnnimg.errors import NonFiniteLossError
    from rnnimg.models.generate.rowrnn import RowRNN

    original, calls = RowRNN.loss, {"n": 0}

    def poisoned(self, batch):
        out = original(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] > 5:
                out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(RowRNN, "loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="the loss became nan at step 5.*last good"):
        _train_rowrnn(tmp_path, image_folder, ckpt_every_n_steps=2)
    run = tmp_path / "run"
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, weights_only=True)["state_dict"]
        assert all(torch.isfinite(w).all() for w in state.values()), ckpt.name
    assert all(torch.isfinite(w).all() for w in load_file(run / "model.safetensors").values())
    assert calls["n"] == 6  # stopped at the checkpoint after step 5, not at the log step 9


def test_a_nan_gradient_under_a_finite_loss_is_named(tmp_path, image_folder, monkeypatch):
    """sqrt at 0 has an infinite derivative: 0 * sqrt(0) adds nothing to the loss but makes every
    gradient NaN at step 3. The message says so (not "the loss became nan at step 4", which is
    what the NaN weights give one step later if the gradients go unwatched)."""
    from rnnimg.errors import NonFiniteLossError
    from rnnimg.models.generate.rowrnn import RowRNN

    original, calls = RowRNN.loss, {"n": 0}

    def poisoned(self, batch):
        out = original(self, batch)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 4:
                zero = sum((p - p.detach()).sum() for p in self.parameters())
                out.loss = out.loss + 0.0 * torch.sqrt(zero)
        return out

    monkeypatch.setattr(RowRNN, "loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="a gradient became NaN or Inf at step 3"):
        _train_rowrnn(tmp_path, image_folder, max_steps=6)


def test_metrics_csv_has_each_log_steps_own_values(tmp_path, image_folder, monkeypatch):
    """Rows come at the log cadence (every 3rd step: steps 2 and 5 of 7) and hold the loss and
    every metric of that very step, not of an earlier one."""
    from rnnimg.models.generate.rowrnn import RowRNN

    original, seen = RowRNN.loss, []

    def recording(self, batch):
        out = original(self, batch)
        if self.training:
            seen.append({"loss": float(out.loss.detach()), **{k: float(torch.as_tensor(v).float().mean())
                                                     for k, v in out.metrics.items()}})
        return out

    monkeypatch.setattr(RowRNN, "loss", recording)
    run = _train_rowrnn(tmp_path, image_folder, max_steps=7, log_every_n_steps=3)
    with open(run / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == [2, 5]
    for row in rows:
        want = seen[int(row["step"])]
        assert len(want) > 1  # the model reports metrics besides the loss
        for key, value in want.items():
            assert float(row[f"train/{key}"]) == pytest.approx(value, rel=1e-6), key


def test_the_trainer_reads_nothing_back_from_the_device_between_log_steps(tmp_path, image_folder,
                                                                          monkeypatch):
    """On a GPU each host read (`if torch.isfinite(...)`, `.item()`, `.cpu()`) is a sync that
    stalls a launch-bound step. Between log steps and checkpoints, lit.py makes none: here every
    such call made from lit.py is counted over steps 1..4 of a run that logs every 100 steps."""
    import sys

    reads = []
    inside = {"on": False}

    def spy(name):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if inside["on"] and caller.endswith(("train/lit.py", "train\\lit.py")):
                reads.append(f"{name} from line {sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)

    for name in ("__bool__", "item", "cpu", "tolist", "__float__", "__int__", "numpy"):
        spy(name)

    class Window(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            inside["on"] = 1 <= trainer.global_step < 5

    _train_rowrnn(tmp_path, image_folder, max_steps=6, log_every_n_steps=100, callbacks=[Window()])
    assert reads == []


def test_progress_in_a_log_is_plain_lines_in_steps(tmp_path, image_folder, capsys, monkeypatch):
    """Issue 23: output to a file (a SLURM log) got nothing during training and a last bar of
    batches ("34/34"), and the bar read "Epoch 0/-2". Now a plain line every so often (here: every
    step) says step N/max, the loss, the speed and the ETA; the last says 6/6."""
    from rnnimg.train.progress import StepProgress

    monkeypatch.setattr(StepProgress, "every_s", 0.0)
    _train_rowrnn(tmp_path, image_folder, max_steps=6, progress=True, log_every_n_steps=1)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    assert [line.split(" ")[1] for line in lines] == [f"{i}/6" for i in range(1, 7)], out
    assert all("train/loss" in line and "steps/s" in line or "s/step" in line for line in lines)
    assert "ETA" in lines[0] and "ETA" not in lines[-1] and "\r" not in out
    assert "Epoch" not in out and "it/s" not in out


def test_progress_on_a_terminal_redraws_one_line_at_most_every_interval(tmp_path, image_folder,
                                                                       monkeypatch):
    import io
    import sys

    from rnnimg.train.progress import StepProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(StepProgress, "min_interval", 3600.0)  # only the first and the last
    monkeypatch.setattr(sys, "stdout", screen)
    _train_rowrnn(tmp_path, image_folder, max_steps=5, progress=True)
    drawn = [d.strip() for d in screen.getvalue().split("\r") if d.strip()]
    assert [d.split(" ")[1] for d in drawn] == ["1/5", "5/5"], drawn
    assert screen.getvalue().endswith("\n") and screen.getvalue().count("\n") == 1


def test_previews_are_encoded_once_and_latest_is_the_newest(tmp_path, image_folder):
    run = _train_rowrnn(tmp_path, image_folder, max_steps=6, sample_every_n_steps=3)
    samples = run / "samples"
    assert (samples / "samples_latest.png").read_bytes() == \
        (samples / "samples_step0000006.png").read_bytes()
    assert (samples / "samples_step0000003.png").read_bytes() != \
        (samples / "samples_step0000006.png").read_bytes()


def test_train_pins_memory_when_the_accelerator_is_cuda(tmp_path, image_folder, monkeypatch):
    import warnings

    import lightning.pytorch.accelerators as accelerators

    seen = []

    class Look(L.Callback):
        def on_train_start(self, trainer, *args):
            seen.append(trainer.train_dataloader.pin_memory)

    _train_rowrnn(tmp_path, image_folder, max_steps=1, callbacks=[Look()], out=str(tmp_path / "a"))
    # The CPU accelerator plays the GPU's part (pinning itself needs a GPU; the choice does not).
    monkeypatch.setattr(accelerators, "CUDAAccelerator", accelerators.CPUAccelerator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "pin_memory ... but no accelerator is found"
        _train_rowrnn(tmp_path, image_folder, max_steps=1, callbacks=[Look()],
                      out=str(tmp_path / "b"))
    assert seen == [False, True]
