"""The ``predict`` task's base class: :class:`FramePredictor`, the generic rollout, loss,
streaming, prediction and evaluation of a next-frame model; a subclass defines one recurrent step.

The shared configuration and the sampling schedules live in :mod:`rnnimg.models.predict.config`, the
evaluation's statistics in :mod:`rnnimg.models.predict.evaluation`.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.errors import RnnImgError
from rnnimg.models.base import LossOutput, RnnImgModel, check_compile_mode
from rnnimg.models.predict.config import reverse_schedule, scheduled_sampling_eta
from rnnimg.nn.patching import depth_to_space, patched_size, to_frame_range
from rnnimg.nn.precision import autocast_dtype
from rnnimg.runtime import graphs
from rnnimg.runtime.options import check_graph, graph_backend


@contextlib.contextmanager
def _conv_weights_as(module: torch.nn.Module, dtype: torch.dtype | None):
    """Within the block, every convolution of ``module`` holds its weights cast to ``dtype`` (the
    values autocast would give them; gradients flow back to the float32 parameters). ``None``:
    nothing changes."""
    if dtype is None:
        yield
        return
    from torch.nn.utils.stateless import _reparametrize_module  # what torch.func.functional_call uses

    cast = {f"{name}.{key}" if name else key: p.to(dtype)
            for name, conv in module.named_modules() if isinstance(conv, torch.nn.Conv2d)
            for key, p in conv.named_parameters(recurse=False)}
    with _reparametrize_module(module, cast):
        yield


def _detach_state(state: Any) -> Any:
    """Detach every tensor of a nested tuple/list state (truncated BPTT)."""
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach_state(s) for s in state)


class FramePredictor(RnnImgModel):
    """A model of the ``predict`` task: given the first frames of a clip, predict the next ones.

    Config fields used here: ``frame_size`` (square side in pixels, any size), ``channels``,
    ``context`` (frames given, default 10), ``horizon`` (frames predicted in training, default 10),
    ``grad_checkpoint`` (recompute each time step in the backward pass) and ``tbptt`` (detach the
    recurrent state every k steps; 0 = full backpropagation through time).

    A subclass defines one recurrent step, :meth:`forward_step` (frame t -> prediction of frame
    t+1), and :meth:`init_state`; everything that runs along time lives here, so the batch path
    (:meth:`rollout`, :meth:`predict`) and the streaming path (:meth:`step`) run the same
    operations and give the same numbers.
    """

    task = "predict"
    data_fields: ClassVar[dict[str, str]] = {"frame_size": "frame_size", "channels": "channels"}

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.iteration = 0  # optimizer steps so far, set by the trainer through set_training_step()

    def set_training_step(self, step: int) -> None:
        """The number of optimizer steps so far; drives the scheduled-sampling probabilities.

        The trainer calls it before every training step. It is not saved in checkpoints, so a
        resumed run must call it again; ``batch["step"]`` takes precedence over it."""
        self.iteration = int(step)

    def build_patch_stack(self, make_cell: Callable[[int], torch.nn.Module]) -> None:
        """The layers of a stacked convolutional predictor (convlstm, predrnn): ``grid`` (side of
        the patch grid), ``cells`` (``config.num_layers`` of ``make_cell(input_channels)``; layer 0
        reads the frame's space-to-depth patches, the others the h of the layer below) and
        ``head`` (a 1x1 convolution of the top h to the next frame's patches)."""
        c = self.config
        self.grid = patched_size(c.frame_size, c.patch)
        patch_channels = c.channels * c.patch ** 2
        self.cells = torch.nn.ModuleList(make_cell(patch_channels if layer == 0 else c.hidden_size)
                                         for layer in range(c.num_layers))
        self.head = torch.nn.Conv2d(c.hidden_size, patch_channels, 1)  # (B, C*p*p, grid, grid)

    def to_frames(self, patches: Tensor) -> Tensor:
        """The head's patches (B, C*p*p, grid, grid) -> the predicted frame (B, C, H, W), mapped
        by ``config.output``; a ``"linear"`` output is raw in train mode, clipped in eval mode."""
        c = self.config
        frame = depth_to_space(patches, c.patch, c.frame_size, c.frame_size)
        return to_frame_range(frame, c.output, clip=not self.training)

    # --- what a subclass defines --------------------------------------------------------------
    def init_state(self, batch_size: int) -> Any:
        """The zero recurrent state for ``batch_size`` clips, on the model's device and dtype."""
        raise NotImplementedError

    def forward_step(self, frame: Tensor, state: Any) -> tuple[Tensor, Any, Tensor | None]:
        """One time step: frame (B, C, H, W) -> (prediction of the next frame, new state,
        auxiliary loss of this step or None). The prediction is in [0, 1] except for
        ``output="linear"`` in train mode (see :meth:`to_frames`)."""
        raise NotImplementedError

    # --- streaming ----------------------------------------------------------------------------
    def step(self, frame: Tensor, state: Any) -> tuple[Tensor, Any]:
        """Feed one frame (B, C, H, W); returns (prediction of the next frame, new state).

        Start with ``state = model.init_state(B)``. Feeding the context frames and then each
        returned prediction gives exactly :meth:`predict`'s result. The prediction is always in
        [0, 1], even for ``output="linear"`` on a model left in train mode.
        """
        prediction, state, _ = self.forward_step(frame, state)
        if self.config.output == "linear" and self.training:
            prediction = prediction.clamp(0, 1)
        return prediction, state

    # --- batch paths --------------------------------------------------------------------------
    def rollout(self, frames: Tensor, truth_mask: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """Run along a clip, predicting each next frame; the training and validation path.

        Args:
            frames: (B, T, C, H, W) in [0, 1].
            truth_mask: (B, T-1) bool; entry t says whether step t reads the true frame t (True)
                or the model's own prediction of it (False). Step 0 always reads the truth.
                ``None``: the truth for the first ``context`` steps, own predictions after (what
                :meth:`predict` does).

        Returns:
            (predictions (B, T-1, C, H, W), where [:, t] predicts frames[:, t+1] from the inputs of
            steps 0..t; the mean auxiliary loss per step, or None).
        """
        b, t = frames.shape[:2]
        c = self.config
        forward_step = self.rollout_step()  # forward_step, or its compiled graph (compile_steps)
        low = autocast_dtype(frames)
        inputs = frames if low is None else frames.to(low)  # once, not a cast per step: the steps
        # read frames only through convolutions, so under autocast they see the same values
        # steps 0..start-1 in one go where a subclass can (a parallel scan over true frames);
        # the base class starts from the zero state (memories in the weights' dtype)
        start, state, prev, predictions, aux_sum = self.rollout_prefix(inputs, truth_mask)
        # A compiled step does not see autocast's weight cache: it would cast every convolution's
        # weights at every step (and their gradients back). Cast them once per rollout instead.
        once = low is not None and self._compile_mode is not None and not (
            c.grad_checkpoint and torch.is_grad_enabled())  # recomputation runs after the rollout
        with _conv_weights_as(self, low if once else None):
            for s in range(start, t - 1):
                if c.tbptt and s and s % c.tbptt == 0:
                    state, prev = _detach_state(state), prev.detach()
                if s == 0 or (truth_mask is None and s < c.context):
                    x = inputs[:, s]
                elif truth_mask is None:
                    x = prev
                else:
                    x = torch.where(truth_mask[:, s].view(b, 1, 1, 1), inputs[:, s], prev)
                if c.grad_checkpoint and torch.is_grad_enabled():
                    from torch.utils.checkpoint import checkpoint

                    prev, state, aux = checkpoint(forward_step, x, state, use_reentrant=False)
                else:
                    prev, state, aux = forward_step(x, state)
                predictions.append(prev)
                if aux is not None:
                    aux_sum = aux if aux_sum is None else aux_sum + aux
        aux_mean = None if aux_sum is None else aux_sum / (t - 1)
        return torch.stack(predictions, dim=1), aux_mean  # (B, T-1, C, H, W)

    def rollout_prefix(self, inputs: Tensor, truth_mask: Tensor | None
                       ) -> tuple[int, Any, Tensor | None, list[Tensor], Tensor | None]:
        """Where :meth:`rollout`'s loop over time starts: (first step the loop runs, the state
        before it, the last prediction, the predictions of the steps before it, the sum of their
        auxiliary losses or None). The base class runs every step in the loop: (0, the zero
        state, None, [], None). A model that computes its steps over true frames all at once
        (``convscan``) overrides it; its results must equal the loop's.

        Args:
            inputs: the clip (B, T, C, H, W), in autocast's dtype under autocast.
            truth_mask: :meth:`rollout`'s ``truth_mask``.
        """
        return 0, self.init_state(inputs.shape[0]), None, [], None

    # --- compiled training --------------------------------------------------------------------
    _compile_mode: str | None = None

    @property
    def compile_mode(self) -> str | None:
        """The ``torch.compile`` mode of :meth:`compile_steps`, or None (eager)."""
        return self._compile_mode

    def compile_steps(self, mode: str | None = "default") -> None:
        """From now on :meth:`rollout` (training and validation) runs :meth:`forward_step` (one
        time step: every layer and the head) as ``torch.compile(forward_step, mode=mode)``: the
        Python loop over time stays, and each step is one compiled graph. ``None``: eager again.

        The compiled function is built on first use, holds no parameters of its own and is never
        pickled, so ``state_dict`` keys, checkpoints and ``model.safetensors`` are those of the
        eager model. :meth:`predict` and :meth:`step` stay eager.
        """
        check_compile_mode(mode)
        self._compile_mode = mode
        self.__dict__.pop("_compiled_step", None)

    def rollout_step(self):
        """The step function :meth:`rollout` calls: ``forward_step`` or its compiled graph."""
        if self._compile_mode is None:
            return self.forward_step
        if "_compiled_step" not in self.__dict__:
            self._compiled_step = torch.compile(self.forward_step, mode=self._compile_mode)
        return self._compiled_step

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_compiled_step", None)  # a compiled function neither pickles nor deep-copies
        return state

    def truth_mask(self, batch_size: int, length: int, step: int,
                   device: torch.device | None = None) -> Tensor | None:
        """(B, length-1) bool: which steps of a training clip read the true frame at iteration
        ``step``, drawn from the global RNG on ``device``, one draw per (clip, step).

        ``None`` (context true, own predictions after it) in eval mode or with
        ``sampling="none"``. ``"scheduled"``: the context steps read the truth, the later ones
        with probability :func:`scheduled_sampling_eta`. ``"reverse"``: step 0 reads the truth,
        the other context steps with probability r_eta and the later ones with eta
        (:func:`reverse_schedule`).
        """
        c = self.config
        if not self.training or c.sampling == "none":
            return None
        t = torch.arange(length - 1, device=device)  # (T-1,) input step index
        u = torch.rand(batch_size, length - 1, device=device)  # one draw per (clip, step)
        if c.sampling == "scheduled":
            eta = scheduled_sampling_eta(step, c.sampling_start, c.sampling_decay)
            return (t < c.context) | (u < eta)
        r_eta, eta = reverse_schedule(step, c.reverse_start, c.reverse_end, c.reverse_alpha)
        return (t == 0) | torch.where(t < c.context, u < r_eta, u < eta)

    def forward(self, frames: Tensor, step: int | None = None) -> Tensor:
        """Next-frame predictions (B, T-1, C, H, W) of a clip (B, T, C, H, W) as in training
        (the ``sampling`` schedule in train mode at iteration ``step``, default the trainer's);
        [:, t] depends on frames[:, :t+1] only."""
        step = self.iteration if step is None else step
        mask = self.truth_mask(frames.shape[0], frames.shape[1], step, frames.device)
        return self.rollout(frames, mask)[0]

    def training_truth_mask(self, batch: dict[str, Any]) -> tuple[Tensor | None, dict[str, float]]:
        """Which steps of a training clip read the true frame: the ``truth_mask`` that
        :meth:`loss` hands to :meth:`rollout`, and the schedule values it logs with it.

        The mask that :meth:`truth_mask` draws at iteration ``batch["step"]`` (an int or a 0-d
        tensor) or else the trainer's step, and the probabilities it was drawn with (``eta``, and
        ``r_eta`` for the reverse schedule); ``(None, {})`` for ``sampling="none"`` and in eval
        mode, which reads the context and then the model's own predictions, as :meth:`predict`.
        """
        frames = batch["frames"]
        step = int(batch.get("step", self.iteration))
        mask = self.truth_mask(frames.shape[0], frames.shape[1], step, frames.device)
        c, schedule = self.config, {}
        if mask is not None and c.sampling == "scheduled":
            schedule["eta"] = scheduled_sampling_eta(step, c.sampling_start, c.sampling_decay)
        elif mask is not None:
            schedule["r_eta"], schedule["eta"] = reverse_schedule(step, c.reverse_start,
                                                                  c.reverse_end, c.reverse_alpha)
        return mask, schedule

    def loss(self, batch: dict[str, Any]) -> LossOutput:
        """:meth:`frame_loss` of a rollout over ``batch["frames"]`` (B, T, C, H, W), T > context,
        reading the true frames where :meth:`training_truth_mask` says."""
        frames = batch["frames"]
        self.check_frames(frames, "batch['frames']")
        if frames.shape[1] <= self.config.context:
            raise RnnImgError(
                f"clips have {frames.shape[1]} frames; training needs more than context = "
                f"{self.config.context}."
            )
        mask, schedule = self.training_truth_mask(batch)
        predictions, aux = self.rollout(frames, mask)
        return self.frame_loss(frames, predictions, aux, **schedule)

    def frame_loss(self, frames: Tensor, predictions: Tensor, aux: Tensor | None = None,
                   **extra: float | Tensor) -> LossOutput:
        """The training loss over every next-frame prediction (frames 1..T-1), plus ``aux``.

        With N = B * (T-1) * C * H * W predicted pixel values p and targets y:
        ``loss="mse"`` (as PredRNN and OpenSTL train): sum((p - y)^2) / N;
        ``loss="mse+l1"``: sum((p - y)^2) / N + sum(|p - y|) / N (weight 1 each).
        p is what the rollout produced: for ``output="linear"`` in train mode, the raw values.

        Metrics, on the frames after the context only: ``mse`` and ``mae`` summed over (C, H, W)
        and averaged over clips and frames (OpenSTL's convention, as ``rnnimg.metrics``), and
        ``mse_per_pixel``; ``aux`` when given, and ``extra`` as they are.
        """
        target = frames[:, 1:]  # (B, T-1, C, H, W)
        loss = F.mse_loss(predictions, target)
        if self.config.loss == "mse+l1":
            loss = loss + F.l1_loss(predictions, target)
        future = slice(self.config.context - 1, None)  # predictions of frames context..T-1
        err = (predictions[:, future] - target[:, future]).detach()
        metrics: dict[str, float | Tensor] = {
            "mse": err.pow(2).flatten(2).sum(2).mean(), "mae": err.abs().flatten(2).sum(2).mean(),
            "mse_per_pixel": err.pow(2).mean(),
        }
        if aux is not None:
            loss = loss + aux
            metrics["aux"] = aux.detach()
        metrics.update(extra)
        return LossOutput(loss, metrics)

    def check_frames(self, frames: Tensor, what: str = "frames", values: bool = False) -> None:
        """Raise :class:`RnnImgError` unless ``frames`` is (B, T, C, H, W) of this model's size
        (and, with ``values``, finite and in [0, 1]: a check that syncs with the device)."""
        c = self.config
        want = (c.channels, c.frame_size, c.frame_size)
        if not isinstance(frames, Tensor) or frames.dim() != 5 or tuple(frames.shape[2:]) != want:
            shape = tuple(frames.shape) if isinstance(frames, Tensor) else type(frames).__name__
            raise RnnImgError(
                f"{what} has shape {shape}, but the model takes (B, T, {want[0]}, {want[1]}, "
                f"{want[2]}) clips; convert the channels / resize the frames, or train a model of "
                "that size."
            )
        if frames.shape[0] == 0 or frames.shape[1] == 0:
            raise RnnImgError(f"{what} is empty (shape {tuple(frames.shape)}); give at least one frame.")
        if values and not torch.isfinite(frames).all():
            raise RnnImgError(f"{what} contains NaN or Inf values; clean the input frames.")
        if values and (frames.min() < 0 or frames.max() > 1):
            raise RnnImgError(f"{what} has values in [{float(frames.min()):g}, "
                              f"{float(frames.max()):g}]; frames must lie in [0, 1] (divide 8-bit "
                              "frames by 255).")

    @torch.inference_mode()
    def predict(self, context: Tensor, horizon: int, *, generator=None,
                graph: bool | str = "auto") -> Tensor:
        """Predict the ``horizon`` frames that follow ``context``, feeding back its own predictions.

        Args:
            context: (B, T0, C, H, W) in [0, 1], any T0 >= 1.
            horizon: frames to predict, >= 1; may exceed the horizon the model was trained on.
            generator: accepted like every task verb's; unused, as the prediction is deterministic.
            graph: "auto" (default): the per-frame step reads the frame and the state from
                preallocated buffers and writes the prediction and the new state back into them;
                on a CUDA device it is captured once as a CUDA graph (per batch size, frame shape,
                dtype, train/eval mode; the first call pays the capture) and replayed for every
                frame, on any other device it runs eagerly over the same buffers. True: always
                capture (a CUDA device only). False: the plain loop of :meth:`step` calls. All
                three give the same predictions, bit for bit.

        Returns:
            (B, horizon, C, H, W) in [0, 1].

        Raises:
            RnnImgError: for a wrong shape, channel count or frame size, values outside [0, 1] or
                not finite, ``horizon`` < 1, or a ``graph`` option that is not "auto", True or
                False (True off a GPU).
        """
        if isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral) or horizon < 1:
            raise RnnImgError(f"horizon must be a whole number >= 1, got {horizon!r}.")
        self.check_frames(context, "context", values=True)
        context = context.to(self.device, next(self.parameters()).dtype)
        capture = check_graph(graph, context.device)
        if graph is not False:
            return self.predict_buffered(context, int(horizon), capture)
        state = self.init_state(context.shape[0])
        for t in range(context.shape[1]):
            prediction, state = self.step(context[:, t], state)
        predictions = [prediction]
        for _ in range(int(horizon) - 1):
            prediction, state = self.step(prediction, state)
            predictions.append(prediction)
        return torch.stack(predictions, dim=1)  # (B, horizon, C, H, W)

    def predict_buffered(self, context: Tensor, horizon: int, capture: bool) -> Tensor:
        """:meth:`predict` with one :class:`rnnimg.runtime.graphs.StaticStep` per frame: it reads the
        frame buffer and the state buffers, writes the new state into the state buffers in place
        and returns the prediction. The state buffers are reset to :meth:`init_state` at the
        start of every call; the same step (or graph) serves any context length and horizon.
        ``context`` must be checked and on the model's device and dtype already (as :meth:`predict`
        leaves it); ``capture`` records a CUDA graph (a CUDA device only)."""
        b, frames = context.shape[:2]
        zeros = self.init_state(b)
        first = context[:, 0]  # (B, C, H, W)
        key = ("predict", tuple(first.shape), first.dtype, first.device, self.training, capture)

        def build() -> graphs.StaticStep:
            def fn(frame: Tensor, state: Any) -> Tensor:
                prediction, new_state = self.step(frame, state)
                # every new state tensor is computed before any buffer is overwritten
                graphs.copy_tree(state, new_state)
                return prediction

            backend = graph_backend(first.device) if capture else None
            return graphs.StaticStep(fn, {"frame": first, "state": zeros}, backend)

        step = graphs.cached_step(self, key, build)
        out = context.new_empty(b, horizon, *first.shape[1:])  # (B, horizon, C, H, W)
        with step.lock:  # the buffers are shared by every call with this key, threads included
            prediction = step(frame=first, state=zeros)
            for t in range(1, frames):
                prediction = step(frame=context[:, t])
            out[:, 0] = prediction
            for k in range(1, horizon):
                prediction = step(frame=prediction)  # copied into the frame buffer before it runs
                out[:, k] = prediction
        return out

    # --- trainer and evaluator hooks ----------------------------------------------------------
    def dataset_options(self) -> dict[str, Any]:
        c = self.config
        return {"frames": c.context + c.horizon, "frame_size": c.frame_size, "channels": c.channels}

    def example_batch(self, batch_size: int = 2, generator: torch.Generator | None = None) -> dict:
        c = self.config
        shape = (batch_size, c.context + c.horizon, c.channels, c.frame_size, c.frame_size)
        return {"frames": torch.rand(shape, generator=generator)}

    # True for models whose predict() draws a different future per call (svg): evaluation then
    # scores sampled futures, and ``samples`` of them per clip with ``evaluate --samples N``.
    stochastic: ClassVar[bool] = False
    # `rnnimg evaluate --eval-opt horizon=90`, `rnnimg evaluate --samples N`
    evaluation_options: ClassVar[tuple[str, ...]] = ("horizon", "samples")

    def evaluation_dataset_options(self, horizon: int | None = None, **options) -> dict[str, Any]:
        """Clips of context + ``horizon`` frames when another horizon is scored."""
        if horizon is None or isinstance(horizon, bool) or not isinstance(horizon, numbers.Integral):
            return {}  # evaluation_statistics reports a bad horizon
        return {"frames": self.config.context + int(horizon)}

    @torch.no_grad()
    def evaluation_statistics(self, batch: dict[str, Tensor], horizon: int | None = None,
                              samples: int | None = None, **options) -> dict[str, Tensor]:
        """Sums over clips of the per-time-step scores of the ``horizon`` frames predicted from the
        context alone (``mse``, ``mae``, ``psnr``, ``ssim``), best-of / mean-of ``samples`` futures,
        and the validation ``loss``: see :func:`rnnimg.models.predict.evaluation.clip_statistics`."""
        from rnnimg.models.predict.evaluation import clip_statistics

        return clip_statistics(self, batch, horizon, samples)

    def reduce_statistics(self, stats: dict[str, Tensor]) -> dict[str, float | list[float]]:
        """Means over clips (see :func:`rnnimg.models.predict.evaluation.reduce_clip_statistics`)."""
        from rnnimg.models.predict.evaluation import reduce_clip_statistics

        return reduce_clip_statistics(stats)
