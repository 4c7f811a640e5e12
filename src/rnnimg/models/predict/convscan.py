"""``convscan``: next-frame prediction with convolutional linear recurrences trained by a scan over
time.

ConvS5 (Smith, De Mello, Kautz, Linderman, Byeon 2023, "Convolutional State Space Models for
Long-Range Spatiotemporal Modeling") replaces ConvLSTM's nonlinear state-to-state convolution by a
pointwise linear recurrence, so that a teacher-forced clip is computed with one parallel scan over
time instead of a step per frame, while generation still advances one frame at a time with a
constant-size state. This model does the same with the cell of :class:`rnnimg.nn.ConvScanCell`:
a ConvLSTM cell whose gates read the input frame only, with minGRU's (or minLSTM's) coefficients
(Feng et al. 2024, "Were RNNs All We Needed?") and an output gate. Each frame is folded into
patches (space-to-depth), passed through ``num_layers`` such cells (layer l reads layer l-1's
outputs y at the same time step, so every layer sees every frame at once) and a 1x1 convolution
of the top y gives the next frame's patches, mapped to [0, 1] as ``convlstm``'s are.

Training and the exposure-bias question. :meth:`rollout` computes the longest run of steps that
read true frames in every clip with one scan per layer (:meth:`rollout_prefix`), and the steps
after it frame by frame with :meth:`forward_step` (the base class's loop, which also serves
:meth:`step`, streaming and :meth:`predict`). ``closed_loop`` says how many of the last steps of a
training clip read the model's own previous prediction, as :meth:`predict` does after the
context: 0 is pure teacher forcing (the whole clip is one scan, ConvS5's training), and any value
>= horizon - 1 trains exactly as it is tested (``convlstm``'s ``sampling="none"``). The
``sampling`` schedules of :class:`FramePredictorConfig` ("scheduled", "reverse") replace the tail
when chosen; the scan then covers the steps before the first one that any clip reads from its
own prediction.

Measured (docs/benchmarks.md, issue 18; 32x32 Moving MNIST, 10 -> 10, 2 x 64, 240 CPU-s, one
seed): pure teacher forcing reaches the lowest training loss but a closed-loop test MSE of 32.5
per frame; closed-loop training after the context gives 22.4, a closed-loop tail of the last 3
steps 22.3 with the best SSIM (0.29 against 0.15), a tail of 6 22.7. The config default and the
10 -> 10 presets use the tail of 3; the long-horizon presets train closed loop after the context
(rolled out to 90 frames, full closed-loop training scored 26.8 over frames 50-90, the tail of 3
27.8).
On one CPU thread the scan is not faster than a step per frame at equal parameters; the model
trains 2.7x convlstm's clips per CPU-second at equal width because the cell has no state-to-gate
convolution.

Departures from ConvS5: input-dependent decay (gates) instead of a fixed diagonal transition from
a discretised continuous-time system; the state has the feature size; no layer norm, no
feed-forward block between layers; the loss is per-frame MSE on the patch grid of PredRNN's
space-to-depth layout, with ``convlstm``'s clamped output.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnimg.models.predict.base import FramePredictor
from rnnimg.models.predict.config import FramePredictorConfig, check_conv_stack_config
from rnnimg.models.registry import register_model
from rnnimg.nn import patched_size, space_to_depth
from rnnimg.nn.conv_scan import ConvScanCell
from rnnimg.nn.minrnn import CELLS
from rnnimg.nn.scan import SCAN_METHODS


@dataclass
class ConvScanConfig(FramePredictorConfig):
    # frame_size, channels, context, horizon, patch, output, loss, sampling (default "none") and
    # its schedule, grad_checkpoint, tbptt: FramePredictorConfig
    hidden_size: int = 128  # channels of the state and output of every layer
    num_layers: int = 4  # stacked ConvScanCell layers
    kernel_size: int = 5  # odd side of the gate convolution
    cell: str = "mingru"  # "mingru" | "minlstm": how the gates make the recurrence's coefficients
    forget_bias: float = 1.0  # initial bias that keeps the state
    closed_loop: int = 3  # last steps of a training clip that read own predictions (0: teacher forcing)
    scan_method: str = "auto"  # linear_scan method: auto | doubling | log | sequential

    def __post_init__(self):
        super().__post_init__()
        check_conv_stack_config(self)
        for name, allowed in (("cell", CELLS), ("scan_method", SCAN_METHODS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.scan_method == "log":
            raise ValueError("scan_method 'log' needs positive coefficients and a positive input; "
                             "use auto, doubling or sequential")
        if self.closed_loop < 0:
            raise ValueError(f"closed_loop must be >= 0 (0 = teacher forcing), got {self.closed_loop}")


@register_model("convscan")
class ConvScan(FramePredictor):
    config_class = ConvScanConfig
    presets = {
        "debug": dict(frame_size=16, context=4, horizon=4, patch=2, hidden_size=16, num_layers=2,
                      kernel_size=3, closed_loop=3),
        # convlstm's mmnist stack (OpenSTL's 4 x 128, kernel 5, patch 4), 10 -> 10, teacher
        # forcing with a closed-loop tail of 3 steps (the measured winner, docs/benchmarks.md).
        "mmnist": dict(closed_loop=3),
        # Long horizons on Moving MNIST: 10 -> 90 and ConvS5's 100 -> 400 (the dataset renders
        # clips of context + horizon frames), closed loop after the context (measured better
        # than the tail of 3 at frames 50-90 when rolled out from 10 -> 10 training).
        "mmnist-90": dict(context=10, horizon=90, closed_loop=89),
        "mmnist-400": dict(context=100, horizon=400, closed_loop=399),
    }

    def __init__(self, config: ConvScanConfig) -> None:
        super().__init__(config)
        c = config
        self.grid = patched_size(c.frame_size, c.patch)  # side of the patch grid
        patch_channels = c.channels * c.patch ** 2
        self.cells = nn.ModuleList(
            ConvScanCell(patch_channels if layer == 0 else c.hidden_size, c.hidden_size, c.kernel_size,
                         cell=c.cell, forget_bias=c.forget_bias, scan_method=c.scan_method)
            for layer in range(c.num_layers)
        )
        self.head = nn.Conv2d(c.hidden_size, patch_channels, 1)  # top y -> next frame's patches

    # --- one frame ----------------------------------------------------------------------------
    def init_state(self, batch_size: int) -> list[Tensor]:
        """[h] per layer, each (B, hidden, grid, grid), zeros, float32 under autocast."""
        p = next(self.parameters())
        return [cell.init_state(batch_size, self.grid, self.grid, p.device, p.dtype) for cell in self.cells]

    def forward_step(self, frame: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor], None]:
        x = space_to_depth(frame, self.config.patch)  # (B, C*p*p, grid, grid)
        new_state = []
        for cell, h in zip(self.cells, state):
            x, h = cell.step(x, h)
            new_state.append(h)
        return self.to_frames(self.head(x)), new_state, None  # (B, C, H, W)

    # --- a clip at once -----------------------------------------------------------------------
    def truth_mask(self, batch_size: int, length: int, step: int,
                   device: torch.device | None = None) -> Tensor | None:
        """With ``sampling="none"`` in train mode: the truth everywhere except the last
        ``closed_loop`` steps after the context; otherwise the base class's schedule (``None``,
        i.e. own predictions after the context, in eval mode and when the tail covers every step
        after the context)."""
        c = self.config
        if not self.training or c.sampling != "none" or c.closed_loop >= length - 1 - c.context:
            return super().truth_mask(batch_size, length, step, device)  # None: as predict()
        s = torch.arange(length - 1, device=device)
        tail = (s >= c.context) & (s >= length - 1 - c.closed_loop)
        return (~tail).expand(batch_size, -1)

    def rollout_prefix(self, inputs: Tensor, truth_mask: Tensor | None):
        """Steps 0..n-1, the longest run that reads true frames in every clip (the context in
        eval mode), computed with one scan per layer; see :meth:`FramePredictor.rollout_prefix`.
        With ``tbptt`` the scans run in chunks of ``tbptt`` steps from a detached state."""
        b, t = inputs.shape[:2]
        c = self.config
        if truth_mask is None:
            n = min(c.context, t - 1)
        else:
            reads = truth_mask[:, 1:].all(0).tolist() + [False]  # step 0 always reads the truth
            n = 1 + reads.index(False)
        x = space_to_depth(inputs[:, :n].flatten(0, 1), c.patch).unflatten(0, (b, n))  # (B, n, Cp, g, g)
        chunk = c.tbptt or n
        state, outputs = self.init_state(b), []
        for start in range(0, n, chunk):
            if start:
                state = [h.detach() for h in state]
            y, state = self._scan_layers(x[:, start:start + chunk], state)
            outputs.append(y)
        y = torch.cat(outputs, dim=1) if len(outputs) > 1 else outputs[0]  # (B, n, hidden, g, g)
        frames = self.to_frames(self.head(y.flatten(0, 1))).unflatten(0, (b, n))  # (B, n, C, H, W)
        return n, state, frames[:, -1], list(frames.unbind(1)), None

    def _scan_layers(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Every layer over x (B, T, Cp, g, g) from ``state``: (top outputs (B, T, hidden, g, g),
        the states after the last frame)."""
        new_state = []
        for cell, h0 in zip(self.cells, state):
            if self.config.grad_checkpoint and torch.is_grad_enabled():
                from torch.utils.checkpoint import checkpoint

                x, h = checkpoint(cell, x, h0, use_reentrant=False)
            else:
                x, h = cell(x, h0)
            new_state.append(h[:, -1])
        return x, new_state
