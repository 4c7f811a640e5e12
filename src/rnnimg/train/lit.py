"""The one LightningModule: it wraps ANY registered model through the model contract
(``loss``, ``set_training_step`` and, for adversarial models, ``discriminator_parameters`` /
``discriminator_loss``) and never names a model."""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import numpy as np
import torch

from rnnimg.errors import NonFiniteLossError
from rnnimg.models.base import LossOutput, RnnImgModel


def discriminator_parameters(model: RnnImgModel) -> list:
    """The model's discriminator parameters (empty for all but adversarial models)."""
    return list(model.discriminator_parameters())


class LitModel(L.LightningModule):
    """Trains ``model``: each step is ``model.loss(batch)``; metrics are logged as the model
    reports them. A NaN or Inf loss or gradient stops training with a clear message.

    A model whose ``discriminator_parameters()`` is non-empty is trained with manual optimization
    and two Adam optimizers: each step first takes one step on ``discriminator_loss(batch)`` for
    the discriminator's parameters, then one on ``loss(batch)`` for all the others. Each optimizer
    sees only the gradients of its own loss. ``global_step`` counts training steps (one per
    batch), as for every other model.

    Args:
        model: any rnnimg model.
        lr, weight_decay: Adam's (both optimizers).
        grad_clip: gradient-norm clip for the adversarial path (Lightning clips the other one).
        ckpt_path: last.ckpt, named in the NaN message when it exists.
    """

    def __init__(self, model: RnnImgModel, lr: float, weight_decay: float = 0.0,
                 grad_clip: float | None = None, ckpt_path: Path | None = None) -> None:
        super().__init__()
        self.model, self.lr, self.weight_decay, self.ckpt_path = model, lr, weight_decay, ckpt_path
        self.grad_clip = grad_clip
        self.adversarial = bool(discriminator_parameters(model))
        self.automatic_optimization = not self.adversarial

    # --- logging ------------------------------------------------------------------------------
    def _log_metrics(self, prefix: str, out: LossOutput, batch_size: int, loss_name: str = "loss",
                     metric_prefix: str = "") -> None:
        on_step = prefix == "train"
        self.log(f"{prefix}/{loss_name}", out.loss.detach(), prog_bar=True, batch_size=batch_size,
                 on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)
        for key, value in out.metrics.items():
            value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if value.numel() != 1:
                value = value.float().mean()  # per-time-step metrics are logged as their mean
            self.log(f"{prefix}/{metric_prefix}{key}", value, batch_size=batch_size,
                     on_step=on_step, on_epoch=not on_step, sync_dist=not on_step)

    @staticmethod
    def _batch_size(batch: dict) -> int:
        return len(next(iter(batch.values())))

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        self.model.set_training_step(self.global_step)  # step-dependent schedules; default no-op
        if self.adversarial:
            return self._adversarial_step(batch)
        out = self.model.loss(batch)
        self._check_loss(out.loss, "the loss")
        self._log_metrics("train", out, self._batch_size(batch))
        return out.loss

    def _adversarial_step(self, batch):
        opt_g, opt_d = self.optimizers()
        d_params = discriminator_parameters(self.model)
        d_ids = {id(p) for p in d_params}
        g_params = [p for p in self.model.parameters() if id(p) not in d_ids]
        n = self._batch_size(batch)

        d_out = self.model.discriminator_loss(batch)
        self._check_loss(d_out.loss, "the discriminator loss")
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(d_out.loss)
        if self.grad_clip:
            self.clip_gradients(opt_d, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        self._check_grads(d_params)
        # The raw optimizer: Lightning would count this as a second step, halving --max-steps.
        opt_d.optimizer.step()

        out = self.model.loss(batch)  # the generator's loss, with the updated discriminator
        self._check_loss(out.loss, "the loss")
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(out.loss)
        if self.grad_clip:
            self.clip_gradients(opt_g, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        self._check_grads(g_params)
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)  # the generator loss's gradients never reach opt_d
        self._log_metrics("train", out, n)
        self._log_metrics("train", d_out, n, loss_name="disc_loss", metric_prefix="disc_")
        return out.loss.detach()

    def _check_loss(self, loss: torch.Tensor, what: str) -> None:
        if not torch.isfinite(loss):
            self._stop(f"{what} became {loss.item()}")

    def _check_grads(self, params) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.detach().abs().max() for g in grads])).all():
            self._stop("a gradient became NaN or Inf")

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.automatic_optimization:
            self._check_grads(self.model.parameters())

    def _stop(self, what: str) -> None:
        where = f"; the last good checkpoint is {self.ckpt_path}" if self.ckpt_path and \
            self.ckpt_path.is_file() else "; no checkpoint was written before it"
        raise NonFiniteLossError(
            f"{what} at step {self.global_step}, so training stopped{where}. "
            "Try a lower --lr, a smaller --grad-clip, or check the data for NaN."
        )

    def validation_step(self, batch, batch_idx):
        out = self.model.loss(batch)
        self._log_metrics("val", out, self._batch_size(batch))

    def configure_optimizers(self):
        if not self.adversarial:
            return torch.optim.Adam(self.model.parameters(), lr=self.lr,
                                    weight_decay=self.weight_decay)
        d_ids = {id(p) for p in discriminator_parameters(self.model)}
        g_params = [p for p in self.model.parameters() if id(p) not in d_ids]
        d_params = [p for p in self.model.parameters() if id(p) in d_ids]
        return [torch.optim.Adam(g_params, lr=self.lr, weight_decay=self.weight_decay),
                torch.optim.Adam(d_params, lr=self.lr, weight_decay=self.weight_decay)]

    # --- resume -------------------------------------------------------------------------------
    # The global RNG states go into the checkpoint, so a resumed run draws the same numbers
    # (dropout, scheduled sampling). The data draw from their own seeds (train/data.py).
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        np_state = np.random.get_state()
        checkpoint["rnnimg_rng"] = {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            checkpoint["rnnimg_rng"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get("rnnimg_rng")
        if state:
            torch.set_rng_state(state["torch"])
            n = state["numpy"]
            np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
            p = state["python"]
            random.setstate((p[0], tuple(p[1]), p[2]))
            if "cuda" in state and torch.cuda.is_available():
                cuda = state["cuda"]
                if len(cuda) == torch.cuda.device_count():
                    torch.cuda.set_rng_state_all(cuda)
