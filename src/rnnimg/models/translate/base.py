"""What every model of the ``translate`` task shares: config checks, the data contract, the
reconstruction loss and the evaluation statistics (PSNR and SSIM of the output and of the
untouched input). ``translator`` (recurrent) and ``dncnn`` (its non-recurrent baseline) derive
from :class:`ImageTranslator`, so both are trained, checked and scored by the same code.

Batches hold ``source`` (B, C_in, H, W) and ``target`` (B, C_out, H, W), floats in [0, 1].
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.metrics import psnr_per_image, psnr_y_per_image, ssim_per_image, ssim_y_per_image
from rnnimg.models.base import LossOutput, RnnImgModel
from rnnimg.tiling import quantize_, tile_settings, tiled_map

TRANSLATION_LOSSES = ("l1", "l2")
# ITU-R BT.601 luma weights (the ones PIL's "L" and rnnimg.data use).
_LUMA = (0.299, 0.587, 0.114)


def check_translation_config(config: Any) -> None:
    """Validate the fields every ``translate`` config shares (ValueError naming the field)."""
    for name in ("in_channels", "out_channels"):
        if getattr(config, name) not in (1, 3):
            raise ValueError(f"{name} must be 1 or 3, got {getattr(config, name)}")
    if config.image_size < 2:
        raise ValueError(f"image_size must be >= 2, got {config.image_size}")
    if config.loss not in TRANSLATION_LOSSES:
        raise ValueError(f"loss must be one of {TRANSLATION_LOSSES}, got {config.loss!r}")


def match_channels(image: Tensor, channels: int) -> Tensor:
    """The first estimate of an output with ``channels`` from an input (B, C, H, W): the input
    itself, grey repeated to colour, or colour mixed to luma."""
    if image.shape[1] == channels:
        return image
    if image.shape[1] == 1:
        return image.expand(-1, channels, -1, -1)
    luma = torch.tensor(_LUMA, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (image * luma).sum(1, keepdim=True)


class ImageTranslator(RnnImgModel):
    """A model of the ``translate`` task: ``translate(source) -> output`` in [0, 1].

    Config fields used here: ``in_channels``, ``out_channels`` (1 or 3), ``image_size`` (the side
    the data are resized to; the networks are fully convolutional) and ``loss`` ("l1" | "l2").

    A subclass defines :meth:`refine`, which returns every estimate it makes, (B, K, C_out, H, W)
    with gradients (K = 1 for a one-shot network); the last one is the output.
    """

    task = "translate"
    # the targets' size and channels, the sources' channels (a corruption makes sources from targets)
    data_fields: ClassVar[dict[str, str]] = {"image_size": "image_size", "channels": "out_channels",
                                             "source_channels": "in_channels"}
    step_gamma: float = 0.0  # weight gamma^(K-1-k) of step k in the loss; 0 = the last step only
    size_multiple: int = 1  # tiles start on multiples of this (a space-to-depth block, say)
    scale: int = 1  # output pixels per input pixel along each side (super-resolution: 2, 3, 4)

    @property
    def receptive_radius(self) -> int | None:
        """How far (pixels) an output pixel's view of the input reaches in each direction, an
        upper bound; None = the whole image. Tiled translation equals whole-image translation
        when the overlap is at least 2 x this + 1 (see rnnimg.tiling)."""
        return None

    def refine(self, source: Tensor) -> Tensor:
        raise NotImplementedError

    def baseline(self, source: Tensor) -> Tensor:
        """What doing nothing gives, the floor every score is compared with: the input with the
        output's channels; super-resolution models override it with the bicubic upscale."""
        return match_channels(source, self.config.out_channels)

    # --- data contract ------------------------------------------------------------------------
    def dataset_options(self) -> dict[str, Any]:
        # `channels` is the target's channel count; the corruption makes the source from it.
        return {"image_size": self.config.image_size, "channels": self.config.out_channels}

    def check_dataset(self, dataset, name: str) -> None:
        if len(dataset) == 0:
            raise RnnImgError(f"{name} is empty.")
        item = dataset[0]
        if "source" not in item or "target" not in item:
            raise RnnImgError(f"{name} gives single images, but {self.name!r} translates pairs; add "
                              "--data-opt corrupt=denoise (or saltpepper, inpaint, colorize), or use "
                              "pairs:INPUTS,TARGETS.")
        c = self.config
        (sh, sw), (th, tw) = item["source"].shape[-2:], item["target"].shape[-2:]
        if (th, tw) != (sh * self.scale, sw * self.scale):
            raise RnnImgError(f"{name} pairs {sw}x{sh} sources with {tw}x{th} targets, but {self.name!r} "
                              f"writes outputs {self.scale}x its input; use a super-resolution model "
                              "for corrupt=downscale, or pairs of one size.")
        for key, want, field in (("source", c.in_channels, "in_channels"),
                                 ("target", c.out_channels, "out_channels")):
            got = item[key].shape[0]
            if got != want:
                option = "source_channels" if key == "source" else "channels"
                raise RnnImgError(f"{name} gives {got}-channel {key} images, but the model's "
                                  f"{field} is {want}; pass --set {field}={got}, or convert the "
                                  f"images (pairs:A,B take --data-opt {option}={want}).")

    def check_source(self, source: Tensor) -> None:
        if source.dim() != 4 or source.shape[1] != self.config.in_channels:
            raise RnnImgError(f"the source must be (B, {self.config.in_channels}, H, W) for this "
                              f"{self.name!r} model, got {tuple(source.shape)}; a grey image for a "
                              "colour model (or the reverse) must be converted first.")

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        """Smooth random targets and their noisy (sigma 0.1) versions as sources."""
        c = self.config
        dev = generator.device if generator is not None else torch.device("cpu")
        low = torch.rand(batch_size, c.out_channels, 4, 4, generator=generator, device=dev)
        target = F.interpolate(low, size=(c.image_size, c.image_size), mode="bilinear",
                               align_corners=False)  # (B, C_out, H, W)
        noise = torch.randn(batch_size, c.in_channels, c.image_size, c.image_size,
                            generator=generator, device=dev)
        source = (match_channels(target, c.in_channels) + 0.1 * noise).clamp(0, 1)
        return {"source": source.to(self.device), "target": target.to(self.device)}

    # --- loss ---------------------------------------------------------------------------------
    def pixel_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """Mean absolute (l1) or squared (l2) error over all pixels."""
        return F.l1_loss(pred, target) if self.config.loss == "l1" else F.mse_loss(pred, target)

    def reconstruction(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """(loss, output, metrics): the pixel loss of every step, weighted gamma^(K-1-k), over the
        weights' sum; metrics of the output (the last step) and of the untouched input."""
        source, target = batch["source"], batch["target"]
        self.check_source(source)
        steps = self.refine(source)  # (B, K, C_out, H, W)
        k = steps.shape[1]
        weights = [self.step_gamma ** (k - 1 - i) for i in range(k)]
        loss = sum(w * self.pixel_loss(steps[:, i], target) for i, w in enumerate(weights) if w)
        loss = loss / sum(weights)
        output = steps[:, -1]
        with torch.no_grad():
            given = self.baseline(source)
            metrics = {"l1": F.l1_loss(output, target), "mse": F.mse_loss(output, target),
                       "psnr": psnr_per_image(output, target).mean().float(),
                       "input_psnr": psnr_per_image(given, target).mean().float()}
        return loss, output, metrics

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        loss, _, metrics = self.reconstruction(batch)
        return LossOutput(loss, metrics)

    # --- inference ----------------------------------------------------------------------------
    @torch.inference_mode()
    def translate(self, source: Tensor, return_steps: bool = False,
                  generator: torch.Generator | None = None, *, tile: int | None = None,
                  overlap: int | None = None, progress: bool = False) -> Tensor:
        """Translate a batch of images.

        Args:
            source: (B, C_in, H, W) in [0, 1], any H and W; or uint8 (values / 255), and then the
                output is uint8 too (rounded), which keeps a large photo at a byte a value.
            return_steps: return every refinement step's estimate, (B, K, C_out, H, W), whose last
                entry is the output (whole image only).
            generator: unused (the translation is deterministic); accepted like every verb.
            tile: run over overlapping tiles of this side and blend them without seams
                (rnnimg.tiling); None = the whole image at once. Equal to the whole-image output
                (within float rounding) when ``overlap >= 2 * receptive_radius + 1``.
            overlap: pixels neighbouring tiles share; default 2 x ``receptive_radius`` + 16.
            progress: a progress bar over the tiles (stderr).

        Returns:
            (B, C_out, H, W) in [0, 1] (uint8 for a uint8 source) on the CPU when tiled, or the
            steps.
        """
        self.check_source(source)
        as_bytes = source.dtype == torch.uint8
        if tile is None and not as_bytes:
            return self.refine(source) if return_steps else self(source)
        if return_steps:
            raise RnnImgError("return_steps needs the whole image at once: pass tile=None and a float "
                              "source.")
        if tile is None:
            tile = -(-max(source.shape[-2:]) // self.size_multiple) * self.size_multiple  # one tile
            overlap = 0
        tile, overlap, margin = tile_settings(tile, overlap, self.receptive_radius, self.size_multiple)
        return tiled_map(lambda x: self(x.to(self.device)), source, tile=tile,
                         overlap=overlap, margin=margin, multiple=self.size_multiple, scale=self.scale,
                         finish=quantize_ if as_bytes else None, progress=progress,
                         desc="translating")

    # --- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def evaluation_statistics(self, batch: dict[str, Tensor], per_item: bool = False,
                              **options) -> dict[str, Tensor]:
        """Sums over the batch: PSNR and SSIM (data range 1, all channels, see rnnimg.metrics) of
        the output and of the untouched input (grey repeated to colour where the model colours),
        squared error per pixel, and PSNR after each refinement step. Super-resolution models
        (``scale`` > 1) add the protocol's scores: PSNR and SSIM on the Y channel with ``scale``
        pixels shaved from each border, of the output (``psnr_y``, ``ssim_y``) and of the bicubic
        upscale (``input_psnr_y``, ``input_ssim_y``); with ``per_item`` also each image's, as
        ``psnr_y_per_image`` ... (B,), the values those sums add up."""
        source, target = batch["source"], batch["target"]
        steps = self.translate(source, return_steps=True)  # (B, K, C_out, H, W)
        output = steps[:, -1]
        given = self.baseline(source)
        stats = {
            "count": torch.tensor(float(len(target)), dtype=torch.float64),
            "psnr": psnr_per_image(output, target).sum(),
            "input_psnr": psnr_per_image(given, target).sum(),
            "mse": (output.double() - target.double()).pow(2).mean(dim=(1, 2, 3)).sum(),
            "input_mse": (given.double() - target.double()).pow(2).mean(dim=(1, 2, 3)).sum(),
            "psnr_per_step": torch.stack([psnr_per_image(steps[:, i], target).sum()
                                          for i in range(steps.shape[1])]),
        }
        if min(target.shape[-2:]) >= 11:  # SSIM's 11x11 window
            stats["ssim"] = ssim_per_image(output, target).sum()
            stats["input_ssim"] = ssim_per_image(given, target).sum()
        s = self.scale
        if s > 1 and min(target.shape[-2:]) > 2 * s:
            each = {"psnr_y": psnr_y_per_image(output, target, s),
                    "input_psnr_y": psnr_y_per_image(given, target, s)}
            if min(target.shape[-2:]) - 2 * s >= 11:
                each["ssim_y"] = ssim_y_per_image(output, target, s)
                each["input_ssim_y"] = ssim_y_per_image(given, target, s)
            for key, values in each.items():
                stats[key] = values.sum()
                if per_item:
                    stats[f"{key}_per_image"] = values
        return {k: v.double().cpu() for k, v in stats.items()}

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        """Means over the split's images; ``psnr_gain`` = psnr - input_psnr (the gain over doing
        nothing); ``psnr_per_step`` lists the mean PSNR after each refinement step."""
        n = float(stats["count"])
        out: dict[str, float | list[float]] = {}
        for key in ("psnr", "input_psnr", "ssim", "input_ssim", "mse", "input_mse", "psnr_y",
                    "input_psnr_y", "ssim_y", "input_ssim_y"):
            if key in stats:
                out[key] = float(stats[key]) / n
        out["psnr_gain"] = out["psnr"] - out["input_psnr"]
        if "ssim" in out:
            out["ssim_gain"] = out["ssim"] - out["input_ssim"]
        if "psnr_y" in out:
            out["psnr_y_gain"] = out["psnr_y"] - out["input_psnr_y"]
        out["psnr_per_step"] = [float(v) / n for v in stats["psnr_per_step"]]
        return out
