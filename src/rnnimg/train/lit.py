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
from rnnimg.runtime.torch_compat import foreach_norm
from rnnimg.train.lightning_compat import is_log_step


def discriminator_parameters(model: RnnImgModel) -> list:
    """The model's discriminator parameters (empty for all but adversarial models)."""
    return list(model.discriminator_parameters())


class FiniteWatch:
    """Values that must stay finite (losses, gradient norms), kept as the tensors they are (on
    their device, no copy, no host sync) until :meth:`first_bad` reads them all in one transfer.
    More than ``window`` steps unread are read at the next :meth:`record`, so memory stays bounded
    whatever the caller's cadence.

    Args:
        window: steps kept unread at most (the caller reads at least this often).
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self.pending: list[tuple[int, str, list[torch.Tensor]]] = []  # in the order recorded
        self.first_step: int | None = None  # the oldest unread step

    def record(self, kind: str, step: int, values: list[torch.Tensor]
               ) -> tuple[int, str, float] | None:
        """Remember scalar ``values`` (e.g. one gradient norm per parameter) as ``kind`` at
        ``step``. Returns what :meth:`first_bad` returns when the unread steps had to be read
        first (else None)."""
        bad = None
        if self.first_step is not None and step - self.first_step >= self.window:
            bad = self.first_bad()
        if self.first_step is None:
            self.first_step = step
        self.pending.append((step, kind, values))
        return bad

    def first_bad(self) -> tuple[int, str, float] | None:
        """The first (step, kind, value) recorded since the last call that is NaN or Inf, or
        None. One device -> host copy."""
        pending, self.pending, self.first_step = self.pending, [], None
        if not pending:
            return None
        with torch.no_grad():
            host = torch.stack([v.float() for _, _, values in pending for v in values]).cpu()
        finite = torch.isfinite(host)
        if bool(finite.all()):
            return None
        first = int((~finite).nonzero()[0])
        offset = 0
        for step, kind, values in pending:
            if first < offset + len(values):
                return step, kind, float(host[first])
            offset += len(values)
        raise AssertionError("a non-finite value outside every record")


class LitModel(L.LightningModule):
    """Trains ``model``: each step is ``model.loss(batch)``; metrics are logged as the model
    reports them, at the trainer's log cadence. A NaN or Inf loss or gradient stops training with
    a message that names the step: the values are watched on the device without a host sync per
    step and read at the log cadence, before validation and before any checkpoint is written, so
    a NaN never reaches a checkpoint (see :class:`FiniteWatch`).

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
        self._finite: FiniteWatch | None = None
        self._step_outputs: list[tuple[LossOutput, str, str]] = []
        self._step_batch_size = 0
        self._step = 0

    # --- logging ------------------------------------------------------------------------------
    # Training metrics are logged at the log cadence only, from values copied to the host in one
    # transfer: ``self.log`` costs about 1 ms a call on the CPU, and a logged device tensor is read
    # back (``.item()``) by the progress bar at every step, a host sync that stalls a GPU.
    def _log_metrics(self, prefix: str, out: LossOutput, batch_size: int, loss_name: str = "loss",
                     metric_prefix: str = "") -> None:
        """Validation: every batch, accumulated over the epoch (on the device)."""
        self.log(f"{prefix}/{loss_name}", out.loss.detach(), prog_bar=True, batch_size=batch_size,
                 on_step=False, on_epoch=True, sync_dist=True)
        for key, value in out.metrics.items():
            value = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if value.numel() != 1:
                value = value.float().mean()  # per-time-step metrics are logged as their mean
            self.log(f"{prefix}/{metric_prefix}{key}", value, batch_size=batch_size,
                     on_step=False, on_epoch=True, sync_dist=True)

    def _log_step_metrics(self) -> None:
        """The training metrics of the step that just ended, as host tensors, for this row."""
        if not self._step_outputs:
            return
        names, values = [], []
        for out, loss_name, metric_prefix in self._step_outputs:
            names.append((f"train/{loss_name}", True))
            values.append(out.loss.detach().float().reshape(()))
            for key, value in out.metrics.items():
                value = torch.as_tensor(value, dtype=torch.float32, device=out.loss.device)
                names.append((f"train/{metric_prefix}{key}", False))
                # per-time-step metrics are logged as their mean
                values.append(value.mean() if value.numel() != 1 else value.reshape(()))
        host = torch.stack(values).cpu()  # one device -> host copy for the whole row
        for (name, prog_bar), value in zip(names, host):
            self.log(name, value, prog_bar=prog_bar, batch_size=self._step_batch_size,
                     on_step=True, on_epoch=False)

    def _is_log_step(self) -> bool:
        """Whether Lightning writes a row after this step (asked after the callbacks' batch end,
        so a signal's stop, which also writes a row, is seen). Lightning's own test, so the rows
        and the logged values never drift apart."""
        return is_log_step(self.trainer)

    @staticmethod
    def _batch_size(batch: dict) -> int:
        return len(next(iter(batch.values())))

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        self._step = self.global_step  # (a chain of Lightning properties: read once a step)
        self.model.set_training_step(self._step)  # step-dependent schedules; default no-op
        self._step_batch_size = self._batch_size(batch)
        if self.adversarial:
            return self._adversarial_step(batch)
        out = self.model.loss(batch)
        self._watch("the loss", [out.loss])
        self._step_outputs = [(out, "loss", "")]
        return out.loss

    def _adversarial_step(self, batch):
        opt_g, opt_d = self.optimizers()
        d_params = discriminator_parameters(self.model)
        d_ids = {id(p) for p in d_params}
        g_params = [p for p in self.model.parameters() if id(p) not in d_ids]

        d_out = self.model.discriminator_loss(batch)
        self._watch("the discriminator loss", [d_out.loss])
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(d_out.loss)
        if self.grad_clip:
            self.clip_gradients(opt_d, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        self._watch_grads("a discriminator gradient", d_params)
        # The raw optimizer: Lightning would count this as a second step, halving --max-steps.
        opt_d.optimizer.step()

        out = self.model.loss(batch)  # the generator's loss, with the updated discriminator
        self._watch("the loss", [out.loss])
        opt_g.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(out.loss)
        if self.grad_clip:
            self.clip_gradients(opt_g, gradient_clip_val=self.grad_clip, gradient_clip_algorithm="norm")
        self._watch_grads("a gradient", g_params)
        opt_g.step()
        opt_d.zero_grad(set_to_none=True)  # the generator loss's gradients never reach opt_d
        self._step_outputs = [(out, "loss", ""), (d_out, "disc_loss", "disc_")]
        return out.loss.detach()

    def on_before_optimizer_step(self, optimizer) -> None:
        if self.automatic_optimization:
            self._watch_grads("a gradient", self.model.parameters())

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        # After the callbacks' batch end (a checkpoint there has checked already), before
        # Lightning writes the row.
        if self._is_log_step():
            self.check_finite()
            self._log_step_metrics()
        self._step_outputs = []

    def on_validation_start(self) -> None:
        self.check_finite()

    def on_train_end(self) -> None:
        self.check_finite()  # a run never ends quietly on a NaN of its last steps

    # --- NaN / Inf ----------------------------------------------------------------------------
    # The loss and the gradients' norms of every step are kept, unread, on the device (no host
    # sync); they are read in one transfer at the log cadence, before validation and before any
    # checkpoint is written. So a NaN stops training within log_every_n_steps steps (or at the
    # next checkpoint, if sooner), names the step where it appeared, and never reaches a
    # checkpoint or model.safetensors.
    def _watch(self, what: str, values: list[torch.Tensor]) -> None:
        """Record scalar ``values`` of this step (detached: no autograd graph is kept)."""
        values = [v.detach() for v in values]
        self._raise_if_bad(self._finite_watch().record(what, self._step, values))

    def _watch_grads(self, what: str, params) -> None:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:  # a gradient's 2-norm (one fused call, as torch's clipping does) is NaN/Inf
            # when an entry is (or when it passes ~1e19)
            self._watch(what, foreach_norm(grads))

    def _finite_watch(self) -> FiniteWatch:
        if self._finite is None:
            every = self.trainer.log_every_n_steps if self._trainer is not None else 1
            self._finite = FiniteWatch(max(1, every or 1))
        return self._finite

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` if a watched value was NaN/Inf at a step since the
        last check (one device -> host copy)."""
        self._raise_if_bad(self._finite.first_bad() if self._finite is not None else None)

    def _raise_if_bad(self, bad: tuple[int, str, float] | None) -> None:
        if bad is not None:
            step, what, value = bad
            self._stop(f"{what} became {'NaN or Inf' if what.endswith('gradient') else value}", step)

    def _stop(self, what: str, step: int) -> None:
        where = f"; the last good checkpoint is {self.ckpt_path}" if self.ckpt_path and \
            self.ckpt_path.is_file() else "; no checkpoint was written before it"
        raise NonFiniteLossError(
            f"{what} at step {step}, so training stopped{where}. "
            "Try a lower --lr, a smaller --grad-clip, or check the data for NaN."
        )

    def on_validation_epoch_start(self) -> None:
        self._val_sums: dict[str, torch.Tensor] = {}

    def validation_step(self, batch, batch_idx):
        out = self.model.loss(batch)
        self._log_metrics("val", out, self._batch_size(batch))
        if self.model.pooled_validation_metrics:
            # Summed over the split, reduced once at its end. Every rank validates on the whole
            # split (the validation sampler does not shard), so there is nothing to all-reduce.
            for key, value in self.model.evaluation_statistics(batch).items():
                self._val_sums[key] = self._val_sums[key] + value if key in self._val_sums else value

    def on_validation_epoch_end(self) -> None:
        sums, self._val_sums = getattr(self, "_val_sums", {}), {}
        if sums:
            scores = self.model.reduce_statistics(sums)
            for name in self.model.pooled_validation_metrics:
                self.log(f"val/{name}", float(scores[name]), on_step=False, on_epoch=True)

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
        self.check_finite()  # never a checkpoint of NaN weights (ExportWeights checks first too)
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
