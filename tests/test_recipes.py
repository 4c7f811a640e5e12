"""The recipe registry (rnnimg.recipes): every entry names a registered model, preset and dataset;
entries are checked when registered; the demo, the pretrained script and the trainer read it."""

import dataclasses
import inspect
import sys
from pathlib import Path

import pytest

from rnnimg.errors import RnnImgError
from rnnimg.models.registry import get_model_class, list_models
from rnnimg.recipes import (
    KINDS,
    Recipe,
    TrainingDefaults,
    get_recipe,
    list_recipes,
    register_recipe,
    register_training_defaults,
    registry,
    training_defaults,
)

ROOT = Path(__file__).resolve().parents[1]

# What the model classes declared before the recipes moved out of them (their `demo` and
# `pretrained` attributes, read off the code at commit 014510e): the move keeps every one.
DEMO_NAMES = {"convlstm", "convscan", "draw", "pixelrnn", "pixelscan", "predrnn", "reseg", "rowrnn",
              "scanseg", "svg", "translator"}
PRETRAINED_NAMES = {"convlstm-mmnist", "draw-captions", "draw-mnist", "pixelrnn-mnist", "pixelscan-mnist",
                    "predrnn-mmnist", "reseg-scenes", "rowrnn-mnist", "svg-smmnist", "translator-denoise"}


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    monkeypatch.setattr(registry, "_RECIPES", dict(registry._RECIPES))
    monkeypatch.setattr(registry, "_DEFAULTS", dict(registry._DEFAULTS))


def test_the_registry_holds_the_recipes_the_model_classes_held():
    assert {r.name for r in list_recipes(kind="demo")} >= DEMO_NAMES
    assert {r.name for r in list_recipes(kind="pretrained")} >= PRETRAINED_NAMES
    assert {r.kind for r in list_recipes()} == set(KINDS)
    # values, spot-checked: a demo, a shipped recipe with evaluate options, a preset's defaults
    demo = get_recipe("predrnn", kind="demo")
    assert (demo.model, demo.preset, demo.data, demo.max_steps, demo.batch_size) == \
        ("predrnn", "debug", "moving-mnist", 500, 8)
    assert demo.overrides["sampling_decay"] == 2.5e-3 and demo.lr is None
    svg = get_recipe("svg-smmnist", kind="pretrained")
    assert svg.evaluate_kwargs() == {"batch_size": 32, "options": {"samples": 20}}
    assert (svg.data_options["train_clips"], svg.max_steps, svg.lr) == (16000, 1000, 2e-3)
    assert training_defaults("convscan", "mmnist-400") == TrainingDefaults("convscan", "mmnist-400", 4, 5e-4)


@pytest.mark.parametrize("recipe", list_recipes(), ids=lambda r: f"{r.kind}:{r.name}")
def test_every_recipe_names_a_registered_model_preset_and_matching_data(recipe):
    from rnnimg.data.registry import dataset_task
    from rnnimg.models.registry import build_config

    cls = get_model_class(recipe.model)
    assert recipe.kind in KINDS
    assert recipe.preset is None or recipe.preset in cls.presets
    build_config(recipe.model, recipe.preset, **recipe.overrides)
    assert cls.takes_data_of(dataset_task(recipe.data, dict(recipe.data_options)))
    assert recipe.max_steps and recipe.max_steps > 0
    if recipe.kind == "demo":
        assert recipe.name == recipe.model and not recipe.evaluate


def test_every_training_default_names_a_registered_model_and_preset():
    entries = list(registry._DEFAULTS.values())
    assert len(entries) >= 41  # the 41 (model, preset) pairs of the old training_presets
    for d in entries:
        assert d.preset in get_model_class(d.model).presets
        assert d.batch_size >= 1 and d.lr > 0


def test_recipe_fields_are_trainsettings_fields_and_evaluate_options_are_evaluate_arguments():
    from rnnimg.train import evaluate
    from rnnimg.train.settings import FIELDS

    recipe_fields = {f.name for f in dataclasses.fields(Recipe)}
    assert recipe_fields == set(registry.SETTINGS_FIELDS) | {"name", "kind", "evaluate", "note"}
    assert set(registry.SETTINGS_FIELDS) <= set(FIELDS)
    # evaluate(run_dir, *args, seed=, device=, **kwargs) passes its arguments on to _evaluate
    accepted = set(inspect.signature(sys.modules[evaluate.__module__]._evaluate).parameters) - {"run_dir"}
    assert {"batch_size", "options"} <= accepted
    for recipe in list_recipes():
        assert set(recipe.evaluate) <= accepted, recipe.name
        options = recipe.evaluate.get("options", {})
        assert set(options) <= set(get_model_class(recipe.model).evaluation_options), recipe.name


def test_no_model_class_carries_recipes_any_more():
    """A merge that brings a `pretrained = {...}` back onto a model class would ship nothing:
    nothing reads it. Recipes go in rnnimg/recipes/TASK.py."""
    for name in list_models():
        cls = get_model_class(name)
        for attribute in ("demo", "pretrained", "training_presets"):
            assert not hasattr(cls, attribute), f"{name}.{attribute}: move it into rnnimg/recipes/"


def test_a_recipe_is_read_only_and_its_settings_are_a_copy():
    recipe = get_recipe("convlstm-mmnist", kind="pretrained")
    with pytest.raises(dataclasses.FrozenInstanceError):
        recipe.max_steps = 1
    with pytest.raises(TypeError):
        recipe.overrides["horizon"] = 1  # a read-only mapping
    settings = recipe.settings()
    settings["overrides"]["horizon"] = 1
    settings["data_options"].clear()
    assert recipe.overrides["horizon"] == 10 and recipe.data_options["test_clips"] == 1000
    assert settings["model"] == "convlstm" and not {"name", "kind", "evaluate", "note"} & set(settings)


def test_settings_build_the_trainsettings_of_the_recipe():
    from rnnimg.train import TrainSettings

    recipe = get_recipe("translator-denoise", kind="pretrained")
    s = TrainSettings(**recipe.settings(), out="/nonexistent").resolved()
    assert (s.model, s.preset, s.data, s.max_steps, s.batch_size, s.lr) == \
        ("translator", "denoise", "mnist-5k", 400, 32, 2e-3)
    assert s.data_options == {"corrupt": "denoise", "sigma": 25} and s.seed == 0  # unset: the default


def test_trainsettings_take_the_presets_training_defaults_unless_given():
    from rnnimg.train import TrainSettings

    s = TrainSettings("convlstm", preset="mmnist").resolved()
    assert (s.batch_size, s.lr) == (16, 5e-4)
    s = TrainSettings("convlstm", preset="mmnist", batch_size=3, lr=0.1).resolved()
    assert (s.batch_size, s.lr) == (3, 0.1)
    s = TrainSettings("convlstm").resolved()  # no preset: TrainSettings' own defaults
    assert (s.batch_size, s.lr) == (64, 1e-3)


def good(**changes) -> Recipe:
    values = dict(name="rowrnn-test", kind="pretrained", model="rowrnn", preset="debug", data="mnist-5k",
                  max_steps=5)
    return Recipe(**{**values, **changes})


@pytest.mark.parametrize("changes, message", [
    (dict(model="rownn"), "unknown model 'rownn'"),
    (dict(preset="huge"), "no preset 'huge'"),
    (dict(overrides={"hiden_size": 4}), "no config field(s) hiden_size"),
    (dict(overrides={"hidden_size": "wide"}), "must be a whole number"),
    (dict(data="mnist-6k"), "unknown dataset 'mnist-6k'"),
    (dict(data="moving-mnist"), "gives predict batches"),
    (dict(kind="shipped"), "kind must be one of demo, pretrained"),
    (dict(max_steps=None), "state a budget"),
    (dict(max_steps=0), "max_steps must be a whole number > 0"),
    (dict(lr=-1.0), "lr must be a number > 0"),
    (dict(kind="demo"), "named after its model"),
    (dict(kind="demo", name="rowrnn", evaluate={"batch_size": 4}), "evaluate options and card notes belong"),
    (dict(kind="demo", name="rowrnn", note="why"), "evaluate options and card notes belong"),
    (dict(name="rowrnn-mnist"), "registered twice"),
])
def test_register_recipe_refuses_a_bad_entry_and_keeps_the_registry(changes, message, scratch_registry):
    before = list_recipes()
    with pytest.raises(RnnImgError, match="^recipe .*" + message.replace("(", r"\(").replace(")", r"\)")):
        register_recipe(good(**changes))
    assert list_recipes() == before


def test_a_field_recipe_does_not_have_is_an_error_when_the_entry_is_written():
    with pytest.raises(TypeError, match="max_step"):
        good(max_step=5)


def test_register_recipe_adds_a_good_entry(scratch_registry):
    recipe = register_recipe(good(overrides={"hidden_size": 4}, lr=1))
    assert get_recipe("rowrnn-test", kind="pretrained") is recipe
    assert recipe in list_recipes(kind="pretrained") and recipe not in list_recipes(kind="demo")


def test_register_training_defaults_refuses_bad_entries(scratch_registry):
    with pytest.raises(RnnImgError, match="no preset 'huge'"):
        register_training_defaults(TrainingDefaults("rowrnn", "huge", batch_size=8))
    with pytest.raises(RnnImgError, match="unknown model"):
        register_training_defaults(TrainingDefaults("rownn", "debug", batch_size=8))
    with pytest.raises(RnnImgError, match="batch_size must be a whole number > 0"):
        register_training_defaults(TrainingDefaults("rowrnn", "debug", batch_size=0))
    with pytest.raises(RnnImgError, match="registered twice"):
        register_training_defaults(TrainingDefaults("rowrnn", "debug", batch_size=8))
    assert training_defaults("rowrnn", "debug").batch_size == 32  # unchanged
    assert training_defaults("rowrnn", None) == TrainingDefaults("rowrnn", "")  # sets nothing


def test_get_and_list_recipes_name_the_choices():
    with pytest.raises(RnnImgError, match="Did you mean 'pixelrnn-mnist'"):
        get_recipe("pixelrnn-mnst", kind="pretrained")
    with pytest.raises(RnnImgError, match="no demo recipe 'dncnn'"):
        get_recipe("dncnn", kind="demo")
    with pytest.raises(RnnImgError, match="kinds are demo, pretrained"):
        list_recipes(kind="shipped")


def test_the_demo_and_the_pretrained_script_see_the_same_recipes_as_before_the_move():
    from rnnimg.demo import run_demo

    with pytest.raises(RnnImgError) as err:  # refused before anything is written
        run_demo("/nonexistent/demo", models=["dncnn"])
    choices = str(err.value).split("choose from ")[1].rstrip(".").split(", ")
    assert set(choices) == {r.name for r in list_recipes(kind="demo")} >= DEMO_NAMES
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import train_pretrained
    finally:
        sys.path.pop(0)
    assert set(train_pretrained.recipes()) >= PRETRAINED_NAMES
    assert set(train_pretrained.recipes()) == {r.name for r in list_recipes(kind="pretrained")}


def test_recipes_sit_below_the_trainer_and_the_pictures():
    """rnnimg.recipes reads the model and data registries only: the trainer imports it (training
    defaults), so it must not import the trainer, the task layer or the CLI."""
    import ast

    import rnnimg

    upper = ("rnnimg.train", "rnnimg.tasks", "rnnimg.cli", "rnnimg.serve", "rnnimg.viz", "rnnimg.demo",
             "rnnimg.cards")
    for path in (Path(rnnimg.__file__).parent / "recipes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.startswith(upper)], f"{path.name} imports {names}"
