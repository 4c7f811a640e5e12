"""`rnnimg train` and `rnnimg evaluate` from the command line: --config / --print-config, what is
printed, the checkpoints a run keeps, --device checks and `python -m rnnimg`."""

import json
import os
import subprocess
import sys

import pytest
import torch

from rnnimg.cli import main

TRAIN = ["train", "rowrnn", "--preset", "debug", "--batch-size", "4", "--no-progress",
         "--accelerator", "cpu", "--sample-every", "1000"]


def test_python_dash_m_rnnimg_works():
    proc = subprocess.run([sys.executable, "-m", "rnnimg", "--help"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0 and "usage: rnnimg" in proc.stdout and "train" in proc.stdout


def test_print_config_then_config_repeats_the_settings(tmp_path, capsys):
    assert main([*TRAIN, "--max-steps", "3", "--lr", "0.02", "--set", "hidden_size=8",
                 "--out", str(tmp_path / "a"), "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["max_steps"], printed["lr"], printed["overrides"], printed["batch_size"]) == \
        (3, 0.02, {"hidden_size": 8}, 4)
    assert not (tmp_path / "a").exists()  # printing trains nothing
    yaml_file = tmp_path / "settings.yaml"
    yaml_file.write_text("model: rowrnn\npreset: debug\nmax-steps: 3\nlr: 0.02\nbatch_size: 4\n"
                         "set:\n  hidden_size: 8\naccelerator: cpu\nprogress: false\nsample-every: 1000\n")
    assert main(["train", "--config", str(yaml_file), "--out", str(tmp_path / "a"),
                 "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == printed
    # A run's config.json is a valid --config; flags given as well win.
    assert main(["train", "--config", str(yaml_file), "--out", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    assert main(["train", "--config", str(tmp_path / "a" / "config.json"), "--out",
                 str(tmp_path / "b"), "--lr", "0.05", "--print-config"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == {**printed, "out": str(tmp_path / "b"), "lr": 0.05}


@pytest.mark.parametrize("content, needle", [("max_stepz: 3\n", "unknown setting 'max_stepz'"),
                                             ("[1, 2]\n", "must hold a mapping"),
                                             ("model: [unclosed\n", "not valid yaml")])
def test_bad_config_files_are_one_line(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    code = main(["train", "rowrnn", "--config", str(path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and needle in err, err


def test_a_run_keeps_periodic_last_and_best_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    # mnist-5k with --val-fraction 0.99: 45 training images -> 11 steps per epoch with validation.
    assert main([*TRAIN, "--max-steps", "16", "--ckpt-every", "2", "--keep-ckpts", "2",
                 "--val-fraction", "0.99", "--val-batches", "2", "--log-every", "1",
                 "--out", str(run)]) == 0
    out = capsys.readouterr().out
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.ckpt", "last.ckpt", "step0000014.ckpt", "step0000016.ckpt"], names
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == 11  # the one validation so far ran after epoch 1
    assert "curves:" in out and (run / "curves.png").is_file()
    assert "GPU available" not in out + capsys.readouterr().err


def test_curves_line_only_when_curves_were_written(tmp_path, capsys):
    assert main([*TRAIN, "--max-steps", "2", "--log-every", "50", "--val-fraction", "0",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert not (tmp_path / "run" / "curves.png").exists() and "curves:" not in out


def test_device_typo_blames_the_flag(tmp_path, capsys):
    from rnnimg import create_model

    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    code = main(["evaluate", str(tmp_path / "gen"), "--device", "tpu"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--device tpu" in err, err


def test_folder_data_keeps_one_class_numbering_and_an_absolute_path(tmp_path, monkeypatch):
    """Class b has no test image; the test split used to number c as 1 (train: 2)."""
    import numpy as np
    from PIL import Image

    from rnnimg import load_dataset
    from rnnimg.models.checkpoint import read_run_config
    from rnnimg.train import TrainSettings, train

    rng = np.random.default_rng(0)
    files = [("a", 10), ("b", 1), ("c", 9)]  # sorted file index i % 10 == 9 goes to test
    i = 0
    for cls, n in files:
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for _ in range(n):
            Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i:02d}.png")
            i += 1
    train_set = load_dataset(f"folder:{tmp_path / 'imgs'}", "train")
    test_set = load_dataset(f"folder:{tmp_path / 'imgs'}", "test")
    assert sorted(set(train_set.labels.tolist())) == [0, 1, 2]
    assert test_set.labels.tolist() == [0, 2]  # a/09 and c/19: c is class 2 in both splits
    monkeypatch.chdir(tmp_path)
    run = train(TrainSettings("rowrnn", preset="debug", data="folder:imgs", max_steps=1,
                              batch_size=4, progress=False, accelerator="cpu", val_fraction=0,
                              out=str(tmp_path / "run")))
    saved = read_run_config(run)["training"]
    assert saved["data"] == f"folder:{(tmp_path / 'imgs').resolve()}"
    assert saved["data_options"]["classes"] == ["a", "b", "c"]


def test_sample_seed_and_scale_are_checked(tmp_path, capsys):
    from rnnimg import create_model

    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    for extra, needle in [(["--seed", "-1"], "--seed must be in"),
                          (["--seed", str(2**32)], "--seed must be in"),
                          (["--scale", "1000"], "--scale must be in 1..32")]:
        code = main(["sample", str(tmp_path / "gen"), "-n", "1", "-o", str(tmp_path / "x.png"),
                     *extra])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "x.png").exists()


def test_predict_strip_puts_each_prediction_under_its_frame_and_reads_npz_keys(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from rnnimg import create_model, load_pretrained

    create_model("convlstm", "debug").save_pretrained(tmp_path / "pred")
    model = load_pretrained(tmp_path / "pred")
    c = model.config
    clip = np.random.default_rng(0).integers(0, 256, (4, c.frame_size, c.frame_size), dtype=np.uint8)
    np.savez(tmp_path / "clips.npz", other=np.zeros((2, 3)), clip=clip)  # two arrays
    code = main(["predict", str(tmp_path / "pred"), str(tmp_path / "clips.npz"), "--context", "4",
                 "--horizon", "3", "-o", str(tmp_path / "p.gif"), "--scale", "1"])
    assert code == 2 and "key" in capsys.readouterr().err  # which array? say so
    assert main(["predict", str(tmp_path / "pred"), str(tmp_path / "clips.npz"), "--key", "clip",
                 "--context", "4", "--horizon", "3", "-o", str(tmp_path / "p.gif"), "--scale",
                 "1"]) == 0
    assert "(no ground truth in INPUT)" in capsys.readouterr().out
    strip = np.asarray(Image.open(tmp_path / "p.png").convert("L")).astype(float) / 255
    with torch.no_grad():
        given = torch.from_numpy(clip).float().div(255)[:, None]  # (T, 1, H, W)
        want = model.predict(given[None], 3)[0, :, 0].numpy()  # (3, H, W)
    s, pad = c.frame_size, 2
    margin = 6 * len("predicted") + 2 * pad
    for j in range(3):  # predicted frame j lies in column 4 + j: under the frame it predicts
        x, y = margin + pad + (4 + j) * (s + pad), pad + (s + pad)
        assert np.abs(strip[y:y + s, x:x + s] - want[j]).max() <= 1 / 255 + 1e-6, j


def test_a_full_disk_while_sampling_is_one_line(tmp_path, capsys, monkeypatch):
    """Simulated ENOSPC from the picture writer (a size-limited file system needs root)."""
    import errno

    import rnnimg.tasks
    from rnnimg import create_model

    def full(picture, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(rnnimg.tasks, "save_picture", full)
    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    code = main(["sample", str(tmp_path / "gen"), "-n", "2", "-o", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "disk is full" in err, err


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_resume_auto_is_one_command_for_every_launch(tmp_path, capsys):
    """Issue 23 item 4 / issue 22: a scheduler re-runs one command. It starts the run, resumes
    it after a stop, and once the run is complete says so in one line, exits 0 and changes not
    one byte. --resume on a folder that does not exist is still an error."""
    from helpers import CrashAt
    from rnnimg.cli import build_parser
    from rnnimg.cli.train_cmds import settings_from_args
    from rnnimg.train import train
    from rnnimg.train.run import resolve_settings

    run = tmp_path / "run"
    code = main([*TRAIN[:1], "--resume", "--out", str(run)])
    assert code == 2 and "run" in capsys.readouterr().err
    command = [*TRAIN, "--max-steps", "4", "--ckpt-every", "2", "--val-fraction", "0.01",
               "--out", str(run), "--resume", "auto"]
    # The first launch is stopped after its step-2 checkpoint (as a preempted job would be).
    settings, given = settings_from_args(build_parser().parse_args(command))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(resolve_settings(settings, given)[0], callbacks=[CrashAt(3)])
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    capsys.readouterr()
    assert main(command) == 0  # resumed
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert "run folder:" in capsys.readouterr().out
    before = _snapshot(run)
    assert main(command) == 0  # complete: one line, nothing changed
    out, err = capsys.readouterr()
    assert out.strip().splitlines() == [f"rnnimg: {run} is complete: it trained to step 4 "
                                        "(--max-steps 4); nothing to do. To train it further, "
                                        "pass a larger --max-steps (or --epochs) with --resume."]
    assert _snapshot(run) == before
    assert main([*TRAIN[:1], "--resume", "--out", str(run)]) == 0  # plain --resume: the same
    assert _snapshot(run) == before


def test_resume_auto_starts_a_missing_or_empty_folder_and_a_run_without_checkpoints(tmp_path):
    from rnnimg.errors import RnnImgError
    from rnnimg.train import TrainSettings
    from rnnimg.train.run import start_or_resume

    def mode(out):
        s = start_or_resume(TrainSettings("rowrnn", out=str(out), resume="auto"))
        return s.resume, s.overwrite

    assert mode(tmp_path / "missing") == (False, False)
    (tmp_path / "empty").mkdir()
    assert mode(tmp_path / "empty") == (False, False)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.txt").write_text("mine")
    assert mode(tmp_path / "notes") == (False, False)  # not a run: the new-run check refuses it
    stopped = tmp_path / "stopped"  # an rnnimg run killed before its first checkpoint
    stopped.mkdir()
    (stopped / "config.json").write_text(json.dumps({"model": "rowrnn", "training": {}}))
    assert mode(stopped) == (False, True)
    (stopped / "checkpoints").mkdir()
    (stopped / "checkpoints" / "step0000002.ckpt").write_bytes(b"x")
    assert mode(stopped) == (True, False)
    with pytest.raises(RnnImgError, match="--resume auto: .* holds no run to resume.*MODEL"):
        start_or_resume(TrainSettings(None, out=str(tmp_path / "missing"), resume="auto"))


def test_resume_takes_no_value_but_auto(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--resume", "rowrnn", "--out", "x"])
    assert exit_.value.code == 2 and "put MODEL before --resume" in capsys.readouterr().err
