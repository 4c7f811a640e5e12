import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnimg.cli import build_parser, main

RNNIMG = str(Path(sys.executable).with_name("rnnimg"))


def run_cli(*args, cwd=None, timeout=120):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([RNNIMG, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def test_help_works_for_every_command(capsys):
    commands = build_parser()._subparsers._group_actions[0].choices
    assert {"list", "train", "sample", "evaluate", "demo"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage: rnnimg " + name in capsys.readouterr().out


def test_list_shows_models_and_datasets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "rowrnn" in out and "mnist-5k" in out and "folder:PATH" in out and "debug" in out


def test_train_sample_evaluate_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "rowrnn", "--preset", "debug", "--max-steps", "6", "--accelerator", "cpu",
                 "--out", str(run),
                 "--no-progress", "--batch-size", "16"]) == 0
    assert (run / "model.safetensors").is_file()
    grid = tmp_path / "grid.png"
    assert main(["sample", str(run), "-n", "12", "-o", str(grid), "--seed", "1"]) == 0
    import numpy as np
    from PIL import Image

    with Image.open(grid) as img:  # 12 images of 28 px, 8 per row, 2 px padding, scale 2
        assert img.size == (2 * (8 * 30 + 2), 2 * (2 * 30 + 2))
        cells = np.asarray(img.convert("L"))[4:4 + 56, 4:4 + 56]  # the first sample, scale 2
    assert (cells > 127).mean() > 0.01 and (cells < 128).mean() > 0.01  # drawn, not blank
    first = grid.read_bytes()
    capsys.readouterr()
    # The output file is not overwritten without --overwrite.
    assert main(["sample", str(run), "-n", "12", "-o", str(grid), "--seed", "2"]) == 2
    assert "already exists" in capsys.readouterr().err and grid.read_bytes() == first
    assert main(["sample", str(run), "-n", "12", "-o", str(grid), "--seed", "2", "--overwrite"]) == 0
    assert grid.read_bytes() != first
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json", "--max-batches", "2", "--batch-size", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["num_items"] == 20 and result["metrics"]["nll_nats"] > 0
    assert main(["evaluate", str(run), "--max-batches", "1"]) == 0
    out = capsys.readouterr().out
    assert "bits_per_dim" in out and "binarization: fixed" in out


@pytest.mark.parametrize("args, message", [
    (["train", "nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["train", "rowrnn", "--data", "folder:/no/such/dir", "--max-steps", "1"], "no such folder"),
    (["train", "rowrnn", "--set", "cell=cnn", "--max-steps", "1"], "cell must be one of"),
    (["sample", "/no/such/run"], "is not a folder"),
    (["evaluate", "/no/such/run"], "is not a folder"),
    (["train", "rowrnn", "--data", "mnist5k"], "unknown dataset"),
])
def test_user_mistakes_exit_2_with_one_line(args, message, capsys, tmp_path):
    args = [*args, "--out", str(tmp_path / "r")] if args[0] == "train" else args
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("rnnimg: error:")


def test_console_script_exits_2_without_traceback(tmp_path):
    proc = run_cli("sample", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_ddp_on_two_cpu_processes(tmp_path):
    """Multi-process training goes through Lightning's DDP engine (gloo on CPU)."""
    proc = run_cli("train", "rowrnn", "--preset", "debug", "--max-steps", "3", "--batch-size", "8",
                   "--out", str(tmp_path / "ddp"), "--accelerator", "cpu", "--devices", "2",
                   "--strategy", "ddp", "--no-progress", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MEMBER: 2/2" in proc.stderr + proc.stdout
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 3


@pytest.fixture(scope="module")
def pixelrnn_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "pixelrnn"
    assert main(["train", "pixelrnn", "--preset", "debug", "--max-steps", "3", "--accelerator", "cpu",
                 "--out", str(run),
                 "--no-progress", "--batch-size", "8"]) == 0
    return run


def test_complete_end_to_end_and_bad_input(pixelrnn_run, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    digit = tmp_path / "digit.png"
    Image.fromarray((np.random.default_rng(0).random((28, 28)) > 0.7).astype(np.uint8) * 255).save(digit)
    out = tmp_path / "completions.png"
    assert main(["complete", str(pixelrnn_run), str(digit), "--mask", "box:4,10,20,10", "-n", "3",
                 "-o", str(out), "--scale", "1"]) == 0
    with Image.open(out) as img:  # input + 3 completions of 28 px, 2 px padding, one row
        assert img.size == (4 * 30 + 2, 32)
        grid = np.asarray(img.convert("L"))
    known_rows = grid[2:12, 2 + 30:2 + 30 + 28]  # first completion, rows 0..9 are known
    source = np.asarray(Image.open(digit).convert("L"))[:10]
    assert np.array_equal(known_rows > 127, source > 127)
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(big)
    mask = tmp_path / "mask.png"
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(mask)
    all_known = tmp_path / "all_known.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(all_known)  # black = known everywhere
    cases = [
        ([str(big)], "shape"),
        ([str(digit), "--mask", str(mask)], "mask"),
        ([str(digit), "--mask", str(all_known)], "nothing to complete"),
        ([str(digit), "--mask", "box:0,0,0,0"], "w, h >= 1"),
        ([str(digit), "--temperature", "0"], "temperature"),
        ([str(tmp_path / "missing.png")], "no such file"),
    ]
    for extra, message in cases:
        capsys.readouterr()
        code = main(["complete", str(pixelrnn_run), *extra, "-o", str(tmp_path / "x.png"), "--overwrite"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, (extra, err)


@pytest.fixture(scope="module")
def convlstm_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "convlstm"
    assert main(["train", "convlstm", "--data", "moving-mnist", "--preset", "debug", "--max-steps", "2",
                 "--accelerator", "cpu", "--set", "frame_size=16",  # the data's 64x64, downscaled
                 "--out", str(run), "--no-progress", "--batch-size", "2", "--data-opt", "val_clips=4"]) == 0
    return run


def test_predict_end_to_end_and_bad_input(convlstm_run, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    clip = np.random.default_rng(0).integers(0, 256, (10, 16, 16), dtype=np.uint8)  # (T, H, W)
    np.save(tmp_path / "clip.npy", clip)
    out = tmp_path / "pred.gif"
    assert main(["predict", str(convlstm_run), str(tmp_path / "clip.npy"), "--context", "4",
                 "--horizon", "9", "-o", str(out)]) == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 4 + 9  # the given frames, then the 9 predicted ones
        gif.seek(12)  # the last frame has no ground truth (the clip has 10): grey on the truth side
        last = np.asarray(gif.convert("L"))
    assert abs(int(last[last.shape[0] // 2, 3 * 8]) - 128) <= 2
    assert (tmp_path / "pred.png").is_file()
    np.save(tmp_path / "rgb.npy", np.zeros((10, 16, 16, 3), np.uint8))
    np.save(tmp_path / "short.npy", clip[:2])
    bad = np.zeros((10, 16, 16), np.float32)
    bad[3, 2, 2] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    cases = [
        (["clip.npy", "--horizon", "0"], "horizon"),
        (["rgb.npy"], "channel"),
        (["short.npy", "--context", "4"], "frames"),
        (["nan.npy"], "NaN"),
        (["clip.npy", "-o", str(out)], "already exists"),
    ]
    for (name, *extra), message in cases:
        capsys.readouterr()
        args = ["predict", str(convlstm_run), str(tmp_path / name), *extra]
        if "-o" not in extra:
            args += ["-o", str(tmp_path / "x.gif"), "--overwrite"]
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert code == 2 and message in err and len(err.splitlines()) == 1, (name, err)


@pytest.mark.parametrize("model", ["rowrnn", "pixelrnn"])
def test_num_classes_below_the_data_labels_exits_2(model, image_folder, tmp_path, capsys):
    """image_folder has two class subfolders (labels 0, 1); num_classes=1 cannot embed label 1.
    That used to be a raw IndexError traceback from nn.Embedding."""
    code = main(["train", model, "--preset", "debug", "--data", f"folder:{image_folder}",
                 "--set", "num_classes=1", "--max-steps", "1", "--batch-size", "18",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # Lightning's INFO banner may come before it
    assert code == 2 and "Traceback" not in err
    assert last.startswith("rnnimg: error:") and "num_classes=1" in last
    assert "label 1" in last or "labels up to 1" in last  # the trainer checks first, the loss too


def test_predict_fps_must_be_positive(convlstm_run, tmp_path, capsys):
    """--fps 0 used to end in a ZeroDivisionError traceback inside write_gif."""
    import numpy as np

    from rnnimg.errors import RnnImgError
    from rnnimg.viz import write_video

    np.save(tmp_path / "clip.npy", np.zeros((10, 16, 16), np.uint8))
    for fps in ("0", "-2"):
        capsys.readouterr()
        code = main(["predict", str(convlstm_run), str(tmp_path / "clip.npy"), "--fps", fps,
                     "-o", str(tmp_path / "p.gif")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "fps" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "p.gif").exists() and not (tmp_path / "p.png").exists()
    with pytest.raises(RnnImgError, match="fps must be > 0"):
        write_video(torch.zeros(2, 1, 4, 4), tmp_path / "v.gif", fps=0)


@pytest.mark.parametrize("extra, message", [
    (["--precision", "bogus"], "precision"), (["--strategy", "foo"], "strategy"),
    (["--devices", "0"], "devices"), (["--num-workers", "-1"], "num-workers"),
    (["--seed", "-5"], "seed"), (["--seed", str(2**32)], "seed")])
def test_bad_trainer_settings_exit_2_and_leave_no_run_folder(extra, message, tmp_path, capsys):
    """These went to Lightning/DataLoader unchecked: a raw traceback, after config.json had been
    written, so the retry was refused with "already exists"."""
    run = tmp_path / "run"
    code = main(["train", "rowrnn", "--preset", "debug", "--max-steps", "1", "--out", str(run),
                 "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("rnnimg: error:") and message in err
    assert not run.exists()


def test_output_paths_through_a_file_exit_2(tmp_path, capsys):
    """-o FILE/x.png and --out FILE were FileExistsError / NotADirectoryError tracebacks."""
    from rnnimg import create_model

    create_model("rowrnn", "debug").save_pretrained(tmp_path / "run")
    a_file = tmp_path / "taken.png"
    a_file.write_bytes(b"mine")
    for args in (["sample", str(tmp_path / "run"), "-n", "1", "-o", str(a_file / "x.png")],
                 ["train", "rowrnn", "--preset", "debug", "--max-steps", "1", "--no-progress",
                  "--out", str(a_file)]):
        capsys.readouterr()
        code = main(args)
        err = capsys.readouterr().err.strip()
        last = err.splitlines()[-1] if err else ""
        assert code == 2 and "Traceback" not in err and last.startswith("rnnimg: error:"), err
        assert str(a_file) in last
    assert a_file.read_bytes() == b"mine"
