"""The compiled per-pixel step of the raster samplers (``sample(..., compile=True)``), on the CPU.

``RasterGenerator.raster_pixel`` (every layer, the head and the draw of one pixel) runs through
``torch.compile(dynamic=True, fullgraph=True)`` with the position as a symbolic int. Checked here:

- the logits of the compiled step equal the full forward pass within 1e-5 (inductor fuses and may
  reorder the last bits), and its samples equal the naive sampler's. Sample equality is tested
  honestly: the test first measures how close the naive run's uniforms come to their
  probabilities (from the forward pass of the naive sample, which is causal), and requires that
  margin to exceed what the logit tolerance can move a probability, so that equal samples follow
  from close logits and are not luck;
- no compilation per pixel: a handful of graphs per (shapes, mask or not), however many pixels,
  and none on a second call (dynamo's own counters);
- the option is validated.

The Row LSTM's logits run through inductor in the default suite (the one test of the property:
about a minute of compiling on the contended 2 cores, less with a warm inductor cache); the
samples, and the Diagonal BiLSTM and pixelscan through inductor, are `slow`. Their graph counts
are checked with dynamo's ``aot_eager`` backend (same tracing and guards, no code generation):
pixelscan's in the default suite, the Row and Diagonal LSTMs' (about 35 s each on the 2 cores)
`slow`, to keep `make test` inside its 10 minutes.
"""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from rnnimg.errors import RnnImgError
from rnnimg.models import create_model

SIZE = 6
VARIANTS = {"row": ("pixelrnn", {"variant": "row"}), "diagonal": ("pixelrnn", {"variant": "diagonal"}),
            "pixelscan": ("pixelscan", {})}
MAX_GRAPHS = 4  # position 0 or not, in i and in j (inductor's in-place pass guards on it)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()
    torch.set_num_threads(threads)


def debug_model(variant: str):
    name, overrides = VARIANTS[variant]
    torch.manual_seed(0)
    model = create_model(name, "debug", image_size=SIZE, **overrides)
    with torch.no_grad():  # large random weights: no dependency hides behind a small number
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.eval()


def graphs_compiled() -> int:
    return counters["stats"]["unique_graphs"]


def check_compiled_logits(model) -> None:
    """Compiled logits (the cached sampler's step with every pixel known) = the forward pass."""
    image = (torch.rand(4, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    with torch.inference_mode():
        compiled = model.cached_logits(image, compile=True)
        assert (compiled - model(image)).abs().max().item() < 1e-5
    graphs = graphs_compiled()
    assert 1 <= graphs <= MAX_GRAPHS  # SIZE * SIZE = 36 pixels, a few graphs
    with torch.inference_mode():
        other = 1 - image
        assert (model.cached_logits(other, compile=True) - model(other)).abs().max().item() < 1e-5
    assert graphs_compiled() == graphs  # nothing recompiled on a later call
    assert not counters["graph_break"]


def check_compiled_sampler(model) -> None:
    """Compiled samples (no mask: the draw writes into the canvas) = the naive sampler's."""
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    naive = model.sample_naive(4, generator=g())
    # the margin between each uniform and its probability in the naive run
    u = model.draw_uniforms(4, g())[:, :, 0].permute(2, 0, 1)  # (n, H, W)
    with torch.inference_mode():
        p = torch.sigmoid(model(naive)[:, 0])  # (n, H, W): the logits the naive run drew from
    margin = (u - p).abs().min().item()
    # logits within 1e-5 move a probability by at most 1e-5 / 4 (sigmoid's slope): same draws
    assert margin > 1e-5, "pick another seed: a uniform falls too close to its probability"

    # graph="auto" (static buffers, eager on the CPU) and graph=False both take the compiled step
    buffered = model.sample(4, generator=g(), compile=True)
    plain = model.sample(4, generator=g(), compile=True, graph=False)
    assert torch.equal(buffered, naive) and torch.equal(plain, naive)
    graphs = graphs_compiled()
    assert 1 <= graphs <= MAX_GRAPHS
    other = model.sample(4, generator=torch.Generator().manual_seed(4), compile=True)
    assert torch.equal(other, model.sample(4, generator=torch.Generator().manual_seed(4)))
    assert graphs_compiled() == graphs  # nothing recompiled on later calls
    assert not counters["graph_break"]


def test_compiled_row_lstm_step_gives_forward_logits_without_recompiling():
    check_compiled_logits(debug_model("row"))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["row", "diagonal", "pixelscan"])
def test_compiled_step_gives_naive_samples(variant):
    check_compiled_sampler(debug_model(variant))


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["diagonal", "pixelscan"])
def test_compiled_step_gives_forward_logits(variant):
    check_compiled_logits(debug_model(variant))


@pytest.mark.parametrize("variant", [pytest.param("row", marks=pytest.mark.slow),
                                     pytest.param("diagonal", marks=pytest.mark.slow), "pixelscan"])
def test_compiled_step_traces_once_for_every_position(variant, monkeypatch):
    """The tracing side of "no recompilation per pixel", for every sampler, with aot_eager; and the
    traced step computes the same samples."""
    real = torch.compile

    def aot_eager(fn, mode=None, **kwargs):
        return real(fn, backend="aot_eager", **kwargs)

    monkeypatch.setattr(torch, "compile", aot_eager)
    model = debug_model(variant)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    out = model.sample(3, generator=g(), compile=True, graph=False)
    assert 1 <= graphs_compiled() <= MAX_GRAPHS
    assert torch.equal(out, model.sample(3, generator=g(), graph=False))
    assert not counters["graph_break"]


def test_compile_option_is_checked():
    model = debug_model("row")
    for bad in ("reduce-overhead", "fast", 1):
        with pytest.raises(RnnImgError, match="compile must be"):
            model.sample(1, compile=bad)
