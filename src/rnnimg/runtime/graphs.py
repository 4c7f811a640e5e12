"""Steps over preallocated buffers of static shape, so that a GPU can replay them as CUDA graphs.

On a GPU the recurrent inference loops of this package (a PixelRNN's pixel after pixel, a frame
predictor's frame after frame) are launch-bound: hundreds of tiny kernels, each costing the CPU
~10-20 us to launch eagerly and ~2-5 us replayed from a CUDA graph. A graph records kernels with
fixed arguments, pointers included, so everything it reads and writes must live in buffers that
stay put, and nothing in it may ask the host anything (no ``.item()``, ``bool(tensor)``, data-
dependent Python branches) or draw random numbers.

:class:`StaticStep` is such a step: a function of named input buffers, allocated once from
example tensors. Each call copies the new values into the buffers and then either runs the
function eagerly (any device: this is what the CPU runs, and what the tests check) or, with a
:class:`CudaGraph` backend, replays the graph captured on the first call. The only GPU-only lines
are in :class:`CudaGraph`: the warm-up on a side stream, the capture and the replay. Everything
else, the buffer handling, the caching and the first-call-then-replay flow, runs on the CPU in the
tests (with a stand-in backend that re-runs the function).

:func:`cached_step` keeps one step per key (shapes, dtypes, device, static Python arguments such as
the temperature) on its owner (a model), so a graph is captured once and replayed on every later
call with the same key.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnimg.runtime.torch_compat import TorchDispatchMode, recompile_limit

GRAPH_CHOICES = ("auto", True, False)
MAX_CACHED_STEPS = 8  # per owner; each captured graph keeps its own memory pool on the GPU


def wants_capture(graph: bool | str, device: torch.device) -> bool:
    """Whether a verb's ``graph`` option means capturing a CUDA graph on ``device``: "auto" captures
    on a CUDA device only, True always (and fails off a GPU), False never."""
    if graph not in GRAPH_CHOICES or not isinstance(graph, (bool, str)):
        raise ValueError(f"graph must be 'auto', True or False, got {graph!r}")
    return graph is True or (graph == "auto" and device.type == "cuda")


def into(op: Callable[..., Tensor], *args: Any, out: Tensor, **kwargs: Any) -> Tensor:
    """``op(*args, out=out, **kwargs)``: a result written straight into a buffer (often a
    non-contiguous view of a larger one), which saves a copy kernel per call in eager mode.
    Under ``torch.compile``, which cannot trace ``out=`` into a non-contiguous tensor (a graph
    break per call), it is ``out.copy_(op(*args, **kwargs))`` instead: inductor then fuses the copy
    into the kernel that computes the value. Same values either way."""
    if torch.compiler.is_compiling():
        return out.copy_(op(*args, **kwargs))
    return op(*args, out=out, **kwargs)


def at(t: Tensor, dim: int, index: int) -> Tensor:
    """``t.select(dim, index)`` (a view, no kernel) for a position ``index`` >= 0, written as
    ``narrow`` + ``squeeze`` because ``torch.compile(dynamic=True)`` traces that with a symbolic
    ``index`` while it specializes ``select`` (and ``t[..., index]``) to each value: one compiled
    graph then serves every pixel instead of one graph per column."""
    return t.narrow(dim, index, 1).squeeze(dim)


def flatten(tree: Any) -> list[Tensor]:
    """The tensors of a nested tuple / list (a recurrent state), depth first."""
    if isinstance(tree, Tensor):
        return [tree]
    return [t for item in tree for t in flatten(item)]


def unflatten(like: Any, tensors: list[Tensor]) -> Any:
    """Rebuild ``like``'s nesting from ``tensors`` in :func:`flatten`'s order."""
    it = iter(tensors)

    def build(node: Any) -> Any:
        if isinstance(node, Tensor):
            return next(it)
        return type(node)(build(item) for item in node)

    return build(like)


def copy_tree(dst: Any, src: Any) -> None:
    """Copy every tensor of ``src`` into the buffer at the same place in ``dst`` (same nesting)."""
    for d, s in zip(flatten(dst), flatten(src), strict=True):
        if d.shape != s.shape:
            raise ValueError(f"a buffer of shape {tuple(d.shape)} was given {tuple(s.shape)}")
        d.copy_(s)


COMPILE_RECOMPILE_LIMIT = 64  # a compiled step's code is shared by every model of its class


def compiled_step(fn: Callable[..., Any], mode: str) -> Callable[..., Any]:
    """``torch.compile(fn, mode=mode, dynamic=True, fullgraph=True)`` for a per-step function of
    buffers and Python int positions: ``dynamic=True`` makes the positions symbolic, so one graph
    serves every position (inductor's in-place pass still tells position 0 apart: a few graphs per
    shape, not one per position); ``fullgraph=True`` makes a graph break an error instead of a
    silent slow path. Dynamo keeps its compiled graphs on ``fn``'s code, shared by every model of a
    class, so the call raises the recompile limit: past it dynamo would fall back to eager
    silently."""
    compiled = torch.compile(fn, mode=mode, dynamic=True, fullgraph=True)

    def step(*args: Any) -> Any:
        with recompile_limit(COMPILE_RECOMPILE_LIMIT):
            return compiled(*args)

    return step


class CudaGraph:
    """The GPU-only part: warm up on a side stream, capture once, replay. Nothing else."""

    def __init__(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, not {device}; use graph='auto' "
                             "(eager buffers off the GPU) or graph=False")
        self.graph = None

    def warm_up(self, fn: Callable[[], Any]) -> Any:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(stream)
        return out

    def capture(self, fn: Callable[[], Any]) -> Any:
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            return fn()

    def replay(self) -> None:
        self.graph.replay()


class StaticStep:
    """A function of named buffers of static shape, run eagerly or replayed as a CUDA graph.

    Args:
        fn: called as ``fn(**buffers)``; reads the buffers, may write into them in place, and
            returns tensors (or nested tuples of them). It must not sync with the host or draw
            random numbers, and must do the same operations on every call.
        example: name -> tensor or nested tuple of tensors; the buffers are ``torch.empty_like``
            copies of their shapes, dtypes and devices.
        backend: None runs ``fn`` eagerly on every call; a :class:`CudaGraph` (or a stand-in with
            ``warm_up``, ``capture`` and ``replay``) runs the first call as the warm-up, captures
            ``fn`` and replays it on every later call.

    A call ``step(name=value, ...)`` copies the values given into their buffers (buffers not named
    keep their contents: a recurrent state carried from call to call) and returns ``fn``'s
    outputs. With a graph those outputs are the graph's own tensors, overwritten by the next call
    (as are outputs that are buffers, in either mode): copy what must outlive it. Callers that
    may share a step across threads hold ``step.lock`` from the first call until they have copied
    the outputs (a sequence of calls carrying a state included).
    """

    def __init__(self, fn: Callable[..., Any], example: dict[str, Any], backend=None) -> None:
        self.fn, self.backend = fn, backend
        self.buffers = {name: unflatten(value, [torch.empty_like(t) for t in flatten(value)])
                        for name, value in example.items()}
        self.captured = False
        self.outputs: Any = None
        self.lock = threading.RLock()

    def _run(self) -> Any:
        return self.fn(**self.buffers)

    def __call__(self, **values: Any) -> Any:
        for name, value in values.items():
            copy_tree(self.buffers[name], value)
        if self.backend is None:
            return self._run()
        if not self.captured:
            # the first call's work is the warm-up (kernels run, buffers updated); the capture
            # then records the same kernels without running them
            out = self.backend.warm_up(self._run)
            self.outputs = self.backend.capture(self._run)
            self.captured = True
            return out
        self.backend.replay()
        return self.outputs


class StepCache(OrderedDict):
    """A model's steps by key, least recently used first, all for one set of weight addresses.
    Copying or pickling the model gives an empty cache (a CUDA graph cannot be copied, and the
    copy's weights live elsewhere)."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: tuple = ()

    def __deepcopy__(self, memo) -> StepCache:
        return StepCache()

    def __reduce__(self):
        return (StepCache, ())


def cached_steps(owner: torch.nn.Module) -> StepCache:
    """The steps :func:`cached_step` keeps on ``owner`` (empty if none), least recently used
    first: how many graphs a model holds, for tests and for memory accounting."""
    return owner.__dict__.get("_static_steps") or StepCache()


def cached_step(owner: torch.nn.Module, key: tuple, build: Callable[[], StaticStep]) -> StaticStep:
    """The step of ``owner`` for ``key``, built by ``build()`` on first use. The key should hold
    everything the step's operations depend on: shapes, dtypes, device, static Python arguments.
    The weights are read at their addresses, so when :func:`parameter_key` changes (parameters
    replaced, the model moved) every step of ``owner`` is dropped, with its graph's memory."""
    cache = owner.__dict__.get("_static_steps")
    if cache is None:
        cache = owner.__dict__["_static_steps"] = StepCache()
    weights = parameter_key(owner)
    if weights != cache.weights:
        cache.clear()
        cache.weights = weights
    step = cache.get(key)
    if step is None:
        step = cache[key] = build()
        while len(cache) > MAX_CACHED_STEPS:
            cache.popitem(last=False)
    cache.move_to_end(key)
    return step


def parameter_key(module: torch.nn.Module) -> tuple:
    """Where and what the weights are: a captured graph reads them at these addresses, so a model
    whose parameters were replaced (``load_state_dict(assign=True)``, ``.to()``) needs new steps.
    In-place updates (an optimizer step, ``load_state_dict``) keep the key, and the steps read the
    new values: they pack the weights inside the step."""
    return tuple((p.data_ptr(), p.dtype, p.device) for p in module.parameters())


class KernelCounter(TorchDispatchMode):
    """While active, counts the aten ops that run: ``ops``, all of them, and ``kernels``, by name,
    those that would launch a kernel on a GPU (views only re-describe memory and bare allocations
    launch nothing). On a launch-bound GPU the kernel count, not the arithmetic, sets the time of a
    recurrent step; the benchmarks and tests count per time step or per pixel with it."""

    _FREE = ("empty", "empty_strided")

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0
        self.kernels: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += 1
        name = func.overloadpacket.__name__
        if not func.is_view and name not in self._FREE:
            self.kernels[name] += 1
        return func(*args, **(kwargs or {}))
