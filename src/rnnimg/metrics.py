"""Metrics, each with its exact definition. Inputs are tensors in [0, 1] (labels for IoU)."""

from __future__ import annotations

import math

from torch import Tensor


def nats_to_bits_per_dim(nats_per_image: Tensor | float, num_dims: int) -> Tensor | float:
    """Bits per dimension from a negative log-likelihood in nats per image.

    bits/dim = nats / (num_dims * ln 2), where ``num_dims`` = C * H * W.
    """
    return nats_per_image / (num_dims * math.log(2.0))
