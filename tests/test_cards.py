"""Model cards: README.md with Hugging Face model-card front matter, the training command, the latest
evaluation and a picture made through rnnimg.tasks; refreshed by a new evaluation."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from rnnimg import create_model
from rnnimg.cards import read_card, write_model_card
from rnnimg.errors import RnnImgError

TRAINING = {"model": "pixelrnn", "data": "mnist-5k", "preset": "debug", "overrides": {"hidden": 8},
            "data_options": {}, "max_steps": 40, "batch_size": 16, "lr": 0.003, "seed": 3,
            "grad_clip": 1.0, "accelerator": "cpu", "precision": "32-true"}


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = create_model("pixelrnn", "debug")
    run = tmp_path / "runs" / "pix"
    model.save_pretrained(run, extra={"preset": "debug", "training": TRAINING, "data": {
        "name": "mnist-5k", "options": model.dataset_options()}})
    return run


def evaluation(run, split="test", max_batches=1):
    from rnnimg.train import evaluate

    return evaluate(run, split=split, batch_size=16, max_batches=max_batches, progress=False)


def hub_model_index_errors(card: dict) -> list[str]:
    """The checks huggingface_hub's model-card parser makes on ``model-index`` (it raises on these),
    written out here because huggingface_hub is not a dependency."""
    errors = []
    for entry in card.get("model-index", []):
        if not isinstance(entry.get("name"), str):
            errors.append("model-index entry without a name")
        for result in entry.get("results", []):
            if not isinstance(result.get("task", {}).get("type"), str):
                errors.append("result without task.type")
            dataset = result.get("dataset", {})
            if not (isinstance(dataset.get("type"), str) and isinstance(dataset.get("name"), str)):
                errors.append("result without dataset.type and dataset.name")
            for metric in result.get("metrics", []):
                value = metric.get("value")
                if not isinstance(metric.get("type"), str) or not isinstance(value, (int, float)):
                    errors.append(f"bad metric {metric}")
            if not result.get("metrics"):
                errors.append("result without metrics")
    return errors


def test_card_is_a_hub_model_card_with_command_evaluation_and_picture(run):
    result = evaluation(run)
    path = write_model_card(run, evaluation=result)
    assert path == run / "README.md"
    text = path.read_text()
    card, body = read_card(path)
    # the front matter, as the Hub reads it
    assert yaml.safe_load(text.split("---\n")[1]) == card
    assert card["library_name"] == "rnnimg"
    assert card["license"] == "cc-by-sa-3.0"  # MNIST-derived
    assert card["datasets"] == ["ylecun/mnist"]
    assert {"nll_nats", "bits_per_dim"} <= set(card["metrics"])
    assert {"rnnimg", "pixelrnn", "generate", "complete"} <= set(card["tags"])
    assert card["pipeline_tag"] == "unconditional-image-generation"
    assert hub_model_index_errors(card) == []
    metrics = card["model-index"][0]["results"][0]["metrics"]
    assert metrics[0]["type"] == "nll_nats"  # the headline first
    assert metrics[0]["value"] == pytest.approx(result["metrics"]["nll_nats"], abs=1e-5)
    # the body: model and paper, data licence, the command rebuilt from config.json, budget, table
    assert "van den Oord" in body and "Attribution-Share Alike 3.0" in body
    assert ("rnnimg train pixelrnn --preset debug --data mnist-5k --set hidden=8 --max-steps 40 "
            "--batch-size 16 --lr 0.003 --seed 3") in body
    assert "40 steps x batch 16" in body
    assert f"| nll_nats (lower is better) | {result['metrics']['nll_nats']:.4g} |" in body
    assert "mnist-5k [test]: 16 items" in body
    # the picture: made through rnnimg.tasks.preview, referenced, and not blank
    pictures = [line.split("](")[1].rstrip(")") for line in body.splitlines() if line.startswith("![")]
    assert {"card/samples.png", "card/completions.png"} == set(pictures)
    for picture in pictures:
        pixels = np.asarray(Image.open(run / picture).convert("L"), dtype=np.float32)
        assert pixels.std() > 10, picture


def test_a_new_evaluation_refreshes_the_card_and_keeps_the_earlier_one(run):
    write_model_card(run, evaluation=evaluation(run, "test"), pictures=False)
    first = (run / "README.md").read_text()
    write_model_card(run, evaluation=evaluation(run, "train", max_batches=2), pictures=False)
    card, body = read_card(run / "README.md")
    assert body != first
    splits = [r["dataset"]["split"] for r in card["model-index"][0]["results"]]
    assert splits == ["test", "train"]  # the latest last in the metadata ...
    # ... and first in the text
    assert body.index("mnist-5k [train]: 32 items") < body.index("mnist-5k [test]: 16 items")
    stored = json.loads((run / "evaluation.json").read_text())
    assert set(stored) == {"mnist-5k [test]", "mnist-5k [train]"}
    # evaluating the same split again replaces it rather than adding a row
    write_model_card(run, evaluation=evaluation(run, "test", max_batches=2), pictures=False)
    stored = json.loads((run / "evaluation.json").read_text())
    assert list(stored) == ["mnist-5k [train]", "mnist-5k [test]"]
    assert stored["mnist-5k [test]"]["num_items"] == 32


def test_card_of_a_run_never_evaluated_says_so_and_own_data_has_no_known_licence(tmp_path):
    model = create_model("rowrnn", "debug")
    model.save_pretrained(tmp_path / "mine", extra={"data": {"name": "folder:/somewhere/faces",
                                                               "options": {}}})
    card, body = read_card(write_model_card(tmp_path / "mine"))
    assert card["license"] == "other" and "datasets" not in card and "model-index" not in card
    assert "Not evaluated yet: run `rnnimg evaluate" in body
    assert "no picture: the test data could not be loaded" in body


def test_predictor_card_shows_baselines_beside_the_model(tmp_path):
    model = create_model("convlstm", "debug")
    model.save_pretrained(tmp_path / "vid", extra={"data": {"name": "moving-mnist", "options": {}}})
    result = {"model": "convlstm", "data": "moving-mnist", "split": "test", "num_items": 10,
              "data_options": {},
              "metrics": {"loss": 0.1, "mse": 120.0, "ssim": 0.5, "mse_per_step": [1.0, 2.0]},
              "baselines": {"all-black frames": {"mse": 170.0, "ssim": 0.7}}}
    card, body = read_card(write_model_card(tmp_path / "vid", evaluation=result, pictures=False))
    assert "| metric | this model | all-black frames |" in body
    assert "| mse (lower is better) | 120 | 170 |" in body
    assert "| ssim (higher is better) | 0.5 | 0.7 |" in body
    assert "`mse_per_step`: 1 2" in body
    assert card["model-index"][0]["results"][0]["metrics"][0]["type"] == "mse"


def test_read_card_refuses_a_file_without_front_matter(tmp_path):
    (tmp_path / "README.md").write_text("# just a readme\n")
    with pytest.raises(RnnImgError, match="no YAML front matter"):
        read_card(tmp_path / "README.md")


def test_a_voxel_generator_card_claims_no_image_pipeline_tag():
    from rnnimg.cards import front_matter

    meta = {"data": {"name": "shapes3d"}}
    assert "pipeline_tag" not in front_matter({**meta, "model": "voxscan"}, {}, "voxscan")
    image_tag = front_matter({**meta, "model": "pixelscan"}, {}, "x")["pipeline_tag"]
    assert image_tag == "unconditional-image-generation"
    assert front_matter({**meta, "model": "r2n2"}, {}, "x")["pipeline_tag"] == "image-to-3d"
