"""Diagonal Gaussian helpers of the latent-variable models (DRAW): the closed-form KL and the log
density, both summed over the last dimension."""

from __future__ import annotations

import math

from torch import Tensor


def gaussian_kl(mu: Tensor, log_sigma: Tensor, mu_p: Tensor, log_sigma_p: Tensor) -> Tensor:
    """KL(N(mu, sigma^2) || N(mu_p, sigma_p^2)) summed over the last dimension, (B,).

    With mu_p = 0, sigma_p = 1 this is sum_z (mu^2 + sigma^2 - log sigma^2 - 1) / 2.
    """
    var_ratio = (2 * (log_sigma - log_sigma_p)).exp()
    mean_term = ((mu - mu_p) / log_sigma_p.exp()) ** 2
    return 0.5 * (mean_term + var_ratio - 2 * (log_sigma - log_sigma_p) - 1).sum(-1)


def gaussian_log_density(z: Tensor, mu: Tensor, log_sigma: Tensor) -> Tensor:
    """log N(z; mu, sigma^2) summed over the last dimension, (B,)."""
    return (-0.5 * ((z - mu) / log_sigma.exp()) ** 2 - log_sigma
            - 0.5 * math.log(2 * math.pi)).sum(-1)
