"""The data shape the model: where a new run's model config takes what its training data decide.

Image size, channels, number of classes, vocabulary and frame size come from the dataset unless the
user sets them with ``--set`` (docs/architecture.md). The dataset says what it carries
(:func:`rnnimg.data.properties.describe_data`); the model class says which config field each
property sets and what else follows (``RnnImgModel.data_fields`` and ``fit_to_data``). This module
joins the two for the trainer, once, before the model is built: the values go into
``TrainSettings.from_data`` (so into config.json and ``--print-config``), and every note the model
makes (labels or captions it does not use, a preset value the data replaced) is one
:class:`~rnnimg.errors.RnnImgWarning` line.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch

from rnnimg.data.properties import describe_data
from rnnimg.data.registry import dataset_task
from rnnimg.errors import RnnImgWarning
from rnnimg.models.registry import build_config, get_model_class
from rnnimg.train.settings import TrainSettings


def fit_to_data(settings: TrainSettings) -> TrainSettings:
    """``settings`` with ``from_data`` set to the model config fields the data decide.

    Warns (:class:`RnnImgWarning`) once per note of the model, and once when the data replace a
    value of the preset (naming both).

    Raises:
        RnnImgError: for data that cannot be loaded, or that the model cannot take without a choice
            of the user's (the message names the flag).
    """
    s = settings
    cls = get_model_class(s.model)
    if not cls.data_fields:
        return dataclasses.replace(s, from_data={})
    config = build_config(s.model, s.preset, **s.overrides)
    values = dataclasses.asdict(config)
    with torch.random.fork_rng(devices=[]):  # building a model draws its initial weights
        model_options = cls(config).dataset_options()
    # the model's other options (clip length, binarization) apply; the shape is the data's own
    options = {**{k: v for k, v in model_options.items() if k not in cls.data_fields}, **s.data_options}
    if not cls.takes_data_of(dataset_task(s.data, options)):
        return dataclasses.replace(s, from_data={})  # build_datasets says which task it is for
    data = describe_data(s.data, **options)
    fitted, notes = cls.fit_to_data(values, data, set(s.overrides))
    build_config(s.model, s.preset, **{**fitted, **s.overrides})  # a value the config refuses
    changed = {k: v for k, v in fitted.items() if values.get(k) != v}
    if changed:
        preset = f"preset {s.preset}" if s.preset else "the defaults"
        notes.insert(0, f"{s.data} has {data.summary(cls.data_fields)}, so {s.model} takes "
                        f"{_fields(changed)} "
                        f"from the data ({preset}: {_fields({k: values[k] for k in changed})}); "
                        "--set FIELD=VALUE chooses otherwise.")
    for note in notes:
        warnings.warn(note, RnnImgWarning, stacklevel=2)
    return dataclasses.replace(s, from_data=fitted)


def _fields(values: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, tuple | list):
            return f"({len(value)} items)" if len(value) > 4 else str(list(value))
        return str(value)

    return ", ".join(f"{k}={show(v)}" for k, v in values.items())
