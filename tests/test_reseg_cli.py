"""``rnnimg segment`` and the segment view, on a reseg saved untrained (what the CLI does with any
run folder does not depend on training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.data import load_dataset
from rnnimg.data.segmentation import read_mask
from rnnimg.tasks import class_legend, mask_colours, preview, segment_image


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = create_model("reseg", "debug", class_names=tuple(f"c{k}" for k in range(11)))
    model.save_pretrained(tmp_path / "run")
    return tmp_path / "run"


def test_segment_writes_an_index_png_of_the_input_size_and_an_overlay(run, tmp_path, capsys):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    out, overlay = tmp_path / "mask.png", tmp_path / "overlay.png"
    assert main(["segment", str(run), str(tmp_path / "in.png"), "-o", str(out),
                 "--overlay", str(overlay)]) == 0
    mask = read_mask(out)
    assert mask.shape == (40, 50) and Image.open(out).mode == "P"
    model = __import__("rnnimg").load_pretrained(run)
    expected = segment_image(model, torch.from_numpy(pixels)[None].float() / 255)
    assert torch.equal(mask.long(), expected)  # the file holds the labels themselves
    assert Image.open(overlay).size[0] == 2 * 50 and Image.open(overlay).size[1] > 2 * 40  # legend
    assert "labels" in capsys.readouterr().out
    # nothing the user has is overwritten; a grey model refuses a colour image; all exit 2
    assert main(["segment", str(run), str(tmp_path / "in.png"), "-o", str(out)]) == 2
    Image.fromarray(np.stack([pixels] * 3, -1)).save(tmp_path / "rgb.png")
    assert main(["segment", str(run), str(tmp_path / "rgb.png"), "-o", str(tmp_path / "m2.png")]) == 2
    assert "colour image, but the model takes grey" in capsys.readouterr().err
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert main(["segment", str(run), str(tmp_path / "bad.png"), "-o", str(tmp_path / "m3.png")]) == 2


def test_segment_refuses_a_model_of_another_task(tmp_path):
    create_model("rowrnn", "debug").save_pretrained(tmp_path / "gen")
    Image.new("L", (8, 8)).save(tmp_path / "in.png")
    assert main(["segment", str(tmp_path / "gen"), str(tmp_path / "in.png"), "-o",
                 str(tmp_path / "m.png")]) == 2


def test_segment_view_and_legend(run):
    model = __import__("rnnimg").load_pretrained(run)
    data = load_dataset("mnist-scenes", "test", test_scenes=4, **model.dataset_options())
    pictures = preview(model, default_collate([data[i] for i in range(4)]))
    grid = pictures["segmentation.png"]
    assert grid.shape[0] == 3 and grid.min() >= 0 and grid.max() <= 1
    # palette: class 0 black, distinct colours for the 11 classes, 255 its own colour
    colours = mask_colours(torch.tensor([list(range(11)) + [255]]))[:, 0].T
    assert colours[0].sum() == 0 and len({tuple(c.tolist()) for c in colours}) == 12
    legend = class_legend(model.class_names, range(11), width=120)
    assert legend.shape[0] == 3 and legend.shape[2] == 120 and legend.shape[1] > 14  # wrapped


def test_evaluate_json_is_strict_json_with_absent_classes_as_null(capsys):
    """A class absent from the split has no IoU; --json writes null there (NaN is not JSON)."""
    import json

    from rnnimg.cli.train_cmds import _json_safe

    result = {"metrics": {"miou": 0.5, "iou_per_class": [0.25, float("nan"), 0.75]}}
    text = json.dumps(_json_safe(result), allow_nan=False)
    assert json.loads(text)["metrics"]["iou_per_class"] == [0.25, None, 0.75]
