"""``draw``: DRAW (Gregor, Danihelka, Graves, Rezende, Wierstra 2015, "DRAW: A Recurrent Neural
Network For Image Generation", ICML) and, with a vocabulary, alignDRAW (Mansimov, Parisotto, Ba,
Salakhutdinov 2016, "Generating Images from Captions with Attention", ICLR).

A recurrent VAE that draws an image over T steps (equations 3-8 of the DRAW paper):

    x^_t = x - E[x | c_{t-1}]                          the error image
    r_t = read(x, x^_t, h_dec_{t-1})                   Gaussian N x N glimpses (nn/draw_attention.py)
    h_enc_t = LSTM_enc(h_enc_{t-1}, [r_t, h_dec_{t-1}])
    z_t ~ Q(z_t | h_enc_t) = N(mu_t, sigma_t^2)        by reparameterisation
    h_dec_t = LSTM_dec(h_dec_{t-1}, z_t)
    c_t = c_{t-1} + write(h_dec_t)                     the canvas; D(x | c_T) is the output

and the loss is -log D(x | c_T) plus sum_t KL(Q(z_t | .) || P(z_t)), with
KL = sum_z (mu^2 + sigma^2 - log sigma^2 - 1) / 2 per step for the N(0, I) prior (the constant is
z_size / 2, not T / 2). ``attention=False`` reads the whole image and error image and writes the
whole canvas through a linear map (the paper's "DRAW without attention").

Outputs: ``bernoulli`` (binarized data; E[x | c] = sigmoid(c)) or ``categorical``: a softmax over
``levels`` intensities per pixel and channel, so the canvas has C * levels maps (each written through
the same window). We chose the discretised softmax over a discretised logistic because it is what
the other rnnimg generators use on grey and colour data, so NLLs on the same ``levels`` compare
directly; its cost is a write patch of C * levels * N * N values.

Conditioning (both optional):
  - labels (``num_classes`` > 0, a conditional VAE; not in the paper): the one-hot label joins the
    encoder and decoder inputs at every step.
  - text (``vocabulary`` non-empty; alignDRAW): a bidirectional LSTM encodes the caption
    (nn/caption_encoder.py); at every step the alignment attention of h_dec_{t-1} over the word
    states gives s_{t-1}, which joins the decoder input [z_t, s_{t-1}]. With ``learned_prior``
    the prior is alignDRAW's N(tanh(W h_dec_{t-1}), exp(tanh(W' h_dec_{t-1}))^2) and the KL is the
    one between two diagonal Gaussians.

Departures and choices:
  - c_0, h_enc_0, h_dec_0 are zeros (the paper does not say).
  - ``sample`` returns the mean image E[x | c_T] (the paper's figures show it), not a binary draw;
    ``temperature`` scales the standard deviation of the prior draws of z.
  - alignDRAW's sharpening GAN post-processing is left out.
  - ``evaluation_statistics(importance_samples=K)`` (draw_evaluation.py) adds the importance-weighted
    estimate of Burda et al. 2016 with Q as the proposal; with it the bound is averaged over the same
    K draws, so the estimate can never exceed that bound (Jensen's inequality on the same numbers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnimg.data.mnist_captions import MAX_WORDS, VOCABULARY, tokenize
from rnnimg.errors import InputError, RnnImgError
from rnnimg.metrics import nats_to_bits_per_dim
from rnnimg.models.base import LossOutput
from rnnimg.models.generate.base import ImageGenerator, check_labels, check_temperature
from rnnimg.models.generate.draw_evaluation import draw_statistics, reduce_draw_statistics
from rnnimg.models.registry import register_model
from rnnimg.nn.caption_encoder import AlignmentAttention, CaptionEncoder
from rnnimg.nn.draw_attention import AttentionRead, AttentionWrite, FullRead, FullWrite
from rnnimg.nn.gaussian import gaussian_kl, gaussian_log_density


@dataclass
class DRAWConfig:
    image_size: int = 28  # square images, side in pixels
    channels: int = 1  # 1 (grey) or 3 (colour)
    output: str = "bernoulli"  # "bernoulli" (binarized data) | "categorical" (softmax over levels)
    levels: int = 256  # intensity levels of the softmax (categorical output only)
    binarization: str = "fixed"  # "fixed" | "dynamic" binarization of the data (bernoulli only)
    steps: int = 64  # T: drawing steps
    enc_hidden: int = 256  # encoder LSTM units
    dec_hidden: int = 256  # decoder LSTM units
    z_size: int = 100  # latent units per step
    attention: bool = True  # False: read the whole image, write the whole canvas
    read_n: int = 2  # N of the read grid (N x N filters)
    write_n: int = 5  # N of the write grid
    num_classes: int = 0  # > 0: condition on a class label (one-hot into encoder and decoder)
    vocabulary: tuple = ()  # caption words; non-empty turns on alignDRAW text conditioning
    max_words: int = MAX_WORDS  # longest caption (in words)
    word_embedding: int = 64  # caption word embedding size
    text_hidden: int = 64  # caption LSTM units per direction
    align_hidden: int = 64  # units of the alignment attention
    learned_prior: bool = False  # alignDRAW's prior N(mu(h_dec_{t-1}), sigma(h_dec_{t-1}))
    kl_warmup_steps: int = 0  # training loss weighs the KL by min(1, step / this); 0: always 1

    def __post_init__(self):
        self.vocabulary = tuple(self.vocabulary)  # JSON gives a list
        if self.output not in ("bernoulli", "categorical"):
            raise ValueError(f"output must be 'bernoulli' or 'categorical', got {self.output!r}")
        if self.binarization not in ("fixed", "dynamic"):
            raise ValueError(f"binarization must be 'fixed' or 'dynamic', got {self.binarization!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not 2 <= self.levels <= 256:
            raise ValueError(f"levels must be in 2..256, got {self.levels}")
        for name in ("image_size", "steps", "enc_hidden", "dec_hidden", "z_size", "read_n",
                     "write_n", "max_words", "word_embedding", "text_hidden", "align_hidden"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.image_size < 2:
            raise ValueError(f"image_size must be >= 2, got {self.image_size}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        if self.kl_warmup_steps < 0:
            raise ValueError(f"kl_warmup_steps must be >= 0, got {self.kl_warmup_steps}")
        if not all(isinstance(w, str) and w and " " not in w for w in self.vocabulary) or \
                len(set(self.vocabulary)) != len(self.vocabulary):
            raise ValueError("vocabulary must be distinct single words (strings without spaces)")


@register_model("draw")
class DRAW(ImageGenerator):
    config_class = DRAWConfig
    # alignDRAW: captions set the vocabulary and the caption length (the data's, unless --set)
    data_fields: ClassVar[dict[str, str]] = {**ImageGenerator.data_fields, "vocabulary": "vocabulary",
                                             "max_words": "max_words"}
    evaluation_options: ClassVar[tuple[str, ...]] = ("importance_samples", "judge")
    evaluation_reports_progress: ClassVar[bool] = True  # K importance samples can take minutes
    likelihood: ClassVar[str] = "bound"  # nll_per_image is the negative ELBO, not the exact NLL
    presets = {
        "debug": dict(steps=4, enc_hidden=32, dec_hidden=32, z_size=8, read_n=2, write_n=3),
        # the paper's MNIST model (section 4.2): T = 64, 256 LSTM units, read 2x2, write 5x5, z = 100
        "mnist": dict(steps=64, enc_hidden=256, dec_hidden=256, z_size=100, read_n=2, write_n=5),
        # colour (32x32 RGB; the paper's CIFAR-10 settings: T = 64, 400 units, 5x5 grids, z = 200)
        "colour": dict(image_size=32, channels=3, output="categorical", levels=256, steps=64,
                       enc_hidden=400, dec_hidden=400, z_size=200, read_n=5, write_n=5),
        # alignDRAW on mnist-captions (60x60): T = 32 as in the paper's MNIST-captions model
        "captions": dict(image_size=60, steps=32, enc_hidden=256, dec_hidden=256, z_size=100,
                         read_n=5, write_n=5, vocabulary=VOCABULARY, learned_prior=True),
    }

    def __init__(self, config: DRAWConfig) -> None:
        super().__init__(config)
        c = config
        size, ch = c.image_size, c.channels
        self.k = c.levels if c.output == "categorical" else 1
        maps = ch * self.k  # canvas maps
        self.text_encoder = self.align = None
        cond = c.num_classes
        context = 0
        if c.vocabulary:
            self.text_encoder = CaptionEncoder(len(c.vocabulary), c.word_embedding, c.text_hidden)
            context = self.text_encoder.out_features
            self.align = AlignmentAttention(context, c.dec_hidden, c.align_hidden)
        if c.attention:
            self.read = AttentionRead(c.dec_hidden, c.read_n, size, size)
            self.write = AttentionWrite(c.dec_hidden, c.write_n, maps, size, size)
            read_size = 2 * ch * c.read_n ** 2
        else:
            self.read = FullRead()
            self.write = FullWrite(c.dec_hidden, maps, size, size)
            read_size = 2 * ch * size * size
        self.encoder = nn.LSTMCell(read_size + c.dec_hidden + cond, c.enc_hidden)
        self.posterior = nn.Linear(c.enc_hidden, 2 * c.z_size)  # mu, log sigma
        self.decoder = nn.LSTMCell(c.z_size + cond + context, c.dec_hidden)
        self.prior = nn.Linear(c.dec_hidden, 2 * c.z_size) if c.learned_prior else None
        self._judge = None  # the digit judge, loaded on the first evaluation that asks for it
        self.kl_weight = 1.0  # set by set_training_step during a KL warm-up

    def set_training_step(self, step: int) -> None:
        """KL warm-up: the training loss weighs the KL by min(1, step / kl_warmup_steps)."""
        warmup = self.config.kl_warmup_steps
        self.kl_weight = min(1.0, step / warmup) if warmup else 1.0

    # --- pieces -------------------------------------------------------------------------------
    def mean_image(self, canvas: Tensor) -> Tensor:
        """E[x | canvas]: (B, maps, H, W) -> (B, C, H, W) in [0, 1]."""
        if self.config.output == "bernoulli":
            return torch.sigmoid(canvas)
        b, _, h, w = canvas.shape
        probs = canvas.view(b, self.config.channels, self.k, h, w).softmax(dim=2)
        values = torch.linspace(0, 1, self.k, device=canvas.device).view(1, 1, -1, 1, 1)
        return (probs * values).sum(2)

    def reconstruction_nll(self, canvas: Tensor, image: Tensor) -> Tensor:
        """-log D(x | c_T) in nats per image (B,)."""
        if self.config.output == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(canvas, image, reduction="none")
        else:
            b, _, h, w = canvas.shape
            logits = canvas.view(b, self.config.channels, self.k, h, w)  # (B, C, K, H, W)
            target = torch.round(image * (self.k - 1)).long()  # (B, C, H, W)
            nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
        return nll.flatten(1).sum(1)

    def prior_params(self, h_dec: Tensor) -> tuple[Tensor, Tensor]:
        """Prior mean and log sigma of z_t given h_dec_{t-1}: N(0, I), or alignDRAW's learned one."""
        if self.prior is None:
            return (h_dec.new_zeros(h_dec.shape[0], self.config.z_size),) * 2
        mu, log_sigma = self.prior(h_dec).chunk(2, dim=1)
        return torch.tanh(mu), torch.tanh(log_sigma)

    def encode_text(self, text: Tensor | None) -> tuple[Tensor, Tensor, Tensor] | None:
        """Word states, their alignment keys and the word mask of a caption model (else None)."""
        if self.text_encoder is None:
            return None
        if text is None:
            raise InputError("text", "this model draws from captions; pass a caption with {arg}.")
        words, mask = self.text_encoder(text)
        return words, self.align.project(words), mask

    def decoder_input(self, z: Tensor, cond: Tensor | None, words, h_dec: Tensor):
        """[z_t, one-hot label, s_{t-1}] and the alignment weights (or None)."""
        parts, alpha = [z] + ([cond] if cond is not None else []), None
        if words is not None:
            context, alpha = self.align(words[0], words[1], words[2], h_dec)
            parts.append(context)
        return torch.cat(parts, 1), alpha

    def one_hot(self, label: Tensor | None, n: int, device) -> Tensor | None:
        if not self.config.num_classes:
            return None
        if label is None:  # unconditional use of a conditional model: no class
            return torch.zeros(n, self.config.num_classes, device=device)
        return F.one_hot(label, self.config.num_classes).float()

    def _noise(self, shape, generator: torch.Generator | None, device) -> Tensor:
        if generator is None:
            return torch.randn(shape, device=device)
        return torch.randn(shape, generator=generator, device=generator.device).to(device)

    # --- inference network + generator (training pass) ----------------------------------------
    def run(self, image: Tensor, label: Tensor | None = None, text: Tensor | None = None,
            generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """One pass of the encoder and decoder over ``image`` with z drawn from Q.

        Returns a dict: ``canvas`` (B, maps, H, W) logits c_T, ``recon`` (B,) nats, ``kl`` (B, T)
        the closed-form KL per step, ``log_ratio`` (B,) sum_t log p(z_t) - log q(z_t | x) at the
        drawn z (for importance weighting).
        """
        c = self.config
        b = image.shape[0]
        dev = image.device
        cond = self.one_hot(label, b, dev)
        words = self.encode_text(text)
        h_enc, c_enc = image.new_zeros(2, b, c.enc_hidden).unbind(0)
        h_dec, c_dec = image.new_zeros(2, b, c.dec_hidden).unbind(0)
        canvas = image.new_zeros(b, c.channels * self.k, c.image_size, c.image_size)
        kls, log_ratio = [], image.new_zeros(b)
        for _ in range(c.steps):
            x_hat = image - self.mean_image(canvas)
            r, _ = self.read(image, x_hat, h_dec)
            enc_in = [r, h_dec] + ([cond] if cond is not None else [])
            h_enc, c_enc = self.encoder(torch.cat(enc_in, 1), (h_enc, c_enc))
            mu, log_sigma = self.posterior(h_enc).chunk(2, dim=1)
            z = mu + log_sigma.exp() * self._noise(mu.shape, generator, dev)
            mu_p, log_sigma_p = self.prior_params(h_dec)
            kls.append(gaussian_kl(mu, log_sigma, mu_p, log_sigma_p))
            log_ratio = log_ratio + (gaussian_log_density(z, mu_p, log_sigma_p)
                                     - gaussian_log_density(z, mu, log_sigma))
            dec_in, _ = self.decoder_input(z, cond, words, h_dec)
            h_dec, c_dec = self.decoder(dec_in, (h_dec, c_dec))
            canvas = canvas + self.write(h_dec)[0]
        return {"canvas": canvas, "recon": self.reconstruction_nll(canvas, image),
                "kl": torch.stack(kls, 1), "log_ratio": log_ratio}

    def forward(self, image: Tensor, label: Tensor | None = None, text: Tensor | None = None) -> Tensor:
        """The final canvas logits of one stochastic pass: (B, C, H, W) Bernoulli or
        (B, C, K, H, W) softmax. Unlike the autoregressive models this is a draw, not p(x)."""
        canvas = self.run(image, label, text)["canvas"]
        if self.config.output == "bernoulli":
            return canvas
        b, _, h, w = canvas.shape
        return canvas.view(b, self.config.channels, self.k, h, w)

    def nll_per_image(self, image: Tensor, label: Tensor | None = None,
                      text: Tensor | None = None) -> Tensor:
        """The negative ELBO in nats per image (B,), one draw of z: an upper bound on the NLL."""
        out = self.run(image, label, text)
        return out["recon"] + out["kl"].sum(1)

    def batch_labels(self, batch: dict[str, Tensor]) -> Tensor | None:
        if not self.config.num_classes:
            return None
        if "label" not in batch:
            raise RnnImgError("the model is class-conditional but the batch has no 'label'; train "
                              "on labelled data or drop num_classes.")
        self.check_data_labels(batch["label"])
        return batch["label"]

    def batch_text(self, batch: dict[str, Tensor]) -> Tensor | None:
        if not self.config.vocabulary:
            return None
        if "text" not in batch:
            raise RnnImgError("the model draws from captions but the batch has no 'text'; train on "
                              "mnist-captions or set vocabulary=[].")
        return batch["text"]

    def loss(self, batch: dict[str, Tensor]) -> LossOutput:
        """The negative ELBO per dimension as the loss (in training, the KL weighed by the warm-up
        weight); reports the bound itself, its two terms (nats per image) and the KL weight."""
        out = self.run(batch["image"], self.batch_labels(batch), self.batch_text(batch))
        kl, dims = out["kl"].sum(1), batch["image"][0].numel()
        mean = (out["recon"] + kl).mean()
        weight = self.kl_weight if self.training else 1.0
        objective = mean if weight == 1.0 else (out["recon"] + weight * kl).mean()
        return LossOutput(objective / dims, {"kl_weight": torch.tensor(weight),
            "nll_bound_nats": mean.detach(), "recon_nats": out["recon"].mean().detach(),
            "kl_nats": kl.mean().detach(),
            "bits_per_dim_bound": nats_to_bits_per_dim(mean.detach(), dims)})

    # --- evaluation (additive statistics, pooled over a split): draw_evaluation.py -------------
    def evaluation_statistics(self, batch: dict[str, Tensor], importance_samples: int = 0,
                              judge: bool | None = None, generator: torch.Generator | None = None,
                              progress: Callable[[int, int], object] | None = None) -> dict[str, Tensor]:
        """The bound, its terms, the importance-weighted estimate with ``importance_samples`` = K
        and the judge's condition match, summed over the batch: see
        :func:`rnnimg.models.generate.draw_evaluation.draw_statistics`."""
        return draw_statistics(self, batch, importance_samples, judge, generator, progress)

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        return reduce_draw_statistics(self, stats)

    def check_dataset(self, dataset, name: str) -> None:
        """Refuse data that cannot feed this model, with one line that says what to change."""
        if len(dataset) == 0:
            raise RnnImgError(f"{name} is empty.")
        item = dataset[0]
        c = self.config
        want = (c.channels, c.image_size, c.image_size)
        if "image" not in item or tuple(item["image"].shape) != want:
            got = tuple(item["image"].shape) if "image" in item else "no images"
            raise RnnImgError(f"{name} gives images of {got}, but the model takes {want}; set "
                              "image_size / channels to the data's.")
        if c.num_classes:
            if "label" not in item:
                raise RnnImgError(f"{name} has no class labels, but the model is class-conditional "
                                  f"(num_classes={c.num_classes}); drop --set num_classes.")
            base = getattr(dataset, "dataset", dataset)
            labels = getattr(base, "labels", None)
            top = int(labels.max()) if labels is not None and len(labels) else int(item["label"])
            if top >= c.num_classes:
                raise RnnImgError(f"{name} has labels up to {top}, but the model has num_classes="
                                  f"{c.num_classes}; pass --set num_classes={top + 1}.")
        if c.vocabulary:
            base = getattr(dataset, "dataset", dataset)
            vocab = tuple(getattr(base, "vocabulary", ()) or ())
            if "text" not in item or not vocab:
                raise RnnImgError(f"{name} has no captions, but the model draws from text; train "
                                  "on mnist-captions, or set vocabulary=[].")
            if vocab != c.vocabulary:
                raise RnnImgError(f"{name}'s vocabulary differs from the model's; rebuild the model "
                                  "with the dataset's vocabulary (preset captions).")
            if item["text"].shape[-1] > c.max_words:
                raise RnnImgError(f"{name} has captions of {item['text'].shape[-1]} words; set "
                                  f"max_words >= that.")

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        batch = super().example_batch(batch_size, generator)
        c = self.config
        if c.vocabulary:
            text = torch.randint(1, len(c.vocabulary) + 1, (batch_size, c.max_words), generator=generator)
            text[:, 4:], text[0, 2:] = 0, 0  # captions of 4 and 2 words
            batch["text"] = text
        return batch

    # --- generation ---------------------------------------------------------------------------
    def text_tokens(self, text, n: int) -> Tensor | None:
        """A caption (str, used for all n), n captions, or token ids (n, L) -> ids (n, L)."""
        c = self.config
        if not c.vocabulary:
            if text is not None:
                raise InputError("text", f"{self.name} was trained without captions; drop {{arg}}.")
            return None
        if text is None:
            raise InputError("text", "this model draws from captions; pass a caption with {arg}.")
        if isinstance(text, Tensor):
            ids = text.long()
            if ids.dim() == 1:
                ids = ids.expand(n, -1)
            if ids.shape[0] != n or not bool((ids[:, 0] > 0).all()) or \
                    bool(ids.max() > len(c.vocabulary)) or bool(ids.min() < 0):
                raise RnnImgError(f"text ids must be (n={n}, L) with words in 1..{len(c.vocabulary)}.")
            return ids.to(self.device)
        texts = [text] * n if isinstance(text, str) else list(text)
        if len(texts) != n:
            raise RnnImgError(f"expected one caption or {n}, got {len(texts)}.")
        return torch.stack([tokenize(t, c.vocabulary, c.max_words) for t in texts]).to(self.device)

    @torch.inference_mode()
    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, return_steps: bool = False):
        """Draw ``n`` images from the prior, step by step.

        Args:
            n: number of images (>= 1).
            label: class (int or (n,) tensor) for a label-conditional model.
            text: a caption (str), n captions, or token ids, for a caption model.
            temperature: scales the standard deviation of z (> 0).
            generator: a ``torch.Generator`` (on the model's device or the CPU).
            return_steps: also return what each step did.

        Returns:
            (n, C, H, W) mean images in [0, 1]; with ``return_steps`` the pair (images, steps),
            ``steps`` a dict of tensors: ``canvases`` (T, n, C, H, W) E[x | c_t] after each step,
            ``canvas_logits`` (T, n, maps, H, W) c_t, ``writes`` (T, n, maps, H, W) the write of
            each step, ``write_boxes`` (T, n, 4) the write window (left, top, right, bottom through
            the outer filter centres, 0-indexed pixels; absent without attention) and, for a
            caption model, ``alignments`` (T, n, L).
        """
        if not isinstance(n, int) or n < 1:
            raise RnnImgError(f"n must be a whole number >= 1, got {n!r}.")
        check_temperature(temperature)
        c = self.config
        dev = self.device
        label = check_labels(label, n, c.num_classes, dev)
        cond = self.one_hot(label, n, dev)
        words = self.encode_text(self.text_tokens(text, n))
        h_dec, c_dec = torch.zeros(2, n, c.dec_hidden, device=dev).unbind(0)
        canvas = torch.zeros(n, c.channels * self.k, c.image_size, c.image_size, device=dev)
        record: dict[str, list[Tensor]] = {"canvases": [], "canvas_logits": [], "writes": [],
                                           "write_boxes": [], "alignments": []}
        for _ in range(c.steps):
            mu_p, log_sigma_p = self.prior_params(h_dec)
            z = mu_p + temperature * log_sigma_p.exp() * self._noise(mu_p.shape, generator, dev)
            dec_in, alpha = self.decoder_input(z, cond, words, h_dec)
            h_dec, c_dec = self.decoder(dec_in, (h_dec, c_dec))
            write, window = self.write(h_dec)
            canvas = canvas + write
            if return_steps:
                record["canvases"].append(self.mean_image(canvas))
                record["canvas_logits"].append(canvas)
                record["writes"].append(write)
                if window is not None:
                    record["write_boxes"].append(window.box())
                if alpha is not None:
                    record["alignments"].append(alpha)
        images = self.mean_image(canvas)
        if not return_steps:
            return images
        return images, {k: torch.stack(v) for k, v in record.items() if v}

    def check_sample_args(self, n: int, label, text, temperature: float) -> Tensor | None:
        """The sampling arguments' checks, without sampling (labels as a (n,) tensor or None)."""
        check_temperature(temperature)
        self.text_tokens(text, n)
        return check_labels(label, n, self.config.num_classes, self.device)


