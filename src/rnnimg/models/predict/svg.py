"""``svg``: stochastic video prediction with a learned prior (SVG-LP).

Denton & Fergus 2018, "Stochastic Video Generation with a Learned Prior" (ICML). A frame x_t is
predicted from the previous frame and a latent z_t:

    h_{t-1} = Enc(x_{t-1})                             convolutional encoder -> vector (tanh)
    z_t ~ q(z_t | x_1..t) = N(mu_q, sigma_q)           posterior LSTM over Enc(x_t)   (training)
    z_t ~ p(z_t | x_1..t-1) = N(mu_p, sigma_p)         learned prior LSTM over h_{t-1} (sampling)
    g_t = LSTM_theta(h_{t-1}, z_t)                     the frame predictor (stacked LSTMs, tanh)
    x^_t = Dec(g_t, skips)                             convolutional decoder with skip connections

Training is a per-step VAE: the loss is the mean squared error of every x^_t (teacher forcing: the
encoder always reads the true x_{t-1}, z_t comes from the posterior) plus ``beta`` times
KL(q(z_t | x_1..t) || p(z_t | x_1..t-1)), summed over z's dimensions and averaged over clips and
steps. The prior is trained by that KL (PITFALLS.md: a detached prior learns nothing). At test
time the context frames are read as in training (posterior latents, so every LSTM has seen them),
then z_t is drawn from the prior and each prediction is fed back as the next input. The skip
connections come from the encoder of the last context frame (the paper's default): during the
context every step takes them from its own input frame, afterwards they stay fixed, so the static
background and the digits' look are copied while the motion comes from the LSTMs.

``predict(context, horizon, generator=g)`` draws one future; ``samples=N`` draws N at once in one
batch, the i-th with its own generator seeded by :func:`derived_seeds` (so sample i equals a call
with that seed). ``evaluate --samples N`` scores best-of-N and mean-of-N (see
:meth:`rnnimg.models.predict.base.FramePredictor.evaluation_statistics`).

An adversarial option (``adv_weight`` > 0) adds a conditional PatchGAN (:mod:`rnnimg.nn.patchgan`)
through the trainer's discriminator hook, as SAVP (Lee et al. 2018) sharpens SVG-style samples.

Departures from the paper:
- The encoder and decoder are small strided convolution stacks over space-to-depth patches
  (``patch``), not DCGAN/VGG networks with batch normalisation: no normalisation at all, so a
  sample does not depend on the other clips in its batch, and the cost fits a CPU.
- The head maps to [0, 1] with ``output`` (default the straight-through clamp the other predictors
  use) rather than a sigmoid (PITFALLS.md: a sigmoid with MSE collapses small models to the mean).
- The adversarial loss judges teacher-forced frames x^_t against x_t, each conditioned on the true
  x_{t-1}; SAVP judges prior samples of whole clips with a 3D discriminator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.errors import RnnImgError
from rnnimg.models.base import LossOutput, RnnImgModel
from rnnimg.models.predict.base import FramePredictor
from rnnimg.models.predict.config import FramePredictorConfig
from rnnimg.models.registry import register_model
from rnnimg.nn import depth_to_space, patched_size, space_to_depth, to_frame_range
from rnnimg.nn.gaussian import gaussian_kl
from rnnimg.nn.lstm_stack import GaussianLSTM, LSTMStack
from rnnimg.nn.patchgan import PatchDiscriminator


@dataclass
class SVGConfig(FramePredictorConfig):
    # frame_size, channels, context, horizon, patch, output, loss: FramePredictorConfig. svg trains
    # teacher-forced (sampling "none"); tbptt and grad_checkpoint are not supported.
    features: int = 32  # channels of the encoder's first level; each stride-2 level doubles them
    levels: int = 3  # stride-2 levels of the encoder (and upsampling levels of the decoder)
    g_dim: int = 128  # size of the encoder's output vector h and of the predictor's output g
    z_dim: int = 10  # size of the latent z_t
    rnn_size: int = 256  # hidden size of every LSTM
    predictor_layers: int = 2  # stacked LSTMs of the frame predictor
    posterior_layers: int = 1  # of the posterior q(z_t | x_1..t)
    prior_layers: int = 1  # of the learned prior p(z_t | x_1..t-1)
    beta: float = 1e-4  # weight of the KL term (the paper's 1e-4 for SM-MNIST)
    adv_weight: float = 0.0  # weight of the PatchGAN loss; 0 = off (no discriminator is built)
    disc_features: int = 32  # channels of the discriminator's first block
    disc_layers: int = 2  # stride-2 blocks of the discriminator

    def __post_init__(self):
        super().__post_init__()
        for name in ("features", "levels", "g_dim", "z_dim", "rnn_size", "predictor_layers",
                     "posterior_layers", "prior_layers", "disc_features", "disc_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        grid = patched_size(self.frame_size, self.patch)
        if grid % 2 ** self.levels:
            raise ValueError(f"levels={self.levels} halves the {grid}x{grid} patch grid (frame_size "
                             f"{self.frame_size} / patch {self.patch}) to a fraction; lower levels or "
                             "change frame_size/patch")
        if not self.beta >= 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if not self.adv_weight >= 0:
            raise ValueError(f"adv_weight must be >= 0 (0 = no adversarial loss), got {self.adv_weight}")
        if self.adv_weight > 0 and self.frame_size < 2 ** self.disc_layers * 2:
            raise ValueError(f"disc_layers={self.disc_layers} halves {self.frame_size}-pixel frames too "
                             "often; lower disc_layers")
        if self.sampling != "none":
            raise ValueError(f"sampling must be 'none' for svg (it trains teacher-forced), got "
                             f"{self.sampling!r}")
        if self.tbptt or self.grad_checkpoint:
            raise ValueError("svg supports neither tbptt nor grad_checkpoint; leave them at 0 / False")


def derived_seeds(generator: torch.Generator | None, n: int) -> list[int]:
    """The seeds of the N samples that ``predict(..., samples=N, generator=generator)`` draws:
    N integers drawn from ``generator`` (the global RNG when None). Sample i equals
    ``predict(..., generator=torch.Generator(device).manual_seed(seeds[i]))``."""
    device = generator.device if generator is not None else "cpu"
    draws = torch.randint(0, 2 ** 62, (n,), generator=generator, device=device)
    return [int(s) for s in draws.cpu()]


def _normal(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal draws on ``like``'s device and dtype, drawn on the generator's device."""
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    return torch.randn(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


class _Encoder(nn.Module):
    """Frame (B, C, H, W) -> (h (B, g_dim) in (-1, 1), skips [(B, f_l, G/2^l, G/2^l) for l < L])."""

    def __init__(self, c: SVGConfig) -> None:
        super().__init__()
        self.patch = c.patch
        widths = [c.features * 2 ** level for level in range(c.levels + 1)]
        self.stem = nn.Conv2d(c.channels * c.patch ** 2, widths[0], 3, padding=1)
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 4, stride=2, padding=1)
                                  for i in range(c.levels))
        top = patched_size(c.frame_size, c.patch) // 2 ** c.levels
        self.head = nn.Linear(widths[-1] * top * top, c.g_dim)

    def forward(self, frame: Tensor) -> tuple[Tensor, list[Tensor]]:
        x = F.leaky_relu(self.stem(space_to_depth(frame, self.patch)), 0.2)  # (B, f_0, G, G)
        skips = []
        for conv in self.down:
            skips.append(x)
            x = F.leaky_relu(conv(x), 0.2)  # (B, f_{l+1}, G/2^(l+1), ...)
        return torch.tanh(self.head(x.flatten(1))), skips


class _Decoder(nn.Module):
    """(g (B, g_dim), skips) -> frame (B, C, H, W) in [0, 1] (``output`` mapping)."""

    def __init__(self, c: SVGConfig) -> None:
        super().__init__()
        self.c = c
        widths = [c.features * 2 ** level for level in range(c.levels + 1)]
        self.top = patched_size(c.frame_size, c.patch) // 2 ** c.levels
        self.fc = nn.Linear(c.g_dim, widths[-1] * self.top * self.top)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 4, stride=2, padding=1)
                                for i in reversed(range(c.levels)))
        self.merge = nn.ModuleList(nn.Conv2d(2 * widths[i], widths[i], 3, padding=1)
                                   for i in reversed(range(c.levels)))
        self.out = nn.Conv2d(widths[0], c.channels * c.patch ** 2, 3, padding=1)

    def forward(self, g: Tensor, skips: list[Tensor], clip: bool) -> Tensor:
        c = self.c
        x = F.leaky_relu(self.fc(g), 0.2).view(g.shape[0], -1, self.top, self.top)  # (B, f_L, top, top)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = F.leaky_relu(up(x), 0.2)  # (B, f_l, 2 side, 2 side)
            x = F.leaky_relu(merge(torch.cat([x, skip], dim=1)), 0.2)
        frame = depth_to_space(self.out(x), c.patch, c.frame_size, c.frame_size)  # (B, C, H, W)
        return to_frame_range(frame, c.output, clip=clip)


@register_model("svg")
class SVG(FramePredictor):
    config_class = SVGConfig
    stochastic = True
    presets = {
        "debug": dict(frame_size=16, context=3, horizon=3, patch=2, features=8, levels=2, g_dim=16,
                      z_dim=4, rnn_size=32, predictor_layers=1),
        # Stochastic Moving MNIST as the paper: 64x64, 5 -> 10 frames, beta 1e-4, z 10, g 128, LSTMs
        # of 256 (predictor 2 layers). The encoder/decoder are smaller than the paper's DCGAN ones
        # (patch 2, 32-64-128-256 channels) so that a CPU trains it.
        "smmnist": dict(frame_size=64, context=5, horizon=10, patch=2, features=32, levels=3),
    }

    def __init__(self, config: SVGConfig) -> None:
        super().__init__(config)
        c = config
        self.encoder = _Encoder(c)
        self.decoder = _Decoder(c)
        self.predictor = LSTMStack(c.g_dim + c.z_dim, c.rnn_size, c.g_dim, c.predictor_layers, tanh=True)
        self.posterior = GaussianLSTM(c.g_dim, c.rnn_size, c.z_dim, c.posterior_layers)
        self.prior = GaussianLSTM(c.g_dim, c.rnn_size, c.z_dim, c.prior_layers)
        self.discriminator = (PatchDiscriminator(c.channels, c.channels, c.disc_features, c.disc_layers)
                              if c.adv_weight > 0 else None)

    # svg has no single compiled step (FramePredictor.compile_steps compiles forward_step)
    compile_steps = RnnImgModel.compile_steps

    def init_state(self, batch_size: int) -> dict:
        """Zero states of the three LSTMs."""
        like = next(self.parameters())
        return {"predictor": self.predictor.init_state(batch_size, like),
                "posterior": self.posterior.init_state(batch_size, like),
                "prior": self.prior.init_state(batch_size, like)}

    # --- training: the per-step VAE --------------------------------------------------------------
    def posterior_rollout(self, frames: Tensor, generator: torch.Generator | None = None) -> dict:
        """Teacher-forced pass over a clip (B, T, C, H, W), z_t from the posterior.

        Returns a dict of (B, T-1, ...) tensors, entry t about frame t+1: ``predictions`` x^,
        ``z``, the posterior's ``mu_q``, ``logvar_q`` (it read Enc(x_1..t+1)), the prior's ``mu_p``,
        ``logvar_p`` (it read Enc(x_0..t) only), and ``kl`` (B, T-1), each step's closed-form KL
        summed over z's dimensions.
        """
        b, t = frames.shape[:2]
        c = self.config
        hs, skips_all = self.encoder(frames.flatten(0, 1))  # every frame at once: (B*T, g_dim)
        hs = hs.view(b, t, -1)  # (B, T, g_dim)
        state = self.init_state(b)
        out = {k: [] for k in ("predictions", "z", "mu_q", "logvar_q", "mu_p", "logvar_p")}
        skips = None
        for s in range(1, t):
            if s <= c.context:  # skips from the latest context frame, fixed after the context
                skips = [x.view(b, t, *x.shape[1:])[:, s - 1] for x in skips_all]
            mu_q, logvar_q, state["posterior"] = self.posterior(hs[:, s], state["posterior"])
            mu_p, logvar_p, state["prior"] = self.prior(hs[:, s - 1], state["prior"])
            z = mu_q + (0.5 * logvar_q).exp() * _normal(mu_q.shape, generator, mu_q)
            g, state["predictor"] = self.predictor(torch.cat([hs[:, s - 1], z], dim=1), state["predictor"])
            prediction = self.decoder(g, skips, clip=not self.training)
            for key, value in zip(out, (prediction, z, mu_q, logvar_q, mu_p, logvar_p)):
                out[key].append(value)
        result = {k: torch.stack(v, dim=1) for k, v in out.items()}
        result["kl"] = gaussian_kl(result["mu_q"], 0.5 * result["logvar_q"],
                                   result["mu_p"], 0.5 * result["logvar_p"])  # (B, T-1)
        return result

    def loss(self, batch: dict) -> LossOutput:
        """MSE of every teacher-forced prediction + ``beta`` * the mean per-step KL (see the module
        docstring), + ``adv_weight`` * -log D(x_{t-1}, x^_t) with the adversarial option.

        Metrics: ``kl`` (nats per step, summed over z), the frame metrics of
        :meth:`FramePredictor.frame_loss` (on the teacher-forced predictions: reconstructions through
        the posterior, not samples), and ``adversarial``.
        """
        frames = batch["frames"]
        self.check_frames(frames, "batch['frames']")
        if frames.shape[1] <= self.config.context:
            raise RnnImgError(f"clips have {frames.shape[1]} frames; training needs more than context = "
                              f"{self.config.context}.")
        out = self.posterior_rollout(frames)
        kl = out["kl"].mean()
        aux = self.config.beta * kl
        extra: dict = {"kl": kl.detach()}
        if self.discriminator is not None:
            logits = self.discriminator(frames[:, :-1].flatten(0, 1), out["predictions"].flatten(0, 1))
            adversarial = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            aux = aux + self.config.adv_weight * adversarial
            extra["adversarial"] = adversarial.detach()
        # frame_loss divides aux by nothing: it adds it as it is
        return self.frame_loss(frames, out["predictions"], aux, **extra)

    def discriminator_parameters(self) -> list[nn.Parameter]:
        return list(self.discriminator.parameters()) if self.discriminator is not None else []

    def discriminator_loss(self, batch: dict) -> LossOutput:
        """The PatchGAN's loss on (x_{t-1}, x_t) real against (x_{t-1}, x^_t) teacher-forced pairs,
        BCE per patch, halved as in pix2pix; the predictions are made without gradients."""
        if self.discriminator is None:
            raise RuntimeError("this svg has no discriminator (adv_weight = 0)")
        frames = batch["frames"]
        with torch.no_grad():
            fake = self.posterior_rollout(frames)["predictions"].flatten(0, 1)
        previous, real = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
        real_logits, fake_logits = self.discriminator(previous, real), self.discriminator(previous, fake)
        loss = 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        return LossOutput(loss, {"d_real": torch.sigmoid(real_logits).mean().detach(),
                                 "d_fake": torch.sigmoid(fake_logits).mean().detach()})

    # --- sampling -------------------------------------------------------------------------------
    @torch.inference_mode()
    def predict(self, context: Tensor, horizon: int, *, generator: torch.Generator | None = None,
                samples: int | None = None, graph: bool | str = "auto") -> Tensor:
        """Sample the ``horizon`` frames that follow ``context``.

        Args:
            context: (B, T0, C, H, W) in [0, 1], T0 >= 1 (any length; the model was trained with
                ``config.context``).
            horizon: frames to predict, >= 1.
            generator: the source of every random draw (the global RNG when None); one call draws
                one future per clip.
            samples: None: one future, (B, horizon, C, H, W). N: N futures per clip,
                (B, N, horizon, C, H, W), run as one batch; future i is what a call with
                ``generator=torch.Generator().manual_seed(derived_seeds(generator, N)[i])`` returns.
            graph: accepted for the predictors' common signature; svg runs eagerly.
        """
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise RnnImgError(f"horizon must be a whole number >= 1, got {horizon!r}.")
        if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
            raise RnnImgError(f"samples must be a whole number >= 1, got {samples!r}.")
        self.check_frames(context, "context", values=True)
        context = context.to(self.device, next(self.parameters()).dtype)
        if samples is None:
            return self._sample(context, horizon, [generator])
        device = generator.device if generator is not None else torch.device("cpu")
        generators = [torch.Generator(device).manual_seed(s) for s in derived_seeds(generator, samples)]
        b = context.shape[0]
        repeated = context.repeat(samples, 1, 1, 1, 1)  # (N*B, T0, C, H, W), sample-major
        out = self._sample(repeated, horizon, generators)  # (N*B, horizon, C, H, W)
        return out.view(samples, b, *out.shape[1:]).transpose(0, 1)  # (B, N, horizon, C, H, W)

    def _sample(self, context: Tensor, horizon: int, generators: list) -> Tensor:
        """The sampling loop over a batch made of len(generators) equal blocks of clips; block i
        draws its noise from generators[i]."""
        n, t0 = context.shape[:2]
        block = n // len(generators)

        def noise(like: Tensor) -> Tensor:  # (N*B, z_dim): block i from generators[i]
            return torch.cat([_normal((block, like.shape[1]), g, like) for g in generators])

        state = self.init_state(n)
        h, skips = self.encoder(context[:, 0])
        predictions = []
        for s in range(1, t0 + horizon):
            mu_p, logvar_p, state["prior"] = self.prior(h, state["prior"])
            if s < t0:  # a context step: z from the posterior of the true frame, as in training
                h_next, skips_next = self.encoder(context[:, s])
                mu, logvar, state["posterior"] = self.posterior(h_next, state["posterior"])
            else:
                mu, logvar = mu_p, logvar_p
            z = mu + (0.5 * logvar).exp() * noise(mu)
            g, state["predictor"] = self.predictor(torch.cat([h, z], dim=1), state["predictor"])
            if s < t0:
                h, skips = h_next, skips_next
                continue
            prediction = self.decoder(g, skips, clip=True)  # skips of the last context frame
            predictions.append(prediction)
            h, _ = self.encoder(prediction)
        return torch.stack(predictions, dim=1)  # (N*B, horizon, C, H, W)

    def forward_step(self, frame: Tensor, state: dict):
        """svg's step needs a latent as well as a frame: :meth:`predict` and :meth:`loss` run it."""
        raise RnnImgError("svg has no deterministic one-frame step; use predict(..., generator=...).")
