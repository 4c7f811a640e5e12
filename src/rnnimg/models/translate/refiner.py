"""``translator``: image-to-image translation by recurrent refinement with one ConvGRU cell.

The model restores (denoise, remove salt-and-pepper noise, inpaint) or translates (grey to colour,
the user's aligned A -> B pairs) an image by refining an estimate over K recurrent steps with ONE
:class:`rnnimg.nn.ConvGRUCell` whose weights every step shares. Step k reads two images, the
source x and its own previous estimate y_{k-1} ("two images in"):

    e_k = Encoder([x, y_{k-1}])                  convolutional encoder
    h_k = ConvGRU(e_k, h_{k-1})                  the recurrent refiner (h_0 = 0)
    y_k = clamp(y_{k-1} + Decoder(h_k), 0, 1)    a residual update of the estimate

with y_0 = x (grey repeated to colour for colorization). The output is y_K; every y_k can be
returned for inspection. The references are restorers that iterate one recurrent unit: DRRN (Tai
et al. 2017, recursive residual blocks with shared weights), NLRN (Liu et al. 2018, a recurrent
non-local network: BSD68 sigma 25, 29.41 dB against DnCNN's 29.23) and the scale-recurrent
ConvLSTM of SRN-DeblurNet (Tao et al. 2018), which also feeds its previous estimate back in. The
optional adversarial loss is pix2pix's conditional PatchGAN (Isola et al. 2017, see
:mod:`rnnimg.nn.patchgan`), the seed's "RNN + GAN".

Loss: L1 or L2 between y_k and the target, summed over the steps with weights gamma^(K-1-k) (the
sequence loss of RAFT, Teed & Deng 2020; gamma = 0 scores the output only), plus, with
``adv_weight`` > 0, ``adv_weight`` times the non-saturating GAN loss -log D(x, y_K).

Departures from the references:
- Space-to-depth (``patch`` = 2): the encoder and the cell run at half resolution on 2x2 pixel
  blocks folded into channels, and the decoder unfolds them; this cuts the cost 4x, which is what
  lets the demo train in a minute on two CPU cores. ``patch=1`` runs at full resolution.
- The estimate is clamped to [0, 1] with a straight-through gradient (as convlstm's output), so a
  step is an image in the data's range and can be read back by the next step.
- NLRN's non-local blocks are left out by default: the refiner is the ConvGRU alone. With
  ``context="scan"``, a residual four-direction linear-recurrence scan (nn/scan2d.py, ReNet's
  layout; VMamba's kind of global mixing) updates the encoder's features at every step, so every
  position of the state sees the whole image, in the role NLRN gives its non-local blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.models.base import LossOutput
from rnnimg.models.registry import register_model
from rnnimg.models.translate.base import ImageTranslator, check_translation_config, match_channels
from rnnimg.nn import ConvGRUCell, depth_to_space, space_to_depth, to_frame_range
from rnnimg.nn.patchgan import PatchDiscriminator
from rnnimg.nn.scan2d import Scan2DBlock

TRANSLATOR_CONTEXTS = ("none", "scan")


@dataclass
class TranslatorConfig:
    image_size: int = 28  # side the data are resized to (the network itself takes any size)
    in_channels: int = 1  # channels of the source: 1 or 3
    out_channels: int = 1  # channels of the output: 1 or 3 (1 -> 3 colours grey images)
    features: int = 32  # channels of the encoder, the ConvGRU state and the decoder
    steps: int = 4  # K, refinement steps of the shared ConvGRU cell
    kernel_size: int = 3  # odd side of every convolution
    patch: int = 2  # space-to-depth block side (1 = full resolution)
    loss: str = "l1"  # "l1" | "l2" pixel loss
    step_gamma: float = 0.8  # step k weighs gamma^(K-1-k) in the loss; 0 = the output only
    adv_weight: float = 0.0  # weight of the PatchGAN loss; 0 = off (no discriminator is built)
    disc_features: int = 32  # channels of the discriminator's first block
    disc_layers: int = 2  # stride-2 blocks of the discriminator
    context: str = "none"  # "none" | "scan": a residual 2D scan over the encoder's features each step

    def __post_init__(self):
        check_translation_config(self)
        for name in ("features", "steps", "patch", "disc_features", "disc_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {self.kernel_size}")
        if self.context not in TRANSLATOR_CONTEXTS:
            raise ValueError(f"context must be one of {TRANSLATOR_CONTEXTS}, got {self.context!r}")
        if not 0 <= self.step_gamma <= 1:
            raise ValueError(f"step_gamma must be in [0, 1], got {self.step_gamma}")
        if not self.adv_weight >= 0:
            raise ValueError(f"adv_weight must be >= 0 (0 = no adversarial loss), got {self.adv_weight}")
        if self.adv_weight > 0 and self.image_size < 2 ** self.disc_layers * 2:
            raise ValueError(f"disc_layers={self.disc_layers} halves a {self.image_size}-pixel image "
                             "too often; lower disc_layers or raise image_size")


@register_model("translator")
class Translator(ImageTranslator):
    config_class = TranslatorConfig
    presets = {
        "debug": dict(image_size=16, features=8, steps=3, patch=2),
        # denoising / inpainting grey images (mnist-5k, fashion-mnist): 28x28, 1 -> 1
        "denoise": dict(),
        # restoring colour images (shapes, cifar10): 32x32, 3 -> 3
        "colour": dict(image_size=32, in_channels=3, out_channels=3),
        # grey in, colour out (--data-opt corrupt=colorize on shapes or cifar10)
        "colorize": dict(image_size=32, in_channels=1, out_channels=3),
    }

    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__(config)
        c = config
        self.step_gamma = c.step_gamma
        p2, k, f = c.patch ** 2, c.kernel_size, c.features
        self.encoder = nn.Sequential(  # [x, y_{k-1}] folded into blocks -> features
            nn.Conv2d((c.in_channels + c.out_channels) * p2, f, k, padding=k // 2), nn.ReLU(),
            nn.Conv2d(f, f, k, padding=k // 2), nn.ReLU())
        # whole-image context of the features before the cell (the state is f wide: f / 2 per
        # direction of each sweep)
        self.context = Scan2DBlock(f, max(1, f // 2), norm=False) if c.context == "scan" else None
        self.cell = ConvGRUCell(f, f, k)
        self.decoder = nn.Sequential(  # h -> the update of the estimate, folded into blocks
            nn.Conv2d(f, f, k, padding=k // 2), nn.ReLU(),
            nn.Conv2d(f, c.out_channels * p2, k, padding=k // 2))
        with torch.no_grad():  # the first estimate is the input itself: start from a small update
            self.decoder[-1].weight.mul_(0.1)
            self.decoder[-1].bias.zero_()
        self.discriminator = (PatchDiscriminator(c.in_channels, c.out_channels, c.disc_features,
                                                 c.disc_layers) if c.adv_weight > 0 else None)
        self.size_multiple = c.patch  # tiles start on whole space-to-depth blocks

    @property
    def receptive_radius(self) -> int:
        """An upper bound in pixels: per step, at the block resolution, the encoder's two
        convolutions, the ConvGRU's gates then candidate, the decoder's two, each k // 2 blocks;
        K steps in a row; plus one block for the folding."""
        c = self.config
        return c.patch * (c.steps * 6 * (c.kernel_size // 2) + 1)

    # --- the refinement, one step at a time ---------------------------------------------------
    def initial_estimate(self, source: Tensor) -> Tensor:
        """y_0: the source with the output's channels, (B, C_out, H, W)."""
        return match_channels(source, self.config.out_channels)

    def step(self, source: Tensor, estimate: Tensor, h: Tensor | None) -> tuple[Tensor, Tensor]:
        """One refinement step: (y_{k-1}, h_{k-1}) -> (y_k, h_k).

        Args:
            source: x, (B, C_in, H, W).
            estimate: y_{k-1}, (B, C_out, H, W).
            h: the ConvGRU state (B, features, H / patch, W / patch) rounded up, or None at k = 1.
        """
        c = self.config
        height, width = source.shape[-2:]
        pair = space_to_depth(torch.cat([source, estimate], dim=1), c.patch)  # (B, (Ci+Co)p^2, h, w)
        features = self.encoder(pair)  # (B, features, h, w)
        if self.context is not None:
            features = self.context(features)  # every position now sees the whole image
        h = self.cell(features, h)  # (B, features, h, w)
        update = depth_to_space(self.decoder(h), c.patch, height, width)  # (B, C_out, H, W)
        return to_frame_range(estimate + update, "clamp"), h

    def refine(self, source: Tensor) -> Tensor:
        """Every estimate y_1..y_K, (B, K, C_out, H, W); y_K is the output."""
        estimate, h, steps = self.initial_estimate(source), None, []
        for _ in range(self.config.steps):  # the loop runs along the recurrence only
            estimate, h = self.step(source, estimate, h)
            steps.append(estimate)
        return torch.stack(steps, dim=1)

    def forward(self, source: Tensor) -> Tensor:
        """The output y_K (B, C_out, H, W), with gradients."""
        return self.refine(source)[:, -1]

    # --- the adversarial option (the trainer's two-optimizer hook) ----------------------------
    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters()) if self.discriminator is not None else []

    def discriminator_loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """The PatchGAN's loss: BCE of real pairs against 1 and translated pairs against 0, each
        patch a prediction, halved as in pix2pix. The translation is computed without gradients,
        so this loss reaches the discriminator's parameters only."""
        if self.discriminator is None:
            raise RuntimeError("this translator has no discriminator (adv_weight = 0)")
        source, target = batch["source"], batch["target"]
        with torch.no_grad():
            fake = self.refine(source)[:, -1]
        real_logits = self.discriminator(source, target)
        fake_logits = self.discriminator(source, fake)
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return LossOutput(loss, {"d_real": torch.sigmoid(real_logits).mean().detach(),
                                 "d_fake": torch.sigmoid(fake_logits).mean().detach()})

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """The generator's loss: the pixel loss, plus ``adv_weight`` times -log D(x, y_K) when the
        adversarial option is on (the discriminator's parameters get gradients from it too; the
        trainer's generator optimizer does not hold them, and zeroes them before their own step)."""
        loss, output, metrics = self.reconstruction(batch)
        if self.discriminator is not None:
            logits = self.discriminator(batch["source"], output)
            adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            loss = loss + self.config.adv_weight * adversarial
            metrics["adversarial"] = adversarial.detach()
        return LossOutput(loss, metrics)
