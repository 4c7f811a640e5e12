"""Training settings: the :class:`TrainSettings` dataclass, reading them from a config file
(``rnnimg train --config FILE``), and merging them with a run's saved settings on ``--resume``."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnimg.errors import RnnImgError
from rnnimg.models.base import RnnImgModel, check_compile_mode
from rnnimg.models.registry import get_model_class, list_models
from rnnimg.recipes import training_defaults

# Precisions the trainer accepts. The models compute in float32 (optionally under bf16/fp16
# autocast); "64-true" or "bf16-true" would cast the weights and fail deep inside a layer.
PRECISIONS = ("32-true", "32", "bf16-mixed", "16-mixed")


@dataclass
class TrainSettings:
    """Everything a training run needs besides the model config. Saved in config.json."""

    model: str  # registered model name
    data: str = "mnist-5k"  # registered dataset name (or folder:PATH, ...)
    preset: str | None = None  # model preset; also picks its training defaults (rnnimg.recipes)
    overrides: dict[str, Any] = field(default_factory=dict)  # model config fields over the preset
    data_options: dict[str, Any] = field(default_factory=dict)  # data_dir, download, strict, ...
    # Model config fields the training data decided (image size, channels, classes, ...): filled
    # in by the trainer (rnnimg.train.datashape), never read from a config file; --set wins.
    from_data: dict[str, Any] = field(default_factory=dict)
    out: str | None = None  # run folder; default runs/MODEL[-PRESET]
    epochs: int | None = None  # stop after this many epochs ...
    max_steps: int | None = None  # ... or this many optimizer steps (default: 1 epoch)
    batch_size: int | None = None  # default: the preset's, else 64
    lr: float | None = None  # Adam learning rate; default: the preset's, else 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0  # clip the gradient norm to this (None or 0: off)
    seed: int = 0  # seeds the weights, the data order and every random draw of the data
    val_fraction: float = 0.05  # held out of train for validation where the data have no val split
    val_batches: int | None = 20  # validation batches per epoch (None: all)
    # validate every N optimizer steps, across epoch ends (None: at the end of every epoch only, so
    # a run shorter than an epoch never validates)
    val_every_n_steps: int | None = None
    ckpt_every_n_steps: int = 200  # periodic checkpoints (and last.ckpt) every N steps
    keep_checkpoints: int = 3  # periodic checkpoints kept besides last.ckpt and best.ckpt
    sample_every_n_steps: int = 200
    log_every_n_steps: int = 10
    num_workers: int = 0
    accelerator: str = "auto"  # passed to Lightning
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1  # machines for multi-node DDP (see docs/training.md)
    precision: str = "32-true"
    # torch.compile mode of the model's training step (RnnImgModel.compile_steps), or None for
    # eager; True means "default". Changes speed, not the math, so a --resume may change it.
    compile: str | None = None
    # continue from the newest checkpoint with the run's saved settings; "auto": resume the run in
    # --out if there is one, else start it
    resume: bool | str = False
    overwrite: bool = False  # replace an existing run folder
    progress: bool = True  # show the progress bar

    def resolved(self) -> TrainSettings:
        """Fill the preset's training defaults into the fields left at None and check every value.

        Raises:
            RnnImgError: naming the flag of the first bad value.
        """
        cls = get_model_class(self.model)
        defaults = training_defaults(self.model, self.preset)
        s = dataclasses.replace(self)
        if s.batch_size is None:
            s.batch_size = defaults.batch_size or 64
        if s.lr is None:
            s.lr = float(defaults.lr or 1e-3)
        if s.out is None:
            s.out = str(Path("runs") / (self.model + (f"-{self.preset}" if self.preset else "")))
        for name in ("batch_size", "ckpt_every_n_steps", "sample_every_n_steps", "log_every_n_steps",
                     "keep_checkpoints", "num_nodes"):
            value = getattr(s, name)
            if not isinstance(value, int) or value < 0 or (name in ("batch_size", "num_nodes")
                                                            and value < 1):
                raise RnnImgError(f"{flag_of(name)} must be a positive integer, got {value!r}.")
        for name in ("epochs", "max_steps", "val_every_n_steps"):
            value = getattr(s, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise RnnImgError(f"{flag_of(name)} must be a positive integer, got {value!r}.")
        if s.grad_clip is not None:
            if s.grad_clip == 0:
                s.grad_clip = None  # 0 means off, as the CLI's --grad-clip 0 does
            elif not 0 < s.grad_clip < math.inf:  # a negative norm flips every gradient's sign
                raise RnnImgError(f"--grad-clip must be > 0 (or 0 for off), got {s.grad_clip}.")
        if not isinstance(s.seed, int) or not 0 <= s.seed <= 2**32 - 1:  # NumPy's seed range
            raise RnnImgError(f"--seed must be in 0..{2**32 - 1}, got {s.seed}.")
        if s.num_workers < 0:
            raise RnnImgError(f"--num-workers must be >= 0, got {s.num_workers}.")
        if not 0 < s.lr < math.inf:  # --lr inf ends in NaN at the first step
            raise RnnImgError(f"--lr must be a finite number > 0, got {s.lr}.")
        if not 0 <= s.weight_decay < math.inf:
            raise RnnImgError(f"--weight-decay must be a finite number >= 0, got {s.weight_decay}.")
        if not 0 <= s.val_fraction < 1:
            raise RnnImgError(f"--val-fraction must be in [0, 1), got {s.val_fraction}.")
        if str(s.precision) not in PRECISIONS:
            raise RnnImgError(f"--precision {s.precision} is not supported: rnnimg models train in "
                              f"{', '.join(PRECISIONS)} (float32 weights, optional autocast).")
        if s.compile is True or s.compile is False or s.compile in ("none", ""):
            s.compile = "default" if s.compile is True else None
        check_compile_mode(s.compile)
        if s.compile is not None and cls.compile_steps is RnnImgModel.compile_steps:
            raise RnnImgError(f"--compile is not supported for {self.model}; it is for "
                              f"{', '.join(compile_supported())}.")
        return s

    def to_dict(self) -> dict[str, Any]:
        """The settings as saved in config.json (a later --resume or --config reads them back)."""
        return {**dataclasses.asdict(self), "resume": False, "overwrite": False}


# Flag names of the fields whose flag is not simply --field-name.
_FLAGS = {"overrides": "--set", "data_options": "--data-opt", "ckpt_every_n_steps": "--ckpt-every",
          "sample_every_n_steps": "--sample-every", "log_every_n_steps": "--log-every",
          "keep_checkpoints": "--keep-ckpts", "model": "MODEL"}


def compile_supported() -> list[str]:
    """The registered models with a compiled training step (they override compile_steps)."""
    return [n for n in list_models()
            if get_model_class(n).compile_steps is not RnnImgModel.compile_steps]


def flag_of(name: str) -> str:
    """The command-line flag of a TrainSettings field."""
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


FIELDS = {f.name: f for f in dataclasses.fields(TrainSettings)}
# On --resume these come from the run folder; a different value given with --resume is an error.
FIXED_ON_RESUME = ("model", "data", "preset", "overrides", "data_options", "batch_size", "lr",
                   "weight_decay", "grad_clip", "seed", "val_fraction", "val_batches", "precision")
BUDGET = ("epochs", "max_steps")  # may be raised on --resume to extend a run
LOCATION_OPTIONS = {"data_dir", "download", "strict"}  # data options a resume may change


def _default(name: str) -> Any:
    f = FIELDS[name]
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def given_fields(settings: TrainSettings) -> set[str]:
    """The fields that differ from the defaults: what a library caller evidently chose."""
    return {n for n in FIELDS if n == "model" or getattr(settings, n) != _default(n)}


def merge_resume(saved: dict[str, Any], settings: TrainSettings, given: set[str] | None,
                 run_dir: Path) -> TrainSettings:
    """The settings of a resumed run: the run's saved settings, with what was given on top.

    Budget flags (``--max-steps``, ``--epochs``) may extend the run; hardware, logging and
    progress flags apply as given; any other flag that differs from the saved value is an error
    that names it, since it would silently change the run being continued.

    Args:
        saved: the ``training`` section of the run's config.json.
        settings: the settings as given for the resume.
        given: the fields the user set explicitly (None: those that differ from the defaults).
        run_dir: for the messages.
    """
    given = given_fields(settings) if given is None else set(given) | {"model"}
    known = {k: v for k, v in saved.items() if k in FIELDS}
    base = TrainSettings(**{**{k: _default(k) for k in FIELDS if k != "model"}, **known})
    values = dataclasses.asdict(base)
    for name in given - {"from_data"}:  # what the data decided stays the run's
        new, old = getattr(settings, name), values.get(name)
        if name == "data_options":  # where the files are may change; what the data are may not
            new, old = dict(new or {}), dict(old or {})
            changed = {k: v for k, v in new.items() if k not in LOCATION_OPTIONS and old.get(k) != v}
            if changed:
                raise RnnImgError(
                    f"--data-opt {_show(changed)} differs from the {_show(old)} that {run_dir} was "
                    "trained with; --resume continues the run with its saved settings, so drop it "
                    "(--data-dir, --download and --strict may change)."
                )
            values[name] = {**old, **{k: v for k, v in new.items() if k in LOCATION_OPTIONS}}
            continue
        if name in FIXED_ON_RESUME:
            if name == "model" and new is None:
                continue
            if new != old and not (name == "grad_clip" and not new and not old):
                raise RnnImgError(
                    f"{flag_of(name)} {_show(new)} differs from the {_show(old)} that {run_dir} was "
                    f"trained with; --resume continues the run with its saved settings, so drop "
                    f"{flag_of(name)} (or start a new run with --out)."
                )
        else:
            values[name] = new
    values["resume"], values["overwrite"], values["out"] = True, False, str(run_dir)
    return TrainSettings(**values)


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read training settings from a JSON or YAML file.

    The file holds TrainSettings fields (``max_steps`` or ``max-steps``), or is a run's config.json,
    whose ``training`` section is used. ``resume`` and ``overwrite`` are never taken from a file.

    Raises:
        RnnImgError: for a missing or malformed file, or an unknown key (named).
    """
    path = Path(path)
    if not path.is_file():
        raise RnnImgError(f"--config {path}: no such file.")
    text = path.read_text(errors="replace")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RnnImgError(f"--config {path} is not valid {path.suffix[1:] or 'JSON'}: {first}") from None
    if not isinstance(data, dict):
        raise RnnImgError(f"--config {path} must hold a mapping of settings, not a {type(data).__name__}.")
    if "training" in data and isinstance(data["training"], dict):  # a run's config.json
        data = data["training"]
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        name = {"set": "overrides", "data_opt": "data_options", "ckpt_every": "ckpt_every_n_steps",
                "sample_every": "sample_every_n_steps", "log_every": "log_every_n_steps",
                "keep_ckpts": "keep_checkpoints"}.get(name, name)
        if name not in FIELDS:
            raise RnnImgError(f"--config {path}: unknown setting {key!r}; the settings are "
                              f"{', '.join(sorted(FIELDS))}.")
        if name in ("resume", "overwrite", "from_data"):  # from_data: the data decide it again
            continue
        if name in ("overrides", "data_options") and not isinstance(value, dict):
            raise RnnImgError(f"--config {path}: {key} must be a mapping, got {value!r}.")
        out[name] = value
    return out
