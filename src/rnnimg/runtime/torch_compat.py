"""The one place rnnimg reaches into torch's private modules, because no public API does the job.
Each name below says what it stands for and what replaces it once torch offers it publicly; the
tests in ``tests/test_torch_compat.py`` check each on its own, so a torch upgrade that moves one
fails there, not deep in a sampler or the trainer.

- :class:`TorchDispatchMode` (``torch.utils._python_dispatch``): sees every aten op that runs; the
  kernel counter of :mod:`rnnimg.runtime.graphs` is built on it. (``torch.overrides``'
  ``TorchFunctionMode`` is public but sees Python-level calls, not the kernels they launch.)
- :func:`recompile_limit` (``torch._dynamo.config``): raises dynamo's recompile limit for one
  call; ``torch.compiler`` has no public knob for it.
- :func:`foreach_norm` (``torch._foreach_norm``): every tensor's 2-norm in one fused call, as
  ``torch.nn.utils.clip_grad_norm_`` does; the public ``torch.nn.utils.get_total_norm`` (torch >=
  2.6) returns only the total.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["TorchDispatchMode", "foreach_norm", "recompile_limit"]


@contextlib.contextmanager
def recompile_limit(limit: int) -> Iterator[None]:
    """While active, dynamo recompiles a function up to ``limit`` times before it falls back to
    eager (its default is 8)."""
    with torch._dynamo.config.patch(recompile_limit=limit):
        yield


def foreach_norm(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The 2-norm of each tensor, in one fused call where torch has it, else one call each."""
    try:
        return list(torch._foreach_norm(tensors))
    except (AttributeError, RuntimeError):  # no fused kernel, or devices/dtypes it refuses
        return [torch.linalg.vector_norm(t) for t in tensors]
