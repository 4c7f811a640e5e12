"""The base class of the voxel generators (``voxscan``, ``voxcnn``): exact likelihood over a voxel
raster, sampling and shape completion one voxel at a time.

A volume is an occupancy grid (B, D, D, D) indexed [z, y, x] with y up, as the ``reconstruct``
data give it (``shapes3d``: Choy et al. 2016's 32^3 protocol; :mod:`rnnimg.geometry.render` states
the axes). The models factorise p(volume | class) = prod_v p(voxel_v | voxels before v, class)
with one Bernoulli per voxel, as PixelRNN does for pixels (van den Oord et al. 2016), in the
*raster order* (y, z, x): horizontal slices from the floor up, rows front to back within a slice,
voxels left to right within a row. With y outermost, the lower half of a shape is a prefix of the
order, so completing the upper half of a shape from its lower half conditions on all of it (known
voxels later in the order are kept but, as in every autoregressive model, not looked at).

``model(voxels, label)`` returns (B, D, D, D) logits in the data's layout, so causality can be
checked from outside; a subclass writes its network on the raster layout (B, Y, Z, X) in
:meth:`VolumeGenerator.raster_logits`. Sampling draws one uniform per voxel in raster order and
inverts the Bernoulli CDF (a voxel is filled when u < p), so a state-carrying sampler
(:meth:`VolumeGenerator.voxel_sampler`) and the naive one (a full forward per voxel) give
identical volumes from one seed; completion keeps the known voxels bit for bit.

Departures: the generate task's batches hold images; these models read ``voxels`` (and ``label``)
of ``reconstruct`` data (:attr:`data_tasks`), and report bits per *voxel*, pooled over a split
(:func:`rnnimg.metrics.bits_per_voxel_pooled`), overall and per class.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.metrics import bits_per_voxel_pooled, voxel_nll_sums
from rnnimg.models.base import LossOutput, RnnImgModel, first_item
from rnnimg.models.generate.base import check_labels, check_temperature, uniforms

if TYPE_CHECKING:
    from collections.abc import Collection

    from rnnimg.data.properties import DataProperties


def to_raster(voxels: Tensor) -> Tensor:
    """(B, Z, Y, X) data layout <-> (B, Y, Z, X) raster layout (its own inverse)."""
    return voxels.transpose(1, 2)


def check_volume_config(c: Any) -> None:
    """Validate the fields every voxel generator's config shares (ValueError naming the field)."""
    c.class_names = tuple(str(n) for n in c.class_names)
    if c.voxel_size < 2:
        raise ValueError(f"voxel_size must be >= 2, got {c.voxel_size}")
    if c.num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {c.num_classes}")
    if c.class_names and len(c.class_names) != c.num_classes:
        raise ValueError(f"class_names must name all {c.num_classes} classes, got {len(c.class_names)}")


class VolumeGenerator(RnnImgModel):
    """A model of the ``generate`` and ``complete`` tasks over voxel grids. Config fields used here:
    ``voxel_size``, ``num_classes``, ``class_names``."""

    task = "generate"
    extra_tasks = ("complete",)
    data_tasks = ("reconstruct",)  # learns from the voxels of reconstruct data (shapes3d)
    batch_keys: ClassVar[tuple[str, ...]] = ("voxels",)  # what it reads of a batch (not the views)
    data_fields: ClassVar[dict[str, str]] = {"voxel_size": "voxel_size", "num_classes": "num_classes",
                                             "class_names": "class_names"}
    pooled_validation_metrics = ("bits_per_voxel",)
    hub_tag = None  # model cards: the generate task's Hub tag names images, and none names 3D samples

    # --- what a subclass defines ----------------------------------------------------------------
    def raster_logits(self, x: Tensor, label: Tensor | None) -> Tensor:
        """Logits (B, Y, Z, X) of voxels x (B, Y, Z, X) in {0, 1}, causal in raster order."""
        raise NotImplementedError

    def voxel_sampler(self, n: int, label: Tensor | None):
        """A state-carrying sampler (``start_row(k, i)``, ``voxel(k, i, j) -> logits (n,)``,
        ``set_voxel(k, i, j, value)``, ``end_row(k, i)``, ``end_slice(k)``), or None: the shared
        loop then runs the full forward once per voxel."""
        return None

    # --- network ----------------------------------------------------------------------------------
    def forward(self, voxels: Tensor, label: Tensor | None = None) -> Tensor:
        """Per-voxel Bernoulli logits (B, D, D, D), indexed like ``voxels`` (B, D, D, D) [z, y, x].
        The logit of a voxel depends only on the voxels before it in (y, z, x) order and the label."""
        return to_raster(self.raster_logits(to_raster(voxels.to(self.param_dtype)), label))

    def nll_per_volume(self, voxels: Tensor, label: Tensor | None = None) -> Tensor:
        """Negative log-likelihood in nats of each volume (B,), summed over its voxels."""
        logits = self(voxels, label)
        nll = F.binary_cross_entropy_with_logits(logits, voxels.to(logits.dtype), reduction="none")
        return nll.flatten(1).sum(1)

    @property
    def param_dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def voxels_per_volume(self) -> int:
        return self.config.voxel_size ** 3

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """Mean NLL per voxel (nats) as the loss; reports ``nll_nats`` per volume and
        ``bits_per_voxel``."""
        voxels = batch["voxels"]
        label = self.batch_label(batch)
        nats = self.nll_per_volume(voxels, label).mean()
        bits = nats.detach() / (self.voxels_per_volume * math.log(2.0))
        return LossOutput(nats / self.voxels_per_volume, {"nll_nats": nats.detach(), "bits_per_voxel": bits})

    def batch_label(self, batch: dict[str, Tensor]) -> Tensor | None:
        label = batch.get("label")
        if label is None or not self.config.num_classes:
            return None
        if int(label.min()) < 0 or int(label.max()) >= self.config.num_classes:
            raise RnnImgError(f"the data have class label {int(label.max())}, but the model was built with "
                              f"num_classes={self.config.num_classes}; set num_classes to the data's.")
        return label

    # --- evaluation: pooled over the split --------------------------------------------------------
    @torch.no_grad()
    def evaluation_statistics(self, batch: dict[str, Tensor], **options) -> dict[str, Tensor]:
        """Summed NLL (nats) and volume counts per class (K,), K = max(num_classes, 1)."""
        if options:
            raise RnnImgError(f"{self.name} takes no evaluation options, got {', '.join(options)}.")
        voxels = batch["voxels"]
        label = batch.get("label") if self.config.num_classes else None
        k = max(self.config.num_classes, 1)
        nats = self.nll_per_volume(voxels, self.batch_label(batch))
        nats_sum, count = voxel_nll_sums(nats, label, k)
        return {"nats_per_class": nats_sum.cpu(), "count_per_class": count.cpu(),
                "count": torch.tensor(float(len(voxels)), dtype=torch.float64)}

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        """``bits_per_voxel`` (pooled over the split), ``bits_per_voxel_per_class`` (NaN for an
        absent class), ``nll_nats`` (per volume) and ``loss`` (nats per voxel)."""
        nats, count = stats["nats_per_class"], stats["count_per_class"]
        total = float(nats.sum()) / max(float(count.sum()), 1.0)
        out: dict[str, float | list[float]] = {
            "bits_per_voxel": float(bits_per_voxel_pooled(nats.sum(), count.sum(), self.voxels_per_volume)),
            "nll_nats": total, "loss": total / self.voxels_per_volume}
        if self.config.num_classes:
            out["bits_per_voxel_per_class"] = [
                float(v) for v in bits_per_voxel_pooled(nats, count, self.voxels_per_volume)]
        return out

    # --- sampling and completion ------------------------------------------------------------------
    def label_index(self, label) -> Tensor | int | None:
        """A class name (``"chair"``) -> its index; anything else is returned as it is."""
        if not isinstance(label, str):
            return label
        names = self.config.class_names
        if label in names:
            return names.index(label)
        if label.isdigit():
            return int(label)
        raise RnnImgError(f"unknown class {label!r}; this model knows "
                          f"{', '.join(names) if names else f'classes 0..{self.config.num_classes - 1}'}.")

    def _labels(self, n: int, label) -> Tensor | None:
        return check_labels(self.label_index(label), n, self.config.num_classes, self.device)

    def _uniforms(self, n: int, generator: torch.Generator | None) -> Tensor:
        """One uniform per voxel in raster order: (Y, Z, X, n)."""
        d = self.config.voxel_size
        return uniforms((d, d, d, n), generator, self.device)

    def _generate(self, canvas: Tensor, known: Tensor | None, label: Tensor | None, temperature: float,
                  u: Tensor, naive: bool = False, logits_out: Tensor | None = None) -> Tensor:
        """Fill ``canvas`` (n, Y, Z, X) in raster order (in place), keeping voxels where ``known``
        (n, Y, Z, X) is True. ``logits_out`` (n, Y, Z, X), if given, receives every logit."""
        d = canvas.shape[1]
        sampler = None if naive else self.voxel_sampler(canvas.shape[0], label)
        for k in range(d):
            for i in range(d):
                if sampler is not None:
                    sampler.start_row(k, i)
                for j in range(d):
                    if sampler is None:
                        logits = self.raster_logits(canvas, label)[:, k, i, j]
                    else:
                        logits = sampler.voxel(k, i, j)
                    if logits_out is not None:
                        logits_out[:, k, i, j] = logits
                    if temperature != 1:
                        logits = logits / temperature
                    value = (u[k, i, j] < torch.sigmoid(logits)).to(canvas.dtype)
                    if known is not None:
                        value = torch.where(known[:, k, i, j], canvas[:, k, i, j], value)
                    canvas[:, k, i, j] = value
                    if sampler is not None:
                        sampler.set_voxel(k, i, j, value)
                if sampler is not None:
                    sampler.end_row(k, i)
            if sampler is not None:
                sampler.end_slice(k)
        return canvas

    @torch.inference_mode()
    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, naive: bool = False) -> Tensor:
        """Draw ``n`` volumes voxel by voxel, carrying the recurrent state where the model has a
        sampler (``naive=True``: one full forward per voxel, the reference).

        Args:
            n: number of volumes.
            label: class index or name (int, str or (n,) tensor) for a conditional model.
            text: unsupported (must be None).
            temperature: logits are divided by it; > 0.
            generator: a ``torch.Generator`` (model's device or CPU), for reproducible draws.

        Returns:
            (n, D, D, D) occupancy in {0, 1}, indexed [z, y, x].
        """
        if text is not None:
            raise RnnImgError(f"{self.name} is not conditioned on text; drop --text.")
        check_temperature(temperature)
        label = self._labels(n, label)
        d = self.config.voxel_size
        canvas = torch.zeros(n, d, d, d, device=self.device, dtype=self.param_dtype)
        u = self._uniforms(n, generator)
        return to_raster(self._generate(canvas, None, label, temperature, u, naive))

    def sample_naive(self, n: int, **kwargs) -> Tensor:
        """:meth:`sample` with one full forward per voxel (the reference)."""
        return self.sample(n, naive=True, **kwargs)

    @torch.inference_mode()
    def complete(self, voxels: Tensor, known: Tensor, *, label=None, generator: torch.Generator | None = None,
                 temperature: float = 1.0, naive: bool = False) -> Tensor:
        """Draw the unknown voxels of ``voxels`` in raster order given every voxel before them.

        Args:
            voxels: (B, D, D, D) occupancy (thresholded at 0.5), indexed [z, y, x].
            known: (B, D, D, D) bool, True where a voxel is kept.
            label, generator, temperature, naive: as :meth:`sample`'s.

        Returns:
            (B, D, D, D) in {0, 1}: the known voxels exactly as given (after thresholding), the
            others drawn.
        """
        self.check_voxels(voxels)
        if known.dtype != torch.bool or known.shape != voxels.shape:
            raise RnnImgError(f"the known mask must be a bool tensor of the voxels' shape "
                              f"{tuple(voxels.shape)}, got {known.dtype} {tuple(known.shape)}.")
        check_temperature(temperature)
        label = self._labels(len(voxels), label)
        given = (voxels.to(self.device) >= 0.5).to(self.param_dtype)
        known = known.to(self.device)
        canvas = to_raster(given).contiguous()
        out = self._generate(canvas, to_raster(known), label, temperature,
                             self._uniforms(len(voxels), generator), naive)
        return torch.where(known, given, to_raster(out))

    @torch.inference_mode()
    def cached_logits(self, voxels: Tensor, label: Tensor | None = None) -> Tensor:
        """The logits of ``voxels`` from the state-carrying sampler with every voxel known, laid
        out as ``self(voxels)``: for tests, they must equal the full forward pass."""
        canvas = to_raster((voxels >= 0.5).to(self.param_dtype)).contiguous()
        logits = torch.zeros_like(canvas)
        u = torch.full((*canvas.shape[1:], len(canvas)), 0.5, device=canvas.device, dtype=canvas.dtype)
        self._generate(canvas, torch.ones_like(canvas, dtype=torch.bool), label, 1.0, u, False, logits)
        return to_raster(logits)

    # --- data ---------------------------------------------------------------------------------------
    @classmethod
    def fit_to_data(cls, values: dict[str, Any], data: DataProperties,
                    user: Collection[str]) -> tuple[dict[str, Any], list[str]]:
        """Grid size and classes from the data; an unconditional model (``num_classes=0``) keeps
        ignoring the labels, with a note naming the flag."""
        fitted, notes = super().fit_to_data(values, data, user)
        if not values.get("num_classes") and "num_classes" not in user and data.num_classes:
            fitted.pop("num_classes", None)
            fitted.pop("class_names", None)
            notes.append(f"{data.name} has {data.num_classes} classes that this unconditional {cls.name} "
                         f"ignores; --set num_classes={data.num_classes} trains a class-conditional one.")
        return fitted, notes

    def dataset_options(self) -> dict[str, Any]:
        # one tiny view: shapes3d renders views on first access, and a generator reads only voxels
        return {"voxel_size": self.config.voxel_size, "num_views": 1, "view_size": 8}

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        d = self.config.voxel_size
        batch = {"voxels": (torch.rand(batch_size, d, d, d, generator=generator) < 0.3).float()}
        if self.config.num_classes:
            batch["label"] = torch.randint(0, self.config.num_classes, (batch_size,), generator=generator)
        return batch

    def check_voxels(self, voxels: Tensor, what: str = "voxels") -> None:
        d = self.config.voxel_size
        if voxels.dim() != 4 or tuple(voxels.shape[1:]) != (d, d, d):
            raise RnnImgError(f"{what} have shape {tuple(voxels.shape)}, but the model takes "
                              f"(B, {d}, {d}, {d}) occupancy grids; resample them to {d}^3 or train a "
                              "model of that size.")

    def check_dataset(self, dataset, name: str) -> None:
        """The data must give voxel grids of the model's size, and labels for a conditional model."""
        item = first_item(dataset, name, ("voxels",), "a voxel generator needs voxel grids",
                          "voxel grids", f"{self.name} learns from voxel data such as shapes3d.")
        self.check_voxels(item["voxels"].unsqueeze(0), f"{name}'s voxel grids")
        if self.config.num_classes and "label" not in item:
            raise RnnImgError(f"{name} has no class labels, but the model is class-conditional "
                              f"(num_classes={self.config.num_classes}); drop --set num_classes.")
