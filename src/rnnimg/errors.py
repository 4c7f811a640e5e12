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
