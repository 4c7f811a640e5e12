"""Data of the translate task: the corrupt= wrapper, the generated shapes, pairs:A,B; the
translate CLI, the translate view and evaluate on a translator."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg import create_model
from rnnimg.cli import main
from rnnimg.data import dataset_task, load_dataset
from rnnimg.data.corrupt import corrupt_image
from rnnimg.errors import RnnImgError

NOISE_SUM = ("import torch; from rnnimg.data import load_dataset; "
             "d = load_dataset('mnist-5k', 'test', corrupt='denoise', sigma=25); "
             "print(repr(sum(float(d[i]['source'].double().sum()) for i in range(5))))")


def test_test_split_noise_is_identical_across_runs():
    """The test split's noisy inputs are the same in a fresh process (another run), after the
    global RNG moved, and on every access; they really are noisy."""
    torch.manual_seed(123)
    here = load_dataset("mnist-5k", "test", corrupt="denoise", sigma=25)
    first = here[0]["source"].clone()
    torch.rand(1000)
    assert torch.equal(here[0]["source"], first)
    assert torch.equal(load_dataset("mnist-5k", "test", corrupt="denoise", sigma=25)[0]["source"], first)
    assert not torch.equal(first, here[0]["target"])
    ours = sum(float(here[i]["source"].double().sum()) for i in range(5))
    theirs = subprocess.run([sys.executable, "-c", NOISE_SUM], capture_output=True, text=True,
                            check=True).stdout
    assert float(theirs) == ours
    other_seed = load_dataset("mnist-5k", "test", corrupt="denoise", sigma=25, corrupt_seed=1)
    assert not torch.equal(other_seed[0]["source"], first)


def test_train_split_noise_is_fresh_at_every_access():
    train = load_dataset("mnist-5k", "train", corrupt="denoise", sigma=25)
    a, b = train[0], train[0]
    assert torch.equal(a["target"], b["target"]) and not torch.equal(a["source"], b["source"])


def test_gaussian_noise_has_sigma_on_the_255_scale():
    grey = torch.full((1, 128, 128), 0.5)  # far from 0 and 1: the clipping does not bite
    noisy = corrupt_image(grey, "denoise", torch.Generator().manual_seed(0), sigma=25)
    assert (noisy - grey).std().item() == pytest.approx(25 / 255, rel=0.03)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_saltpepper_inpaint_and_colorize():
    gen = torch.Generator().manual_seed(0)
    image = torch.full((3, 64, 64), 0.3)
    sp = corrupt_image(image, "saltpepper", gen, amount=0.2)
    hit = (sp != 0.3).any(0)
    assert hit.float().mean().item() == pytest.approx(0.2, abs=0.02)
    assert set(sp[:, hit].unique().tolist()) <= {0.0, 1.0}
    assert (sp[:, hit] == sp[0:1, hit]).all()  # all channels of a pixel together
    holes = corrupt_image(image, "inpaint", gen, boxes=2)
    changed = (holes != image).any(0)
    assert changed.any() and (holes[:, changed] == 0.5).all()
    assert 16 * 16 <= changed.sum() <= 2 * 33 * 33
    colour = torch.rand(3, 8, 8, generator=gen)
    grey = corrupt_image(colour, "colorize", gen)
    expected = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    assert grey.shape == (1, 8, 8) and torch.allclose(grey[0], expected)


@pytest.mark.parametrize("options, match", [
    (dict(corrupt="denoise", sigma=-1), "sigma must be >= 0"),
    (dict(corrupt="blur"), "unknown corruption 'blur'"),
    (dict(corrupt="saltpepper", sigma=25), "sigma applies to corrupt=denoise"),
    (dict(sigma=25), "need.*corrupt=KIND"),
    (dict(corrupt="denoise", sigma="loud"), "sigma must be a number"),
])
def test_bad_corruption_options_are_one_line_errors(options, match):
    with pytest.raises(RnnImgError, match=match) as err:
        load_dataset("mnist-5k", "test", **options)
    assert "\n" not in str(err.value)


def test_colorize_needs_colour_targets():
    with pytest.raises(RnnImgError, match="colorize needs colour"):
        load_dataset("mnist-5k", "test", corrupt="colorize")[0]
    item = load_dataset("shapes", "test", test_size=3, corrupt="colorize")[0]
    assert item["source"].shape == (1, 32, 32) and item["target"].shape == (3, 32, 32)


def test_dataset_task_follows_the_corrupt_option():
    assert dataset_task("mnist-5k") == "generate"
    assert dataset_task("mnist-5k", {"corrupt": "denoise"}) == "translate"
    assert dataset_task("pairs:a,b") == "translate"


def test_shapes_are_colourful_deterministic_and_split():
    a = load_dataset("shapes", "test", test_size=6)
    b = load_dataset("shapes", "test", test_size=6)
    train = load_dataset("shapes", "train", train_size=6)
    assert torch.equal(a.images, b.images) and a.images.shape == (6, 3, 32, 32)
    assert not torch.equal(a.images, train.images)
    image = a[0]["image"]
    assert (image[0] - image[1]).abs().max() > 0.1  # colour, not grey
    assert set(a.labels.tolist()) <= {0, 1, 2}
    assert len(torch.unique(a.images.flatten(1), dim=0)) == 6


# --- pairs:A,B ------------------------------------------------------------------------------


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


@pytest.fixture
def pair_folders(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(12):
        clean = rng.integers(0, 256, (8, 10, 3), dtype=np.uint8)
        _write(tmp_path / "B", f"im{i:02d}.png", clean)
        _write(tmp_path / "A", f"im{i:02d}.png", (clean // 2).astype(np.uint8))  # A = B / 2
    return tmp_path / "A", tmp_path / "B"


def test_pairs_match_by_stem_and_split_every_tenth(pair_folders):
    a, b = pair_folders
    train = load_dataset(f"pairs:{a},{b}", "train")
    test = load_dataset(f"pairs:{a},{b}", "test")
    assert len(train) == 11 and len(test) == 1 and test.stems == ["im09"]
    for item in (train[0], train[5], test[0]):
        assert item["source"].shape == item["target"].shape == (3, 8, 10)
        expected = torch.floor(item["target"] * 255 / 2) / 255
        assert torch.allclose(item["source"], expected, atol=1e-6)
    grey = load_dataset(f"pairs:{a},{b}", "train", source_channels=1, image_size=6)
    assert grey[0]["source"].shape == (1, 6, 6) and grey[0]["target"].shape == (3, 6, 6)


def test_pairs_with_mismatched_stems_list_the_first_few(pair_folders):
    a, b = pair_folders
    for i in range(7):
        (b / f"im{i:02d}.png").rename(b / f"other{i}.png")
    with pytest.raises(RnnImgError, match=r"7 input\(s\) without a target in .*B: im00, im01, im02, "
                                          r"im03, im04 \(and 2 more\)") as err:
        load_dataset(f"pairs:{a},{b}", "train")
    assert "other0" in str(err.value) and "\n" not in str(err.value)


def test_two_images_with_one_stem_and_too_few_for_a_test_split_are_one_line(pair_folders, tmp_path):
    a, b = pair_folders
    _write(a, "im03.jpg", np.zeros((8, 10, 3), dtype=np.uint8))
    with pytest.raises(RnnImgError, match=r"im03.jpg and im03.png have the same stem 'im03'|"
                                          r"im03.png and im03.jpg have the same stem 'im03'"):
        load_dataset(f"pairs:{a},{b}", "train")
    for i in range(3):
        _write(tmp_path / "C", f"{i}.png", np.zeros((4, 4), dtype=np.uint8))
        _write(tmp_path / "D", f"{i}.png", np.zeros((4, 4), dtype=np.uint8))
    spec = f"pairs:{tmp_path / 'C'},{tmp_path / 'D'}"
    assert len(load_dataset(spec, "train")) == 3  # under 10 pairs, train is all of them
    with pytest.raises(RnnImgError, match="has 3 pairs, too few for a test split"):
        load_dataset(spec, "test")


def test_pairs_of_different_sizes_are_one_line(pair_folders):
    a, b = pair_folders
    _write(a, "im03.png", np.zeros((9, 10, 3), dtype=np.uint8))
    with pytest.raises(RnnImgError, match=r"pair 'im03'.*10x9 .*10x8"):
        load_dataset(f"pairs:{a},{b}", "train")


# --- the task layer, the CLI and evaluate on a translator -------------------------------------


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("translator", "debug").eval()
    run = tmp_path_factory.mktemp("run")
    model.save_pretrained(run, extra={"data": {"name": "mnist-5k", "options": {
        "image_size": 16, "channels": 1, "corrupt": "denoise", "sigma": 25}}})
    return run, model


def test_translate_view_is_a_before_steps_after_strip(debug_run):
    from rnnimg.tasks import preview

    _, model = debug_run
    batch = model.example_batch(3, torch.Generator().manual_seed(0))
    pictures = preview(model, batch)
    strip = pictures["translation.png"]
    k = model.config.steps
    # 3 rows of (input, K steps, target), 16-pixel images with 2-pixel gaps
    assert strip.shape == (3, 3 * 18 + 2, (k + 2) * 18 + 2)
    steps = model.translate(batch["source"], return_steps=True)
    first_row_last_step = strip[:, 2:18, 2 + k * 18:18 + k * 18]
    assert torch.allclose(first_row_last_step, steps[0, -1].expand(3, -1, -1))


def test_translate_cli_writes_the_output_and_the_steps(debug_run, tmp_path, capsys):
    run, model = debug_run
    image = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    out, strip = tmp_path / "out.png", tmp_path / "steps.png"
    assert main(["translate", str(run), str(tmp_path / "in.png"), "-o", str(out), "--steps", str(strip),
                 "--scale", "1",
                 "--device", "cpu"]) == 0
    written = np.asarray(Image.open(out))
    expected = model.translate(torch.from_numpy(image).float().div(255).view(1, 1, 16, 16))[0, 0]
    assert np.abs(written.astype(float) - expected.numpy() * 255).max() <= 0.5 + 1e-4
    assert Image.open(strip).size == ((model.config.steps + 1) * 18 + 2, 20)
    assert main(["translate", str(run), str(tmp_path / "in.png"), "-o", str(out)]) == 2  # exists


def test_translate_cli_refuses_a_colour_input_for_a_grey_model(debug_run, tmp_path, capsys):
    run, _ = debug_run
    Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / "rgb.png")
    assert main(["translate", str(run), str(tmp_path / "rgb.png"), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert "colour image" in err and "grey input" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_evaluate_reports_psnr_and_ssim_of_output_and_input(debug_run, capsys):
    run, model = debug_run
    assert main(["evaluate", str(run), "--json", "--max-batches", "1", "--batch-size", "8",
                 "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    metrics = result["metrics"]
    data = load_dataset("mnist-5k", "test", image_size=16, channels=1, corrupt="denoise", sigma=25)
    batch = torch.utils.data.default_collate([data[i] for i in range(8)])
    direct = model.reduce_statistics(model.evaluation_statistics(batch))
    for key in ("psnr", "input_psnr", "ssim", "input_ssim", "psnr_gain"):
        assert metrics[key] == pytest.approx(direct[key], abs=1e-9)


def test_the_trainer_takes_a_corrupted_image_dataset_and_refuses_grey_for_colour(tmp_path):
    from rnnimg.models.checkpoint import load_pretrained
    from rnnimg.train import TrainSettings, train

    common = dict(data="mnist-5k", max_steps=2, batch_size=4, accelerator="cpu", progress=False,
                  val_batches=1, data_options={"corrupt": "denoise", "sigma": 25})
    run = train(TrainSettings(model="translator", preset="debug", out=str(tmp_path / "run"), **common))
    assert load_pretrained(run).name == "translator"
    # the data decide in_channels unless the user sets it: then a mismatch is one line
    with pytest.raises(RnnImgError, match="1-channel source images.*in_channels is 3"):
        train(TrainSettings(model="translator", preset="colour", out=str(tmp_path / "colour"),
                            overrides={"in_channels": 3},
                            data_options={**common.pop("data_options"), "channels": 1}, **common))
    assert not (tmp_path / "colour" / "model.safetensors").exists()


def test_validation_sees_the_same_noisy_inputs_every_time_whatever_the_run_seed():
    """Validation held out of the train split: its noise is drawn once per item from a fixed seed, so
    two validations (of one run, or of runs with other --seed values) see identical noisy inputs,
    while training items still get fresh noise."""
    from rnnimg.train import TrainSettings
    from rnnimg.train.data import build_datasets, make_loaders

    model = create_model("translator", "debug")
    options = {"corrupt": "denoise", "sigma": 25}

    def validation_batches(seed: int) -> list[dict]:
        settings = TrainSettings(model="translator", preset="debug", data="mnist-5k", seed=seed,
                                 data_options=options)
        train_set, val_set = build_datasets(settings, model)
        _, loader, _ = make_loaders(train_set, val_set, batch_size=32, seed=seed, num_workers=0)
        torch.manual_seed(seed)
        first = [b for _, b in zip(range(2), loader)]
        torch.rand(100)  # training draws in between
        again = [b for _, b in zip(range(2), loader)]
        for a, b in zip(first, again):
            assert torch.equal(a["source"], b["source"]) and torch.equal(a["target"], b["target"])
        return first

    seed0, seed1 = validation_batches(0), validation_batches(1)
    for a, b in zip(seed0, seed1):
        assert torch.equal(a["source"], b["source"])
        assert not torch.equal(a["source"], a["target"])  # they are noisy
    train_set, _ = build_datasets(TrainSettings(model="translator", preset="debug", data="mnist-5k",
                                                data_options=options), model)
    assert not torch.equal(train_set[0]["source"], train_set[0]["source"])
