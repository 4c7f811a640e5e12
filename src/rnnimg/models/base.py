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
import numbers
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.errors import RnnImgError
from rnnimg.nn.patching import FRAME_OUTPUTS

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


# --- task base classes ------------------------------------------------------------------------


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise RnnImgError(f"temperature must be > 0, got {temperature}.")


def check_labels(label: Tensor | int | None, n: int, num_classes: int, device) -> Tensor | None:
    """Validate class labels for conditional sampling; returns a (n,) long tensor or None."""
    if label is None:
        if num_classes:
            return None  # unconditional sampling is allowed: the label embedding is skipped
        return None
    if not num_classes:
        raise RnnImgError("this model was trained without labels (num_classes=0); drop --label.")
    label = torch.as_tensor(label, dtype=torch.long, device=device)
    if label.dim() == 0:
        label = label.expand(n)
    if label.shape != (n,):
        raise RnnImgError(f"expected {n} labels, got shape {tuple(label.shape)}.")
    if label.min() < 0 or label.max() >= num_classes:
        raise RnnImgError(
            f"label {int(label.max() if label.max() >= num_classes else label.min())} is outside "
            f"0..{num_classes - 1} (the model has num_classes={num_classes})."
        )
    return label


class ImageGenerator(RnnImgModel):
    """A model of the ``generate`` task. Config fields used here: ``image_size``, ``channels``,
    ``num_classes``, ``output`` ("bernoulli" | "categorical"), ``levels``, ``binarization``."""

    task = "generate"

    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0, generator=None):
        raise NotImplementedError

    def dataset_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = {"image_size": c.image_size, "channels": c.channels}
        if c.output == "bernoulli":
            opts["binarize"] = c.binarization
        else:
            opts["levels"] = c.levels
        return opts

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        c = self.config
        shape = (batch_size, c.channels, c.image_size, c.image_size)
        if c.output == "bernoulli":
            image = torch.randint(0, 2, shape, generator=generator).float()
        else:
            image = torch.randint(0, c.levels, shape, generator=generator).float() / (c.levels - 1)
        batch = {"image": image}
        if c.num_classes:
            batch["label"] = torch.randint(0, c.num_classes, (batch_size,), generator=generator)
        return batch

    def check_image(self, image: Tensor, what: str = "image") -> None:
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if image.dim() != 4 or tuple(image.shape[1:]) != want:
            raise RnnImgError(
                f"{what} has shape {tuple(image.shape)}, but the model takes (B, {want[0]}, "
                f"{want[1]}, {want[2]}); resize it or train a model of that size."
            )

    def preview(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        from rnnimg.viz import make_grid

        n = 32
        label = None
        if self.config.num_classes:
            label = torch.arange(n, device=self.device) % self.config.num_classes
        images = self.sample(n, label=label, generator=generator)
        return {"samples.png": make_grid(images, nrow=8)}


def check_frame_config(config: Any) -> None:
    """Validate the fields every ``predict`` config shares (raises ValueError naming the field)."""
    if config.output not in FRAME_OUTPUTS:
        raise ValueError(f"output must be one of {FRAME_OUTPUTS}, got {config.output!r}")
    for name in ("frame_size", "channels", "context", "horizon", "patch"):
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(config, name)}")
    if config.tbptt < 0:
        raise ValueError(f"tbptt must be >= 0 (0 = full backpropagation), got {config.tbptt}")


def _detach_state(state: Any) -> Any:
    """Detach every tensor of a nested tuple/list state (truncated BPTT)."""
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach_state(s) for s in state)


class FramePredictor(RnnImgModel):
    """A model of the ``predict`` task: given the first frames of a clip, predict the next ones.

    Config fields used here: ``frame_size`` (square side in pixels, any size), ``channels``,
    ``context`` (frames given, default 10), ``horizon`` (frames predicted in training, default 10),
    ``grad_checkpoint`` (recompute each time step in the backward pass) and ``tbptt`` (detach the
    recurrent state every k steps; 0 = full backpropagation through time).

    A subclass defines one recurrent step, :meth:`forward_step` (frame t -> prediction of frame
    t+1), and :meth:`init_state`; everything that runs along time lives here, so the batch path
    (:meth:`rollout`, :meth:`predict`) and the streaming path (:meth:`step`) run the same
    operations and give the same numbers.
    """

    task = "predict"

    # --- what a subclass defines --------------------------------------------------------------
    def init_state(self, batch_size: int) -> Any:
        """The zero recurrent state for ``batch_size`` clips, on the model's device and dtype."""
        raise NotImplementedError

    def forward_step(self, frame: Tensor, state: Any) -> tuple[Tensor, Any, Tensor | None]:
        """One time step: frame (B, C, H, W) in [0, 1] -> (prediction of the next frame in [0, 1],
        new state, auxiliary loss of this step or None)."""
        raise NotImplementedError

    # --- streaming ----------------------------------------------------------------------------
    def step(self, frame: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed one frame (B, C, H, W); returns (prediction of the next frame, new state).

        Start with ``state = model.init_state(B)``. Feeding the context frames and then each
        returned prediction gives exactly :meth:`predict`'s result.
        """
        prediction, state, _ = self.forward_step(frame, state)
        return prediction, state

    # --- batch paths --------------------------------------------------------------------------
    def rollout(self, frames: Tensor, truth_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Run along a clip, predicting each next frame; the training and validation path.

        Args:
            frames: (B, T, C, H, W) in [0, 1].
            truth_mask: (B, T-1) bool; entry t says whether step t reads the true frame t (True)
                or the model's own prediction of it (False). Step 0 always reads the truth.
                ``None``: the truth for the first ``context`` steps, own predictions after (what
                :meth:`predict` does).

        Returns:
            (predictions (B, T-1, C, H, W), where [:, t] predicts frames[:, t+1] from the inputs of
            steps 0..t; the mean auxiliary loss per step, or None).
        """
        b, t = frames.shape[:2]
        c = self.config
        state, prev, aux_sum = self.init_state(b), None, None
        predictions = []
        for s in range(t - 1):
            if c.tbptt and s and s % c.tbptt == 0:
                state, prev = _detach_state(state), prev.detach()
            if s == 0 or (truth_mask is None and s < c.context):
                x = frames[:, s]
            elif truth_mask is None:
                x = prev
            else:
                x = torch.where(truth_mask[:, s].view(b, 1, 1, 1), frames[:, s], prev)
            if c.grad_checkpoint and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                prev, state, aux = checkpoint(self.forward_step, x, state, use_reentrant=False)
            else:
                prev, state, aux = self.forward_step(x, state)
            predictions.append(prev)
            if aux is not None:
                aux_sum = aux if aux_sum is None else aux_sum + aux
        aux_mean = None if aux_sum is None else aux_sum / (t - 1)
        return torch.stack(predictions, dim=1), aux_mean  # (B, T-1, C, H, W)

    def frame_loss(self, frames: Tensor, predictions: Tensor, aux: Tensor | None = None,
                   **extra: float | Tensor) -> LossOutput:
        """MSE over every next-frame prediction (as PredRNN and OpenSTL train), plus ``aux``.

        Metrics, on the frames after the context only: ``mse`` and ``mae`` summed over (C, H, W)
        and averaged over clips and frames (OpenSTL's convention, as ``rnnimg.metrics``), and
        ``mse_per_pixel``; ``aux`` when given, and ``extra`` as they are.
        """
        target = frames[:, 1:]  # (B, T-1, C, H, W)
        loss = F.mse_loss(predictions, target)
        future = slice(self.config.context - 1, None)  # predictions of frames context..T-1
        err = (predictions[:, future] - target[:, future]).detach()
        metrics: dict[str, float | Tensor] = {
            "mse": err.pow(2).flatten(2).sum(2).mean(), "mae": err.abs().flatten(2).sum(2).mean(),
            "mse_per_pixel": err.pow(2).mean(),
        }
        if aux is not None:
            loss = loss + aux
            metrics["aux"] = aux.detach()
        metrics.update(extra)
        return LossOutput(loss, metrics)

    def check_frames(self, frames: Tensor, what: str = "frames", values: bool = False) -> None:
        """Raise :class:`RnnImgError` unless ``frames`` is (B, T, C, H, W) of this model's size
        (and, with ``values``, finite and in [0, 1]: a check that syncs with the device)."""
        c = self.config
        want = (c.channels, c.frame_size, c.frame_size)
        if not isinstance(frames, Tensor) or frames.dim() != 5 or tuple(frames.shape[2:]) != want:
            shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise RnnImgError(
                f"{what} has shape {shape}, but the model takes (B, T, {want[0]}, {want[1]}, "
                f"{want[2]}) clips; convert the channels / resize the frames, or train a model of "
                "that size."
            )
        if frames.shape[0] == 0 or frames.shape[1] == 0:
            raise RnnImgError(f"{what} is empty (shape {tuple(frames.shape)}); give at least one frame.")
        if values and not torch.isfinite(frames).all():
            raise RnnImgError(f"{what} contains NaN or Inf values; clean the input frames.")
        if values and (frames.min() < 0 or frames.max() > 1):
            raise RnnImgError(f"{what} has values in [{float(frames.min()):g}, "
                              f"{float(frames.max()):g}]; frames must lie in [0, 1] (divide 8-bit "
                              "frames by 255).")

    @torch.inference_mode()
    def predict(self, context: Tensor, horizon: int, *, generator=None) -> Tensor:
        """Predict the ``horizon`` frames that follow ``context``, feeding back its own predictions.

        Args:
            context: (B, T0, C, H, W) in [0, 1], any T0 >= 1.
            horizon: frames to predict, >= 1; may exceed the horizon the model was trained on.
            generator: accepted like every task verb's; unused, as the prediction is deterministic.

        Returns:
            (B, horizon, C, H, W) in [0, 1].

        Raises:
            RnnImgError: for a wrong shape, channel count or frame size, values outside [0, 1] or
                not finite, or ``horizon`` < 1.
        """
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise RnnImgError(f"horizon must be a whole number >= 1, got {horizon!r}.")
        self.check_frames(context, "context", values=True)
        context = context.to(self.device, next(self.parameters()).dtype)
        state = self.init_state(context.shape[0])
        for t in range(context.shape[1]):
            prediction, state = self.step(context[:, t], state)
        predictions = [prediction]
        for _ in range(int(horizon) - 1):
            prediction, state = self.step(prediction, state)
            predictions.append(prediction)
        return torch.stack(predictions, dim=1)  # (B, horizon, C, H, W)

    # --- trainer and evaluator hooks ----------------------------------------------------------
    def dataset_options(self) -> dict[str, Any]:
        c = self.config
        return {"frames": c.context + c.horizon, "frame_size": c.frame_size, "channels": c.channels}

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        c = self.config
        shape = (batch_size, c.context + c.horizon, c.channels, c.frame_size, c.frame_size)
        return {"frames": torch.rand(shape, generator=generator)}

    @torch.no_grad()
    def evaluate_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor | float]:
        """Per-time-step metrics of predicting frames context..context+horizon-1 from the first
        ``context`` frames only: ``mse``, ``mae`` (summed over C, H, W), ``psnr``, ``ssim``, each
        (horizon,) averaged over clips, and ``loss`` (the validation loss, own predictions fed
        back)."""
        from rnnimg.metrics import mae_per_frame, mse_per_frame, psnr, ssim

        c = self.config
        frames = batch["frames"]
        self.check_frames(frames)
        if frames.shape[1] < c.context + c.horizon:
            raise RnnImgError(
                f"clips have {frames.shape[1]} frames, but evaluation needs context + horizon = "
                f"{c.context + c.horizon}; load the data with frames={c.context + c.horizon}."
            )
        frames = frames[:, :c.context + c.horizon].to(self.device)
        # rollout without a truth mask reads only the context and then its own predictions: the
        # same numbers as predict() (tested), and the validation loss comes with them.
        predictions, aux = self.rollout(frames)  # (B, T-1, C, H, W)
        loss = self.frame_loss(frames, predictions, aux).loss
        prediction, target = predictions[:, c.context - 1:].float(), frames[:, c.context:].float()
        return {"loss": loss, "mse": mse_per_frame(prediction, target),
                "mae": mae_per_frame(prediction, target), "psnr": psnr(prediction, target),
                "ssim": ssim(prediction, target)}

    def preview(self, batch: dict[str, Tensor], generator: torch.Generator) -> dict[str, Tensor]:
        """``prediction.png``: for up to 4 clips, the true clip in one row and below it the
        prediction from the context (grey cells under the context frames)."""
        from rnnimg.viz import make_grid

        c = self.config
        frames = batch["frames"][:4, :c.context + c.horizon].to(self.device)  # (n, T, C, H, W)
        n, t = frames.shape[:2]
        prediction = self.predict(frames[:, :c.context], t - c.context)
        blank = torch.full_like(frames[:, :c.context], 0.5)
        rows = torch.stack([frames, torch.cat([blank, prediction], dim=1)], dim=1)  # (n, 2, T, ...)
        return {"prediction.png": make_grid(rows.flatten(0, 2), nrow=t)}
