"""Checkpoint I/O: rebuild any registered model from a run or model folder.

A folder describes itself: ``config.json`` names the model and holds its config, and
``model.safetensors`` holds the weights (written by
:meth:`rnnimg.models.base.RnnImgModel.save_pretrained`), so :func:`load_pretrained` rebuilds a
model without the caller naming its class and without unpickling anything.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rnnimg.errors import RnnImgError
from rnnimg.models.base import CONFIG_FILE, WEIGHTS_FILE, RnnImgModel
from rnnimg.models.registry import build_config, get_model_class


def read_run_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a run or pretrained folder, with one-line errors."""
    directory = Path(directory)
    if not directory.is_dir():
        raise RnnImgError(f"{directory} is not a folder; pass a run folder such as runs/NAME.")
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise RnnImgError(f"{path} is missing; {directory} is not an rnnimg run or model folder.")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RnnImgError(f"{path} is not valid JSON ({err}); restore it or retrain.") from None
    if not isinstance(meta, dict) or "model" not in meta or "config" not in meta:
        raise RnnImgError(f"{path} lacks the 'model' and 'config' keys; it was not written by rnnimg.")
    return meta


def load_pretrained(directory: str | os.PathLike, map_location: str = "cpu") -> RnnImgModel:
    """Rebuild any model from ``config.json`` + ``model.safetensors`` in ``directory``.

    Nothing is unpickled: the config is JSON and the weights are safetensors.

    Raises:
        RnnImgError: for a missing folder or file, malformed JSON, an unknown model, weights of
            another ``weights_version`` or weights that do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    meta = read_run_config(directory)
    cls = get_model_class(meta["model"])
    if not isinstance(meta["config"], dict):
        raise RnnImgError(f"{Path(directory) / CONFIG_FILE}: 'config' must be an object.")
    saved_version = meta.get("weights_version", 1)
    if saved_version != cls.weights_version:
        raise RnnImgError(
            f"{directory} holds {meta['model']!r} weights of version {saved_version}, but this rnnimg "
            f"reads version {cls.weights_version} (the layout changed); retrain the model, or load it "
            "with the rnnimg release that trained it.")
    model = cls(build_config(meta["model"], **meta["config"]))
    weights = Path(directory) / WEIGHTS_FILE
    if not weights.is_file():
        raise RnnImgError(f"{weights} is missing; train the model or copy its weights there.")
    try:
        missing, unexpected = load_model(model, weights, strict=False, device=map_location)
    except (SafetensorError, OSError, RuntimeError) as err:
        if "size mismatch" in str(err):
            missing, unexpected = ["(shapes differ)"], []
        else:
            raise RnnImgError(f"cannot read {weights}: {str(err).splitlines()[0]}") from None
    if missing or unexpected:
        raise RnnImgError(
            f"{weights} does not fit the config in {CONFIG_FILE} (missing {len(missing)}, "
            f"unexpected {len(unexpected)} tensors); the two files come from different models."
        )
    return model.eval()
