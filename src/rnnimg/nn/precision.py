"""Mixed precision inside recurrences: the dtype autocast runs a tensor's convolutions in.

Under ``torch.autocast`` every convolution casts its inputs to the lower precision (bf16 / fp16),
while elementwise ops keep their inputs' dtype and a float32 state promotes them back to float32.
A recurrent cell that carries float32 state therefore pays a cast at every time step for every
convolution that reads the state (and its gradient's cast back in the backward pass); on a GPU at
small batch, where each kernel launch costs more than its arithmetic, those casts made bf16 slower
than float32 (issue 12). The cells cast what their convolutions read once, keep only the memories
(c, m) in float32, and carry h in the compute dtype: the convolutions see the same bf16 values as
before, so the bf16 results do not change, only the number of ops.
"""

from __future__ import annotations

import torch
from torch import Tensor


def autocast_dtype(x: Tensor) -> torch.dtype | None:
    """The dtype autocast computes convolutions of ``x`` in, or None outside autocast."""
    kind = x.device.type
    try:
        if not torch.is_autocast_enabled(kind):
            return None
    except RuntimeError:  # a device type autocast does not know (meta, ...): no autocast there
        return None
    return torch.get_autocast_dtype(kind)
