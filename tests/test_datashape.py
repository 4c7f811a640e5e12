"""The data shape the model (issue 22, section 2): image size, channels, classes, vocabulary and
frame size come from the dataset unless the user sets them with --set; binarizing only where the
preset asks for Bernoulli output and the data are grey; a model that cannot use what the data carry
says so in one line. Every registered model of a task is covered by iterating the registry."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from rnnimg.cli import main
from rnnimg.data import load_dataset
from rnnimg.data.properties import describe_data
from rnnimg.errors import RnnImgError, RnnImgWarning
from rnnimg.models.registry import build_config, create_model, get_model_class, list_models
from rnnimg.train import TrainSettings, load_config_file
from rnnimg.train.data import build_datasets
from rnnimg.train.datashape import fit_to_data
from rnnimg.train.run import resolve_settings

# image generators (the voxel generators learn from voxel data: test_voxgen.py)
GENERATORS = [n for n in list_models("generate")
              if "image_size" in {f.name for f in dataclasses.fields(get_model_class(n).config_class)}]
SMALL_SHAPES = {"train_size": 24, "test_size": 10}


def fit(model: str, data: str, *, preset: str | None = "debug", overrides=None, data_options=None):
    """(settings with from_data, the resolved model config, the RnnImgWarning messages)."""
    s = TrainSettings(model=model, data=data, preset=preset, overrides=dict(overrides or {}),
                      data_options=dict(data_options or {}), batch_size=2, val_fraction=0).resolved()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = fit_to_data(s)
    notes = [str(w.message) for w in caught if issubclass(w.category, RnnImgWarning)]
    config = build_config(model, preset, **{**s.from_data, **s.overrides})
    return s, config, notes


def first_batch(s: TrainSettings, n: int = 2) -> tuple[torch.nn.Module, dict]:
    """The model the trainer builds for ``s`` and a batch of its real training data."""
    torch.manual_seed(0)
    model = create_model(s.model, s.preset, **{**s.from_data, **s.overrides})
    train_set, _ = build_datasets(s, model)
    items = [train_set[i] for i in range(n)]
    return model, {k: torch.stack([it[k] for it in items]) for k in items[0]}


# --- generators on colour data ---------------------------------------------------------------------


@pytest.mark.parametrize("name", GENERATORS)
def test_every_generator_on_shapes_gets_a_32x32_colour_model_of_the_data_as_they_are(name):
    s, config, notes = fit(name, "shapes", data_options=SMALL_SHAPES)
    assert (config.image_size, config.channels) == (32, 3)
    # the change from the preset is told, naming the data and the flag
    assert any("shapes has 32x32 images with 3 channels" in n and "--set" in n for n in notes)
    if hasattr(config, "output"):  # Bernoulli output binarizes grey data only
        assert config.output == "categorical"
    model, batch = first_batch(s)
    native = load_dataset("shapes", "train", **SMALL_SHAPES)
    assert batch["image"].shape == (2, 3, 32, 32)
    assert torch.allclose(batch["image"][0], native[0]["image"], atol=1 / 255 + 1e-6)  # not converted
    out = model.loss(batch)
    out.loss.backward()  # a training step's worth: finite, and every parameter of the data's shape
    assert torch.isfinite(out.loss)


def test_bernoulli_output_on_colour_data_is_refused_in_one_line_and_grey_copies_are_a_choice():
    with pytest.raises(RnnImgError, match="--set output=bernoulli .* --set channels=1"):
        fit("pixelscan", "shapes", overrides={"output": "bernoulli"}, data_options=SMALL_SHAPES)
    # the user's choice wins: grey binarized copies at the data's size
    s, config, _ = fit("pixelscan", "shapes", overrides={"output": "bernoulli", "channels": 1},
                       data_options=SMALL_SHAPES)
    assert (config.image_size, config.channels, config.output) == (32, 1, "bernoulli")
    _, batch = first_batch(s)
    assert batch["image"].shape == (2, 1, 32, 32)
    assert set(batch["image"].unique().tolist()) <= {0.0, 1.0}


def test_grey_data_keep_the_presets_bernoulli_output_and_are_binarized():
    s, config, _ = fit("pixelscan", "mnist-5k")
    assert (config.image_size, config.channels, config.output) == (28, 1, "bernoulli")
    _, batch = first_batch(s)
    assert set(batch["image"].unique().tolist()) <= {0.0, 1.0}


def test_the_users_size_wins_and_converts_the_data():
    s, config, _ = fit("rowrnn", "shapes", overrides={"image_size": 16}, data_options=SMALL_SHAPES)
    assert (config.image_size, config.channels) == (16, 3)
    assert "image_size" not in s.from_data
    _, batch = first_batch(s)
    assert batch["image"].shape == (2, 3, 16, 16)


def test_non_square_images_ask_for_a_size_in_one_line(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((12, 20), 40 * i, dtype=np.uint8)).save(tmp_path / f"{i}.png")
    with pytest.raises(RnnImgError, match=r"12x20 images.*--set image_size=N"):
        fit("rowrnn", f"folder:{tmp_path}")
    _, config, _ = fit("rowrnn", f"folder:{tmp_path}", overrides={"image_size": 8})
    assert config.image_size == 8


# --- captions --------------------------------------------------------------------------------------


def caption_models() -> list[str]:
    return [n for n in GENERATORS if "vocabulary" in get_model_class(n).data_fields]


def test_there_is_a_caption_model():
    assert "draw" in caption_models()


@pytest.mark.parametrize("name", caption_models())
def test_caption_models_take_the_vocabulary_and_size_of_caption_data_and_use_the_captions(name):
    s, config, notes = fit(name, "mnist-captions", data_options={"train_size": 8, "test_size": 4})
    base = load_dataset("mnist-captions", "train", train_size=8)
    assert config.image_size == 60 and tuple(config.vocabulary) == tuple(base.vocabulary)
    assert config.max_words == base[0]["text"].shape[0]
    assert not any("cannot use" in n for n in notes)
    model, batch = first_batch(s)
    model.eval()
    torch.manual_seed(1)
    a = model.loss(batch).loss
    other = dict(batch, text=batch["text"].flip(0))  # each image with the other's caption
    torch.manual_seed(1)
    b = model.loss(other).loss
    assert not torch.allclose(a, b)  # the captions reach the model


@pytest.mark.parametrize("name", sorted(set(GENERATORS) - set(caption_models())))
def test_models_without_text_say_in_one_line_that_they_ignore_captions(name):
    _, config, notes = fit(name, "mnist-captions", data_options={"train_size": 8, "test_size": 4})
    assert config.image_size == 60
    line = [n for n in notes if "captions" in n and "cannot use" in n]
    assert len(line) == 1 and "\n" not in line[0] and "train draw" in line[0]


def test_a_caption_preset_on_data_without_captions_is_one_line():
    s, _, _ = fit("draw", "mnist-5k", preset="captions")
    model = create_model("draw", "captions", **s.from_data)
    with pytest.raises(RnnImgError, match="has no captions"):
        build_datasets(s, model)


# --- labels ----------------------------------------------------------------------------------------


def label_models() -> list[str]:
    return [n for n in GENERATORS
            if "num_classes" in {f.name for f in dataclasses.fields(get_model_class(n).config_class)}]


def class_folder(root, classes=("cat", "dog", "owl"), per_class=4, size=8):
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((size, size), 30 * k + i, dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return f"folder:{root}"


@pytest.mark.parametrize("name", label_models())
def test_label_capable_models_on_labelled_data_say_how_to_use_the_labels(name, tmp_path):
    for data, count, options in (("mnist-5k", 10, {}), ("shapes", 3, SMALL_SHAPES),
                                 (class_folder(tmp_path / "pics"), 3, {})):
        _, config, notes = fit(name, data, data_options=options)
        assert config.num_classes == 0  # unconditional, as the preset says ...
        line = [n for n in notes if "class labels" in n]  # ... and told, with the number to type
        assert len(line) == 1 and f"--set num_classes={count}" in line[0], (data, notes)


@pytest.mark.parametrize("name", label_models())
def test_conditional_models_condition_on_the_labels(name, tmp_path):
    data = class_folder(tmp_path / "pics")
    s, config, notes = fit(name, data, overrides={"num_classes": 3})
    assert config.num_classes == 3 and not any("class labels" in n for n in notes)
    model, batch = first_batch(s)
    assert batch["label"].tolist() == [0, 0]
    assert torch.isfinite(model.loss(batch).loss)
    # a wrong number is the user's: one line with the data's number
    s, _, _ = fit(name, "mnist-5k", overrides={"num_classes": 5})
    with pytest.raises(RnnImgError, match="num_classes=10"):
        build_datasets(s, create_model(name, "debug", **{**s.from_data, **s.overrides}))


def test_a_conditional_preset_takes_the_datas_number_of_classes(monkeypatch):
    cls = get_model_class("rowrnn")
    monkeypatch.setitem(cls.presets, "conditional", dict(cls.presets["debug"], num_classes=7))
    _, config, _ = fit("rowrnn", "shapes", preset="conditional", data_options=SMALL_SHAPES)
    assert config.num_classes == 3


# --- predictors, segmenters, translators -----------------------------------------------------------


@pytest.mark.parametrize("name", list_models("predict"))
def test_predictors_take_frame_size_and_channels_from_clips(name, tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "clips.npy", rng.integers(0, 256, (4, 10, 16, 16, 3), dtype=np.uint8))
    s, config, notes = fit(name, f"clips:{tmp_path / 'clips.npy'}")
    assert (config.frame_size, config.channels) == (16, 3)
    assert any("16x16 frames with 3 channels" in n for n in notes)
    model, batch = first_batch(s)
    assert batch["frames"].shape[2:] == (3, 16, 16)
    assert torch.isfinite(model.loss(batch).loss)


def mask_pairs(root, n=6, size=16, labels=(0, 1, 2)):
    (root / "img").mkdir(parents=True)
    (root / "msk").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "img" / f"{i}.png")
        mask = rng.choice(np.array(labels, dtype=np.uint8), (size, size))
        Image.fromarray(mask).save(root / "msk" / f"{i}.png")
    return f"masks:{root / 'img'},{root / 'msk'}"


@pytest.mark.parametrize("name", list_models("segment"))
def test_segmenters_take_classes_channels_and_size_from_masks(name, tmp_path):
    s, config, _ = fit(name, mask_pairs(tmp_path), preset="scenes")  # a preset with 11 named classes
    assert (config.num_classes, config.channels, config.image_size) == (3, 3, 16)
    assert config.class_names == ()
    model, batch = first_batch(s)
    assert batch["image"].shape == (2, 3, 16, 16)
    assert torch.isfinite(model.loss(batch).loss)
    _, config, _ = fit(name, "mnist-scenes", data_options={"train_scenes": 4})
    assert config.num_classes == 11 and len(config.class_names) == 11 and config.image_size == 64
    # the user's number of classes wins; the data's 11 names then name nothing
    s, config, _ = fit(name, "mnist-scenes", overrides={"num_classes": 5}, data_options={"train_scenes": 4})
    assert (config.num_classes, config.class_names) == (5, ())
    with pytest.raises(RnnImgError, match="mask label 10.*--set num_classes=11"):
        build_datasets(s, create_model(name, "debug", **{**s.from_data, **s.overrides}))


@pytest.mark.parametrize("name", list_models("translate"))
def test_translators_take_source_and_target_channels_from_the_data(name):
    fields = {f.name for f in dataclasses.fields(get_model_class(name).config_class)}
    if "scale" in fields:  # super-resolution needs larger targets: same-size pairs are refused
        with pytest.raises(RnnImgError, match="pairs images of one size.*corrupt=downscale"):
            fit(name, "shapes", data_options={**SMALL_SHAPES, "corrupt": "colorize"})
        return
    _, config, _ = fit(name, "shapes", data_options={**SMALL_SHAPES, "corrupt": "colorize"})
    assert (config.in_channels, config.out_channels, config.image_size) == (1, 3, 32)


def test_describe_data_leaves_the_global_rng_alone():
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    props = describe_data("moving-mnist", train_clips=2, frames=4)  # draws its clip from torch's RNG
    assert torch.equal(torch.rand(2), expected)
    assert (props.frame_size, props.channels, props.num_classes) == (64, 1, None)


# --- where the values go ---------------------------------------------------------------------------


def test_print_config_and_config_json_hold_the_values_the_data_decided(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "rowrnn", "--data", "shapes", "--preset", "debug", "--data-opt", "train_size=24",
            "--data-opt", "test_size=10", "--out", str(out), "--max-steps", "1", "--batch-size", "4",
            "--accelerator", "cpu", "--no-progress", "--val-fraction", "0"]
    with pytest.warns(RnnImgWarning) as record:
        assert main([*args, "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["from_data"] == {"image_size": 32, "channels": 3, "output": "categorical"}
    notes = [str(w.message) for w in record]
    assert any("from the data" in n for n in notes) and any("num_classes=3" in n for n in notes)
    # the CLI prints each as one line
    assert warnings.formatwarning(notes[0], RnnImgWarning, "x.py", 1) == f"rnnimg: warning: {notes[0]}\n"
    assert main(args) == 0
    meta = json.loads((out / "config.json").read_text())
    assert (meta["config"]["image_size"], meta["config"]["channels"], meta["config"]["output"]) == \
        (32, 3, "categorical")
    assert meta["training"]["from_data"]["image_size"] == 32
    assert meta["data"]["options"]["image_size"] == 32 and "binarize" not in meta["data"]["options"]
    # a run's config.json read back with --config: the data decide again (from_data is no --set)
    values = load_config_file(out / "config.json")
    assert "from_data" not in values and values["overrides"] == {}
    again, _ = resolve_settings(TrainSettings(**{**values, "out": str(tmp_path / "again")}))
    assert again.from_data == printed["from_data"]


@pytest.mark.parametrize("name", [n for n in list_models("translate") if "scale" in
                                  {f.name for f in dataclasses.fields(get_model_class(n).config_class)}])
def test_super_resolution_takes_its_scale_from_the_downscaled_data(name):
    """corrupt=downscale scale=4 on a preset of scale 2 trained a x2 model on x4 pairs, and the first
    batch then failed: the data's scale now decides, like its sizes."""
    s, config, _ = fit(name, "mnist-5k", data_options={"corrupt": "downscale", "scale": 4})
    assert (config.scale, config.image_size, config.in_channels) == (4, 28, 1)
    model, batch = first_batch(s)
    assert model.translate(batch["source"]).shape == batch["target"].shape
    _, config, _ = fit(name, "mnist-5k", overrides={"scale": 2},
                       data_options={"corrupt": "downscale", "scale": 4})
    assert config.scale == 2  # --set wins; the batch check then says what is wrong


def test_summary_of_voxel_data_names_grids_and_views_only_for_a_model_of_views():
    from rnnimg.data.properties import DataProperties

    data = DataProperties(name="shapes3d", image_hw=(8, 8), channels=1, view_size=8, voxel_size=16,
                          num_classes=8)
    assert data.summary() == "16^3 voxel grids, 8x8 views with 1 channel, 8 classes"
    generator_fields = {"voxel_size": "voxel_size", "num_classes": "num_classes"}
    assert data.summary(generator_fields) == "16^3 voxel grids, 8 classes"
    assert "images" not in data.summary({"view_size": "view_size", "voxel_size": "voxel_size"})
