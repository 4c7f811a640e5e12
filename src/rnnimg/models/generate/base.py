"""The ``generate`` task's base class: :class:`ImageGenerator`, and the argument checks its
sampling verbs share (temperature, class labels)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg import limits
from rnnimg.errors import InputError, RnnImgError
from rnnimg.metrics import nats_to_bits_per_dim
from rnnimg.models.base import LossOutput, RnnImgModel

if TYPE_CHECKING:
    from collections.abc import Collection

    from rnnimg.data.properties import DataProperties


def check_generator_config(config: Any) -> None:
    """Validate the fields every ``generate`` config shares: ``image_size``, ``channels``,
    ``output``, ``levels``, ``binarization`` and ``num_classes`` (raises ValueError naming the
    field). Call it from the config's ``__post_init__``."""
    if config.output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {config.output!r}")
    if config.binarization not in BINARIZATIONS:
        raise ValueError(f"binarization must be one of {BINARIZATIONS}, got {config.binarization!r}")
    if config.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {config.channels}")
    if not 2 <= config.levels <= 256:
        raise ValueError(f"levels must be in 2..256, got {config.levels}")
    if config.image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {config.image_size}")
    if config.num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {config.num_classes}")


OUTPUTS = ("categorical", "bernoulli")  # softmax over levels | one Bernoulli per pixel
BINARIZATIONS = ("fixed", "dynamic")


def check_temperature(temperature: float) -> None:
    """The sampling temperature, in the limits the CLI and the page share (rnnimg.limits)."""
    limits.check_temperature(temperature)


def check_labels(label: Tensor | int | None, n: int, num_classes: int, device) -> Tensor | None:
    """Validate class labels for conditional sampling; returns a (n,) long tensor or None."""
    if label is None:  # unconditional sampling is allowed: the label embedding is skipped
        return None
    if not num_classes:
        raise InputError("label", "this model was trained without labels (num_classes=0); drop {arg}.")
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


def low_res_scale(model) -> int:
    """The ``low_res_scale`` of a generator's config: s > 0 for a model that draws an image given
    its downscale by s, 0 for every other."""
    return int(getattr(model.config, "low_res_scale", 0) or 0)


def check_low_res(model, low_res, n: int, arg: str = "low_res") -> Tensor | None:
    """Validate the low-resolution condition of ``n`` samples; returns it as (n, C, h, w) float on
    the model's device, or None for a model without one.

    Raises:
        InputError: a low-resolution image for a model that takes none, none for one that needs
            one, or one of the wrong size or channels (or batch).
    """
    scale, c = low_res_scale(model), model.config
    if not scale:
        if low_res is not None:
            raise InputError(arg, f"this {model.name} model was trained without a low-resolution "
                                  "input (low_res_scale=0), so it takes none; drop {arg}.")
        return None
    side = c.image_size // scale
    what = f"{side}x{side} {'colour' if c.channels == 3 else 'grey'} images"
    if low_res is None:
        raise InputError(arg, f"this {model.name} model draws {c.image_size}x{c.image_size} images "
                              f"from {what} (low_res_scale={scale}); pass one with {{arg}}.")
    low_res = torch.as_tensor(low_res)
    if low_res.dim() == 3:
        low_res = low_res.unsqueeze(0)
    if low_res.dim() != 4:
        raise InputError(arg, f"{{arg}} must be an image (C, H, W) or a batch (B, C, H, W), got shape "
                              f"{tuple(low_res.shape)}.")
    got_c, got_h, got_w = low_res.shape[1:]
    if (got_h, got_w) != (side, side):
        raise InputError(arg, f"{{arg}} is {got_w}x{got_h}, but this model takes {what} (its "
                              f"{c.image_size}x{c.image_size} output / low_res_scale {scale}); "
                              f"resize it to {side}x{side}.")
    if got_c != c.channels:
        kinds = {1: "grey", 3: "colour"}
        raise InputError(arg, f"{{arg}} is a {kinds.get(int(got_c), f'{got_c}-channel')} image, but "
                              f"this model takes {what}; convert it to "
                              f"{kinds[c.channels]}.")
    if low_res.shape[0] not in (1, n):
        raise InputError(arg, f"{{arg}} holds {low_res.shape[0]} images for {n} samples; give one "
                              f"image, or {n}.")
    low_res = low_res.to(model.device, torch.float32)
    return low_res.expand(n, -1, -1, -1).contiguous()


def uniforms(shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device | str) -> Tensor:
    """Uniform draws in [0, 1) of ``shape`` on ``device``, from ``generator`` wherever it lives.

    A ``torch.Generator`` belongs to one device, and ``torch.rand(..., generator=g, device=d)``
    fails when they differ (a CPU generator with a model on a GPU, or the reverse). So the numbers
    are drawn on the generator's device and then moved: the same generator state gives the same
    numbers whatever the model's device. Without a generator, the global RNG of ``device`` draws.
    """
    if generator is None:
        return torch.rand(shape, device=device)
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


class ImageGenerator(RnnImgModel):
    """A model of the ``generate`` task. Config fields used here: ``image_size``, ``channels``,
    ``num_classes``, ``output`` ("bernoulli" | "categorical"), ``levels``, ``binarization``."""

    task = "generate"
    data_fields: ClassVar[dict[str, str]] = {"image_size": "image_size", "channels": "channels"}

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], data: DataProperties,
                    user: Collection[str]) -> tuple[dict[str, Any], list[str]]:
        """Size and channels from the data (the default); besides:

        - Bernoulli output binarizes grey data only: on colour data the model takes a softmax over
          ``levels`` (``output="categorical"``) unless the user asked for Bernoulli output.
        - Class labels: a conditional model (``num_classes`` > 0 in the preset) takes the data's
          number of classes (0 on data without labels); an unconditional one says, in a note,
          that it ignores them and how to use them.
        - Captions: a model without a ``vocabulary`` field says that it cannot use them.
        """
        fitted, notes = super().fit_to_data(values, data, user)
        channels = fitted.get("channels", values["channels"])
        if values.get("output") == "bernoulli" and channels == 3:
            if "output" in user:
                raise RnnImgError(f"{data.name} has colour images, but --set output=bernoulli models "
                                  "binarized grey pixels; drop it (colour takes output=categorical), "
                                  "or add --set channels=1 to binarize grey copies.")
            fitted["output"] = "categorical"
        if "num_classes" in values and "num_classes" not in user:
            if values["num_classes"] or not data.num_classes:
                fitted["num_classes"] = data.num_classes or 0
            else:
                notes.append(f"{data.name} has class labels ({data.num_classes} classes) that this "
                             f"{cls.name} model ignores (num_classes=0); --set num_classes="
                             f"{data.num_classes} trains a class-conditional one.")
        if data.vocabulary is not None and "vocabulary" not in cls.data_fields:
            from rnnimg.models.registry import get_model_class, list_models

            able = [n for n in list_models("generate") if "vocabulary" in get_model_class(n).data_fields]
            notes.append(f"{data.name} has captions that {cls.name} cannot use: it learns the images "
                         f"alone" + (f"; train {' or '.join(able)} to draw from captions." if able else "."))
        return fitted, notes

    # --- likelihood (for models whose forward returns per-pixel logits, as docs/architecture.md says)
    def nll_per_image(self, image: Tensor, label: Tensor | None = None,
                      low_res: Tensor | None = None) -> Tensor:
        """Negative log-likelihood in nats of each image (B,): the sum over pixels and channels of
        the Bernoulli or softmax cross-entropy of ``self(image, label)`` (given ``low_res`` for a
        model with a ``low_res_scale``: the exact NLL of the image given its downscale)."""
        # (B, C, H, W) Bernoulli or (B, C, K, H, W) softmax
        logits = self(image, label) if low_res is None else self(image, label, low_res=low_res)
        if self.config.output == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(logits, image, reduction="none")
        else:
            target = torch.round(image * (self.config.levels - 1)).long()  # (B, C, H, W)
            nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # K to dim 1
        return nll.flatten(1).sum(1)

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """Mean NLL per dimension (nats) as the loss; reports ``nll_nats`` per image and
        ``bits_per_dim``."""
        image = batch["image"]
        label = batch.get("label")
        if label is not None and self.config.num_classes:
            self.check_data_labels(label)
        low_res = None
        if low_res_scale(self):  # the NLL given the downscale that the data put beside the image
            if "low_res" not in batch:
                raise RnnImgError(self._needs_low_res_data("its batches have none"))
            low_res = batch["low_res"]
        nats = self.nll_per_image(image, label, low_res).mean()
        dims = image[0].numel()
        return LossOutput(nats / dims, {"nll_nats": nats.detach(),
                                        "bits_per_dim": nats_to_bits_per_dim(nats.detach(), dims)})

    def check_dataset(self, dataset, name: str) -> None:
        """A class-conditional model (``num_classes`` > 0) needs labels, all below ``num_classes``.

        Datasets that know all their labels expose them as ``dataset.labels`` (a tensor); for
        others the first item is checked here and every batch by :meth:`check_data_labels`.
        """
        if low_res_scale(self) and len(dataset) and "low_res" not in dataset[0]:
            raise RnnImgError(self._needs_low_res_data(f"{name} gives none"))
        num_classes = self.config.num_classes
        if not num_classes or len(dataset) == 0:
            return
        base = getattr(dataset, "dataset", dataset)  # a torch Subset wraps the dataset
        labels = getattr(base, "labels", None)
        if labels is None and "label" not in dataset[0]:
            raise RnnImgError(f"{name} has no class labels, but the model is class-conditional "
                              f"(num_classes={num_classes}); put the images in one subfolder per "
                              "class, or drop --set num_classes.")
        if labels is not None and len(labels) and int(labels.max()) >= num_classes:
            raise RnnImgError(f"{name} has labels up to {int(labels.max())}, but the model has "
                              f"num_classes={num_classes}; pass --set num_classes="
                              f"{int(labels.max()) + 1}.")

    def _needs_low_res_data(self, why: str) -> str:
        scale = low_res_scale(self)
        return (f"the model draws images given their downscale by {scale} (low_res_scale={scale}), "
                f"but {why}; pass --data-opt low_res={scale}, or train with --set low_res_scale=0.")

    def check_low_res(self, low_res, n: int) -> Tensor | None:
        """See :func:`check_low_res`."""
        return check_low_res(self, low_res, n)

    def check_data_labels(self, label: Tensor) -> None:
        """The data's class labels must index the label embedding (else a raw IndexError)."""
        n = self.config.num_classes
        low, high = int(label.min()), int(label.max())
        if low < 0 or high >= n:
            raise RnnImgError(
                f"the data have class label {high if high >= n else low}, but the model was built "
                f"with num_classes={n} (labels 0..{n - 1}); set num_classes to the data's number "
                "of classes (e.g. --set num_classes=10 for MNIST).")

    def check_sample_args(self, n: int, label, text, temperature: float) -> Tensor | None:
        """Validate the sampling verbs' arguments; returns the labels as a (n,) tensor or None."""
        if text is not None:
            raise InputError("text", f"{self.name} was trained without captions; drop {{arg}}.")
        check_temperature(temperature)
        return check_labels(label, n, self.config.num_classes, self.device)

    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0, generator=None):
        raise NotImplementedError

    def dataset_options(self) -> dict[str, Any]:
        c = self.config
        opts: dict[str, Any] = {"image_size": c.image_size, "channels": c.channels}
        if c.output == "bernoulli":
            opts["binarize"] = c.binarization
        else:
            opts["levels"] = c.levels
        if low_res_scale(self):  # each image's downscale beside it (rnnimg.data.lowres)
            opts["low_res"] = low_res_scale(self)
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
        if low_res_scale(self):
            from rnnimg.data.corrupt import downscale

            batch["low_res"] = downscale(image, low_res_scale(self))
        return batch

    def check_image(self, image: Tensor, what: str = "image") -> None:
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if image.dim() != 4 or tuple(image.shape[1:]) != want:
            raise RnnImgError(
                f"{what} has shape {tuple(image.shape)}, but the model takes (B, {want[0]}, "
                f"{want[1]}, {want[2]}); resize it or train a model of that size."
            )
