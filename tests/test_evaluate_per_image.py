"""``rnnimg evaluate`` on a super-resolution run lists each test image's PSNR-Y and SSIM-Y (the
protocol: ``scale`` pixels shaved from each border) for the model and for bicubic, and their means
are the summary's averages (issue 19, item 2: "per test image and averaged")."""

from __future__ import annotations

import importlib
import json
import re

import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rnnimg.cli import main
from rnnimg.data import load_dataset
from rnnimg.models import create_model
from rnnimg.models.translate.superres import bicubic_upscale
from rnnimg.tasks import get_task

OPTIONS = {"corrupt": "downscale", "scale": 4}


def _skimage_y_scores(pred: torch.Tensor, target: torch.Tensor, shave: int) -> tuple[float, float]:
    """PSNR and SSIM of one (3, H, W) image on scikit-image's Y (16..235), shaved."""
    p, t = (x.permute(1, 2, 0).double().numpy() for x in (pred, target))
    yp, yt = rgb2ycbcr(p)[..., 0], rgb2ycbcr(t)[..., 0]
    yp, yt = yp[shave:-shave, shave:-shave], yt[shave:-shave, shave:-shave]
    return (peak_signal_noise_ratio(yt, yp, data_range=255),
            structural_similarity(yt, yp, data_range=255, gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False))


def _table_rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("per test image"))
    return {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line.strip())
                                              for line in lines[start + 3:] if line.strip())}


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("espcn", "debug", scale=4, in_channels=3, out_channels=3)
    run = tmp_path_factory.mktemp("sr") / "run"
    model.save_pretrained(run, extra={"data": {"name": "photos", "options": OPTIONS}})
    return run, model.eval()


def test_evaluate_prints_each_test_photo_and_the_rows_average_to_the_summary(sr_run, capsys):
    run, model = sr_run
    # three photos in one loader batch, of two sizes: collate_by_size scores astronaut and camera
    # (512x512) together, then coffee (400x600); the rows must still land on the right photos
    args = ["evaluate", str(run), "--max-batches", "1", "--batch-size", "3"]
    assert main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = result["metrics"]
    assert result["item_names"] == ["astronaut", "coffee", "camera"]
    for key in ("psnr_y", "input_psnr_y", "ssim_y", "input_ssim_y"):
        each = metrics[f"{key}_per_image"]
        assert len(each) == 3
        assert sum(each) / 3 == pytest.approx(metrics[key], rel=1e-12), key  # averages to the summary
    # coffee's row is scikit-image's computation on coffee's own arrays
    item = load_dataset("photos", "test", **OPTIONS)[1]
    source, target = item["source"][None], item["target"]
    with torch.no_grad():
        output, bicubic = model.translate(source)[0], bicubic_upscale(source, 4)[0]
    psnr, ssim = _skimage_y_scores(output, target, 4)
    bic_psnr, bic_ssim = _skimage_y_scores(bicubic, target, 4)
    assert metrics["psnr_y_per_image"][1] == pytest.approx(psnr, abs=1e-6)
    assert metrics["ssim_y_per_image"][1] == pytest.approx(ssim, abs=1e-5)
    assert metrics["input_psnr_y_per_image"][1] == pytest.approx(bic_psnr, abs=1e-6)
    assert metrics["input_ssim_y_per_image"][1] == pytest.approx(bic_ssim, abs=1e-5)
    assert len(set(metrics["psnr_y_per_image"])) == 3  # three different photos, three scores

    assert main(args) == 0
    out = capsys.readouterr().out
    rows = _table_rows(out)
    assert list(rows) == ["astronaut", "coffee", "camera", "mean"]
    assert rows["coffee"] == [f"{psnr:.2f}", f"{bic_psnr:.2f}", f"{psnr - bic_psnr:+.2f}", f"{ssim:.4f}",
                              f"{bic_ssim:.4f}"]
    assert rows["mean"][0] == f"{metrics['psnr_y']:.2f}" and rows["mean"][3] == f"{metrics['ssim_y']:.4f}"
    summary = out.split("\n\n")[0]
    assert re.search(r"^psnr_y\s", summary, re.M) and "_per_image" not in summary  # means above, rows below


def test_a_large_split_and_other_translators_keep_the_plain_summary(sr_run, monkeypatch):
    evaluate_module = importlib.import_module("rnnimg.train.evaluate")  # the package exports the function

    run, _ = sr_run
    monkeypatch.setattr(evaluate_module, "MAX_ITEM_SCORES", 1)  # more items scored than listed
    result = evaluate_module.evaluate(run, batch_size=2, max_batches=1, progress=False)
    assert "psnr_y" in result["metrics"] and "item_names" not in result
    assert not any(k.endswith("_per_image") for k in result["metrics"])
    # a denoiser (no Y scores): no table
    assert get_task("translate").tables({"psnr": 20.0, "input_psnr": 18.0, "psnr_per_step": [20.0]}, ()) == []


def test_rows_are_numbered_where_the_data_name_no_images():
    metrics = {"psnr_y_per_image": [30.0, 20.0], "input_psnr_y_per_image": [29.0, 21.0],
               "ssim_y_per_image": [0.9, float("nan")], "input_ssim_y_per_image": [0.8, float("nan")]}
    (table,) = get_task("translate").tables(metrics, ())
    assert [r[0] for r in table.rows] == ["0", "1", "mean"]
    assert table.rows[1] == ("1", "20.00", "21.00", "-1.00", "-", "-")
    assert table.rows[2] == ("mean", "25.00", "25.00", "+0.00", "0.9000", "0.8000")  # NaN left out
