"""What the super-resolution models of the ``translate`` task share (issue 19, item 2):
:class:`SuperResolver`, the base of ``recursr`` (recurrent) and ``espcn`` (its non-recurrent
baseline).

The output is ``scale`` times the input along each side. Both networks work at the input's (low)
resolution, end in a sub-pixel upsampler (a convolution to ``C * scale^2`` channels, then pixel
shuffle, Shi et al. 2016) and add their result to the bicubic upscale of the input (global residual
learning, Kim et al. 2016), so an untrained network starts from bicubic, the floor every number is
compared with. Training data: any image dataset with ``--data-opt corrupt=downscale --data-opt
scale=S`` (rnnimg.data.corrupt), whose source is the target's bicubic antialiased downscale.

Scores (``evaluate``): besides the RGB PSNR/SSIM of every translate model, the protocol of the
literature, PSNR and SSIM on the Y channel with ``scale`` pixels shaved from each border, for the
model (``psnr_y``, ``ssim_y``) and for bicubic (``input_psnr_y``, ``input_ssim_y``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.data.corrupt import SCALES, downscale
from rnnimg.errors import RnnImgError
from rnnimg.models.translate.base import ImageTranslator, check_translation_config


def check_superres_config(config: Any) -> None:
    """The translate checks plus: ``scale`` in 2, 3, 4; one channel count in and out; an
    ``image_size`` (the target's side in the data) that the scale divides."""
    check_translation_config(config)
    if config.scale not in SCALES:
        raise ValueError(f"scale must be 2, 3 or 4, got {config.scale}; a super-resolution model takes its "
                         "scale from the data: --data-opt corrupt=downscale --data-opt scale=2 (or 3, 4)")
    if config.in_channels != config.out_channels:
        raise ValueError(f"in_channels and out_channels must match for super-resolution, got "
                         f"{config.in_channels} and {config.out_channels}")
    if config.image_size % config.scale:
        raise ValueError(f"image_size ({config.image_size}) must be a multiple of scale ({config.scale})")


def bicubic_upscale(image: Tensor, scale: int) -> Tensor:
    """(B, C, h, w) -> (B, C, h * scale, w * scale): bicubic with PIL's kernel (a = -0.5, which
    torch uses with ``antialias=True``), clamped to [0, 1]."""
    return F.interpolate(image, scale_factor=scale, mode="bicubic", antialias=True,
                         align_corners=False).clamp(0, 1)


class SuperResolver(ImageTranslator):
    """A translate model whose output is ``config.scale`` times its input along each side.
    Subclasses define :meth:`refine` returning every estimate (B, K, C, h * s, w * s)."""

    # the data's scale (corrupt=downscale's scale=2|3|4) decides the model's, like its sizes
    data_fields: ClassVar[dict[str, str]] = {**ImageTranslator.data_fields, "scale": "scale"}
    # ``rnnimg evaluate`` lists these per test image too (the protocol: per image and averaged)
    item_scores: ClassVar[tuple[str, ...]] = ("psnr_y", "input_psnr_y", "ssim_y", "input_ssim_y")

    @classmethod
    def fit_to_data(cls, values: dict[str, Any], data, user) -> tuple[dict[str, Any], list[str]]:
        if "scale" not in user and data.scale == 1:
            raise RnnImgError(f"{data.name} pairs images of one size, but {cls.name} makes its output "
                              "2, 3 or 4 times larger; train it on --data-opt corrupt=downscale "
                              "--data-opt scale=N (or pairs whose targets are N times larger).")
        return super().fit_to_data(values, data, user)

    @property
    def scale(self) -> int:  # type: ignore[override]
        return self.config.scale

    def baseline(self, source: Tensor) -> Tensor:
        """Bicubic, the floor."""
        return bicubic_upscale(source, self.scale)

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        """Smooth random targets of side ``image_size`` and their downscales as sources."""
        c = self.config
        dev = generator.device if generator is not None else torch.device("cpu")
        low = torch.rand(batch_size, c.out_channels, 6, 6, generator=generator, device=dev)
        target = F.interpolate(low, size=(c.image_size, c.image_size), mode="bilinear",
                               align_corners=False)
        return {"source": downscale(target, c.scale).to(self.device), "target": target.to(self.device)}
