"""DRAW through the task layer and the CLI: the drawing animation (write window on every frame),
--text and --animate, and their one-line errors that leave existing files alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.data.mnist_captions import VOCABULARY
from rnnimg.tasks import drawing_animation, outline_boxes, preview


def tiny_draw(**overrides):
    torch.manual_seed(0)
    values = dict(image_size=16, steps=3, enc_hidden=16, dec_hidden=16, z_size=4)
    return create_model("draw", "debug", **{**values, **overrides}).eval()


def gif_frames(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def is_red(frame):
    return (frame[..., 0] > 200) & (frame[..., 1] < 80) & (frame[..., 2] < 80)


def test_outline_boxes_draws_the_rectangle_edges_only():
    images = torch.zeros(1, 3, 10, 10)
    out = outline_boxes(images, torch.tensor([[2.0, 3.0, 6.0, 8.0]]))
    red = (out[0, 0] == 1) & (out[0, 1] < 0.2)
    expected = torch.zeros(10, 10, dtype=torch.bool)
    expected[3, 2:7] = expected[8, 2:7] = expected[3:9, 2] = expected[3:9, 6] = True
    assert torch.equal(red, expected)
    huge = outline_boxes(images, torch.tensor([[-50.0, -50.0, 80.0, 80.0]]))  # clipped to the border
    assert (huge[0, 0, 0] == 1).all() and (huge[0, 0, 4, 1:9] == 0).all()


def test_drawing_animation_has_a_frame_per_step_with_the_write_window():
    model = tiny_draw()
    frames = drawing_animation(model, 4, generator=torch.Generator().manual_seed(0), nrow=2, hold=2)
    assert frames.shape[0] == 3 + 2 and frames.shape[1] == 3
    _, steps = model.sample(4, generator=torch.Generator().manual_seed(0), return_steps=True)
    for t in range(3):  # every step frame shows some of the window colour, the held frames none
        assert ((frames[t, 0] == 1) & (frames[t, 1] < 0.2)).any()
    assert not ((frames[-1, 0] == 1) & (frames[-1, 1] < 0.2) & (frames[-1, 2] < 0.2)).any()


def test_preview_of_a_caption_model_uses_the_batch_captions_and_animates():
    from rnnimg.data import load_dataset

    model = tiny_draw(image_size=60, vocabulary=VOCABULARY)
    data = load_dataset("mnist-captions", "test", test_size=8, **model.dataset_options())
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    pictures = preview(model, batch, torch.Generator().manual_seed(0))
    assert set(pictures) == {"samples.png", "drawing.gif"}
    assert pictures["drawing.gif"].dim() == 4


def test_cli_sample_text_and_animate(tmp_path, capsys):
    model = tiny_draw(image_size=60, vocabulary=VOCABULARY)
    run = tmp_path / "run"
    model.save_pretrained(run)
    grid, gif = tmp_path / "grid.png", tmp_path / "drawing.gif"
    code = main(["sample", str(run), "-n", "4", "-o", str(grid), "--text",
                 "the digit 7 is at the top left", "--animate", str(gif), "--nrow", "2"])
    assert code == 0 and grid.is_file() and gif.is_file()
    frames = gif_frames(gif)
    assert len(frames) == 3 + 1  # the GIF writer merges the 4 identical held frames into one
    assert not is_red(frames[-1]).any()
    assert all(is_red(f).any() for f in frames[:3])
    # an unknown word: one line listing the vocabulary, exit 2, nothing written
    other = tmp_path / "other.png"
    code = main(["sample", str(run), "-o", str(other), "--text", "the digit 7 is at the zenith"])
    err = capsys.readouterr().err
    assert code == 2 and "'zenith'" in err and "knows only: 0 1 2" in err and not other.exists()
    assert main(["sample", str(run), "-o", str(other), "--text", ""]) == 2 and not other.exists()
    # existing files are not overwritten
    before = gif.read_bytes()
    assert main(["sample", str(run), "-o", str(other), "--text", "a 3 is above a 5",
                 "--animate", str(gif)]) == 2
    assert gif.read_bytes() == before and not other.exists()


@pytest.mark.parametrize("model_name", ["rowrnn"])
def test_cli_animate_refuses_a_model_without_steps(tmp_path, capsys, model_name):
    torch.manual_seed(0)
    run = tmp_path / "run"
    create_model(model_name, "debug").save_pretrained(run)
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "-o", str(out), "--animate", str(tmp_path / "a.gif")]) == 2
    assert "does not draw in steps" in capsys.readouterr().err and not out.exists()


def test_cli_text_for_a_model_without_captions_and_label_out_of_range(tmp_path, capsys):
    run = tmp_path / "run"
    tiny_draw(num_classes=10).save_pretrained(run)
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "-o", str(out), "--text", "a 3 is above a 5"]) == 2
    assert "without captions" in capsys.readouterr().err
    assert main(["sample", str(run), "-o", str(out), "--label", "10"]) == 2
    assert "outside 0..9" in capsys.readouterr().err and not out.exists()
    assert main(["sample", str(run), "-o", str(out), "--label", "3", "-n", "4"]) == 0


def test_train_and_evaluate_a_draw_run_end_to_end(tmp_path, capsys):
    """The trainer tells the model its step (KL warm-up) and `rnnimg evaluate` prints the bound,
    the KL per step and the binarization."""
    import csv

    from rnnimg.train import TrainSettings, train

    run = train(TrainSettings("draw", data="mnist-5k", preset="debug", max_steps=4, batch_size=8,
                              overrides={"kl_warmup_steps": 4}, out=str(tmp_path / "draw"),
                              progress=False, val_fraction=0, sample_every_n_steps=0,
                              log_every_n_steps=1, accelerator="cpu"))
    with open(run / "metrics.csv") as f:
        weights = [float(r["train/kl_weight"]) for r in csv.DictReader(f) if r.get("train/kl_weight")]
    assert weights == [0.0, 0.25, 0.5, 0.75]
    assert main(["evaluate", str(run), "--max-batches", "1", "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "binarization: fixed" in out and "nll_bound_nats" in out and "kl_nats_per_step" in out
