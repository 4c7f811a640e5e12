"""Argument checks shared by the building blocks (and the configs that feed them)."""

from __future__ import annotations

import numbers


def check_kernel_size(kernel_size: int, name: str = "kernel_size") -> None:
    """A convolution side that same padding keeps the map size with: odd and >= 1.

    Raises:
        ValueError: naming ``name`` and the value.
    """
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral) \
            or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be odd and >= 1 (same padding), got {kernel_size!r}")


def check_at_least(config: object, minimum: float, *names: str) -> None:
    """Each field ``names`` of ``config`` is >= ``minimum`` (a config's counts, sizes and weights).

    Raises:
        ValueError: naming the first field that is not, and its value.
    """
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
