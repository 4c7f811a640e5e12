"""One set of limits for what users ask of a model (rnnimg.limits), checked by the task layer:
the CLI and the web page take and refuse the same seeds, temperatures and counts, and each names
the argument as its user knows it (the CLI its flag, the page its control, Python the argument)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnimg import create_model, limits
from rnnimg.cli import main
from rnnimg.errors import InputError, RnnImgError
from rnnimg.serve import core
from rnnimg.tasks import predict_futures, sample


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    torch.manual_seed(0)
    create_model("rowrnn", "debug", image_size=8).save_pretrained(tmp / "gen")
    create_model("convlstm", "debug").save_pretrained(tmp / "pred")
    return tmp


def cli_error(capsys, argv) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("seed, temperature, ok", [
    (limits.SEED_MAX, limits.TEMPERATURE_MAX, True), (0, 0.05, True),
    (limits.SEED_MAX + 1, 1.0, False), (-1, 1.0, False), (0, 0.0, False),
    (0, limits.TEMPERATURE_MAX + 0.5, False)])
def test_the_cli_and_the_page_take_the_same_seeds_and_temperatures(runs, tmp_path, capsys, seed,
                                                                   temperature, ok):
    out = tmp_path / "grid.png"
    code = main(["sample", str(runs / "gen"), "-n", "2", "-o", str(out), "--seed", str(seed),
                 "--temperature", str(temperature)])
    err = capsys.readouterr().err
    served = core.load_served([str(runs / "gen")])[0]
    if ok:
        assert code == 0 and out.is_file(), err
        assert core.sample(served, 2, "any", seed, temperature, scale=1).shape == (12, 22, 3)
        return
    what = "seed" if not 0 <= seed <= limits.SEED_MAX else "temperature"
    assert code == 2 and err.startswith(f"rnnimg: error: --{what} must be in ") and not out.exists(), err
    with pytest.raises(RnnImgError, match=f"^the {what} must be in "):
        core.sample(served, 2, "any", seed, temperature)


def test_each_front_end_names_the_argument_its_own_way(runs, capsys):
    from rnnimg import load_pretrained

    model = load_pretrained(runs / "gen")
    with pytest.raises(InputError, match="^temperature must be in") as err:
        sample(model, 2, temperature=11)
    assert err.value.argument == "temperature"
    with pytest.raises(InputError, match="drop label"):
        sample(model, 2, label=1)  # Python: the argument
    # the CLI: the flag
    assert "drop --label." in cli_error(capsys, ["sample", str(runs / "gen"), "--label", "1"])
    with pytest.raises(RnnImgError, match="^the number of samples must be in 1..64, got 65"):
        core.sample(core.load_served([str(runs / "gen")])[0], 65)  # the page: its control


def test_predict_counts_on_both_front_ends(runs, tmp_path, capsys):
    from rnnimg import load_pretrained

    model = load_pretrained(runs / "pred")
    c = model.config
    clip = torch.rand(c.context + 2, c.channels, c.frame_size, c.frame_size)
    with pytest.raises(InputError, match="leave samples at 1"):
        predict_futures(model, clip[:c.context], 2, samples=2)
    np.save(tmp_path / "clip.npy", (clip[:, 0].numpy() * 255).astype(np.uint8))
    argv = ["predict", str(runs / "pred"), str(tmp_path / "clip.npy"), "-o", str(tmp_path / "p.gif")]
    assert "leave -n/--samples at 1" in cli_error(capsys, [*argv, "-n", "2"])
    assert "--horizon must be >= 1, got 0" in cli_error(capsys, [*argv, "--horizon", "0"])
    assert "--seed must be in 0..4294967295" in cli_error(capsys, [*argv, "--seed", str(2**40)])
    served = core.load_served([str(runs / "pred")])[0]
    work = core.make_workdir()
    try:
        with pytest.raises(RnnImgError, match="leave futures at 1"):
            core.predict(served, clip, work, futures=2)
        with pytest.raises(RnnImgError, match=f"^the horizon must be in 1..{limits.PAGE_MAX_HORIZON}"):
            core.predict(served, clip, work, horizon=limits.PAGE_MAX_HORIZON + 1)
    finally:
        import shutil

        shutil.rmtree(work)


def test_a_clip_that_ends_early_is_padded_with_grey_the_same_way_everywhere():
    from rnnimg.tasks import pad_truth

    truth = torch.rand(2, 1, 4, 4)
    like = torch.zeros(1, 4, 4)
    padded = pad_truth(truth, 5, like)
    assert padded.shape == (5, 1, 4, 4) and torch.equal(padded[:2], truth)
    assert torch.all(padded[2:] == 0.5)
    assert torch.all(pad_truth(truth[:0], 3, like) == 0.5)  # no true frame: all grey
    assert torch.equal(pad_truth(truth, 1, like), truth[:1])
