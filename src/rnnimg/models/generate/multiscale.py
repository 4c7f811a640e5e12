"""``multiscale``: a chain of two pixelscans that draws a small image, then the large one given it.

The multi-scale PixelRNN (van den Oord, Kalchbrenner, Kavukcuoglu 2016, "Pixel Recurrent Neural
Networks", section 3.5): an unconditional network draws a small s x s image, and a second network
draws the large n x n image given it. Pixel Recursive Super Resolution (Dahl et al. 2017) is the
second stage alone. Here both stages are ``pixelscan`` (see ``pixelscan.py``): the first an
unconditional one at ``image_size / scale``, the second one with ``low_res_scale = scale``
(``lowres_condition.py``). ``rnnimg sample RUN`` on such a run draws large images with no input.

The small image of a training image is its bicubic, antialiased downscale by ``scale``
(:func:`rnnimg.data.corrupt.downscale`, the super-resolution protocol), put on the model's grid of
values (rounded to ``levels``; thresholded at 0.5 for Bernoulli output), so that the first stage
is trained on exactly what it will hand to the second. Both stages train together on the sum of
their NLLs.

Likelihood: the reported NLL, -log p(small) - log p(image | small), is exact for the pair, and an
upper bound on the chain's NLL of the image alone (the chain could also reach the image from other
small images; van den Oord et al. report the same pair). It is counted per dimension of the large
image. Departures: section 3.5 upsamples the small image with a deconvolution and feeds it as a
bias to every layer; here the encoder of ``lowres_condition.py`` does. Completion is not offered:
it would need the small image of a partly known large one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from rnnimg.metrics import nats_to_bits_per_dim
from rnnimg.models.base import LossOutput
from rnnimg.models.generate.base import ImageGenerator, check_generator_config
from rnnimg.models.generate.pixelscan import PixelScan, PixelScanConfig
from rnnimg.models.registry import register_model


@dataclass
class MultiScaleConfig:
    image_size: int = 16  # side of the images drawn (the second stage's); a multiple of scale
    channels: int = 3  # 1 (grey) or 3 (colour)
    scale: int = 2  # 2 | 3 | 4: the first stage draws image_size / scale
    hidden: int = 32  # D of both stages (see PixelScanConfig)
    num_layers: int = 4  # of each stage
    head_hidden: int = 32  # of each stage
    cell: str = "mingru"  # "mingru" | "minlstm"
    input_kernel: int = 7  # of the second stage; the first uses min(input_kernel, 5) (small images)
    low_res_hidden: int = 32  # features of the second stage's encoder of the small image
    output: str = "categorical"  # "categorical" (softmax over levels) | "bernoulli"
    levels: int = 256  # intensity levels (categorical output only)
    binarization: str = "fixed"  # "fixed" | "dynamic" (bernoulli only)
    num_classes: int = 0  # > 0: both stages class-conditional

    def __post_init__(self):
        check_generator_config(self)
        if self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.image_size % self.scale or self.image_size < 2 * self.scale:
            raise ValueError(f"image_size must be a multiple of scale ({self.scale}) of at least "
                             f"{2 * self.scale}, got {self.image_size}")
        self.stage_config(0)  # the stages validate the rest (cell, widths, kernel)

    def stage_config(self, stage: int) -> PixelScanConfig:
        """The pixelscan config of stage 0 (the small, unconditional one) or 1 (the large one)."""
        shared = {k: v for k, v in asdict(self).items() if k not in ("image_size", "scale")}
        if stage == 0:
            shared.update(input_kernel=min(self.input_kernel, 5))
            return PixelScanConfig(image_size=self.image_size // self.scale, **shared)
        return PixelScanConfig(image_size=self.image_size, low_res_scale=self.scale, **shared)


@register_model("multiscale")
class MultiScale(ImageGenerator):
    config_class = MultiScaleConfig
    likelihood = "bound"  # of the image alone (exact for the pair of images; module docstring)
    presets = {
        "debug": dict(image_size=8, channels=1, hidden=8, num_layers=2, head_hidden=16,
                      low_res_hidden=8, output="bernoulli"),
        # shapes at 16x16 from 8x8, colour, pixelscan's mnist widths per stage
        "shapes": dict(image_size=16, channels=3, scale=2),
        # 64x64 colour from 32x32 (section 3.5's ImageNet 64 split), the same widths: a step of
        # batch 8 costs ~2 CPU-s on one thread of the 2-core test machine (docs/benchmarks.md)
        "shapes64": dict(image_size=64, channels=3, scale=2),
    }

    def __init__(self, config: MultiScaleConfig) -> None:
        super().__init__(config)
        self.small = PixelScan(config.stage_config(0))
        self.large = PixelScan(config.stage_config(1))
        # The large stage is of no use unconditional: its condition starts small but not at zero
        # (pixelscan's encoder starts at zero), so that the encoder trains from the first step.
        nn.init.normal_(self.large.low_res_encoder.out.weight, std=1e-2)

    def small_of(self, image: Tensor) -> Tensor:
        """The first stage's image of (B, C, H, W): the downscale, on the model's values."""
        from rnnimg.data.corrupt import downscale

        small = downscale(image, self.config.scale)
        if self.config.output == "bernoulli":
            return (small > 0.5).to(image.dtype)
        top = self.config.levels - 1
        return torch.round(small * top) / top

    def forward(self, image: Tensor, label: Tensor | None = None) -> Tensor:
        """The second stage's per-pixel logits of ``image`` given its own small image."""
        return self.large(image, label, low_res=self.small_of(image))

    def stage_nlls(self, image: Tensor, label: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """NLL in nats (B,) of the small image and of the image given it."""
        small = self.small_of(image)
        return (self.small.nll_per_image(small, label),
                self.large.nll_per_image(image, label, low_res=small))

    def nll_per_image(self, image: Tensor, label: Tensor | None = None,
                      low_res: Tensor | None = None) -> Tensor:
        """-log p(small) - log p(image | small) in nats (B,): the pair's, exact."""
        first, second = self.stage_nlls(image, label)
        return first + second

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """The pair's NLL per dimension of the large image; also each stage's bits/dim (the first
        per dimension of the small image)."""
        image, label = batch["image"], batch.get("label")
        if label is not None and self.config.num_classes:
            self.check_data_labels(label)
        first, second = self.stage_nlls(image, label)
        nats = (first + second).mean()
        dims, small_dims = image[0].numel(), image[0].numel() // self.config.scale ** 2
        metrics = {"nll_nats": nats.detach(), "bits_per_dim": nats_to_bits_per_dim(nats.detach(), dims),
                   "small_bits_per_dim": nats_to_bits_per_dim(first.mean().detach(), small_dims),
                   "large_given_small_bits_per_dim": nats_to_bits_per_dim(second.mean().detach(), dims)}
        return LossOutput(nats / dims, metrics)

    @torch.inference_mode()
    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, graph: bool | str = "auto",
               compile: bool | str = False) -> Tensor:
        """Draw ``n`` small images, then one large image given each: (n, C, H, W) in [0, 1].

        Args as :meth:`PixelScan.sample`'s (the same temperature for both stages).
        """
        label = self.check_sample_args(n, label, text, temperature)
        kw = dict(label=label, temperature=temperature, generator=generator, graph=graph,
                  compile=compile)
        small = self.small.sample(n, **kw)
        return self.large.sample(n, low_res=small, **kw)
