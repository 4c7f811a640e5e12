"""The model registry: ``@register_model``, ``create_model``, ``list_models``.

The CLI and the test suite both iterate the registry, so a model that registers itself is exposed
and tested without edits anywhere else.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import TYPE_CHECKING, Any

from rnnimg.errors import RnnImgError

if TYPE_CHECKING:
    from rnnimg.models.base import RnnImgModel

_MODELS: dict[str, type[RnnImgModel]] = {}


def register_model(name: str):
    """Class decorator that makes a model creatable by ``name``.

    The class must define ``config_class`` (a dataclass), ``task`` and ``presets``.
    """

    def wrap(cls):
        if name in _MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        cls.name = name
        _MODELS[name] = cls
        return cls

    return wrap


def _ensure_builtin_models() -> None:
    # Importing the package registers every built-in model.
    import rnnimg.models  # noqa: F401


def list_models(task: str | None = None) -> list[str]:
    """Names of the registered models, optionally only those of one ``task``."""
    _ensure_builtin_models()
    return sorted(n for n, c in _MODELS.items() if task is None or task in c.tasks())


def get_model_class(name: str) -> type[RnnImgModel]:
    _ensure_builtin_models()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise RnnImgError(
            f"unknown model {name!r}.{hint} Available: {', '.join(sorted(_MODELS))} "
            "(see `rnnimg list`)."
        )
    return _MODELS[name]


def build_config(name: str, preset: str | None = None, **overrides: Any):
    """The config dataclass of model ``name``: its preset, then ``overrides`` on top."""
    cls = get_model_class(name)
    values: dict[str, Any] = {}
    if preset is not None:
        if preset not in cls.presets:
            raise RnnImgError(
                f"model {name!r} has no preset {preset!r}; choose one of "
                f"{', '.join(cls.presets)}."
            )
        values.update(cls.presets[preset])
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise RnnImgError(
            f"{name!r} has no config field(s) {', '.join(unknown)}; "
            f"its fields are: {', '.join(sorted(fields))}."
        )
    values.update(overrides)
    _check_field_types(name, cls.config_class, values)
    try:
        return cls.config_class(**values)
    except (ValueError, TypeError) as err:
        raise RnnImgError(f"invalid config for {name!r}: {err}") from None


_SIMPLE_TYPES = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def _check_field_types(name: str, config_class: type, values: dict[str, Any]) -> None:
    """One-line errors for values of the wrong type in the simple (int/float/bool/str) fields."""
    hints = typing.get_type_hints(config_class)
    for field, value in values.items():
        want = hints.get(field)
        if want not in _SIMPLE_TYPES:
            continue  # tuples, unions, ...: the config's own __post_init__ checks them
        ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise RnnImgError(f"{name!r} config field {field} must be {_SIMPLE_TYPES[want]}, "
                              f"got {value!r}.")


def create_model(name: str, preset: str | None = None, **overrides: Any) -> RnnImgModel:
    """Build model ``name`` from ``preset`` (a dict of config values) and ``overrides``.

    Args:
        name: a registered model name (see :func:`list_models`).
        preset: a named preset such as ``"debug"`` or ``"mnist"``; ``None`` uses the config defaults.
        **overrides: config fields that replace the preset's values.

    Raises:
        RnnImgError: for an unknown model, preset or field, or a value the config rejects.
    """
    cls = get_model_class(name)
    return cls(build_config(name, preset, **overrides))
