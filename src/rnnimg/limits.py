"""What a user may ask of a model at inference, in one place: the CLI and the web page both check
their inputs here (through the task layer, :mod:`rnnimg.tasks`), so a seed or a temperature that
one of them takes the other takes too.

The errors are :class:`~rnnimg.errors.InputError`: the message names the argument, and the CLI
names its flag in its place, the page its control.
"""

from __future__ import annotations

import math
import numbers

from rnnimg.errors import InputError

# NumPy's seed range, which training enforces too (seed_everything)
SEED_MAX = 2**32 - 1
# sampling divides logits by the temperature: 0 would divide by zero, and far above 10 every
# pixel is a coin toss (a typo rather than a wish)
TEMPERATURE_MAX = 10.0

# Counts. The CLI leaves the size of a job to its user (the memory is theirs, and running out of it
# is one line); the page is shared by everyone who opens it, so it caps what one click may cost.
PAGE_MAX_SAMPLES = 64  # pictures of one Sample click
PAGE_MAX_COMPLETIONS = 16  # completions of one Complete click
PAGE_MAX_FUTURES = 8  # sampled futures of one Predict click (stochastic models)
PAGE_MAX_HORIZON = 30  # predicted frames of one Predict click


def check_seed(seed, arg: str = "seed") -> int:
    """A seed: a whole number in 0 .. :data:`SEED_MAX`.

    Raises:
        InputError: for anything else, naming ``arg``.
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise InputError(arg, f"{{arg}} must be a whole number, got {seed!r}.")
    if not 0 <= seed <= SEED_MAX:
        raise InputError(arg, f"{{arg}} must be in 0..{SEED_MAX}, got {seed}.")
    return int(seed)


def check_temperature(temperature, arg: str = "temperature") -> float:
    """A sampling temperature: a number in (0, :data:`TEMPERATURE_MAX`].

    Raises:
        InputError: for anything else, naming ``arg``.
    """
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
            or math.isnan(temperature) or not 0 < temperature <= TEMPERATURE_MAX:
        raise InputError(arg, f"{{arg}} must be in (0, {TEMPERATURE_MAX:g}], got {temperature}.")
    return float(temperature)


def check_count(value, arg: str, maximum: int | None = None) -> int:
    """A count (pictures, completions, futures, frames): a whole number >= 1, and <= ``maximum``
    where the caller has one.

    Raises:
        InputError: for anything else, naming ``arg``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(arg, f"{{arg}} must be a whole number, got {value!r}.")
    if maximum is not None and not 1 <= value <= maximum:
        raise InputError(arg, f"{{arg}} must be in 1..{maximum}, got {value}.")
    if value < 1:
        raise InputError(arg, f"{{arg}} must be >= 1, got {value}.")
    return int(value)
