"""Model contracts: the base class every registered model derives from, and checkpoint I/O.

A model is a plain ``torch.nn.Module`` with a typed config, a ``loss(batch) -> LossOutput`` and one
inference verb per task (DESIGN.md). Lightning never appears here: the training layer wraps any
model through this contract alone.

Checkpoints describe themselves: ``config.json`` names the model and holds its config, and
``model.safetensors`` holds the weights, so :func:`load_pretrained` rebuilds a model without the
caller naming its class and without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from rnnimg.errors import RnnImgError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class LossOutput:
    """What ``model.loss(batch)`` returns.

    Attributes:
        loss: the scalar to minimise.
        metrics: what the task reports (nats, bits/dim, MSE ...), logged by the trainer as they are.
    """

    loss: Tensor
    metrics: dict[str, float | Tensor] = field(default_factory=dict)


def _default_file_mode() -> int:
    """0o666 less the umask: the mode ``open()`` would give a new file (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so a crash never leaves a
    half-written file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class RnnImgModel(nn.Module):
    """Base class of every rnnimg model.

    Subclasses set ``config_class`` (a dataclass validated in ``__post_init__``), ``task``,
    ``presets`` (name -> dict of config values) and register with ``@register_model(name)``.
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = ""
    extra_tasks: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type] = object
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Trainer defaults per preset (lr, batch_size, ...); the CLI's flags override them.
    training_presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # What `rnnimg demo` trains: TrainSettings fields (preset, data, max_steps, batch_size, ...).
    demo: ClassVar[dict[str, Any] | None] = None

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def tasks(cls) -> tuple[str, ...]:
        return (cls.task, *cls.extra_tasks)

    # --- contract -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        raise NotImplementedError

    def dataset_options(self) -> dict[str, Any]:
        """Options for :func:`rnnimg.data.load_dataset` so the data match this model's config."""
        return {}

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        """A random batch that fits the config: for contract tests and benchmarks."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor | float]:
        """Metrics averaged over ``batch``; the evaluator weights them by batch size."""
        return dict(self.loss(batch).metrics)

    def preview(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        """Pictures to write during training: file name -> image (3, H, W) or frames (T, 3, H, W)."""
        return {}

    def set_training_step(self, step: int) -> None:
        """Told by the trainer before each training step (the optimizer steps taken so far).

        Models with a schedule over training (PredRNN's scheduled sampling) override it; the
        default ignores it, so the trainer can call it on any model.
        """

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # --- checkpoints --------------------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def save_pretrained(self, directory: str | os.PathLike, extra: dict[str, Any] | None = None):
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically).

        Args:
            directory: created if missing.
            extra: more top-level keys for ``config.json`` (the trainer adds data and training).
        """
        from safetensors.torch import save_model

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "config": self.config_dict(), **(extra or {})}
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".model.", suffix=".tmp")
        os.close(fd)
        try:
            save_model(self, tmp)
            os.chmod(tmp, _default_file_mode())
            os.replace(tmp, directory / WEIGHTS_FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        atomic_write_bytes(directory / CONFIG_FILE, json.dumps(meta, indent=2).encode())

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu"):
        return load_pretrained(directory, map_location=map_location)


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
        RnnImgError: for a missing folder or file, malformed JSON, an unknown model or weights that
            do not fit the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    from rnnimg.models.registry import build_config, get_model_class

    meta = read_run_config(directory)
    cls = get_model_class(meta["model"])
    if not isinstance(meta["config"], dict):
        raise RnnImgError(f"{Path(directory) / CONFIG_FILE}: 'config' must be an object.")
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
