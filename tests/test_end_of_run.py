"""The end of a run, killed between any two of its writes (issue 22): ``--resume`` finishes it with
the weights, rows and files of an uninterrupted run, and a complete run is left as it is.

A kill is simulated in the process: every write into the run folder (each atomic rename, each
append to metrics.csv) is numbered, and at write k the "process dies": that write and every later
one raise ``Killed`` (a BaseException, so no handler saves anything) and nothing else reaches the
disk, as after kill -9."""

from __future__ import annotations

import csv
import json
import os
import types

import pytest
import torch
from safetensors.torch import load_file

import rnnimg.fileio as fileio
from rnnimg.train import RunComplete, TrainSettings, train
from rnnimg.train.callbacks import MetricsCSVLogger


class Killed(BaseException):
    pass


class Writes:
    """Numbers the writes into ``folder`` (renames by rnnimg.fileio, metrics.csv appends) and
    kills the process at write ``kill_at`` (None: never)."""

    def __init__(self, monkeypatch, folder, kill_at=None):
        self.folder, self.kill_at, self.names, self.dead = str(folder), kill_at, [], False
        real_replace, real_save = os.replace, MetricsCSVLogger.save

        def event(name):
            if self.kill_at is not None and (self.dead or len(self.names) >= self.kill_at):
                self.dead = True
                raise Killed(name)
            self.names.append(name)

        def replace(src, dst):
            if str(dst).startswith(self.folder):
                event(os.path.relpath(dst, self.folder))
            return real_replace(src, dst)

        def save(logger):
            if logger._pending and str(logger.path).startswith(self.folder):
                event("metrics.csv rows " + ",".join(str(r["step"]) for r in logger._pending))
            return real_save(logger)

        proxy = types.SimpleNamespace(**{k: getattr(os, k) for k in dir(os) if not k.startswith("__")})
        proxy.replace = replace
        monkeypatch.setattr(fileio, "os", proxy)
        monkeypatch.setattr(MetricsCSVLogger, "save", save)


def settings(out, data, **kw):
    # 3 steps an epoch; validation after steps 3 and 6, each a new best; a periodic checkpoint at
    # both. So the last step ends with every kind of write: samples, weights, rows, a validation
    # row, step/best/last checkpoints, curves, the card and the mark.
    base = dict(model="rowrnn", preset="debug", data=data, max_steps=6, ckpt_every_n_steps=3,
                sample_every_n_steps=0, progress=False, val_fraction=0.2, batch_size=4, lr=2e-2,
                overrides=dict(dropout=0.2), log_every_n_steps=1, accelerator="cpu", out=str(out))
    base.update(kw)
    return TrainSettings(**base)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Learnable images (half black, half white, 5% of the pixels flipped): the validation loss
    falls, so the last validation writes best.ckpt too."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    half = np.where(np.arange(28)[None, :] < 14, 0, 255).repeat(28, 0).astype(np.uint8)
    for i in range(20):
        sub = root / ("cats" if i % 2 else "dogs")
        sub.mkdir(exist_ok=True)
        flips = (rng.random((28, 28)) < 0.05).astype(np.uint8) * 255
        Image.fromarray(half ^ flips).save(sub / f"{i:02d}.png")
    return f"folder:{root}"


class MarkLastStep(__import__("lightning").Callback):
    def __init__(self, writes, step):
        self.writes, self.step = writes, step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            self.writes.names.append("LAST STEP")


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The uninterrupted run, and the writes of its last step and end, in order."""
    out = tmp_path_factory.mktemp("full") / "run"
    with pytest.MonkeyPatch.context() as mp:
        writes = Writes(mp, out)
        train(settings(out, data), callbacks=[MarkLastStep(writes, 5)])
    start = writes.names.index("LAST STEP")
    return out, start, writes.names[start + 1:]


def files(run):
    """The run's files, less TensorBoard's (an event file per process, named by time and pid)."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()
                  and p.relative_to(run).parts[0] != "tb")


def snapshot(run):
    return {name: (run / name).read_bytes() for name in files(run)}


def config(run):
    meta = json.loads((run / "config.json").read_text())
    del meta["training"]["out"]
    return meta


def rows(run):
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if v} for r in csv.DictReader(f)]


def test_the_end_of_a_run_writes_in_a_resumable_order(reference):
    """Pictures first, then the weights, the step's rows and validation, then the checkpoints
    (last.ckpt after the others), then what can be rebuilt from them, and the mark last."""
    _, _, end = reference
    assert end == [
        "model.safetensors", "config.json",  # ExportWeights: the final step's weights
        "samples/samples_step0000006.png", "samples/samples_latest.png",
        "model.safetensors", "config.json", "model.safetensors", "config.json",  # step6 and last
        "metrics.csv rows 5", "metrics.csv rows 5",  # the training row, the validation row
        "model.safetensors", "config.json",  # best
        # best.ckpt first: step0000006.ckpt, taken before the validation, counts it as done
        "checkpoints/best.ckpt", "checkpoints/step0000006.ckpt", "checkpoints/last.ckpt",
        "curves.png", "card/samples.png", "README.md",
        "config.json",  # steps_trained: the run is complete
    ], end


END_WRITES = 19
# The default suite kills before the end, between the two rows, between best.ckpt and the periodic
# checkpoint, after last.ckpt (finished without training) and before the mark; `make test-all` runs all 19.
FAST = (0, 9, 13, 15, 18)


@pytest.mark.parametrize("kill", [k if k in FAST else pytest.param(k, marks=pytest.mark.slow)
                                  for k in range(END_WRITES)])
def test_a_kill_between_any_two_end_of_run_writes_is_finished_by_resume(data, reference, tmp_path,
                                                                        monkeypatch, kill):
    full, start, end = reference
    assert len(end) == END_WRITES
    out = tmp_path / "run"
    with pytest.raises(Killed), monkeypatch.context() as mp:
        Writes(mp, out, kill_at=start + kill)
        train(settings(out, data))
    assert (out / "checkpoints").is_dir()
    train(settings(out, data, resume=True))  # as a scheduler would: the same command, --resume
    a, b = load_file(full / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert rows(out) == rows(full)
    assert files(out) == files(full)
    assert config(out) == config(full)  # with "steps_trained": 6
    assert (out / "samples/samples_step0000006.png").read_bytes() == \
        (full / "samples/samples_step0000006.png").read_bytes()
    for name in ("last.ckpt", "best.ckpt", "step0000006.ckpt"):
        assert torch.load(out / "checkpoints" / name, weights_only=True)["global_step"] == 6
    before = snapshot(out)
    with pytest.raises(RunComplete):  # and now it is complete: a re-run changes nothing
        train(settings(out, data, resume=True))
    assert snapshot(out) == before


def test_held_checkpoints_wait_as_temporary_files_until_flushed(tmp_path):
    from rnnimg.train.callbacks import SafeCheckpointIO

    io = SafeCheckpointIO()
    io.save_checkpoint({"step": 0}, tmp_path / "last.ckpt")  # not holding: written at once
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"step": 0}
    io.hold()
    for step, name in [(1, "last.ckpt"), (1, "best.ckpt"), (2, "last.ckpt")]:
        io.save_checkpoint({"step": step}, tmp_path / name)
    io.remove_checkpoint(tmp_path / "last.ckpt.old")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["last.ckpt"]
    assert len(list(tmp_path.glob(".*.tmp*"))) == 2  # the newer last.ckpt replaced the older one
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"step": 0}
    io.flush()
    assert torch.load(tmp_path / "last.ckpt", weights_only=True) == {"step": 2}
    assert torch.load(tmp_path / "best.ckpt", weights_only=True) == {"step": 1}
    io.save_checkpoint({"step": 3}, tmp_path / "step0000003.ckpt")
    io.discard()  # an exception: nothing more is put in place, and no temporary file stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
