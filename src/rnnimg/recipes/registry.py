"""The recipe registry: typed entries for how rnnimg trains its models, kept out of the model classes.

A model file says what a model is (its config, presets of hyper-parameters, network, loss and
inference verb). How the project trains it lives here, in two kinds of typed, frozen entries:

- :class:`Recipe`: a named training run, the :class:`rnnimg.train.TrainSettings` fields it sets,
  of one ``kind``: ``"demo"`` (what ``rnnimg demo`` trains, one per model, named after the model)
  or ``"pretrained"`` (the weights ``scripts/train_pretrained.py`` trains, scores and ships as
  ``pretrained:NAME``, with optional keyword arguments of :func:`rnnimg.train.evaluate`).
- :class:`TrainingDefaults`: the batch size and learning rate a ``--preset`` trains with unless the
  user passes ``--batch-size`` / ``--lr``.

Each entry is checked when it is registered (:func:`register_recipe`,
:func:`register_training_defaults`): the model and preset exist, the overrides are fields of the
model's config that its config accepts, the data are a registered dataset that feeds the model.
A field that :class:`Recipe` does not have (a misspelt ``max_step``) is a ``TypeError`` when the
entry is written, as for any dataclass. One module per task (``recipes/generate.py``, ...) lists the
entries of that task's models.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from rnnimg.data.registry import dataset_task
from rnnimg.errors import RnnImgError
from rnnimg.models.registry import build_config, get_model_class

KINDS = ("demo", "pretrained")
Kind = Literal["demo", "pretrained"]

# Recipe fields that are TrainSettings fields of the same name (all but name, kind, evaluate, note);
# None means "TrainSettings' default" (the preset's training defaults for batch_size and lr).
SETTINGS_FIELDS = ("model", "data", "preset", "overrides", "data_options", "max_steps", "epochs",
                   "batch_size", "lr", "seed", "weight_decay", "grad_clip", "val_fraction")


def _frozen(value: Any) -> Any:
    """A read-only copy: dicts become mapping proxies, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    return value


def _thawed(value: Any) -> Any:
    """A plain, mutable deep copy (what TrainSettings and json take)."""
    if isinstance(value, Mapping):
        return {k: _thawed(v) for k, v in value.items()}
    return copy.deepcopy(value)


@dataclass(frozen=True)
class Recipe:
    """One named training run of a registered model.

    Attributes:
        name: the recipe's name: the model's name for a demo, ``pretrained:NAME``'s NAME for
            shipped weights.
        kind: ``"demo"`` or ``"pretrained"``.
        model: registered model name.
        data: registered dataset name.
        preset: the model preset the run starts from (None: the config defaults).
        overrides: model config fields over the preset (``--set``).
        data_options: dataset options (``--data-opt``).
        max_steps, epochs, batch_size, lr, seed, weight_decay, grad_clip, val_fraction: the
            :class:`rnnimg.train.TrainSettings` fields of the same name; None leaves TrainSettings'
            default (for batch_size and lr: the preset's :class:`TrainingDefaults`).
        evaluate: keyword arguments of :func:`rnnimg.train.evaluate` for scoring shipped weights
            (pretrained recipes only).
        note: a line for the training section of the shipped model's card (why these settings),
            or "".
    """

    name: str
    kind: Kind
    model: str
    data: str
    preset: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int | None = None
    weight_decay: float | None = None
    grad_clip: float | None = None
    val_fraction: float | None = None
    evaluate: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        for name in ("overrides", "data_options", "evaluate"):  # the registry's copy stays as written
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def settings(self) -> dict[str, Any]:
        """The TrainSettings keyword arguments this recipe sets (``model`` included), as plain
        mutable copies: ``TrainSettings(**recipe.settings(), out=...)``."""
        values = {name: _thawed(getattr(self, name)) for name in SETTINGS_FIELDS}
        return {k: v for k, v in values.items() if v is not None}

    def evaluate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`rnnimg.train.evaluate` for this recipe (a copy)."""
        return _thawed(self.evaluate)


@dataclass(frozen=True)
class TrainingDefaults:
    """What ``rnnimg train MODEL --preset PRESET`` trains with unless the flags say otherwise.

    Attributes:
        model: registered model name.
        preset: one of the model's presets.
        batch_size: the default ``--batch-size`` (None: TrainSettings' 64).
        lr: the default ``--lr`` (None: TrainSettings' 1e-3).
    """

    model: str
    preset: str
    batch_size: int | None = None
    lr: float | None = None


_RECIPES: dict[tuple[str, str], Recipe] = {}  # (kind, name) -> recipe
_DEFAULTS: dict[tuple[str, str], TrainingDefaults] = {}  # (model, preset) -> defaults


def _check_model_and_preset(what: str, model: str, preset: str | None) -> type:
    try:
        cls = get_model_class(model)
    except RnnImgError as err:
        raise RnnImgError(f"{what}: {err}") from None
    if preset is not None and preset not in cls.presets:
        raise RnnImgError(f"{what}: model {model!r} has no preset {preset!r}; its presets are "
                          f"{', '.join(cls.presets)}.")
    return cls


def _check_positive(what: str, name: str, value: Any, kind: type) -> None:
    ok = isinstance(value, kind) and not isinstance(value, bool) and value > 0
    if kind is float:  # an int learning rate (1) is a number too
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < float("inf")
    if value is not None and not ok:
        raise RnnImgError(f"{what}: {name} must be a {'whole ' if kind is int else ''}number > 0, "
                          f"got {value!r}.")


def register_recipe(recipe: Recipe) -> Recipe:
    """Check ``recipe`` and add it to the registry.

    Raises:
        RnnImgError: for an unknown kind, model, preset, config field or dataset, data that do
            not feed the model, a config the overrides make invalid, a bad budget, a demo not named
            after its model or with ``evaluate`` options, or a name already registered for the kind.
    """
    what = f"recipe {recipe.name!r} ({recipe.kind})"
    if recipe.kind not in KINDS:
        raise RnnImgError(f"{what}: kind must be one of {', '.join(KINDS)}.")
    cls = _check_model_and_preset(what, recipe.model, recipe.preset)
    if recipe.kind == "demo":
        if recipe.name != recipe.model:  # rnnimg demo writes runs/demo/MODEL
            raise RnnImgError(f"{what}: a demo recipe is named after its model, {recipe.model!r}.")
        if recipe.evaluate or recipe.note:
            raise RnnImgError(f"{what}: evaluate options and card notes belong to pretrained recipes.")
    try:
        build_config(recipe.model, recipe.preset, **recipe.overrides)
        task = dataset_task(recipe.data, dict(recipe.data_options))
    except RnnImgError as err:
        raise RnnImgError(f"{what}: {err}") from None
    if not cls.takes_data_of(task):
        raise RnnImgError(f"{what}: {recipe.data!r} gives {task} batches, but {recipe.model!r} is a "
                          f"{'/'.join(cls.tasks())} model.")
    if recipe.max_steps is None and recipe.epochs is None:
        raise RnnImgError(f"{what}: state a budget (max_steps or epochs).")
    for name in ("max_steps", "epochs", "batch_size"):
        _check_positive(what, name, getattr(recipe, name), int)
    _check_positive(what, "lr", recipe.lr, float)
    if (recipe.kind, recipe.name) in _RECIPES:
        raise RnnImgError(f"{what} is registered twice.")
    _RECIPES[recipe.kind, recipe.name] = recipe
    return recipe


def register_training_defaults(defaults: TrainingDefaults) -> TrainingDefaults:
    """Check ``defaults`` and add them to the registry.

    Raises:
        RnnImgError: for an unknown model or preset, a value that is not > 0, or a (model, preset)
            that already has defaults.
    """
    what = f"training defaults of {defaults.model!r} preset {defaults.preset!r}"
    _check_model_and_preset(what, defaults.model, defaults.preset)
    _check_positive(what, "batch_size", defaults.batch_size, int)
    _check_positive(what, "lr", defaults.lr, float)
    if (defaults.model, defaults.preset) in _DEFAULTS:
        raise RnnImgError(f"{what} are registered twice.")
    _DEFAULTS[defaults.model, defaults.preset] = defaults
    return defaults


def _ensure_builtin_recipes() -> None:
    import rnnimg.recipes  # noqa: F401  (importing the package registers the built-in entries)


def list_recipes(kind: str | None = None) -> list[Recipe]:
    """The registered recipes, sorted by name (a demo's name is its model's), optionally of one ``kind``."""
    _ensure_builtin_recipes()
    if kind is not None and kind not in KINDS:
        raise RnnImgError(f"unknown recipe kind {kind!r}; the kinds are {', '.join(KINDS)}.")
    return sorted((r for r in _RECIPES.values() if kind in (None, r.kind)),
                  key=lambda r: (r.name, r.kind))


def get_recipe(name: str, kind: str) -> Recipe:
    """The ``kind`` recipe called ``name``.

    Raises:
        RnnImgError: for an unknown kind or name, listing the names of that kind.
    """
    names = [r.name for r in list_recipes(kind)]
    if (kind, name) not in _RECIPES:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RnnImgError(f"no {kind} recipe {name!r}.{hint} The {kind} recipes: {', '.join(names)}.")
    return _RECIPES[kind, name]


def training_defaults(model: str, preset: str | None) -> TrainingDefaults:
    """The training defaults of ``model`` with ``preset``: the registered ones, else an entry
    that sets nothing (TrainSettings then uses batch 64, lr 1e-3)."""
    _ensure_builtin_recipes()
    found = _DEFAULTS.get((model, preset)) if preset is not None else None
    return found or TrainingDefaults(model, preset or "")
