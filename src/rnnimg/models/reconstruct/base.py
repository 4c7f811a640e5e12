"""The ``reconstruct`` task's base class: :class:`ShapeReconstructor`, shared by ``r2n2`` and its
non-recurrent baseline ``viewpool``.

A reconstructor maps any number of views (B, V, C, H, W) in [0, 1] of an object to an occupancy
grid (B, D, D, D) (indexed [z, y, x], y up: :mod:`rnnimg.geometry.render`). Both models share the
layout of 3D-R2N2 (Choy et al. 2016): a 2D CNN encodes each view to a feature vector, a fusion
turns the views' vectors into a coarse N^3 grid of hidden features, and a 3D decoder upsamples
it to the voxels. Only the fusion differs: a 3D ConvGRU/LSTM over the views (``r2n2``) or pooling
(``viewpool``, after Pix2Vox, Xie et al. 2019). This class holds the encoder, the decoder, the
loss (voxel-wise cross-entropy of the two classes empty/filled, i.e. a sigmoid per voxel), the
``reconstruct`` verb, the data checks and the evaluation:

- IoU at 3D-R2N2's 0.4 threshold, pooled over the split (sums of intersections / sums of
  unions), overall and per class, with 1, 2, ..., ``eval_views`` views (``iou_per_views``);
  the k views of an item are the first k of one fixed permutation of its cameras;
- order sensitivity: with all ``eval_views`` views, the mean absolute change of a shape's IoU and
  of its voxel probabilities when the views come in reverse order.

Two choices keep the recurrence trainable with Adam (found on r2n2, applied to both models so
that only the fusion differs; ``prior_occupancy=0.5 input_norm=false`` restores the first
version, docs/benchmarks.md):

- the output bias starts at the prior log-odds of a filled voxel (``prior_occupancy``, ~2% in
  shapes3d, weighted by ``pos_weight``), as RetinaNet (Lin et al. 2017) starts its classifier. At
  p = 0.5 every voxel's first gradient says "lower the logit", Adam moves every weight by the full
  learning rate in that one direction, and r2n2's GRU answers by driving its tanh candidate to a
  constant +-1 for every view: a saturated grid passes no gradient back to the cell or the
  encoder (measured on shapes3d: the encoder's gradient norm falls below 1e-8 within ~30 steps
  at lr 2e-3, and at 5e-4), so the decoder
  only learns the mean shape and nothing crosses 0.4;
- ``input_norm``: each view's input grid x_t is layer-normalised (no parameters; Ba et al. 2016),
  so the encoder's growing scale cannot saturate the GRU's gates either.

Training shows each batch 1..``max_views`` views (the number drawn per batch), chosen at random
among the item's cameras; with ``order_augment`` their order is random too, otherwise they come
in camera order, so a recurrent model sees one order only (the order-sensitivity experiment).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.errors import RnnImgError
from rnnimg.metrics import voxel_iou_per_shape, voxel_iou_pooled, voxel_iou_sums
from rnnimg.models.base import LossOutput, RnnImgModel, first_item

EVAL_ORDER_SEED = 20  # the fixed permutation of cameras whose first k views are scored


def prior_logit(occupancy: float, pos_weight: float) -> float:
    """The constant logit that minimises the ``pos_weight``-weighted cross-entropy when a fraction
    ``occupancy`` of the voxels is filled: log(pos_weight * q / (1 - q))."""
    return math.log(pos_weight * occupancy / (1 - occupancy))


def check_reconstruct_config(c: Any) -> None:
    """Validate the fields every ``reconstruct`` config shares (ValueError naming the field)."""
    if c.channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {c.channels}")
    c.widths = tuple(c.widths)
    c.decoder_widths = tuple(c.decoder_widths)
    c.class_names = tuple(str(n) for n in c.class_names)
    if c.view_size % 2 ** len(c.widths) or c.view_size < 2 ** len(c.widths):
        raise ValueError(f"view_size ({c.view_size}) must be a multiple of 2^len(widths) = "
                         f"{2 ** len(c.widths)}")
    if c.voxel_size != c.grid * 2 ** len(c.decoder_widths):
        raise ValueError(f"voxel_size ({c.voxel_size}) must be grid * 2^len(decoder_widths) = "
                         f"{c.grid} * {2 ** len(c.decoder_widths)}")
    if not c.pos_weight > 0:
        raise ValueError(f"pos_weight must be > 0, got {c.pos_weight}")
    if not 0 < c.prior_occupancy < 1:
        raise ValueError(f"prior_occupancy must be in (0, 1), got {c.prior_occupancy}")
    for name in ("features", "grid", "input_channels", "hidden", "max_views", "eval_views", "num_classes"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.class_names and len(c.class_names) != c.num_classes:
        raise ValueError(f"class_names must name all {c.num_classes} classes, got {len(c.class_names)}")


class ViewEncoder(nn.Module):
    """2D CNN: per width a 3x3 convolution, LeakyReLU and 2x2 max-pooling, then a linear layer to
    ``features`` (3D-R2N2's encoder, shallower and without its residual connections)."""

    def __init__(self, channels: int, size: int, widths: tuple[int, ...], features: int) -> None:
        super().__init__()
        layers, cin = [], channels
        for w in widths:
            layers += [nn.Conv2d(cin, w, 3, padding=1), nn.LeakyReLU(0.1), nn.MaxPool2d(2)]
            cin = w
        self.conv = nn.Sequential(*layers)
        side = size // 2 ** len(widths)
        self.fc = nn.Linear(cin * side * side, features)

    def forward(self, views: Tensor) -> Tensor:
        """(N, C, H, W) in [0, 1] -> (N, features)."""
        return F.leaky_relu(self.fc(self.conv(views * 2 - 1).flatten(1)), 0.1)


class VoxelDecoder(nn.Module):
    """3D decoder: per width a 2x transposed convolution with LeakyReLU, followed (except at the
    finest level, where 3D convolutions cost most) by a 3x3x3 convolution with LeakyReLU; then
    a 3x3x3 convolution to one logit per voxel."""

    def __init__(self, hidden: int, widths: tuple[int, ...]) -> None:
        super().__init__()
        layers, cin = [], hidden
        for k, w in enumerate(widths):
            layers += [nn.ConvTranspose3d(cin, w, 2, stride=2), nn.LeakyReLU(0.1)]
            if k < len(widths) - 1:
                layers += [nn.Conv3d(w, w, 3, padding=1), nn.LeakyReLU(0.1)]
            cin = w
        layers.append(nn.Conv3d(cin, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, grid: Tensor) -> Tensor:
        """(B, hidden, N, N, N) -> logits (B, D, D, D)."""
        return self.net(grid).squeeze(1)


class ShapeReconstructor(RnnImgModel):
    """A model of the ``reconstruct`` task. Config fields used here: ``view_size``, ``channels``,
    ``voxel_size``, ``num_classes``, ``class_names``, ``widths``, ``features``, ``grid``,
    ``input_channels``, ``hidden``, ``decoder_widths``, ``max_views``, ``eval_views``,
    ``order_augment``. Subclasses define :meth:`fuse`."""

    task = "reconstruct"
    data_fields: ClassVar[dict[str, str]] = {"view_size": "view_size", "channels": "channels",
                                             "voxel_size": "voxel_size", "num_classes": "num_classes",
                                             "class_names": "class_names"}
    evaluation_options = ()
    pooled_validation_metrics = ("iou",)

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        c = config
        self.encoder = ViewEncoder(c.channels, c.view_size, c.widths, c.features)
        # each view's vector -> a small input grid x_t (B, C_in, N, N, N) for the fusion
        self.to_grid = nn.Linear(c.features, c.input_channels * c.grid**3)
        self.decoder = VoxelDecoder(c.hidden, c.decoder_widths)
        with torch.no_grad():  # start at the prior occupancy, not at p = 0.5 (module docstring)
            self.decoder.net[-1].bias.fill_(prior_logit(c.prior_occupancy, c.pos_weight))

    def fuse(self, grids: Tensor) -> Tensor:
        """The views' input grids (B, V, C_in, N, N, N) -> hidden grid (B, hidden, N, N, N)."""
        raise NotImplementedError

    def forward(self, views: Tensor) -> Tensor:
        """Voxel logits (B, D, D, D) from views (B, V, C, H, W) in [0, 1], any V >= 1."""
        c = self.config
        b, v = views.shape[:2]
        codes = self.encoder(views.flatten(0, 1))  # (B*V, features)
        x = self.to_grid(codes)  # (B*V, C_in * N^3)
        if c.input_norm:  # each view's input grid at zero mean, unit variance (module docstring)
            x = F.layer_norm(x, x.shape[-1:])
        grids = x.view(b, v, c.input_channels, c.grid, c.grid, c.grid)
        return self.decoder(self.fuse(grids))

    # --- inputs ---------------------------------------------------------------------------------
    def check_views(self, views: Tensor, what: str = "views") -> None:
        c = self.config
        if views.dim() != 5 or views.shape[1] < 1:
            raise RnnImgError(f"{what} have shape {tuple(views.shape)}; the model takes (B, V, C, H, W) "
                              "with V >= 1 views.")
        if views.shape[2] != c.channels or views.shape[-2:] != (c.view_size, c.view_size):
            raise RnnImgError(
                f"{what} are {views.shape[2]}-channel {views.shape[-2]}x{views.shape[-1]}, but the "
                f"model takes {c.channels}-channel {c.view_size}x{c.view_size} views; resize them "
                "(the CLI does) or train a model with that view_size/channels.")

    def training_views(self, views: Tensor) -> Tensor:
        """1..max_views of the item's views for one training batch (see the module docstring)."""
        c = self.config
        available = views.shape[1]
        k = int(torch.randint(1, min(c.max_views, available) + 1, (1,)))
        chosen = torch.randperm(available)[:k]
        if not c.order_augment:
            chosen = chosen.sort().values  # always in camera order
        return views[:, chosen.to(views.device)]

    # --- training -------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """Voxel-wise cross-entropy (empty/filled) averaged over voxels, filled voxels weighted by
        ``pos_weight`` (objects fill a few percent of the grid: at 1 a short CPU run learns "all
        empty" first); also the batch's pooled IoU at 0.4 and how many views it saw."""
        views = self.training_views(batch["views"]) if self.training else batch["views"]
        logits = self(views)
        target = batch["voxels"].to(logits.dtype)
        weight = torch.tensor(self.config.pos_weight, device=logits.device, dtype=logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
        with torch.no_grad():
            inter, union = voxel_iou_sums(torch.sigmoid(logits), target)
            iou = voxel_iou_pooled(inter.sum(), union.sum())
        return LossOutput(loss, {"iou_batch": torch.nan_to_num(iou.float(), nan=1.0),
                                 "views": float(views.shape[1])})

    # --- evaluation as additive statistics ------------------------------------------------------
    def eval_order(self, available: int) -> Tensor:
        """The fixed order in which evaluation adds an item's cameras (first k: k views)."""
        return torch.randperm(available, generator=torch.Generator().manual_seed(EVAL_ORDER_SEED))

    @torch.no_grad()
    def evaluation_statistics(self, batch: dict[str, Tensor], **options) -> dict[str, Tensor]:
        """Per class, summed over the batch: intersections and unions with 1..eval_views views
        (rows), the order-sensitivity sums, the summed cross-entropy with all views, and counts."""
        if options:
            raise RnnImgError(f"{self.name} takes no evaluation options, got {', '.join(options)}.")
        c = self.config
        views, target = batch["views"], batch["voxels"].float()
        label = batch.get("label")
        if label is None or int(label.max()) >= c.num_classes:
            label = torch.zeros(len(views), dtype=torch.long, device=views.device)
        order = self.eval_order(views.shape[1]).to(views.device)
        most = min(c.eval_views, views.shape[1])
        inters, unions = [], []
        for k in range(1, c.eval_views + 1):
            logits = self(views[:, order[:min(k, most)]])
            i, u = voxel_iou_sums(torch.sigmoid(logits), target, label, c.num_classes)
            inters.append(i)
            unions.append(u)
        prob = torch.sigmoid(logits)  # with all eval views
        nll = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none").mean((1, 2, 3))
        flipped = torch.sigmoid(self(views[:, order[:most].flip(0)]))
        iou_change = (voxel_iou_per_shape(prob, target) - voxel_iou_per_shape(flipped, target)).abs()
        return {"intersection": torch.stack(inters).double().cpu(),
                "union": torch.stack(unions).double().cpu(),
                "nll_sum": nll.double().sum().cpu(), "order_iou_change_sum": iou_change.sum().cpu(),
                "order_prob_change_sum": (prob - flipped).abs().mean((1, 2, 3)).double().sum().cpu(),
                "count": torch.tensor(float(len(views)), dtype=torch.float64)}

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        """``iou`` (pooled, all eval views), ``iou_per_class`` (NaN for an absent class),
        ``iou_per_views`` (k = 1..eval_views), ``order_iou_change`` and ``order_prob_change``
        (mean over shapes, all eval views in reverse order) and ``loss`` (cross-entropy per voxel)."""
        inter, union = stats["intersection"], stats["union"]  # (eval_views, K)
        count = float(stats["count"])
        per_views = voxel_iou_pooled(inter.sum(1), union.sum(1))
        return {"iou": float(per_views[-1]),
                "iou_per_class": [float(v) for v in voxel_iou_pooled(inter[-1], union[-1])],
                "iou_per_views": [float(v) for v in per_views],
                "order_iou_change": float(stats["order_iou_change_sum"]) / count,
                "order_prob_change": float(stats["order_prob_change_sum"]) / count,
                "loss": float(stats["nll_sum"]) / count}

    # --- inference ------------------------------------------------------------------------------
    @torch.inference_mode()
    def reconstruct(self, views: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Occupancy probabilities (B, D, D, D) in [0, 1] from views (B, V, C, H, W) in [0, 1]
        (uint8: value / 255), any V >= 1. ``generator`` is accepted for the task-verb signature;
        reconstruction draws nothing."""
        self.check_views(views)
        if views.dtype == torch.uint8:
            views = views.float() / 255
        return torch.sigmoid(self(views.to(self.device, torch.float32)))

    # --- data -----------------------------------------------------------------------------------
    @property
    def class_names(self) -> tuple[str, ...]:
        c = self.config
        return c.class_names or tuple(str(k) for k in range(c.num_classes))

    def dataset_options(self) -> dict[str, Any]:
        c = self.config
        return {"view_size": c.view_size, "voxel_size": c.voxel_size, "channels": c.channels}

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        c = self.config
        v = max(2, c.max_views)
        views = torch.rand(batch_size, v, c.channels, c.view_size, c.view_size, generator=generator)
        voxels = (torch.rand(batch_size, *(c.voxel_size,) * 3, generator=generator) < 0.3).float()
        label = torch.randint(0, c.num_classes, (batch_size,), generator=generator)
        azimuth = torch.arange(v, dtype=torch.float32).repeat(batch_size, 1) * (360 / v)
        return {"views": views, "voxels": voxels, "label": label, "azimuth": azimuth,
                "elevation": torch.full_like(azimuth, 20.0)}

    def check_dataset(self, dataset, name: str) -> None:
        """The data must have views of the model's size and channels and voxel grids of its size."""
        c = self.config
        item = first_item(dataset, name, ("views", "voxels"), "a reconstruction model needs views with "
                          "voxels", "views with voxels", f"{self.name} needs a reconstruct dataset such "
                          "as shapes3d or voxels:PATH.")
        self.check_views(item["views"].unsqueeze(0), f"{name}'s views")
        if tuple(item["voxels"].shape) != (c.voxel_size,) * 3:
            raise RnnImgError(f"{name} has voxel grids of {tuple(item['voxels'].shape)}, but the model "
                              f"makes {c.voxel_size}^3; pass --data-opt voxel_size={c.voxel_size} or "
                              f"--set voxel_size=... (with matching grid/decoder_widths).")
