"""Nothing lost, nothing half done (issue 23): --overwrite replaces only rnnimg runs, a command
writes all its outputs or none, and its errors name the flag at fault and the real next step."""

from __future__ import annotations

import json

import pytest

from rnnimg.cli import main
from rnnimg.errors import RnnImgError
from rnnimg.train.rundir import check_replaceable, not_a_run_reason


def _victim(folder):
    """A folder of the user's own: pictures and a thesis."""
    folder.mkdir()
    (folder / "thesis.txt").write_text("four years of work")
    (folder / "holiday.png").write_bytes(b"\x89PNG not really")
    (folder / "photos").mkdir()
    (folder / "photos" / "cat.jpg").write_bytes(b"jpeg")
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _contents(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("overwrite", [True, False])
def test_train_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys, overwrite):
    victim = tmp_path / "victim"
    before = _victim(victim)
    code = main(["train", "rowrnn", "--preset", "debug", "--max-steps", "1", "--accelerator", "cpu",
                 "--no-progress", "--out", str(victim), *(["--overwrite"] if overwrite else [])])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "not an rnnimg run" in err and "thesis.txt" in err
    assert "pass --overwrite" not in err  # it would be refused too
    assert _contents(victim) == before


def test_demo_overwrite_refuses_a_folder_that_is_not_a_demo(tmp_path, capsys):
    victim = tmp_path / "victim"
    before = _victim(victim)
    code = main(["demo", "--out", str(victim), "--overwrite", "--models", "rowrnn", "--steps", "0.01",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "not an rnnimg demo folder" in err, err
    assert _contents(victim) == before


def _fake_run(folder, **extra_files):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "rowrnn", "config": {}}))
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    (folder / ".rnnimg.lock").write_text("{}")
    for name, data in extra_files.items():
        (folder / name.replace("__", "/")).write_text(data)
    return folder


def test_what_counts_as_a_run_folder(tmp_path):
    assert not_a_run_reason(_fake_run(tmp_path / "run")) is None
    check_replaceable(tmp_path / "run", overwrite=True)  # accepted
    with pytest.raises(RnnImgError, match="already exists; pass --resume.*--overwrite to replace"):
        check_replaceable(tmp_path / "run", overwrite=False)
    # a run with the user's file dropped in it, anywhere, is not replaced
    for extra in ({"notes.txt": "mine"}, {"checkpoints__notes.txt": "mine"}):
        folder = _fake_run(tmp_path / f"run-{len(list(tmp_path.iterdir()))}", **extra)
        assert "notes.txt" in not_a_run_reason(folder)
        with pytest.raises(RnnImgError, match="not an rnnimg run"):
            check_replaceable(folder, overwrite=True)
    # config.json alone does not make a run: it must be an rnnimg config
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"name": "some other tool"}')
    assert "names no model" in not_a_run_reason(other)
    # a killed run that left only its lock: replaceable (a re-run must be accepted)
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / ".rnnimg.lock").write_text("{}")
    assert not_a_run_reason(killed) is None


def test_demo_folder_check(tmp_path):
    from rnnimg.demo import not_a_demo_reason

    demo = tmp_path / "demo"
    _fake_run(demo / "rowrnn")
    (demo / "rowrnn.png").write_bytes(b"png")
    (demo / "draw-drawing.gif").write_bytes(b"gif")
    (demo / "curves.png").write_bytes(b"png")
    assert not_a_demo_reason(demo) is None
    (demo / "thesis.txt").write_text("mine")
    assert "thesis.txt" in not_a_demo_reason(demo)
