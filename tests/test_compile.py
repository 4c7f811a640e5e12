"""Compiled training (`rnnimg train --compile`, TrainSettings.compile, RnnImgModel.compile_steps):
the compiled per-time-step graphs train to the eager losses, and a compiled run's weights are plain
eager weights. Inductor compiles C++ with gcc: about 40 s for one model on 2 busy cores, so only
convlstm runs in the default suite; predrnn and the checkpoint / tbptt combinations are slow."""

from __future__ import annotations

import csv

import pytest
import torch

from rnnimg import create_model, load_pretrained
from rnnimg.cli import main
from rnnimg.errors import RnnImgError
from rnnimg.train import TrainSettings, train
from rnnimg.train.settings import merge_resume


def _settings(out, **kw):
    base = dict(model="convlstm", data="moving-mnist", preset="debug", max_steps=20, batch_size=2,
                progress=False, accelerator="cpu", val_fraction=0.0, log_every_n_steps=1,
                sample_every_n_steps=0, ckpt_every_n_steps=0, out=str(out),
                data_options={"train_clips": 64, "val_clips": 2},
                overrides={"frame_size": 16})  # the data's 64x64 frames, downscaled: 16x cheaper
    base.update(kw)
    return TrainSettings(**base)


def _losses(run) -> list[float]:
    with open(run / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


def test_compiled_run_trains_to_the_eager_losses_and_saves_eager_weights(tmp_path):
    """20 steps of `rnnimg train convlstm --compile` against the same run eager: the loss of every
    step within 1e-3 relative (catches a compiled step that computes something else, or one that
    trains other parameters), and model.safetensors loads into an eager model with the same keys
    (catches `_orig_mod.` prefixes from compiling a module instead of its step)."""
    eager = train(_settings(tmp_path / "eager"))
    compiled = train(_settings(tmp_path / "compiled", compile="default"))
    a, b = _losses(eager), _losses(compiled)
    assert len(a) == len(b) == 20
    torch.testing.assert_close(torch.tensor(b), torch.tensor(a), rtol=1e-3, atol=0)
    assert a[-1] < a[0]  # it trained: the comparison is not of twenty equal numbers
    model = load_pretrained(compiled)  # strict load into a fresh eager model
    reference = load_pretrained(eager)
    assert model.compile_mode is None and list(model.state_dict()) == list(reference.state_dict())
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, reference.state_dict()[key], rtol=1e-2, atol=1e-4)
    ckpt = torch.load(compiled / "checkpoints" / "last.ckpt", weights_only=True)
    assert not [k for k in ckpt["state_dict"] if "_orig_mod" in k]
    assert '"compile": "default"' in (compiled / "config.json").read_text()


@pytest.mark.parametrize("mode", ["fast", "reduce_overhead", "convlstm"])
def test_a_bad_compile_mode_is_one_line(tmp_path, capsys, mode):
    code = main(["train", "--compile", mode, "convlstm", "--preset", "debug", "--out",
                 str(tmp_path / "r"), "--accelerator", "cpu", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "reduce-overhead" in err, err
    assert not (tmp_path / "r").exists()  # refused before the run folder was made
    with pytest.raises(RnnImgError, match="not a torch.compile mode"):
        TrainSettings("convlstm", compile=mode).resolved()


def test_compile_setting_values_and_models_without_a_compiled_step(tmp_path):
    assert TrainSettings("convlstm", compile=True).resolved().compile == "default"
    assert TrainSettings("predrnn", compile="reduce-overhead").resolved().compile == "reduce-overhead"
    for off in (False, None, "none"):
        assert TrainSettings("convlstm", compile=off).resolved().compile is None
    with pytest.raises(RnnImgError, match="not supported for rowrnn.*convlstm.*predrnn"):
        TrainSettings("rowrnn", compile="default").resolved()
    with pytest.raises(RnnImgError, match="not supported for rowrnn"):
        create_model("rowrnn", "debug").compile_steps("default")
    # A resume may switch compilation on or off: it changes the speed, not the run.
    saved = TrainSettings("convlstm", compile="default").to_dict()
    resumed = merge_resume(saved, TrainSettings("convlstm", compile="none"), {"compile"}, tmp_path)
    assert resumed.resolved().compile is None
    kept = merge_resume(saved, TrainSettings("convlstm"), set(), tmp_path)
    assert kept.compile == "default"


def test_compile_steps_leaves_state_dict_and_pickling_alone():
    import copy
    import pickle

    model = create_model("convlstm", "debug")
    keys = list(model.state_dict())
    model.compile_steps("default")
    step = model.rollout_step()  # built, not yet run: compiling happens on the first call
    assert step is not model.forward_step and model.rollout_step() is step
    assert list(model.state_dict()) == keys
    clone = pickle.loads(pickle.dumps(model))  # ddp_spawn pickles the model
    assert clone.compile_mode == "default" and clone.rollout_step() is not step
    assert copy.deepcopy(model).rollout_step() is not step
    model.compile_steps(None)
    assert model.rollout_step() == model.forward_step


def _bare_losses(name, compiled, steps=20, **overrides):
    """Adam on `steps` fixed random batches of 2 clips; predrnn at eta 0.6 (truth and own
    predictions both read), its masks drawn from a seed per step."""
    torch.manual_seed(0)
    model = create_model(name, "debug", **overrides).train()
    if compiled:
        model.compile_steps("default")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen, losses = torch.Generator().manual_seed(0), []
    for i in range(steps):
        batch = {**model.example_batch(2, gen), "step": 20_000}
        torch.manual_seed(100 + i)
        opt.zero_grad()
        loss = model.loss(batch).loss
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides, steps", [
    ("predrnn", {}, 20), ("predrnn", {"sampling": "reverse", "decouple_beta": 0.1}, 5),
    ("convlstm", {"grad_checkpoint": True}, 5), ("convlstm", {"tbptt": 2}, 5),
    ("convscan", {}, 5),  # the scan over the context stays eager, the closed-loop steps compile
])
def test_compiled_steps_train_to_the_eager_losses(name, overrides, steps):
    eager = _bare_losses(name, False, steps, **overrides)
    compiled = _bare_losses(name, True, steps, **overrides)
    torch.testing.assert_close(torch.tensor(compiled), torch.tensor(eager), rtol=1e-3, atol=0)
    assert eager[-1] < eager[0]



@pytest.mark.slow
def test_a_compiled_run_resumes_exactly(tmp_path):
    """Compiling holds nothing a checkpoint misses: a compiled run cut at step 4 and resumed (again
    compiled) ends with the weights of an uninterrupted compiled run, bit for bit."""
    from safetensors.torch import load_file

    from helpers import CrashAt

    kw = dict(compile="default", max_steps=8, ckpt_every_n_steps=2)
    full = train(_settings(tmp_path / "full", **kw))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(_settings(tmp_path / "cut", **kw), callbacks=[CrashAt(4)])
    resumed = train(_settings(tmp_path / "cut", resume=True, **kw))
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
