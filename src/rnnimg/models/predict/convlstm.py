"""``convlstm``: next-frame prediction with a stack of ConvLSTM layers.

Shi et al. 2015, "Convolutional LSTM Network: A Machine Learning Approach for Precipitation
Nowcasting". Each frame is folded into patches (space-to-depth), passed through ``num_layers``
stacked :class:`rnnimg.nn.ConvLSTMCell` s (layer l reads the h of layer l-1 at the same time
step), and a 1x1 convolution of the top h gives the next frame's patches, unfolded back to a
frame. The output is mapped to [0, 1] like the data (``output="clamp"``, a clamp with a
straight-through gradient; ``"sigmoid"``; or ``"linear"``, raw in training and clipped in eval
mode), so a prediction can be fed back as the next input.

Training: the loss is the MSE (``loss="mse"``) or MSE + L1 (``"mse+l1"``) of every next-frame
prediction of the clip (frames 1..T-1). The first ``context`` steps read the true frames (teacher
forcing). After that, with ``sampling="none"`` (the config's default) the model reads its own
previous prediction, exactly as at test time, with gradients flowing through the fed-back
predictions; ``"scheduled"`` and ``"reverse"`` are PredRNN's scheduled sampling and PredRNN-V2's
reverse scheduled sampling, shared with ``predrnn`` (see :mod:`rnnimg.models.predict.base`; the
trainer's step arrives through ``set_training_step``).

Departures from the paper:
- The paper's encoder-forecaster (the forecaster gets no input and copies the encoder states) is
  replaced by one stack that reads the last prediction, as in PredRNN's and OpenSTL's ConvLSTM
  baseline; this is what lets any horizon be rolled out, and what the ``mmnist`` preset (OpenSTL's
  4 x 128, kernel 5, patch 4) is measured with.
- MSE loss with a clamped output (the paper: cross-entropy with a logistic output). A sigmoid
  with MSE is available (``output="sigmoid"``) but, measured on a moving square, the tiny models
  then collapse to the mean frame and stay there: the sigmoid's gradient vanishes on the
  saturated background. The straight-through clamp keeps every wrong pixel's gradient. Issue 12's
  ablation of sampling, head and loss at equal CPU budget: docs/video-prediction.md.
- Peepholes are an option (``peephole=True``, the paper's per-position Hadamard weights); the
  presets leave them off as OpenSTL does. The forget gate's bias starts at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from rnnimg.models.predict.base import FramePredictor
from rnnimg.models.predict.config import DEBUG_CONV_STACK, FramePredictorConfig, check_conv_stack_config
from rnnimg.models.registry import register_model
from rnnimg.nn import ConvLSTMCell, patched_size, space_to_depth


@dataclass
class ConvLSTMConfig(FramePredictorConfig):
    # frame_size, channels, context, horizon, patch, output, loss, sampling (default "none": own
    # predictions after the context), its schedule, grad_checkpoint, tbptt: FramePredictorConfig
    hidden_size: int = 128  # channels of h and c in every layer
    num_layers: int = 4  # stacked ConvLSTM layers
    kernel_size: int = 5  # odd side of the gate convolution
    peephole: bool = False  # the paper's Hadamard peepholes W_c* o c
    forget_bias: float = 1.0  # initial bias of the forget gate

    def __post_init__(self):
        super().__post_init__()
        check_conv_stack_config(self)


@register_model("convlstm")
class ConvLSTM(FramePredictor):
    config_class = ConvLSTMConfig
    presets = {
        "debug": dict(DEBUG_CONV_STACK),
        # OpenSTL's Moving MNIST ConvLSTM (the "S" setting): 4 x 128, kernel 5, patch 4, 10 -> 10.
        # Sampling, head and loss: issue 12's ablation at equal CPU budget (docs/benchmarks.md):
        # reverse scheduled sampling (PredRNN-V2's schedule: 25,000 / 50,000 / 5,000 iterations,
        # sized for OpenSTL's ~125,000-step run) beat closed-loop training on both seeds by 1-2%
        # MSE at equal SSIM; a linear or sigmoid head and MSE + L1 did not beat the clamp and MSE.
        "mmnist": dict(sampling="reverse", output="clamp", loss="mse"),
    }

    def __init__(self, config: ConvLSTMConfig) -> None:
        super().__init__(config)
        c = config
        grid = patched_size(c.frame_size, c.patch)
        self.build_patch_stack(lambda inputs: ConvLSTMCell(
            inputs, c.hidden_size, c.kernel_size, peephole=c.peephole, peephole_size=(grid, grid),
            forget_bias=c.forget_bias))

    def init_state(self, batch_size: int) -> list[tuple[Tensor, Tensor]]:
        """[(h, c)] per layer, each (B, hidden, grid, grid), zeros."""
        p = next(self.parameters())
        return [cell.init_state(batch_size, self.grid, self.grid, p.device, p.dtype)
                for cell in self.cells]

    def forward_step(self, frame: Tensor, state: list) -> tuple[Tensor, list, Tensor | None]:
        c = self.config
        x = space_to_depth(frame, c.patch)  # (B, C*p*p, grid, grid)
        new_state = []
        for cell, layer_state in zip(self.cells, state):
            h, cell_c = cell(x, layer_state)
            new_state.append((h, cell_c))
            x = h  # the next layer reads this layer's h at the same step
        patches = self.head(x)  # (B, C*p*p, grid, grid)
        return self.to_frames(patches), new_state, None  # (B, C, H, W)
