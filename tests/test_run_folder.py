"""A busy or broken run folder is never damaged (issue 7): bad checkpoints, locks, a full or
read-only disk, runs that fail before their first step, leftover temporary files, and Ctrl-C /
SIGTERM sent to a real `rnnimg train` process."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnimg.cli import main
from rnnimg.errors import RnnImgError
from rnnimg.train import TrainSettings, train

TRAIN = ["train", "rowrnn", "--preset", "debug", "--batch-size", "4", "--no-progress",
         "--accelerator", "cpu", "--log-every", "1", "--sample-every", "1000"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_line_error(capsys, code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("rnnimg: error:") and all(n in err for n in needles), err
    return err


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "run"
    assert main([*TRAIN, "--max-steps", "4", "--ckpt-every", "2", "--out", str(run)]) == 0
    return run


def _other_model_ckpt(path):
    other = path.parent.parent.parent / "other"
    if not other.exists():
        train(TrainSettings("rowrnn", preset="debug", overrides=dict(hidden_size=8), max_steps=1,
                            batch_size=4, out=str(other), progress=False, accelerator="cpu"))
    path.write_bytes((other / "checkpoints" / "last.ckpt").read_bytes())


@pytest.mark.parametrize("damage, needle", [
    (_other_model_ckpt, "another model"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "corrupt"),
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: torch.save({"state_dict": {}}, p), "not a training checkpoint"),
    (lambda p: torch.save([1, 2, 3], p), "holds a list"),
    (lambda p: p.write_bytes(b"not a checkpoint at all"), "corrupt"),
])
def test_a_bad_checkpoint_is_one_line_and_changes_nothing(finished_run, tmp_path, capsys, damage,
                                                          needle):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for path in (run / "checkpoints").iterdir():  # last.ckpt, step0000002.ckpt, step0000004.ckpt
        damage(path)
    before = snapshot(run)
    code = main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", "8", "--no-progress"])
    err = one_line_error(capsys, code, needle)
    assert "--overwrite" not in err or "no usable checkpoint" in err
    assert snapshot(run) == before  # metrics.csv, config.json, the checkpoints: untouched


@pytest.mark.parametrize("damage", [lambda p: p.write_bytes(b""),  # killed while it was written
                                    lambda p: p.write_bytes(p.read_bytes()[:1000])])
def test_resume_skips_a_bad_last_ckpt_for_the_newest_good_checkpoint(finished_run, tmp_path, capsys,
                                                                      damage):
    """Issue 23: a cut-off last.ckpt beside a complete step0000004.ckpt resumes from the latter,
    with a warning naming the file skipped, and no advice to start again with --overwrite."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    damage(run / "checkpoints" / "last.ckpt")
    with pytest.warns(UserWarning, match="skipped a checkpoint: .*last.ckpt.*step0000004.ckpt "
                                         r"\(step 4\)"):
        assert main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", "6"]) == 0
    assert "--overwrite" not in capsys.readouterr().err
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_resume_without_any_checkpoint_says_to_start_again(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "rowrnn", "config": {}, "training": {}}))
    code = main([*TRAIN[:1], "--resume", "--out", str(run)])
    one_line_error(capsys, code, "no checkpoint to resume from", "--overwrite")


def test_a_live_lock_refuses_train_resume_and_overwrite(finished_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".rnnimg.lock").write_text(json.dumps(
            {"pid": sleeper.pid, "host": os.uname().nodename, "since": "now"}))
        before = snapshot(run)
        for extra in (["--overwrite"], ["--resume", "--max-steps", "8"], []):
            code = main([*TRAIN, "--max-steps", "8", "--out", str(run), *extra])
            one_line_error(capsys, code, f"in use by process {sleeper.pid}")
            assert snapshot(run) == before
    finally:
        sleeper.kill()
        sleeper.wait()
    # The owner is gone: the lock is stale and the resume takes it over (and releases it).
    assert main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", "5"]) == 0
    assert not (run / ".rnnimg.lock").exists()


def test_disk_full_during_training_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    """Simulated: the checkpoint writer raises ENOSPC from the 5th checkpoint file on (steps 2 and 4
    each write stepN.ckpt and last.ckpt; a size-limited file system needs root here). The error
    is one line and last.ckpt stays the step-4 one."""
    import rnnimg.train.callbacks as callbacks

    calls = {"n": 0}

    def filling_disk(real):
        def write(path, data):
            calls["n"] += str(path).endswith(".ckpt")
            if calls["n"] >= 5:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real(path, data)
        return write

    for name in ("atomic_write_bytes", "write_temporary"):  # (training holds checkpoints back)
        monkeypatch.setattr(callbacks, name, filling_disk(getattr(callbacks, name)))
    run = tmp_path / "run"
    code = main([*TRAIN, "--max-steps", "10", "--ckpt-every", "2", "--out", str(run)])
    err = one_line_error(capsys, code, "disk is full", "step 4", "--resume")
    assert "last good checkpoint" in err
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4
    assert not list(run.rglob("*.tmp*"))


def test_read_only_out_is_one_line(finished_run, tmp_path, capsys, monkeypatch):
    """Simulated EROFS (the tests run as root here, which writes into chmod 555 folders): a new
    run leaves nothing behind, a resume leaves the folder as it was."""
    import shutil

    import rnnimg.train.rundir as rundir

    def read_only(self):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self.path))

    monkeypatch.setattr(rundir.RunLock, "acquire", read_only)
    code = main([*TRAIN, "--max-steps", "1", "--out", str(tmp_path / "new")])
    one_line_error(capsys, code, "read-only")
    assert not (tmp_path / "new").exists()
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = snapshot(run)
    code = main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", "8"])
    one_line_error(capsys, code, "read-only")
    assert snapshot(run) == before


@pytest.mark.parametrize("failure", ["crash", "nan"])
def test_a_run_that_fails_before_its_first_step_leaves_no_folder(tmp_path, monkeypatch, failure):
    from rnnimg.errors import NonFiniteLossError
    from rnnimg.models.generate.rowrnn import RowRNN

    original = RowRNN.loss

    def broken(self, batch):
        if failure == "crash":
            raise RuntimeError("boom in the first step")
        out = original(self, batch)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(RowRNN, "loss", broken)
    s = TrainSettings("rowrnn", preset="debug", max_steps=3, batch_size=4, progress=False,
                      accelerator="cpu", out=str(tmp_path / "run"))
    with pytest.raises(RuntimeError if failure == "crash" else NonFiniteLossError):
        train(s)
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(RowRNN, "loss", original)
    assert train(s).is_dir()  # the plain re-run is accepted


@pytest.mark.parametrize("extra, needle", [(["--precision", "64"], "--precision 64"),
                                           (["--precision", "bf16-true"], "--precision bf16-true"),
                                           (["--lr", "inf"], "--lr"), (["--lr", "nan"], "--lr")])
def test_bad_precision_and_lr_are_refused_up_front(tmp_path, capsys, extra, needle):
    code = main([*TRAIN, "--max-steps", "1", "--out", str(tmp_path / "run"), *extra])
    one_line_error(capsys, code, needle)
    assert not (tmp_path / "run").exists()


def test_leftover_temporary_files_are_cleaned_on_the_next_start(finished_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    stale = [run / "checkpoints" / ".last.ckpt.abc123.tmp.ckpt", run / ".model.safetensors.x1.tmp",
             run / "samples" / ".samples_latest.png.q.tmp.png"]
    for path in stale:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"half a file")
    assert main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", "5"]) == 0
    assert not any(p.exists() for p in stale)


# --- signals, against a real CLI process ---------------------------------------------------------

SLOW_CLI = """
import sys, time
import rnnimg.models.generate.rowrnn as m
original = m.RowRNN.loss
def slow(self, batch):  # every step takes a while, so a signal lands in the middle of one
    time.sleep(float(sys.argv[1]))
    return original(self, batch)
m.RowRNN.loss = slow
from rnnimg.cli import main
sys.exit(main(sys.argv[2:]))
"""


def start_cli(tmp_path, delay, *args):
    script = tmp_path / "slow_cli.py"
    script.write_text(SLOW_CLI)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, str(script), str(delay), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_rows(csv_path: Path, rows: int, proc, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()}")
        if csv_path.is_file() and len(csv_path.read_text().splitlines()) > rows:
            return
        time.sleep(0.05)
    pytest.fail("training did not start")


@pytest.mark.parametrize("sig, code", [
    (signal.SIGINT, 130),
    pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow),  # the same path; a CLI start is slow
])
def test_a_signal_saves_a_checkpoint_and_says_how_to_resume(tmp_path, capsys, sig, code):
    run = tmp_path / "run"
    proc = start_cli(tmp_path, 0.3, *TRAIN, "--max-steps", "1000", "--ckpt-every", "1000",
                     "--out", str(run))
    try:
        wait_for_rows(run / "metrics.csv", 2, proc)
        # While it trains, the folder is busy: train --overwrite from here is refused.
        code2 = main([*TRAIN, "--max-steps", "2", "--out", str(run), "--overwrite"])
        one_line_error(capsys, code2, f"in use by process {proc.pid}")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert f"rnnimg train --resume --out {run}" in err and "Traceback" not in err
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= step < 1000
    assert not (run / ".rnnimg.lock").exists()
    assert main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", str(step + 1)]) == 0


def test_a_second_ctrl_c_stops_at_once(tmp_path):
    run = tmp_path / "run"
    proc = start_cli(tmp_path, 3.0, *TRAIN, "--max-steps", "1000", "--ckpt-every", "1",
                     "--out", str(run))
    try:
        wait_for_rows(run / "metrics.csv", 1, proc)  # step 0 logged, step 1 sleeping for 3 s
        saved = (run / "checkpoints" / "last.ckpt").read_bytes()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        start = time.time()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        took = time.time() - start
    finally:
        proc.kill()
    assert proc.returncode == 130 and "stopped at once" in err, err
    assert took < 2.5  # did not wait for the 3 s step to finish
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == saved  # the last good one stays
    assert not (run / ".rnnimg.lock").exists() and "--resume" in err


def test_a_second_ctrl_c_before_any_checkpoint_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    proc = start_cli(tmp_path, 3.0, *TRAIN, "--max-steps", "1000", "--ckpt-every", "1000",
                     "--out", str(run))
    try:
        while not (run / ".rnnimg.lock").exists():  # the folder is made; step 0 is sleeping
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "the run folder was removed" in err, err
    assert not run.exists()  # the same command is accepted again


@pytest.mark.slow  # three DDP launches: about 3 minutes on 2 contended cores
def test_ddp_run_stopped_by_a_signal_resumes_exactly(tmp_path):
    """Under DDP (2 CPU processes, gloo) SIGINT to the launching process stops both ranks at the
    same step with a checkpoint; the resumed run ends with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--val-fraction", "0.01",
           "--max-steps", "12", "--ckpt-every", "1000"]
    run = tmp_path / "cut"
    proc = start_cli(tmp_path, 0.5, *TRAIN, *ddp, "--out", str(run))  # writes slow_cli.py
    try:
        wait_for_rows(run / "metrics.csv", 3, proc, timeout=300)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= step < 12
    full = subprocess.run([sys.executable, str(tmp_path / "slow_cli.py"), "0", *TRAIN, *ddp,
                           "--out", str(tmp_path / "full")], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert full.returncode == 0, full.stderr[-2000:]
    resumed = subprocess.run([sys.executable, str(tmp_path / "slow_cli.py"), "0", *TRAIN[:1],
                              "--resume", "--out", str(run), "--accelerator", "cpu", "--devices",
                              "2", "--strategy", "ddp", "--no-progress"], capture_output=True,
                             text=True, timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


# --- a real size-limited / read-only file system (tmpfs), where this machine lets us mount one ---

@pytest.fixture
def small_fs(tmp_path):
    """A 3 MB tmpfs at tmp_path/fs (needs root and CAP_SYS_ADMIN; skipped otherwise)."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True) if os.geteuid() == 0 else None
    if made is None or made.returncode != 0:
        pytest.skip("cannot mount a size-limited tmpfs here (needs root); the simulated ENOSPC "
                    "and EROFS tests above cover the code path")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


class FillDiskAt(__import__("lightning").Callback):
    """Takes all the free space of the file system after step ``step``'s checkpoint."""

    def __init__(self, folder, step):
        self.folder, self.step = folder, step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step and not (self.folder / "filler").exists():
            with open(self.folder / "filler", "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass


def test_a_real_full_disk_keeps_the_last_good_checkpoint(small_fs):
    run = small_fs / "run"
    with pytest.raises(RnnImgError, match="disk is full.*last good checkpoint.*step 4"):
        train(TrainSettings("rowrnn", preset="debug", max_steps=20, batch_size=4, progress=False,
                            accelerator="cpu", ckpt_every_n_steps=2, sample_every_n_steps=1000,
                            out=str(run)), callbacks=[FillDiskAt(small_fs, 5)])
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert not list(run.rglob(".*.tmp*"))
    (small_fs / "filler").unlink()  # space again: the run resumes from its step-4 checkpoint
    train(TrainSettings("rowrnn", out=str(run), resume=True, max_steps=6, progress=False,
                        accelerator="cpu"))
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


def test_a_real_read_only_file_system_is_one_line(small_fs, capsys):
    run = small_fs / "run"
    assert main([*TRAIN, "--max-steps", "2", "--out", str(run)]) == 0
    before = snapshot(run)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    code = main([*TRAIN[:1], "--resume", "--out", str(run), "--max-steps", "4"])
    one_line_error(capsys, code, "read-only")
    assert snapshot(run) == before
    code = main([*TRAIN, "--max-steps", "2", "--out", str(small_fs / "new")])
    one_line_error(capsys, code, "read-only")
    code = main(["demo", "--out", str(small_fs / "demo"), "--steps", "0.01", "--no-progress"])
    one_line_error(capsys, code, "read-only")


def test_a_real_full_disk_while_sampling_is_one_line_and_leaves_no_file(small_fs, tmp_path, capsys):
    from rnnimg import create_model

    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    FillDiskAt(small_fs, 0).on_train_batch_start(type("T", (), {"global_step": 0})())
    code = main(["sample", str(tmp_path / "gen"), "-n", "64", "-o", str(small_fs / "grid.png")])
    one_line_error(capsys, code, "disk is full")
    assert sorted(p.name for p in small_fs.iterdir()) == ["filler"]


@pytest.mark.slow  # a CLI start under load
def test_kill_9_then_resume_matches_the_uninterrupted_run(tmp_path):
    """kill -9 (no handler runs, the lock stays behind) after a checkpoint; --resume to the same
    --max-steps ends with the uninterrupted run's weights."""
    from safetensors.torch import load_file

    args = [*TRAIN, "--max-steps", "12", "--ckpt-every", "2", "--val-fraction", "0.01"]
    run = tmp_path / "killed"
    proc = start_cli(tmp_path, 0.3, *args, "--out", str(run))
    try:
        wait_for_rows(run / "metrics.csv", 5, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert (run / ".rnnimg.lock").exists()  # stale: its process is gone
    step = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= step < 12
    assert main([*TRAIN[:1], "--resume", "--out", str(run)]) == 0
    assert main([*args, "--out", str(tmp_path / "full")]) == 0
    a, b = load_file(tmp_path / "full" / "model.safetensors"), load_file(run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
