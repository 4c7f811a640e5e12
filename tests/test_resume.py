"""Exact resume (issue 7): an interrupted, resumed or extended run ends with bit for bit the
weights of an uninterrupted one, and metrics.csv neither loses nor duplicates a row."""

import csv
import signal

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from helpers import CrashAt
from rnnimg.errors import RnnImgError
from rnnimg.train import RunComplete, TrainingInterrupted, TrainSettings, train
from rnnimg.train.run import resolve_settings


def settings(out, data, **kw):
    # 20 images, val_fraction 0.2: 16 train -> 4 steps per epoch, validation after each epoch.
    # Dropout draws from the global RNG at every step, so the RNG streams must continue too.
    base = dict(model="rowrnn", preset="debug", data=data, max_steps=10, ckpt_every_n_steps=3,
                sample_every_n_steps=0, progress=False, val_fraction=0.2, batch_size=4,
                overrides=dict(dropout=0.2), log_every_n_steps=1, accelerator="cpu", out=str(out))
    base.update(kw)
    return TrainSettings(**base)



def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def rows(run):
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if v} for r in csv.DictReader(f)]


def same_weights(a, b):
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(20):
        sub = root / ("cats" if i % 2 else "dogs")
        sub.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(sub / f"{i:02d}.png")
    return f"folder:{root}"


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full") / "run"
    return train(settings(out, data))


@pytest.mark.parametrize("crash, every, ckpt_step", [
    (5, 3, 3),   # checkpoint mid-epoch (step 3 of 4), validation ran before the crash
    (7, 4, 4),   # checkpoint at the epoch's last step, before its validation
    (9, 2, 8),   # checkpoint after the second epoch, crash in the third
])
def test_crash_then_resume_matches_the_uninterrupted_run(data, uninterrupted, tmp_path, crash, every,
                                                         ckpt_step):
    out = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(settings(out, data, ckpt_every_n_steps=every), callbacks=[CrashAt(crash)])
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == ckpt_step
    assert not same_weights(out, uninterrupted)  # the crashed run is not already there
    resumed = train(settings(out, data, ckpt_every_n_steps=every, resume=True))
    assert same_weights(resumed, uninterrupted)
    assert rows(resumed) == rows(uninterrupted)  # validation rows included
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 10


class SignalAt(L.Callback):
    """Sends the process ``sig`` (as Ctrl-C or a scheduler's SIGTERM would) as step ``step`` starts."""

    def __init__(self, step, sig):
        self.step, self.sig = step, sig

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            signal.raise_signal(self.sig)


@pytest.fixture(scope="module")
def every_other(data, tmp_path_factory):
    """The uninterrupted run, logging every 2 steps (so a stop can fall between two rows)."""
    return train(settings(tmp_path_factory.mktemp("full2") / "run", data, log_every_n_steps=2))


@pytest.mark.parametrize("sig, step", [(signal.SIGINT, 4),   # stops after step 5: no row due
                                       (signal.SIGTERM, 3)])  # the epoch's end: validation
def test_a_signal_adds_no_rows_and_the_resumed_rows_are_the_uninterrupted_ones(data, every_other,
                                                                              tmp_path, sig, step):
    """Issue 23: a stop by Ctrl-C or SIGTERM wrote a training row and ran a validation at the stop
    step, two rows the uninterrupted run does not have. Now the rows up to the stop are exactly the
    uninterrupted run's, and the resumed run's rows and weights are too."""
    out = tmp_path / "cut"
    with pytest.raises(TrainingInterrupted) as stop:
        train(settings(out, data, log_every_n_steps=2), callbacks=[SignalAt(step, sig)])
    assert stop.value.exit_code == 128 + sig
    saved = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert saved == step + 1  # the step under way was finished and saved
    assert rows(out) == [r for r in rows(every_other) if int(r["step"]) < saved]
    resumed = train(settings(out, data, log_every_n_steps=2, resume=True))
    assert rows(resumed) == rows(every_other) and same_weights(resumed, every_other)


@pytest.mark.parametrize("first", [5, 6])  # ends mid-epoch / on a periodic checkpoint
def test_extending_a_finished_run_matches_the_longer_run(data, uninterrupted, tmp_path, first):
    out = tmp_path / "short"
    train(settings(out, data, max_steps=first))
    before = snapshot(out)
    with pytest.raises(RunComplete, match=f"complete: it trained to step {first} .*--max-steps "
                                          f"{first}.*nothing to do"):
        train(settings(out, data, max_steps=first, resume=True))  # 0 steps to go: say so
    assert snapshot(out) == before  # not one byte changed
    extended = train(settings(out, data, max_steps=10, resume=True))
    assert same_weights(extended, uninterrupted) and rows(extended) == rows(uninterrupted)


def test_extending_an_epoch_budget(data, tmp_path):
    three = train(settings(tmp_path / "three", data, max_steps=None, epochs=3))
    one = train(settings(tmp_path / "one", data, max_steps=None, epochs=1))
    with pytest.raises(RunComplete, match="complete.*--epochs 1"):
        train(settings(tmp_path / "one", data, max_steps=None, resume=True))
    extended = train(settings(tmp_path / "one", data, max_steps=None, epochs=3, resume=True))
    assert extended == one and same_weights(extended, three) and rows(extended) == rows(three)


def test_resume_reads_the_saved_settings_and_names_a_conflicting_flag(data, tmp_path):
    out = tmp_path / "run"
    train(settings(out, data, max_steps=2, batch_size=2, lr=0.01, seed=7))
    # Only the folder and a longer budget: preset, batch size, lr, seed and data come from the run.
    s, _ = resolve_settings(TrainSettings(model=None, out=str(out), resume=True, max_steps=4),
                            given={"out", "max_steps"})
    assert (s.preset, s.batch_size, s.lr, s.seed, s.data, s.max_steps) == \
        ("debug", 2, 0.01, 7, data, 4)
    for flag, value, name in [("batch_size", 64, "--batch-size"), ("preset", "mnist", "--preset"),
                              ("data", "mnist-5k", "--data"), ("lr", 0.1, "--lr")]:
        with pytest.raises(RnnImgError, match=f"^{name} .*differs from"):
            resolve_settings(TrainSettings(model="rowrnn", out=str(out), resume=True,
                                           **{flag: value}), given={"out", flag})


def test_resume_under_the_library_defaults_keeps_the_saved_budget(data, tmp_path):
    """A library caller that passes only model/out/resume gets the saved budget, not 1 epoch."""
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        train(settings(out, data, max_steps=6, ckpt_every_n_steps=2), callbacks=[CrashAt(3)])
    run = train(TrainSettings("rowrnn", out=str(out), resume=True, progress=False,
                              accelerator="cpu"))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_data_order_and_draws_do_not_depend_on_workers_or_the_resume_point():
    """The batches (with dynamic binarization, a random draw per item) are the same with 0 or 2
    worker processes, and a sampler resumed after k batches yields exactly the rest."""
    from rnnimg import load_dataset
    from rnnimg.train.data import make_loaders

    data = torch.utils.data.Subset(load_dataset("mnist-5k", "train", binarize="dynamic"), range(40))

    def batches(workers, resume=None, epochs=2):
        loader, _, sampler = make_loaders(data, None, batch_size=8, seed=3, num_workers=workers)
        if resume is not None:
            sampler.resume_after(resume)
        out = []
        for _ in range(epochs):
            out += [b["image"] for b in loader]
        return out

    plain = batches(0)
    assert len(plain) == 10 and not torch.equal(plain[0], plain[5])  # epochs differ
    assert all(torch.equal(a, b) for a, b in zip(plain, batches(2)))
    resumed = batches(0, resume=7, epochs=1)  # epoch 1, after its 2nd batch
    assert len(resumed) == 3 and all(torch.equal(a, b) for a, b in zip(plain[7:], resumed))
    # The global RNG is left as it was: reading data does not move the model's random streams.
    state = torch.get_rng_state()
    batches(0, epochs=1)
    assert torch.equal(state, torch.get_rng_state())


def test_resume_may_move_the_data_but_not_change_it(data, tmp_path):
    out = tmp_path / "run"
    train(settings(out, data, max_steps=2, data_options={"binarize": "fixed"}))
    s, _ = resolve_settings(TrainSettings(model=None, out=str(out), resume=True, max_steps=4,
                                          data_options={"data_dir": "/elsewhere"}),
                            given={"out", "max_steps", "data_options"})
    assert s.data_options["data_dir"] == "/elsewhere" and s.data_options["binarize"] == "fixed"
    with pytest.raises(RnnImgError, match="^--data-opt .*binarize.*differs"):
        resolve_settings(TrainSettings(model=None, out=str(out), resume=True,
                                       data_options={"binarize": "dynamic"}),
                         given={"out", "data_options"})
