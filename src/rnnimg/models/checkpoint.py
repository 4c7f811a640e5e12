"""Checkpoint I/O: rebuild any registered model from a run or model folder.

A folder describes itself: ``config.json`` names the model and holds its config, and
``model.safetensors`` holds the weights (written by
:meth:`rnnimg.models.base.RnnImgModel.save_pretrained`), so :func:`load_pretrained` rebuilds a
model without the caller naming its class and without unpickling anything.

Wherever a folder is expected, ``pretrained:NAME`` names a model that ships inside the package
(``rnnimg/pretrained/NAME/``, see :func:`list_shipped`); :func:`resolve_model_dir` turns either
form into a folder, so every caller (``rnnimg sample``, ``evaluate``, the web page) takes both.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnimg.errors import RnnImgError
from rnnimg.models.base import CONFIG_FILE, WEIGHTS_FILE, RnnImgModel
from rnnimg.models.registry import build_config, get_model_class

PRETRAINED_PREFIX = "pretrained:"
# where the shipped models live: one folder per name with config.json, model.safetensors, README.md
PRETRAINED_ROOT = Path(__file__).resolve().parents[1] / "pretrained"


def list_shipped() -> list[str]:
    """Names of the models that ship inside the package (``pretrained:NAME``), sorted."""
    if not PRETRAINED_ROOT.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_ROOT.iterdir()
                  if (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file())


def resolve_model_dir(spec: str | os.PathLike) -> Path:
    """The folder that ``spec`` names: a run or model folder as it is, ``pretrained:NAME``, or
    ``hf:ORG/NAME`` (the same layout on the Hugging Face Hub; needs ``rnnimg[hub]``).

    Raises:
        RnnImgError: for a ``pretrained:`` name that does not ship, listing the names that do, or a
            Hub model that cannot be fetched.
    """
    text = os.fspath(spec)
    if text.startswith(HUB_PREFIX):
        return hub_snapshot(text[len(HUB_PREFIX):])
    if not text.startswith(PRETRAINED_PREFIX):
        return Path(text)
    name = text[len(PRETRAINED_PREFIX):]
    shipped = list_shipped()
    if name not in shipped:
        raise RnnImgError(f"no pretrained model {name!r} ships with rnnimg; shipped: "
                          f"{', '.join(shipped) or 'none'} (see `rnnimg list`).")
    return PRETRAINED_ROOT / name


HUB_PREFIX = "hf:"
HUB_FILES = [CONFIG_FILE, WEIGHTS_FILE, "README.md", "evaluation.json"]


def hub_snapshot(repo_id: str) -> Path:
    """The local folder of Hub model ``repo_id`` (ORG/NAME), fetched through huggingface_hub's cache.

    huggingface_hub's own settings apply: ``HF_HUB_CACHE`` (where), ``HF_HUB_OFFLINE=1`` (the cache
    only, no network), ``HF_TOKEN``.
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise RnnImgError(f"hf:{repo_id} needs huggingface_hub: pip install 'rnnimg[hub]'.") from None
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise RnnImgError(f"hf: takes ORG/NAME (a Hub model id), got {repo_id!r}.")
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except Exception as err:  # no network, offline and not cached, no such repository, no access
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RnnImgError(f"cannot fetch hf:{repo_id} ({type(err).__name__}: {first}); check the "
                          "name and the network, or fetch it once online (HF_HUB_OFFLINE=1 uses "
                          "only the cache).") from None
    if not (folder / CONFIG_FILE).is_file():
        raise RnnImgError(f"hf:{repo_id} has no {CONFIG_FILE}; it is not an rnnimg model.")
    return folder


def read_run_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a run or model folder (or ``pretrained:NAME``), with
    one-line errors."""
    directory = resolve_model_dir(directory)
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


@dataclass(frozen=True)
class LoadedRun:
    """A model rebuilt from its folder, with what the folder says about it (read once).

    Attributes:
        model: the model, in eval mode.
        folder: the folder it was read from (``pretrained:NAME`` and ``hf:ORG/NAME`` resolved).
        metadata: the parsed ``config.json``: ``model`` (its registry name), ``config``, and for a
            training run ``data`` and ``training`` (what the trainer saved beside them).
    """

    model: RnnImgModel
    folder: Path
    metadata: dict[str, Any]

    @property
    def config(self) -> Any:
        """The model's typed config (``self.model.config``)."""
        return self.model.config

    @property
    def data(self) -> dict[str, Any]:
        """``config.json``'s ``data`` section (name and options of the training data), or {}."""
        data = self.metadata.get("data")
        return data if isinstance(data, dict) else {}


def load_pretrained(directory: str | os.PathLike, map_location: str = "cpu") -> RnnImgModel:
    """Rebuild any model from ``config.json`` + ``model.safetensors`` in ``directory``.

    ``directory`` may also be ``"pretrained:NAME"``, a model shipped with the package (offline).
    Nothing is unpickled: the config is JSON and the weights are safetensors. Callers that also
    need what ``config.json`` says besides the model (the training data, the settings) use
    :func:`load_run`, which reads it once for both.

    Raises:
        RnnImgError: for a missing folder or file, malformed JSON, an unknown model, weights of
            another ``weights_version`` or weights that do not fit the config.
    """
    return load_run(directory, map_location).model


def load_run(directory: str | os.PathLike, map_location: str = "cpu") -> LoadedRun:
    """:func:`load_pretrained`, returning the model together with the folder's ``config.json``
    (:class:`LoadedRun`), so that a caller never reads that file a second time.

    Raises:
        RnnImgError: as :func:`load_pretrained`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    directory = resolve_model_dir(directory)
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
        # load_model copies into the parameters where they are (the CPU); .to() below moves them
        missing, unexpected = load_model(model, weights, strict=False)
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
    return LoadedRun(model.to(map_location).eval(), Path(directory), meta)
