"""The shipped digit judge: small, accurate on held-out digits, and a match score that rewards the
right digit in the right place and nothing else."""

from __future__ import annotations

from importlib import resources

import pytest
import torch

from rnnimg import create_model
from rnnimg.data import load_dataset
from rnnimg.errors import RnnImgError
from rnnimg.judge import WEIGHTS, DigitJudge, load_digit_judge, match_statistics, mnist_5k_test_accuracy
from rnnimg.judge.cli import main as judge_main


class Lookup:
    """A stand-in generator that returns a prepared image for each request."""

    device = torch.device("cpu")

    def __init__(self, images):
        self.images = images

    def sample(self, n, *, label=None, text=None, generator=None):
        assert n == len(self.images)
        return self.images


def test_shipped_weights_are_small_safetensors_and_judge_held_out_digits_well():
    raw = resources.files("rnnimg.data.assets").joinpath(WEIGHTS).read_bytes()
    assert WEIGHTS.endswith(".safetensors") and len(raw) < 200_000
    assert b"\x80\x04" not in raw[:2] and b"torch._utils" not in raw  # no pickle stream
    # the documented figure (docs/draw.md, docs/benchmarks.md): 492 of the 500 test digits
    assert abs(mnist_5k_test_accuracy(load_digit_judge()) - 0.984) <= 0.01
    test = load_dataset("mnist-5k", "test")
    batch = torch.utils.data.default_collate([test[i] for i in range(len(test))])
    judge = load_digit_judge()
    assert (judge.classify(batch["image"]) == batch["label"]).float().mean() > 0.97
    binary = load_dataset("mnist-5k", "test", binarize="fixed")
    images = torch.stack([binary[i]["image"] for i in range(len(binary))])
    assert (judge.classify(images) == batch["label"]).float().mean() > 0.95


def test_label_match_counts_right_digits_only():
    test = load_dataset("mnist-5k", "test")
    batch = torch.utils.data.default_collate([test[i] for i in range(200)])
    judge = load_digit_judge()
    right = match_statistics(Lookup(batch["image"]), batch, judge)
    wrong = match_statistics(Lookup(batch["image"]), {"label": (batch["label"] + 1) % 10}, judge)
    assert float(right["judged"]) == 200
    assert float(right["match"]) / 200 > 0.95 and float(wrong["match"]) / 200 < 0.05


def test_caption_match_needs_the_right_digit_in_the_right_place():
    data = load_dataset("mnist-captions", "test", test_size=200)
    batch = torch.utils.data.default_collate([data[i] for i in range(200)])
    judge = load_digit_judge()
    right = match_statistics(Lookup(batch["image"]), batch, judge)
    mirrored = match_statistics(Lookup(batch["image"].flip(-1).flip(-2)), batch, judge)
    centre = (batch["places"] == 4).any(1) | (batch["places"] < 0).all(1)
    assert float(right["match"]) / 200 > 0.9
    # the point-mirrored image keeps the digits (upside down) but moves every off-centre one
    assert float(mirrored["match"]) / 200 < 0.15 + float(centre.float().mean())
    assert float(right["place_match"]) >= 196  # a thin 1 beside an 8 can hold < 1/4 of the ink
    # place_match ignores which digit is where: a pair mirrored onto itself (a line through the
    # centre) still has ink in both places, a single digit only at the centre
    symmetric = sum({8 - p for p in ps if p >= 0} == {p for p in ps if p >= 0}
                    for ps in batch["places"].tolist())
    assert abs(float(mirrored["place_match"]) - symmetric) <= 4
    blobs = torch.zeros_like(batch["image"])  # a plain square in each named cell: placed, no digit
    for i, places in enumerate(batch["places"].tolist()):
        for p in places:
            if p >= 0:
                y, x = (0, 16, 32)[p // 3], (0, 16, 32)[p % 3]
                blobs[i, 0, y + 8:y + 20, x + 8:x + 20] = 1
    placed = match_statistics(Lookup(blobs), batch, judge)
    assert float(placed["place_match"]) == 200


def test_draw_reports_the_condition_match_and_refuses_it_without_a_condition():
    torch.manual_seed(0)
    model = create_model("draw", "debug", num_classes=10).eval()
    test = load_dataset("mnist-5k", "test", binarize="fixed")
    batch = torch.utils.data.default_collate([test[i] for i in range(8)])
    stats = model.evaluation_statistics(batch, judge=True, generator=torch.Generator().manual_seed(0))
    share = model.reduce_statistics(stats)["condition_match"]
    assert 0 <= share <= 1 and float(stats["judged"]) == 8
    with pytest.raises(RnnImgError, match="conditional"):
        create_model("draw", "debug").evaluation_statistics(batch, judge=True)


def test_draw_condition_match_samples_and_judges_under_the_batchs_own_labels(monkeypatch):
    """A perfect class-conditional sampler (it returns held-out digits of the label it is asked
    for) scores ~1 only if DRAW asks for, and judges against, each item's own label."""
    test = load_dataset("mnist-5k", "test", binarize="fixed")
    pool = torch.utils.data.default_collate([test[i] for i in range(len(test))])
    by_label = {d: pool["image"][pool["label"] == d] for d in range(10)}
    anyone = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))  # any digits
    torch.manual_seed(0)
    model = create_model("draw", "debug", num_classes=10).eval()
    asked = []

    def perfect(n, *, label=None, text=None, temperature=1.0, generator=None):
        asked.append(label)
        if label is None:
            return pool["image"][anyone[:n]]
        return torch.stack([by_label[int(d)][k % len(by_label[int(d)])] for k, d in enumerate(label)])

    monkeypatch.setattr(model, "sample", perfect)
    eval_set = load_dataset("mnist-5k", "train", binarize="fixed")
    batch = torch.utils.data.default_collate([eval_set[i] for i in range(0, len(eval_set), 100)])
    assert len(batch["label"].unique()) == 10  # mnist-5k is sorted by label
    stats = model.evaluation_statistics(batch, judge=True, generator=torch.Generator().manual_seed(0))
    assert len(asked) == 1 and asked[0] is not None and torch.equal(asked[0], batch["label"])
    assert model.reduce_statistics(stats)["condition_match"] > 0.9
    # labels that do not name the batch's images: the samples are judged, not the batch's images
    shifted = dict(batch, label=(batch["label"] + 3) % 10)
    stats = model.evaluation_statistics(shifted, judge=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(asked[1], shifted["label"])
    assert model.reduce_statistics(stats)["condition_match"] > 0.9
    # and the score has teeth: a sampler that ignores its label scores about chance
    monkeypatch.setattr(model, "sample", lambda n, **kw: pool["image"][anyone[:n]])
    stats = model.evaluation_statistics(batch, judge=True, generator=torch.Generator().manual_seed(0))
    assert model.reduce_statistics(stats)["condition_match"] < 0.3


def test_draw_judges_caption_batches_by_default():
    from rnnimg.data.mnist_captions import VOCABULARY

    torch.manual_seed(0)
    model = create_model("draw", "debug", image_size=60, vocabulary=VOCABULARY).eval()
    data = load_dataset("mnist-captions", "test", test_size=4, binarize="fixed")
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    assert float(model.evaluation_statistics(batch)["judged"]) == 4
    assert "judged" not in model.evaluation_statistics(batch, judge=False)
    assert "judged" not in model.evaluation_statistics({"text": batch["text"], "image": batch["image"]})


def shipped_bytes() -> bytes:
    return resources.files("rnnimg.data.assets").joinpath(WEIGHTS).read_bytes()


def test_training_writes_to_the_chosen_folder_never_into_the_package(tmp_path, monkeypatch, capsys):
    """``python -m rnnimg.judge --train --out DIR`` writes DIR/digit_judge.safetensors, which
    ``--weights`` and ``load_digit_judge(path=...)`` read back; the package's file stays as it is,
    and an existing file is kept without --overwrite. (Training itself is replaced by a fresh
    network: a real epoch costs ~20 s of CPU.)"""
    import rnnimg.judge.train as train

    torch.manual_seed(0)
    fresh = DigitJudge().eval()
    monkeypatch.setattr(train, "train_digit_judge", lambda epochs, seed: (fresh, 0.1))
    before = shipped_bytes()
    out = tmp_path / "judge"
    assert judge_main(["--train", "--out", str(out), "--epochs", "1"]) == 0
    assert shipped_bytes() == before
    written = out / WEIGHTS
    loaded = load_digit_judge(path=written)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), fresh.state_dict().values()))
    assert not torch.equal(loaded.head.weight, load_digit_judge().head.weight)
    assert judge_main(["--weights", str(written)]) == 0
    assert "mnist-5k test accuracy" in capsys.readouterr().out
    mtime = written.stat().st_mtime_ns
    assert judge_main(["--train", "--out", str(out)]) == 2  # kept without --overwrite
    assert "--overwrite" in capsys.readouterr().err and written.stat().st_mtime_ns == mtime
    assert judge_main(["--train"]) == 2 and "--out" in capsys.readouterr().err
    assert judge_main(["--train", "--out", str(out), "--overwrite"]) == 0


def test_judge_weights_that_are_not_a_judge_are_a_one_line_error(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(RnnImgError, match="cannot read"):
        load_digit_judge(path=tmp_path / "missing.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(RnnImgError, match="cannot read"):
        load_digit_judge(path=tmp_path / "junk.safetensors")
    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(RnnImgError, match="no digit judge"):
        load_digit_judge(path=tmp_path / "other.safetensors")
