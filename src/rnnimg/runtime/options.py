"""The ``graph`` option of the inference verbs (``sample``, ``complete``, ``predict``): how a verb
runs its buffer-based step (:mod:`rnnimg.runtime.graphs`), with the project's errors.

``graph="auto"`` (the default) replays a CUDA graph on a CUDA device and runs the same step eagerly
over the same buffers elsewhere; ``True`` always captures (a CUDA device only); ``False`` runs the
plain eager loop without static buffers. All three give the same results.
"""

from __future__ import annotations

import torch

from rnnimg.errors import RnnImgError
from rnnimg.runtime import graphs


def check_graph(graph, device: torch.device) -> bool:
    """Validate a verb's ``graph`` option; returns whether it captures a CUDA graph on ``device``."""
    try:
        return graphs.wants_capture(graph, device)
    except ValueError:
        raise RnnImgError(f"graph must be 'auto', True or False, got {graph!r}.") from None


def graph_backend(device: torch.device) -> graphs.CudaGraph:
    """The CUDA graph that captures a step on ``device``; a project error off a GPU."""
    try:
        return graphs.CudaGraph(device)
    except ValueError as err:
        raise RnnImgError(f"{err}.") from None


COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")


def check_compile(compile) -> str | bool:
    """Validate a verb's ``compile`` option: False, or the ``torch.compile`` mode of its compiled
    per-pixel step (True means "default"). Modes that capture CUDA graphs themselves
    ("reduce-overhead", "max-autotune") are refused: the verb's ``graph`` option captures the
    whole loop, compiled kernels included."""
    if compile is False:
        return False
    if compile is True:
        return "default"
    if compile in COMPILE_MODES:
        return compile
    raise RnnImgError(f"compile must be False, True or one of {', '.join(COMPILE_MODES)}, got "
                      f"{compile!r}; CUDA graphs come from the graph option.")
