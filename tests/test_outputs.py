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


# --- all outputs or none ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def draw_run(tmp_path_factory):
    """A tiny untrained draw model: it draws in steps, so sample --animate has a GIF to write."""
    import torch

    from rnnimg import create_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("draw") / "run"
    create_model("draw", "debug", image_size=16, steps=3, enc_hidden=16, dec_hidden=16,
                 z_size=4).save_pretrained(run)
    return run


@pytest.fixture(scope="module")
def reseg_run(tmp_path_factory):
    import numpy as np
    import torch
    from PIL import Image

    from rnnimg import create_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("reseg")
    create_model("reseg", "debug").save_pretrained(folder / "run")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24), dtype=np.uint8)).save(
        folder / "in.png")
    return folder / "run", folder / "in.png"


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_sample_writes_nothing_when_the_animation_cannot_be_written(draw_run, tmp_path, capsys):
    """`sample -o s.png --animate /unwritable/d.gif` wrote s.png, then exited 2; the re-run with
    the path fixed was then refused because s.png existed."""
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    grid = tmp_path / "s.png"
    code = main(["sample", str(draw_run), "-n", "2", "-o", str(grid), "--animate",
                 str(tmp_path / "notes.txt" / "d.gif")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--animate" in err, err
    assert _files(tmp_path) == ["notes.txt"]  # nothing written
    # the same command with the path fixed works, without --overwrite
    assert main(["sample", str(draw_run), "-n", "2", "-o", str(grid), "--animate",
                 str(tmp_path / "d.gif")]) == 0
    assert _files(tmp_path) == ["d.gif", "notes.txt", "s.png"]


@pytest.mark.skipif(hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0,
                    reason="root writes into read-only folders")
def test_sample_refuses_a_read_only_folder_before_any_work(draw_run, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code = main(["sample", str(draw_run), "-n", "2", "-o", str(tmp_path / "s.png"), "--animate",
                     str(locked / "d.gif")])
    finally:
        locked.chmod(0o700)
    err = capsys.readouterr().err
    assert code == 2 and "--animate" in err and "not writable" in err
    assert _files(tmp_path) == ["locked"] and _files(locked) == []


def _fail_on_write(monkeypatch, number: int, err_no: int):
    """Make the ``number``-th file write raise OSError(err_no), naming the (temporary) file it was
    given, as a full disk or a permission error does."""
    import os

    import rnnimg.fileio
    import rnnimg.viz

    original, original_fill = rnnimg.fileio.atomic_write_bytes, rnnimg.viz.atomic_write
    calls = []

    def write(path, data, writer=original):
        calls.append(path)
        if len(calls) == number:
            raise OSError(err_no, os.strerror(err_no), str(path))
        return writer(path, data)

    monkeypatch.setattr(rnnimg.fileio, "atomic_write_bytes", write)
    monkeypatch.setattr(rnnimg.viz, "atomic_write_bytes", write)
    # save_image encodes straight into its file: atomic_write(path, fill)
    monkeypatch.setattr(rnnimg.viz, "atomic_write", lambda path, fill: write(path, fill, original_fill))
    return calls


def test_a_full_disk_on_the_second_output_leaves_no_first_output(draw_run, reseg_run, tmp_path,
                                                                  monkeypatch, capsys):
    import errno

    out = tmp_path / "out"
    out.mkdir()
    run, image = reseg_run
    for argv, flag in (
            (["sample", str(draw_run), "-n", "2", "-o", str(out / "s.png"), "--animate",
              str(out / "d.gif")], "--animate"),
            (["segment", str(run), str(image), "-o", str(out / "m.png"), "--overlay",
              str(out / "o.png")], "--overlay")):
        calls = _fail_on_write(monkeypatch, 2, errno.ENOSPC)
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert len(calls) == 2, calls  # the first file was written (to its temporary file)
        assert code == 2 and len(err.splitlines()) == 1, err
        assert "the disk is full" in err and f"{flag} " in err and "free some space" in err
        assert ".tmp" not in err
        assert _files(out) == []  # neither output, and no temporary file either
        monkeypatch.undo()
        assert main(argv) == 0 and len(_files(out)) == 2  # the re-run is accepted
        for path in out.iterdir():
            path.unlink()


def test_a_permission_error_names_the_file_and_the_real_next_step(draw_run, tmp_path, monkeypatch,
                                                                  capsys):
    import errno

    _fail_on_write(monkeypatch, 1, errno.EACCES)
    grid = tmp_path / "s.png"
    assert main(["sample", str(draw_run), "-n", "2", "-o", str(grid)]) == 2
    err = capsys.readouterr().err.strip()
    assert "permission denied" in err and f"-o {grid}" in err and "can write to" in err, err
    assert ".tmp" not in err and "free some space" not in err
    assert _files(tmp_path) == []


def test_fileio_write_all_is_all_or_nothing(tmp_path):
    import errno

    from rnnimg.fileio import atomic_write_all

    def good(tmp):
        with open(tmp, "w") as f:
            f.write("new")

    def full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device", tmp)

    (tmp_path / "old.txt").write_text("old")
    with pytest.raises(OSError) as info:
        atomic_write_all([(tmp_path / "a.txt", good), (tmp_path / "sub" / "dir" / "b.txt", good),
                          (tmp_path / "old.txt", good), (tmp_path / "c.txt", full)])
    assert info.value.filename == str(tmp_path / "c.txt")  # the target, not the temporary name
    assert _files(tmp_path) == ["old.txt"] and (tmp_path / "old.txt").read_text() == "old"
    written = atomic_write_all([(tmp_path / "a.txt", good), (tmp_path / "sub" / "b.txt", good)])
    assert [p.read_text() for p in written] == ["new", "new"]


# --- wording: each message names its own flag and the real next step ---------------------------


def _one_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_output_errors_name_their_own_flag(draw_run, reseg_run, tmp_path, capsys):
    import re

    run, image = reseg_run
    taken = tmp_path / "taken.png"
    taken.write_bytes(b"mine")
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = [
        (["segment", str(run), str(image), "-o", str(tmp_path / "m.png"), "--overlay", str(taken)],
         "--overlay", "already exists"),
        (["segment", str(run), str(image), "-o", str(tmp_path / "m.png"), "--overlay", str(folder)],
         "--overlay", "is a folder"),
        (["translate", str(run), str(image), "-o", str(tmp_path / "t.png"), "--steps", str(taken)],
         "--steps", "already exists"),
        (["translate", str(run), str(image), "-o", str(tmp_path / "t.png"), "--steps",
          str(tmp_path / "steps.txt")], "--steps", "use a file name ending in .png"),
        (["sample", str(draw_run), "-o", str(tmp_path / "s.png"), "--animate", str(taken)],
         "--animate", "use a file name ending in .gif"),
        (["sample", str(draw_run), "-o", str(tmp_path / "s.png"), "--animate", str(folder)],
         "--animate", "is a folder"),
    ]
    for argv, flag, what in cases:
        assert main(argv) == 2
        err = _one_line(capsys)
        assert flag in err and what in err, err
        assert not re.search(r"(?<![-\w])-o\b", err), err  # not blamed on -o
    assert _files(tmp_path) == ["folder", "taken.png"] and taken.read_bytes() == b"mine"


def test_sample_into_a_folder_does_not_suggest_overwrite(draw_run, tmp_path, capsys):
    for extra in ([], ["--overwrite"]):
        assert main(["sample", str(draw_run), "-o", str(tmp_path), *extra]) == 2
        err = _one_line(capsys)
        assert "is a folder" in err and "--overwrite" not in err and "grid.png" in err, err


def test_translate_model_on_an_image_dataset_names_the_data_opt(tmp_path, capsys):
    code = main(["train", "translator", "--preset", "debug", "--data", "mnist-5k", "--max-steps", "1",
                 "--accelerator", "cpu", "--no-progress", "--out", str(tmp_path / "r")])
    assert code == 2 and "--data-opt corrupt=denoise" in _one_line(capsys)
    assert not (tmp_path / "r").exists()


def test_the_web_page_shows_no_server_paths():
    pytest.importorskip("gradio")
    import gradio as gr

    from rnnimg.serve.app import _page_errors

    @_page_errors
    def upload():
        raise RnnImgError("/tmp/gradio/8f3a1c9e/upload.png is not an image; choose a PNG or JPEG.")

    with pytest.raises(gr.Error) as info:
        upload()
    assert info.value.message == "upload.png is not an image; choose a PNG or JPEG."


# --- out of memory ------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 9200000000 bytes."),
    MemoryError(),
    "cuda"])
def test_out_of_memory_is_one_line_naming_the_size(reseg_run, tmp_path, monkeypatch, capsys, error):
    import torch

    import rnnimg.tasks

    if error == "cuda":
        error = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def no_memory(*args, **kwargs):
        raise error

    run, image = reseg_run
    monkeypatch.setattr(rnnimg.tasks, "segment_image", no_memory)
    assert main(["segment", str(run), str(image), "-o", str(tmp_path / "m.png"), "--no-resize"]) == 2
    err = _one_line(capsys)
    assert "ran out of memory segmenting a 24x20 image" in err, err
    assert "pass a smaller --tile" in err  # --no-resize segments tile by tile
    assert _files(tmp_path) == []


def _no_memory(*args, **kwargs):
    raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't "
                       "allocate memory: you tried to allocate 5400000000 bytes.")


@pytest.mark.parametrize("verb", ["sample", "complete", "predict", "translate", "evaluate", "train"])
def test_every_verb_turns_out_of_memory_into_one_line(verb, draw_run, tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    import rnnimg.tasks
    import rnnimg.train
    from rnnimg import create_model
    from rnnimg.models.registry import get_model_class

    out = tmp_path / "out"
    out.mkdir()
    grey = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    if verb == "sample":
        monkeypatch.setattr(rnnimg.tasks, "sample_grid", _no_memory)
        argv, expect = ["sample", str(draw_run), "-n", "5000", "-o", str(out / "s.png")], \
            ["5000 images of 16x16", "-n"]
    elif verb == "complete":
        create_model("pixelrnn", "debug").save_pretrained(tmp_path / "run")
        Image.fromarray(grey).save(tmp_path / "in.png")
        monkeypatch.setattr(rnnimg.tasks, "completion_grid", _no_memory)
        argv, expect = ["complete", str(tmp_path / "run"), str(tmp_path / "in.png"), "-o",
                        str(out / "c.png")], ["28x28 image 8 times", "-n"]
    elif verb == "predict":
        create_model("convlstm", "debug").save_pretrained(tmp_path / "run")
        np.save(tmp_path / "clip.npy", np.zeros((8, 16, 16), dtype=np.uint8))
        monkeypatch.setattr(get_model_class("convlstm"), "predict", _no_memory)
        argv, expect = ["predict", str(tmp_path / "run"), str(tmp_path / "clip.npy"), "-o",
                        str(out / "p.gif")], ["4 frames of 16x16", "--horizon"]
    elif verb == "translate":
        create_model("translator", "debug").save_pretrained(tmp_path / "run")
        Image.fromarray(grey).save(tmp_path / "in.png")
        monkeypatch.setattr(get_model_class("translator"), "translate", _no_memory)
        argv, expect = ["translate", str(tmp_path / "run"), str(tmp_path / "in.png"), "-o",
                        str(out / "t.png")], ["translating a 28x28 image", "--tile"]
    elif verb == "evaluate":
        monkeypatch.setattr(rnnimg.train, "evaluate", _no_memory)
        argv, expect = ["evaluate", str(draw_run), "--batch-size", "512"], ["batches of 512",
                                                                              "--batch-size"]
    else:
        monkeypatch.setattr(rnnimg.train, "train", _no_memory)
        argv, expect = ["train", "rowrnn", "--batch-size", "512", "--out", str(out / "r")], \
            ["training at --batch-size 512", "pass a smaller --batch-size"]
    assert main([*argv, *(["--device", "cpu"] if verb not in ("train",) else [])]) == 2
    err = _one_line(capsys)
    assert err.startswith("rnnimg: error: ran out of memory") and all(e in err for e in expect), err
    assert _files(out) == []


# --- evaluate --importance-samples: bounded memory, with progress -------------------------------


def test_importance_samples_are_reduced_in_chunks_with_progress(monkeypatch):
    """K = 100000 held every draw's canvas at once and showed no progress for minutes: the
    draws are now reduced in chunks (a running log-sum-exp) and reported as they finish."""
    import math
    import weakref

    import torch

    import rnnimg.models.generate.draw_evaluation as draw_module
    from rnnimg import create_model

    torch.manual_seed(0)
    model = create_model("draw", "debug", image_size=16, steps=3, enc_hidden=16, dec_hidden=16,
                         z_size=4).eval()
    batch = {"image": (torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(1)) > 0.5)
             .float()}
    k = 10
    g = torch.Generator().manual_seed(0)  # the estimate, computed independently from the same draws
    with torch.no_grad():
        runs = [model.run(batch["image"], generator=g) for _ in range(k)]
    log_w = torch.stack([r["log_ratio"].double() - r["recon"].double() for r in runs])
    expected_iwae = float(-(torch.logsumexp(log_w, 0) - math.log(k)).sum())
    expected_bound = float(torch.stack([r["recon"].double() + r["kl"].double().sum(1)
                                        for r in runs]).mean(0).sum())
    run, alive, most = model.run, weakref.WeakSet(), []

    def counted_run(*args, **kwargs):
        out = run(*args, **kwargs)
        alive.add(out["canvas"])
        most.append(len(alive))
        return out

    monkeypatch.setattr(model, "run", counted_run)
    for chunk in (64, 3):
        monkeypatch.setattr(draw_module, "IMPORTANCE_CHUNK", chunk)
        calls, most[:] = [], []
        stats = model.evaluation_statistics(batch, importance_samples=k,
                                            generator=torch.Generator().manual_seed(0),
                                            progress=lambda done, of, calls=calls: calls.append((done, of)))
        assert float(stats["iwae"]) == pytest.approx(expected_iwae, rel=1e-12)
        assert float(stats["bound"]) == pytest.approx(expected_bound, rel=1e-12)
        assert calls == ([(10, 10)] if chunk == 64 else [(3, 10), (6, 10), (9, 10), (10, 10)])
        if chunk == 3:
            assert max(most) <= 2 * chunk < k  # canvases of at most two chunks alive, not all K


def test_evaluate_shows_the_importance_draws_as_they_finish(draw_run, capsys):
    assert main(["evaluate", str(draw_run), "--importance-samples", "5", "--max-batches", "2",
                 "--batch-size", "2", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "nll_iwae_nats" in captured.out and "10/10" in captured.err  # 2 batches x 5 draws


def test_evaluate_shows_its_scores_even_when_the_card_cannot_be_written(draw_run, monkeypatch,
                                                                        capsys):
    """evaluate refreshes the run's model card; a read-only run folder lost the scores of a
    whole evaluation to a 'cannot write' error."""
    import errno

    import rnnimg.cards

    def read_only(run_dir, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", f"{run_dir}/README.md")

    monkeypatch.setattr(rnnimg.cards, "write_model_card", read_only)
    assert main(["evaluate", str(draw_run), "--json", "--batch-size", "500", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["metrics"]["nll_bound_nats"] > 0
    assert "not in" in captured.err and "permission denied" in captured.err
