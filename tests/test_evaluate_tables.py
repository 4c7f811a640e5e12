"""``rnnimg evaluate`` prints a task's tables (``Task.tables``): a reconstruction model's IoU per
number of views, per class and the view-order change; a voxel generator's bits per voxel per class."""

from __future__ import annotations

import math
import re

import pytest

from rnnimg.cli import main
from rnnimg.cli.train_cmds import _print_metrics
from rnnimg.data.shapes3d import SHAPE3D_CLASSES
from rnnimg.models import create_model
from rnnimg.tasks import get_task
from rnnimg.tasks.registry import Table


def rows_of(out: str, title: str) -> dict[str, list[str]]:
    """The rows of the table under ``title`` in ``out``: first cell -> the other cells."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    rows = {}
    for line in lines[start + 3:]:  # title, header, rule
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows


def header_of(out: str, title: str) -> list[str]:
    lines = out.splitlines()
    return re.split(r"\s{2,}", lines[next(i for i, line in enumerate(lines) if line.startswith(title)) + 1])


def test_table_lines_align_columns():
    table = Table("scores", ("class", "IoU"), (("chair", "0.5000"), ("mug", "-")))
    lines = table.lines()
    assert lines[0] == "scores:" and lines[1] == "class     IoU" and lines[2] == "-----  ------"
    assert lines[3] == "chair  0.5000" and lines[4] == "mug         -"


def test_reconstruct_tables_and_the_summary_leaves_their_metrics_out(capsys):
    metrics = {"iou": 0.6, "iou_per_class": [0.5, math.nan, 0.7], "iou_per_views": [0.5, 0.55, 0.6],
               "order_iou_change": 0.012, "order_prob_change": 0.03, "loss": 0.1}
    result = {"model": "r2n2", "metrics": metrics}
    _print_metrics(result, ("chair", "table", "lamp"))
    out = capsys.readouterr().out
    summary = out.split("\n\n")[0]
    assert "iou " in summary and "loss" in summary and "iou_per_class" not in summary
    assert "order_iou_change" not in summary
    views = rows_of(out, "IoU by number of views")
    assert views["1"] == ["0.5000"] and views["3"] == ["0.6000", "+0.1000"]
    classes = rows_of(out, "IoU per class")
    assert classes["chair"] == ["0.5000"] and classes["table"] == ["-"] and classes["lamp"] == ["0.7000"]
    assert classes["mean over classes"] == ["0.6000"]  # the absent class left out of the mean
    order = rows_of(out, "view order")
    assert order["IoU"] == ["0.0120"] and order["occupancy"] == ["0.0300"]


def test_an_image_generator_keeps_the_plain_summary(capsys):
    assert get_task("generate").tables({"nll_nats": 80.0, "bits_per_dim": 0.15}, ()) == []
    _print_metrics({"model": "pixelrnn", "metrics": {"nll_nats": 80.0, "bits_per_dim": 0.15}})
    out = capsys.readouterr().out
    assert "bits_per_dim" in out and "\n\n" not in out


@pytest.mark.parametrize("model", ["r2n2", "voxscan"])
def test_cli_evaluate_prints_the_tables_with_class_names(tmp_path, capsys, model):
    if model == "r2n2":  # small: 32 px views, a 16^3 grid
        net = create_model("r2n2", "debug", view_size=32, voxel_size=16, decoder_widths=(8, 4),
                           class_names=SHAPE3D_CLASSES)
        title, column = "IoU per class", "IoU"
    else:
        net = create_model("voxscan", "debug", num_classes=len(SHAPE3D_CLASSES), class_names=SHAPE3D_CLASSES)
        title, column = "bits per voxel per class", "bits/voxel"
    net.save_pretrained(tmp_path / "run")
    assert main(["evaluate", str(tmp_path / "run"), "--data", "shapes3d", "--max-batches", "1",
                 "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    classes = rows_of(out, title)
    assert set(classes) == {*SHAPE3D_CLASSES, "mean over classes"}
    assert header_of(out, title) == ["class", column]
    if model == "r2n2":
        assert list(rows_of(out, "IoU by number of views")) == ["1", "2", "3", "4", "5"]
        assert set(rows_of(out, "view order")) == {"IoU", "occupancy"}
