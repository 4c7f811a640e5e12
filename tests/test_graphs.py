"""Buffer-based inference steps (``rnnimg.runtime.graphs``), checked on the CPU.

On a GPU, ``sample``, ``complete`` and ``predict`` capture their step once as a CUDA graph and
replay it; everywhere else the same step runs eagerly over the same static buffers. Here:

- the buffered samplers give exactly the naive and the plain cached sampler's samples (pixelrnn Row
  and Diagonal, pixelscan; with and without labels; completion keeps the known pixels), and a
  second call on the same cached buffers gives the fresh result (no stale canvas, mask, label,
  uniforms or state);
- buffered ``predict`` equals the plain loop bit for bit (convlstm, predrnn; another context
  length and clip on the same buffers);
- the first-call-then-replay flow, with a stand-in for the CUDA graph that re-runs the step;
- graph safety: while a step is being "captured", nothing may sync with the host
  (``aten._local_scalar_dense`` and other data-dependent ops), draw random numbers, or touch a
  tensor on another device (checked on "meta", where a CPU tensor made on the fly stands out).
"""

from __future__ import annotations

import pytest
import torch

from helpers import frame_predictors, raster_samplers, sampler_id
from rnnimg.data.masks import parse_mask
from rnnimg.errors import RnnImgError
from rnnimg.models import create_model
from rnnimg.runtime import graphs
from rnnimg.runtime.torch_compat import TorchDispatchMode

SIZE = 4
# from the registry, so a new raster generator or predictor is checked without edits
SAMPLERS = raster_samplers()
SAMPLER_IDS = [sampler_id(s) for s in SAMPLERS]
PREDICTORS = frame_predictors()




def tiny_sampler(name: str, overrides: dict, num_classes: int = 0, channels: int = 1):
    """A small raster model with large random weights (no dependency hides behind a small number)."""
    torch.manual_seed(0)
    output = "categorical" if channels == 3 else "bernoulli"
    model = create_model(name, "debug", image_size=SIZE, channels=channels, hidden=6, num_layers=2,
                         head_hidden=12, output=output, levels=4, num_classes=num_classes,
                         **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def tensors_in(tree) -> list[torch.Tensor]:
    """The tensors anywhere in nested tuples, lists and dicts (an aten call's arguments)."""
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict):
        tree = list(tree.values())
    if isinstance(tree, (tuple, list)):
        return [t for item in tree for t in tensors_in(item)]
    return []


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class ReplayByRerun:
    """Stands in for :class:`graphs.CudaGraph` on the CPU: ``capture`` records the step without
    its effects (the step's buffers are restored; outputs of its own, not buffers written in
    place, are poisoned until the first replay, as a captured graph's are garbage), and
    ``replay`` re-runs it into the captured outputs."""

    instances: list[ReplayByRerun] = []

    def __init__(self, device) -> None:
        self.fn, self.outputs, self.captures, self.replays = None, None, 0, 0
        ReplayByRerun.instances.append(self)

    def warm_up(self, fn):
        return fn()

    def capture(self, fn):
        buffers = graphs.flatten(list(fn.__self__.buffers.values()))  # fn is the StaticStep's bound _run
        saved = [b.clone() for b in buffers]
        self.fn, self.outputs = fn, fn()
        for b, s in zip(buffers, saved):
            b.copy_(s)
        storages = {b.untyped_storage().data_ptr() for b in buffers}
        for t in graphs.flatten(self.outputs):
            if t.untyped_storage().data_ptr() not in storages:
                t.fill_(float("nan"))
        self.captures += 1
        return self.outputs

    def replay(self):
        graphs.copy_tree(self.outputs, self.fn())
        self.replays += 1


@pytest.fixture
def stand_in_graph(monkeypatch):
    """graph=True on the CPU, with :class:`ReplayByRerun` in place of the CUDA graph."""
    import rnnimg.models.generate.raster as raster
    import rnnimg.models.predict.base as predictor

    ReplayByRerun.instances = []
    monkeypatch.setattr(raster, "graph_backend", ReplayByRerun)
    monkeypatch.setattr(predictor, "graph_backend", ReplayByRerun)
    return ReplayByRerun.instances


# --- sampling --------------------------------------------------------------------------------
@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "label"])
@pytest.mark.parametrize(("name", "overrides"), SAMPLERS, ids=SAMPLER_IDS)
def test_buffered_sampler_gives_the_naive_and_the_cached_samples(name, overrides, conditional):
    model = tiny_sampler(name, overrides, num_classes=3 if conditional else 0)
    label = torch.tensor([0, 2, 1]) if conditional else None
    buffered = model.sample(3, label=label, temperature=0.9, generator=gen(5))  # graph="auto": CPU
    plain = model.sample(3, label=label, temperature=0.9, generator=gen(5), graph=False)
    naive = model.sample_naive(3, label=label, temperature=0.9, generator=gen(5))
    assert torch.equal(buffered, plain) and torch.equal(buffered, naive)
    assert len(graphs.cached_steps(model)) == 1
    # the same cached buffers, new uniforms (and labels): the fresh result, nothing left over
    label2 = torch.tensor([1, 1, 0]) if conditional else None
    again = model.sample(3, label=label2, temperature=0.9, generator=gen(6))
    fresh = model.sample(3, label=label2, temperature=0.9, generator=gen(6), graph=False)
    assert torch.equal(again, fresh) and not torch.equal(again, buffered)
    assert len(graphs.cached_steps(model)) == 1  # one step per (shapes, label or not, temperature)
    cooler = model.sample(3, label=label, temperature=0.5, generator=gen(5))
    assert torch.equal(cooler, model.sample(3, label=label, temperature=0.5, generator=gen(5),
                                            graph=False))
    assert len(graphs.cached_steps(model)) == 2


@pytest.mark.parametrize(("name", "overrides"), SAMPLERS, ids=SAMPLER_IDS)
def test_buffered_completion_keeps_known_pixels_and_gives_fresh_results(name, overrides):
    model = tiny_sampler(name, overrides, channels=3)
    image = torch.randint(0, 4, (2, 3, SIZE, SIZE), generator=gen(1)).float() / 3
    known = parse_mask("bottom-half", SIZE, SIZE).unsqueeze(0).expand(2, -1, -1, -1).clone()
    out = model.complete(image, known, generator=gen(0))
    assert torch.equal(out, model.complete(image, known, generator=gen(0), graph=False))
    keep = known.expand_as(out)
    assert torch.equal(out[keep], image[keep])
    assert torch.equal(out, model.complete_naive(image, known, generator=gen(0)))
    # another image and another mask through the same buffers
    image2 = torch.randint(0, 4, (2, 3, SIZE, SIZE), generator=gen(2)).float() / 3
    known2 = parse_mask("right-half", SIZE, SIZE).unsqueeze(0).expand(2, -1, -1, -1).clone()
    again = model.complete(image2, known2, generator=gen(3))
    assert torch.equal(again, model.complete(image2, known2, generator=gen(3), graph=False))
    assert torch.equal(again[known2.expand_as(again)], image2[known2.expand_as(image2)])
    assert len(graphs.cached_steps(model)) == 1


def test_stand_in_graph_captures_once_and_replays(stand_in_graph):
    model = tiny_sampler("pixelrnn", {"variant": "diagonal"}, num_classes=3)
    label = torch.tensor([0, 2])
    runs = [model.sample(2, label=label, generator=gen(s), graph=True) for s in (1, 2, 1)]
    for s, got in zip((1, 2, 1), runs):
        assert torch.equal(got, model.sample(2, label=label, generator=gen(s), graph=False))
    (backend,) = stand_in_graph
    assert backend.captures == 1 and backend.replays == 2
    assert not torch.equal(runs[0], runs[1])


def test_graph_option_is_checked():
    model = tiny_sampler("pixelrnn", {"variant": "row"})
    with pytest.raises(RnnImgError, match="graph must be"):
        model.sample(2, graph="yes")
    with pytest.raises(RnnImgError, match="CUDA device"):  # True means capture: a GPU only
        model.sample(2, graph=True)


# --- predict ---------------------------------------------------------------------------------
def tiny_predictor(name: str):
    torch.manual_seed(0)
    return create_model(name, "debug", frame_size=8, patch=2).eval()


@pytest.mark.parametrize("name", PREDICTORS)
def test_buffered_predict_equals_predict_bit_for_bit(name):
    model = tiny_predictor(name)
    c = model.config
    clips = torch.rand(2, 2, 6, c.channels, c.frame_size, c.frame_size, generator=gen(0))
    for clip, context, horizon in ((clips[0], 3, 4), (clips[1], 5, 2), (clips[0], 1, 3)):
        buffered = model.predict(clip[:, :context], horizon)
        plain = model.predict(clip[:, :context], horizon, graph=False)
        assert torch.equal(buffered, plain), (context, horizon)
    assert len(graphs.cached_steps(model)) == 1  # any context length and horizon: one step
    model.train()  # a different mode is a different step (predrnn's decoupling loss runs in it)
    assert torch.equal(model.predict(clips[1, :, :3], 2), model.predict(clips[1, :, :3], 2, graph=False))
    assert len(graphs.cached_steps(model)) == 2


@pytest.mark.parametrize("name", PREDICTORS)
def test_stand_in_graph_predict_replays_every_frame(name, stand_in_graph):
    model = tiny_predictor(name)
    c = model.config
    clip = torch.rand(2, 6, c.channels, c.frame_size, c.frame_size, generator=gen(1))
    first = model.predict(clip[:, :1], 3, graph=True)  # the first call's output is used
    second = model.predict(clip[:, :4], 2, graph=True)
    assert torch.equal(first, model.predict(clip[:, :1], 3, graph=False))
    assert torch.equal(second, model.predict(clip[:, :4], 2, graph=False))
    (backend,) = stand_in_graph
    assert backend.captures == 1 and backend.replays == (1 + 3 - 1) + (4 + 2 - 1) - 1


# --- graph safety ----------------------------------------------------------------------------
class CaptureRules(TorchDispatchMode):
    """Fails on what a CUDA graph cannot hold: a host sync (``.item()``, ``int(tensor)`` reach
    the mode as ``aten.item`` / ``aten._local_scalar_dense``, ``bool(tensor)`` as
    ``aten.is_nonzero``; printing a tensor formats it with the modes off, so it is not seen
    here), an op whose output shape
    depends on the data (``nonzero``, ``masked_select``), a random draw, or a tensor on another
    device than the step's (a CPU tensor made on the fly, when the step runs on "meta")."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device, self.ops = device, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tags = set(func.tags)
        # bool(tensor) reaches the mode as is_nonzero (untagged) under inference_mode
        if (tags & {torch.Tag.data_dependent_output, torch.Tag.dynamic_output_shape}
                or func in (torch.ops.aten.is_nonzero.default, torch.ops.aten._local_scalar_dense.default)):
            raise AssertionError(f"{func} syncs with the host or has a data-dependent shape")
        if torch.Tag.nondeterministic_seeded in tags:
            raise AssertionError(f"{func} draws random numbers inside the step")
        out = func(*args, **kwargs)
        for t in tensors_in((args, kwargs, out)):
            if t.device != self.device:
                raise AssertionError(f"{func} touches a tensor on {t.device}, the step is on "
                                     f"{self.device}")
        self.ops += 1
        return out


class CheckedCapture(ReplayByRerun):
    """The stand-in graph, capturing under :class:`CaptureRules`."""

    def capture(self, fn):
        device = graphs.flatten(list(fn.__self__.buffers.values()))[0].device
        with CaptureRules(device) as rules:
            out = super().capture(fn)
        assert rules.ops > 0
        return out


@pytest.fixture
def checked_capture(monkeypatch):
    import rnnimg.models.generate.raster as raster
    import rnnimg.models.predict.base as predictor

    monkeypatch.setattr(raster, "graph_backend", CheckedCapture)
    monkeypatch.setattr(predictor, "graph_backend", CheckedCapture)


def test_capture_rules_catch_syncs_random_draws_and_cpu_tensors():
    x = torch.ones(3, device="meta")
    for bad in (lambda: bool(torch.ones(2).sum() > 0), lambda: torch.ones(2).sum().item(),
                lambda: int(torch.ones(())),
                lambda: torch.rand(2), lambda: torch.ones(3).nonzero()):
        for inference in (False, True):  # the verbs run under inference_mode
            with (pytest.raises(AssertionError), torch.inference_mode(inference),
                  CaptureRules(torch.device("cpu"))):
                bad()
    with pytest.raises(AssertionError, match="on cpu"), CaptureRules(x.device):
        x + torch.tensor([1.0, 2.0, 3.0])


@pytest.mark.parametrize("device", ["cpu", "meta"])
@pytest.mark.parametrize(("name", "overrides"), SAMPLERS, ids=SAMPLER_IDS)
def test_sampling_and_completion_steps_are_graph_safe(name, overrides, device, checked_capture):
    model = tiny_sampler(name, overrides, num_classes=3 if device == "cpu" else 0).to(device)
    label = torch.tensor([1, 2]) if device == "cpu" else None  # (label checks sync: not on meta)
    model.sample(2, label=label, generator=gen(0), graph=True)
    image = torch.zeros(2, 1, SIZE, SIZE, device=device)
    known = torch.ones(2, 1, SIZE, SIZE, dtype=torch.bool)
    known[:, :, SIZE // 2:] = False
    if device == "cpu":  # (the completion checks sync too)
        model.complete(image, known, label=label, generator=gen(0), graph=True)


@pytest.mark.parametrize("name", PREDICTORS)
def test_predict_step_is_graph_safe(name, checked_capture):
    model = tiny_predictor(name)
    c = model.config
    model.predict(torch.rand(2, 3, c.channels, c.frame_size, c.frame_size), 2, graph=True)
    # on "meta" (past predict's value checks, which sync): no CPU tensor made on the fly
    model.to("meta").predict_buffered(
        torch.zeros(2, 3, c.channels, c.frame_size, c.frame_size, device="meta"), 2, capture=True)


def test_step_cache_is_bounded_and_not_copied():
    import copy

    model = tiny_sampler("pixelrnn", {"variant": "row"})
    for n in range(1, graphs.MAX_CACHED_STEPS + 3):
        model.sample(n, generator=gen(0))
    assert len(graphs.cached_steps(model)) == graphs.MAX_CACHED_STEPS
    assert len(graphs.cached_steps(copy.deepcopy(model))) == 0
    # in-place weight updates keep the steps, and they read the new values
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(-1.5)
    assert torch.equal(model.sample(2, generator=gen(1)), model.sample(2, generator=gen(1), graph=False))
    assert len(graphs.cached_steps(model)) == graphs.MAX_CACHED_STEPS
    # replaced parameters (new addresses, as a captured graph would read) drop every step
    other = tiny_sampler("pixelrnn", {"variant": "row"})
    model.load_state_dict(other.state_dict(), assign=True)
    assert torch.equal(model.sample(2, generator=gen(1)), other.sample(2, generator=gen(1), graph=False))
    assert len(graphs.cached_steps(model)) == 1


def test_threads_sharing_a_step_get_their_own_results():
    """Calls with the same key share the buffers; the step's lock keeps threads from mixing them."""
    from concurrent.futures import ThreadPoolExecutor

    model = tiny_sampler("pixelrnn", {"variant": "diagonal"})
    predictor = tiny_predictor("convlstm")
    c = predictor.config
    clips = torch.rand(6, 2, 4, c.channels, c.frame_size, c.frame_size, generator=gen(0))
    want = [model.sample(3, generator=gen(s), graph=False) for s in range(6)]
    want_predict = [predictor.predict(clip, 3, graph=False) for clip in clips]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda s: model.sample(3, generator=gen(s)), range(6)))
        got_predict = list(pool.map(lambda clip: predictor.predict(clip, 3), clips))
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    assert all(torch.equal(a, b) for a, b in zip(got_predict, want_predict))
