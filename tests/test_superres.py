"""Super-resolution: ``recursr`` (recursive, shared weights) and its baseline ``espcn``: outputs
``scale`` times the input, every recursive step inspectable, bicubic as the floor (PIL's kernel),
tiled equal to whole, the CLI writes the enlarged image, evaluation reports Y-channel scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import default_collate

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.data import load_dataset
from rnnimg.errors import RnnImgError
from rnnimg.metrics import psnr_y_per_image
from rnnimg.models.translate.superres import bicubic_upscale


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("preset", ["debug", "photos-x4"])
def test_baseline_matches_the_recurrent_model_in_parameters(preset):
    a, b = create_model("recursr", preset), create_model("espcn", preset)
    assert abs(_params(b) / _params(a) - 1) < 0.1


def test_output_is_scale_times_the_input_and_every_step_is_an_image():
    torch.manual_seed(0)
    model = create_model("recursr", "debug", scale=3, image_size=18).eval()
    source = torch.rand(2, 1, 11, 7)
    steps = model.translate(source, return_steps=True)
    assert steps.shape == (2, model.config.steps, 1, 33, 21)
    assert torch.equal(steps[:, -1], model.translate(source))
    assert 0 <= float(steps.min()) and float(steps.max()) <= 1
    assert not torch.equal(steps[:, 0], steps[:, -1])  # the steps differ: the recursion acts


def test_bicubic_floor_is_pils_bicubic_upscale():
    photo = load_dataset("photos", "test")[1]["image"][:, :60, :90]  # coffee
    up = bicubic_upscale(photo[None], 4)[0]
    ours = (up * 255).round().byte().permute(1, 2, 0).numpy().astype(int)
    arr = (photo * 255).round().byte().permute(1, 2, 0).numpy()
    theirs = np.asarray(Image.fromarray(arr).resize((360, 240), Image.BICUBIC)).astype(int)
    # within a grey level (PIL rounds its first pass to 8 bits; the floor here stays unrounded)
    assert np.abs(ours - theirs).max() <= 1 and np.abs(ours - theirs).mean() < 0.1
    # torch's plain bicubic (a = -0.75) is another kernel: the test tells them apart
    plain = torch.nn.functional.interpolate(photo[None], scale_factor=4, mode="bicubic")[0].clamp(0, 1)
    assert np.abs((plain * 255).round().byte().permute(1, 2, 0).numpy().astype(int) - theirs).max() > 2


@pytest.mark.parametrize("name", ["recursr", "espcn"])
def test_tiled_super_resolution_equals_the_whole_image(name):
    torch.manual_seed(0)
    model = create_model(name, "debug").eval()
    with torch.no_grad():  # a residual far from bicubic, so seams would show
        (model.up if name == "recursr" else model.conv3).weight.mul_(30)
    source = torch.rand(1, 1, 45, 61, generator=torch.Generator().manual_seed(0))
    whole = model.translate(source)
    r = model.receptive_radius
    tiled = model.translate(source, tile=2 * r + 2 + 12, overlap=2 * r + 2)
    assert tiled.shape == whole.shape == (1, 1, 90, 122)
    assert (tiled - whole).abs().max() < 1e-4
    hard = model.translate(source, tile=16, overlap=0)  # no margin: seams
    assert (hard - whole).abs().max() > 1e-2


def test_training_beats_bicubic_and_evaluation_reports_y_scores():
    torch.manual_seed(0)
    model = create_model("recursr", "debug", image_size=24)
    data = load_dataset("photos", "train", image_size=24, channels=1, corrupt="downscale", scale=2)
    model.check_dataset(data, "photos")
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(80):
        batch = default_collate([data[i] for i in range(8)])
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    batch = default_collate([data[i] for i in range(16)])
    stats = model.evaluation_statistics(batch)
    result = model.reduce_statistics(stats)
    bicubic = psnr_y_per_image(bicubic_upscale(batch["source"], 2), batch["target"], 2).mean()
    assert result["input_psnr_y"] == pytest.approx(float(bicubic), abs=1e-9)
    assert result["psnr_y_gain"] > 0.1  # 80 tiny steps already beat bicubic (0.17 dB measured)
    assert {"ssim_y", "input_ssim_y"} <= set(result)
    # a x4 model refuses x2 data in one line
    with pytest.raises(RnnImgError, match="writes outputs 4x its input"):
        create_model("recursr", "debug", scale=4).check_dataset(data, "photos")


def test_cli_translate_writes_the_enlarged_image(tmp_path, capsys):
    torch.manual_seed(0)
    create_model("espcn", "debug").save_pretrained(tmp_path / "run")
    pixels = np.random.default_rng(0).integers(0, 256, (30, 41), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "small.png")
    assert main(["translate", str(tmp_path / "run"), str(tmp_path / "small.png"), "-o",
                 str(tmp_path / "big.png"), "--steps", str(tmp_path / "strip.png")]) == 0
    assert Image.open(tmp_path / "big.png").size == (82, 60)
    assert 60 * 3 <= Image.open(tmp_path / "strip.png").size[1] < 60 * 3 + 20  # rows at the output size


def test_card_pictures_stack_whole_test_photos_of_different_sizes():
    from rnnimg.cards import _common_size

    data = load_dataset("photos", "test", corrupt="downscale", scale=4)
    items = _common_size([data[i] for i in range(5)])
    assert {tuple(it["target"].shape) for it in items} == {(3, 300, 384)}  # coins: 303 -> 300
    assert {tuple(it["source"].shape) for it in items} == {(3, 75, 96)}  # still a x4 pair
    assert torch.equal(items[0]["target"], data[0]["target"][:, :300, :384])


def test_collate_by_size_makes_one_batch_per_size_in_order():
    from rnnimg.train.evaluate import collate_by_size

    items = [{"source": torch.full((1, h, w), float(i)), "target": torch.zeros(1, 2 * h, 2 * w)}
             for i, (h, w) in enumerate([(4, 6), (5, 5), (4, 6), (5, 5), (4, 6)])]
    batches = collate_by_size(items)
    assert [tuple(b["source"].shape) for b in batches] == [(3, 1, 4, 6), (2, 1, 5, 5)]
    assert batches[0]["source"][:, 0, 0, 0].tolist() == [0, 2, 4]
    assert batches[1]["target"].shape == (2, 1, 10, 10)
    same = [{"image": torch.rand(1, 3, 3)} for _ in range(4)]  # one size: what default_collate makes
    (batch,) = collate_by_size(same)
    assert torch.equal(batch["image"], default_collate(same)["image"])


def test_evaluate_scores_whole_test_photos_of_different_sizes_without_batch_size_1(tmp_path):
    """The photos test split is five whole photos of four sizes: the default batch size scores
    them (one size at a time) and gives what batch size 1 gives."""
    from rnnimg.train.evaluate import evaluate

    torch.manual_seed(0)
    model = create_model("recursr", "debug", scale=4, in_channels=1, out_channels=1)
    options = {"corrupt": "downscale", "scale": 4, "channels": 1}
    model.save_pretrained(tmp_path / "run", extra={"data": {"name": "photos", "options": options}})
    sizes = {tuple(item["target"].shape) for item in load_dataset("photos", "test", **options)}
    assert len(sizes) > 1  # the point of the test
    whole = evaluate(tmp_path / "run", progress=False)
    one = evaluate(tmp_path / "run", batch_size=1, progress=False)
    assert whole["num_items"] == one["num_items"] == 5
    for key in ("psnr_y", "ssim_y", "input_psnr_y"):
        assert whole["metrics"][key] == pytest.approx(one["metrics"][key], rel=1e-6), key
    # and what today's code raised on: the default collate cannot stack the split
    data = load_dataset("photos", "test", **options)
    with pytest.raises(RuntimeError):
        default_collate([data[i] for i in range(len(data))])


def test_evaluate_help_explains_the_super_resolution_and_low_res_scores(capsys):
    """`rnnimg evaluate --help` says what a super-resolution run reports (psnr_y / ssim_y, shaved,
    against bicubic's input_*) and what a low-res conditional generator's NLL is given."""
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "psnr_y" in text and "input_psnr_y" in text and "shaved" in text and "bicubic" in text
    assert "low_res_scale" in text and "given its downscale" in text
