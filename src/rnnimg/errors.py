"""The one exception type users see.

Every mistake a user can make (an unknown model or dataset name, a wrong path, a corrupt image, a
mask of the wrong size, a malformed config) raises :class:`RnnImgError` with a message that says what
was wrong and what to do about it. The CLI prints that message on one line and exits with status 2.
"""

from __future__ import annotations


class RnnImgError(Exception):
    """A user-facing error: the message is complete and fits on one line."""


class NonFiniteLossError(RnnImgError):
    """Training produced a NaN or Inf loss or gradient; the last good checkpoint is kept."""


class RnnImgWarning(UserWarning):
    """A user-facing warning: one complete line that names the flag to change (the CLI prints it
    as ``rnnimg: warning: ...``)."""


class InputError(RnnImgError):
    """A bad argument of an inference function (a seed, a temperature, a count, a label ...).

    The message names the argument through ``{arg}``, so each front end names it as its user knows
    it: Python code by the argument's name (``str(err)``), the CLI by its flag (``--seed``), the
    web page by its control ("the seed"); see :meth:`naming`.

    Args:
        argument: the name of the argument in Python (``"temperature"``).
        template: the one-line message, with ``{arg}`` where the argument is named.
    """

    def __init__(self, argument: str, template: str) -> None:
        self.argument = argument
        self.template = template
        super().__init__(template.format(arg=argument))

    def naming(self, name: str) -> str:
        """The message with the argument called ``name``."""
        return self.template.format(arg=name)
