import csv

import pytest
import torch
from safetensors.torch import load_file

from helpers import CrashAt
from rnnimg.errors import NonFiniteLossError, RnnImgError
from rnnimg.train import TrainSettings, evaluate, train


def settings(out, **kw):
    base = dict(model="rowrnn", preset="debug", max_steps=8, ckpt_every_n_steps=2,
                sample_every_n_steps=4, progress=False, val_fraction=0.0, batch_size=4,
                overrides=dict(dropout=0.2), log_every_n_steps=1, accelerator="cpu", out=str(out))
    base.update(kw)
    return TrainSettings(**base)



@pytest.mark.parametrize("crash_step", [5, 4])  # mid-epoch and at an epoch boundary (4 steps/epoch)
def test_interrupted_and_resumed_run_matches_an_uninterrupted_one(image_folder, tmp_path, crash_step):
    data = f"folder:{image_folder}"
    full = train(settings(tmp_path / "full", data=data))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(settings(tmp_path / "cut", data=data), callbacks=[CrashAt(crash_step)])
    ckpt = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 4
    assert not list((tmp_path / "cut").rglob("*.tmp")), "a temporary checkpoint file was left behind"
    resumed = train(settings(tmp_path / "cut", data=data, resume=True))
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8
    a, b = load_file(full / "model.safetensors"), load_file(resumed / "model.safetensors")
    # Same weights, optimizer state and RNG: the resumed run reproduces the uninterrupted one.
    assert all(torch.equal(a[k], b[k]) for k in a)
    with open(resumed / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert steps == sorted(set(steps)) and steps[-1] == 7  # no duplicated or lost rows


def test_run_folder_layout_and_evaluate(tmp_path):
    run = train(settings(tmp_path / "run", max_steps=6, val_fraction=0.1))
    for name in ("config.json", "model.safetensors", "checkpoints/last.ckpt", "metrics.csv",
                 "curves.png", "samples/samples_step0000004.png", "samples/samples_latest.png"):
        assert (run / name).is_file(), name
    from rnnimg.train.run import tensorboard_available

    if tensorboard_available():  # an extra: pip install rnnimg[tensorboard]
        assert any((run / "tb").rglob("events.out.tfevents*"))
    result = evaluate(run, max_batches=2, progress=False, batch_size=8)
    assert result["num_items"] == 16 and result["data_options"]["binarize"] == "fixed"
    assert result["metrics"]["bits_per_dim"] == pytest.approx(
        result["metrics"]["nll_nats"] / (784 * 0.6931471805599453))


def test_existing_run_is_never_overwritten_without_the_flag(tmp_path):
    run = train(settings(tmp_path / "run", max_steps=2))
    before = (run / "model.safetensors").read_bytes()
    with pytest.raises(RnnImgError, match="already exists.*--overwrite"):
        train(settings(tmp_path / "run", max_steps=2))
    assert (run / "model.safetensors").read_bytes() == before
    train(settings(tmp_path / "run", max_steps=2, overwrite=True, seed=1))
    assert (run / "model.safetensors").read_bytes() != before


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from rnnimg.models.generate.rowrnn import RowRNN

    original = RowRNN.loss
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] > 4:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(RowRNN, "loss", poisoned)
    with pytest.raises(NonFiniteLossError, match="loss became nan at step 4.*last good checkpoint"):
        train(settings(tmp_path / "run", max_steps=10))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    weights = load_file(tmp_path / "run" / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(RnnImgError, match="config.json is missing|not a folder"):
        train(settings(tmp_path / "nothing", resume=True))


def test_dataset_of_the_wrong_task_is_refused(tmp_path):
    from rnnimg.data.registry import _DATASETS

    if not any(e.task == "predict" for e in _DATASETS.values()):
        pytest.skip("no predict-task dataset registered")
    name = next(e.name for e in _DATASETS.values() if e.task == "predict" and not e.prefix)
    with pytest.raises(RnnImgError, match="task"):
        train(settings(tmp_path / "run", data=name))


@pytest.mark.parametrize("name, data", [("convlstm", "moving-mnist"), ("rowrnn", "mnist-5k"),
                                        ("pixelrnn", "mnist-5k")])
def test_bf16_autocast_trains_on_the_cpu(tmp_path, name, data, monkeypatch):
    """--precision bf16-mixed goes to Lightning's autocast: the loss runs under CPU autocast with
    bfloat16, stays finite, and the weights stay float32 (only the compute is bf16)."""
    from rnnimg.models.registry import get_model_class

    cls = get_model_class(name)
    original, seen = cls.loss, []

    def recording_loss(self, batch):
        if self.training:
            seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return original(self, batch)

    monkeypatch.setattr(cls, "loss", recording_loss)
    run = train(TrainSettings(name, data=data, preset="debug", max_steps=3, batch_size=4,
                              precision="bf16-mixed", out=str(tmp_path / name), progress=False,
                              accelerator="cpu",
                              val_fraction=0, data_options={"val_clips": 4} if data == "moving-mnist"
                              else {}, overrides={"frame_size": 16} if data == "moving-mnist" else {},
                              sample_every_n_steps=0, log_every_n_steps=1))
    weights = load_file(run / "model.safetensors")
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in weights.values())
    with open(run / "metrics.csv") as f:
        losses = [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert seen and all(enabled and dtype == torch.bfloat16 for enabled, dtype in seen)


def test_class_conditional_models_need_labels_in_range(tmp_path, image_folder):
    with pytest.raises(RnnImgError, match="labels up to 9.*num_classes=10"):
        train(settings(tmp_path / "a", data="mnist-5k", overrides=dict(num_classes=5)))
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in image_folder.rglob("*.png"):
        (flat / p.name).write_bytes(p.read_bytes())
    with pytest.raises(RnnImgError, match="no class labels"):
        train(settings(tmp_path / "b", data=f"folder:{flat}", overrides=dict(num_classes=2)))
    run = train(settings(tmp_path / "c", data=f"folder:{image_folder}", max_steps=2,
                         overrides=dict(num_classes=2)))
    from rnnimg import load_pretrained

    model = load_pretrained(run)
    assert model.config.num_classes == 2 and model.sample(2, label=1).shape == (2, 1, 28, 28)
def test_evaluate_on_a_dataset_of_another_task_names_the_task(tmp_path):
    """evaluate --data moving-mnist on a generator used to say "dataset 'moving-mnist' takes no
    option(s) binarize, image_size", which points the user at the wrong problem."""
    from rnnimg import create_model

    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    with pytest.raises(RnnImgError, match="'predict' task.*'rowrnn'"):
        evaluate(tmp_path / "gen", data="moving-mnist", progress=False)
    create_model("convlstm", "debug").save_pretrained(tmp_path / "pred")
    with pytest.raises(RnnImgError, match="'generate' task.*'convlstm'"):
        evaluate(tmp_path / "pred", data="mnist-5k", progress=False)


def test_negative_grad_clip_is_refused(tmp_path):
    """clip_grad_norm_ with max_norm < 0 multiplies every gradient by a negative number, so
    --grad-clip -1 trained uphill without a word. 0 stays "off"."""
    import math

    with pytest.raises(RnnImgError, match="grad-clip"):
        train(settings(tmp_path / "neg", grad_clip=-1.0))
    with pytest.raises(RnnImgError, match="grad-clip"):
        train(settings(tmp_path / "nan", grad_clip=math.nan))
    assert not (tmp_path / "neg").exists()
    assert settings(tmp_path / "off", grad_clip=0.0).resolved().grad_clip is None


@pytest.mark.parametrize("bad", [dict(overrides=dict(cell="foo")), dict(data="folder:/no/such/dir"),
                                 dict(data="mnist5k")])
def test_overwrite_keeps_the_old_run_when_the_new_settings_are_bad(bad, tmp_path):
    """--overwrite deleted the existing run folder first, then a typo in --set or --data failed:
    the user lost the old run and got nothing in its place."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": "rowrnn"}')  # a run: --overwrite may replace it
    (run / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(RnnImgError):
        train(settings(run, overwrite=True, **bad))
    assert (run / "model.safetensors").read_bytes() == b"weights"
