"""Model contracts: the base class every registered model derives from, and checkpoint I/O.

A model is a plain ``torch.nn.Module`` with a typed config, a ``loss(batch) -> LossOutput`` and one
inference verb per task (docs/architecture.md). Lightning never appears here: the training layer wraps any
model through this contract alone.

Checkpoints describe themselves: ``config.json`` names the model and holds its config, and
``model.safetensors`` holds the weights, so :func:`load_pretrained` rebuilds a model without the
caller naming its class and without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from rnnimg.errors import InputError, RnnImgError
from rnnimg.fileio import atomic_write, atomic_write_text

if TYPE_CHECKING:
    from collections.abc import Collection

    from rnnimg.data.properties import DataProperties

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
# torch.compile's modes (torch._inductor.list_mode_options()); "reduce-overhead" adds CUDA graphs.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass
class LossOutput:
    """What ``model.loss(batch)`` returns.

    Attributes:
        loss: the scalar to minimise.
        metrics: what the task reports (nats, bits/dim, MSE ...), logged by the trainer as they are.
    """

    loss: Tensor
    metrics: dict[str, float | Tensor] = field(default_factory=dict)


class RnnImgModel(nn.Module):
    """Base class of every rnnimg model.

    Subclasses set ``config_class`` (a dataclass validated in ``__post_init__``), ``task``,
    ``presets`` (name -> dict of config values) and register with ``@register_model(name)``.
    """

    name: ClassVar[str] = ""
    task: ClassVar[str] = ""
    extra_tasks: ClassVar[tuple[str, ...]] = ()
    # Tasks of datasets it also learns from, besides its own (a voxel generator reads the voxels of
    # reconstruct data): see takes_data_of.
    data_tasks: ClassVar[tuple[str, ...]] = ()
    config_class: ClassVar[type] = object
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    # Raised when a change makes older weights mean something else under the same names and
    # shapes (pixelrnn's gate order): load_pretrained refuses weights saved by another version.
    weights_version: ClassVar[int] = 1
    # Metrics of reduce_statistics that validation reports pooled over the whole validation split
    # (the statistics of every batch summed, reduced once: mIoU from one confusion matrix), logged
    # as val/NAME; an average of per-batch values would be a different, noisier number.
    pooled_validation_metrics: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def tasks(cls) -> tuple[str, ...]:
        return (cls.task, *cls.extra_tasks)

    @classmethod
    def takes_data_of(cls, task: str) -> bool:
        """Whether datasets of ``task`` (their batch keys) can feed this model."""
        return task in cls.tasks() or task in cls.data_tasks

    # --- contract -----------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        raise NotImplementedError

    def dataset_options(self) -> dict[str, Any]:
        """Options for :func:`rnnimg.data.load_dataset` so the data match this model's config."""
        return {}

    # --- the data shape the model ---------------------------------------------------------------
    # Property of the data (rnnimg.data.properties.DataProperties: image_size, channels,
    # source_channels, frame_size, num_classes, class_names, vocabulary, max_words) -> the config
    # field it sets unless the user sets that field. A property named like a dataset option
    # (image_size, channels, frame_size, source_channels) is read off the data as they are.
    data_fields: ClassVar[dict[str, str]] = {}

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], data: DataProperties,
                    user: Collection[str]) -> tuple[dict[str, Any], list[str]]:
        """The config values that ``data`` decide, and one-line notes for the user.

        The trainer calls it once, before it builds the model (:mod:`rnnimg.train.datashape`).
        The default takes each :attr:`data_fields` property the data have, for every field the
        user did not set. Models extend it with what else the data decide (a generator's output
        on colour data) and with notes on what they cannot use (labels, captions) that name the
        flag to change.

        Args:
            values: the config that the preset and the user's overrides make (field -> value).
            data: what the training data carry.
            user: the fields the user set (``--set``); the data never change them.

        Raises:
            RnnImgError: the data cannot make a model of this class without the user's choice
                (images that are not square), or contradict what the user set.
        """
        fitted: dict[str, Any] = {}
        for prop, name in cls.data_fields.items():
            if name in user:
                continue
            value = getattr(data, prop)
            hw = {"image_size": data.image_hw, "frame_size": data.frame_hw}.get(prop)
            if value is None and hw is not None:
                what = "images" if prop == "image_size" else "frames"
                raise RnnImgError(f"{data.name} has {hw[0]}x{hw[1]} {what}, but {cls.name} takes square "
                                  f"ones; pass --set {name}=N to resize them to N x N.")
            if value is not None:
                fitted[name] = value
        return fitted, []

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        """A random batch that fits the config: for contract tests and benchmarks."""
        raise NotImplementedError

    def check_dataset(self, dataset: Any, name: str) -> None:
        """Raise :class:`RnnImgError` if ``dataset`` cannot feed this model.

        The trainer and the evaluator call it before they use a dataset, so that a mismatch (no
        labels for a class-conditional model, mask labels beyond ``num_classes``, the wrong number
        of channels) is one line naming ``name`` rather than a traceback deep in a batch. The
        default accepts anything; models override it for what they need.
        """

    # --- evaluation: additive statistics, reduced once per split --------------------------------
    evaluation_options: ClassVar[tuple[str, ...]] = ()  # what evaluation_statistics(**options) takes
    # True: evaluation_statistics also takes progress=callable(done, total), called as its inner
    # draws finish (done of the batch's total): one batch can take minutes
    evaluation_reports_progress: ClassVar[bool] = False
    # metrics that evaluation_statistics(batch, per_item=True) also gives item by item, each as
    # "<name>_per_image": a (B,) tensor in the batch's order, not a sum; ``evaluate`` takes them
    # out of the sums and lists them per item of the split (super-resolution's PSNR-Y per photo)
    item_scores: ClassVar[tuple[str, ...]] = ()

    def evaluation_dataset_options(self, **options: Any) -> dict[str, Any]:
        """Dataset options that evaluation ``options`` need beyond :meth:`dataset_options` (a
        predictor scored at a longer horizon needs longer clips); the user's own ``--data-opt``
        still wins. The default: none."""
        return {}

    @torch.no_grad()
    def evaluation_statistics(self, batch: dict[str, Tensor], **options: Any) -> dict[str, Tensor]:
        """Sums over the items of ``batch`` that add up across batches and processes.

        Every value is a float64 tensor of any shape that is *summed* over batches (and
        all-reduced under DDP); ``"count"`` is the number of items. :meth:`reduce_statistics`
        turns the totals of a split into the reported metrics, so pooled metrics (mIoU from one
        confusion matrix, the NLL of a whole test set) are exact rather than averages of
        per-batch values. The default sums the ``loss`` metrics times the batch size.

        Args:
            batch: a batch of this model's task.
            **options: evaluation options the model lists in ``evaluation_options``.
        """
        n = len(next(iter(batch.values())))
        out = self.loss(batch)
        stats = {"loss": out.loss.detach().double().cpu() * n}
        for key, value in out.metrics.items():
            stats[key] = torch.as_tensor(value).detach().double().cpu() * n
        stats["count"] = torch.tensor(float(n), dtype=torch.float64)
        return stats

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        """The metrics of a whole split from the summed :meth:`evaluation_statistics`.

        The default divides every sum by ``count``. Lists run over time steps (keys ending in
        ``_per_step``) or classes (``_per_class``).
        """
        count = stats["count"]
        return {key: as_metric(value / count) for key, value in stats.items() if key != "count"}

    # --- adversarial training (optional) --------------------------------------------------------
    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by :meth:`discriminator_loss` with their own optimizer.

        Non-empty only for models with an adversarial loss: the trainer then takes, at every step,
        one optimizer step on ``discriminator_loss(batch)`` for these parameters and one on
        ``loss(batch)`` (which includes the adversarial term) for all the others.
        """
        return []

    def discriminator_loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """The discriminator's loss on ``batch``; see :meth:`discriminator_parameters`."""
        raise NotImplementedError(f"{self.name} has no discriminator")

    def set_training_step(self, step: int) -> None:
        """Told by the trainer before each training step (the optimizer steps taken so far).

        Models with a schedule over training (PredRNN's scheduled sampling) override it; the
        default ignores it, so the trainer can call it on any model.
        """

    # --- compiled training (optional) -----------------------------------------------------------
    def compile_steps(self, mode: str | None = "default") -> None:
        """Run the part of the training path worth compiling through ``torch.compile(mode=mode)``
        from now on (``None``: eager again). Weights and state_dict keys are unchanged.

        The default refuses: a generic ``nn.Module.compile`` of ``forward`` would not reach
        ``loss``, which is what the trainer calls. Models that support it override this (the frame
        predictors compile their per-time-step function).

        Raises:
            RnnImgError: the model has no compiled path.
        """
        if mode is None:
            return
        raise InputError("compile", f"{{arg}} is not supported for {self.name}: it has no compiled "
                                    "training step (RnnImgModel.compile_steps).")

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
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"model": self.name, "weights_version": self.weights_version,
                "config": self.config_dict(), **(extra or {})}
        atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_weights(self, tmp))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(meta, indent=2))


def first_item(dataset: Any, name: str, keys: tuple[str, ...], empty: str, absent: str,
               hint: str) -> dict:
    """The first item of ``dataset`` for a model's ``check_dataset``, after the two checks every
    task makes: the data are not empty ("NAME is empty; EMPTY."), and the item has the batch
    ``keys`` ("NAME has no ABSENT (its keys); HINT")."""
    if len(dataset) == 0:
        raise RnnImgError(f"{name} is empty; {empty}.")
    item = dataset[0]
    if any(key not in item for key in keys):
        raise RnnImgError(f"{name} has no {absent} ({', '.join(item)}); {hint}")
    return item


def check_compile_mode(mode: str | None) -> None:
    """Raise RnnImgError unless ``mode`` is None or one of :data:`COMPILE_MODES`."""
    if mode is not None and mode not in COMPILE_MODES:
        raise InputError("compile", f"{{arg}} {mode!r} is not a torch.compile mode; use one of "
                                    f"{', '.join(COMPILE_MODES)} (or none).")


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Write ``model``'s state dict to ``path`` as safetensors.

    Every tensor is written as a contiguous copy of its own: cuDNN flattens an ``nn.LSTM``'s
    weights into one buffer, and safetensors refuses tensors that share storage ("found no
    suitable name to keep"), so without the copies a model trained on a GPU could not be saved.
    """
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def as_metric(value: Tensor) -> float | list[float]:
    """A reduced statistic as a float (one element) or a list of floats."""
    value = value.detach().double().cpu()
    return value.item() if value.numel() == 1 else [float(v) for v in value.flatten()]
