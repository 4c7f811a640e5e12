"""bf16 autocast in the recurrent cells (issue 12): the recurrence casts only where float32
memories meet bf16 convolutions, and the bf16 loss stays close to float32's.

Ops are counted with a TorchDispatchMode (views excluded: they launch no kernel), per time step as
the difference between clips of two lengths, so the once-per-rollout work (weight casts, which
autocast caches for the whole forward pass, the loss) cancels out."""

from __future__ import annotations

import pytest
import torch

from helpers import frame_predictors
from rnnimg import create_model
from rnnimg.runtime.graphs import KernelCounter, flatten

PREDICTORS = frame_predictors()  # from the registry: a new predictor is checked without edits


def ops_per_step(name, bf16, layers=2, lengths=(6, 8)):
    """Ops per time step of one training step (loss + backward) under CPU autocast or float32."""
    counts = []
    for t in lengths:
        torch.manual_seed(0)
        model = create_model(name, "debug", num_layers=layers).train()
        frames = torch.rand(2, t, 1, 16, 16)
        with KernelCounter() as count:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                loss = model.loss({"frames": frames, "step": 20_000}).loss
            loss.backward()
        counts.append(count.kernels)
    steps = lengths[1] - lengths[0]
    return {k: (counts[1][k] - counts[0][k]) / steps for k in counts[1] | counts[0]}


# Casts per layer and time step (forward + backward) under bf16 autocast. ConvLSTM: h is cast to
# bf16 where it is made (1, and its gradient back: 1) and sigmoid(o) * tanh(c), f * c and the
# c update mix bf16 gates with the float32 c (their gradients cast back: 3). ST-LSTM: m and
# [c, m] cast once each for the convolutions that read them (2 + 2 backward), and the c and m
# updates mix bf16 gates with float32 memories (4 backward). Before the fix: 5 L + 4 and 12 L + 3.
# (A predictor not in this table is held to the rest of the test: casts and nothing else.)
CASTS_PER_LAYER = {"convlstm": 5, "predrnn": 8}


@pytest.mark.parametrize("name", PREDICTORS)
@pytest.mark.parametrize("layers", [1, 3])
def test_bf16_recurrence_casts_only_at_the_float32_memories(name, layers):
    fp32 = ops_per_step(name, False, layers)
    bf16 = ops_per_step(name, True, layers)
    assert fp32.get("_to_copy", 0) == 0
    if name in CASTS_PER_LAYER:
        assert bf16.get("_to_copy", 0) == CASTS_PER_LAYER[name] * layers, bf16
    # nothing else is added: the bf16 step is the float32 step plus those casts
    assert {k: v for k, v in bf16.items() if k != "_to_copy" and v} == \
        {k: v for k, v in fp32.items() if v}


# the recurrent state's dtypes under bf16 autocast, where the layout is known: ConvLSTM's
# [(h, c)] per layer, h in bf16 and the memory c in float32; PredRNN's ([h], [c], m), h in bf16
# and the memories c and m in float32
BF16_STATE_DTYPES = {"convlstm": [torch.bfloat16, torch.float32] * 2,
                     "predrnn": [torch.bfloat16] * 2 + [torch.float32] * 3}


@pytest.mark.parametrize("name", PREDICTORS)
def test_bf16_state_dtypes_and_loss_close_to_float32(name):
    torch.manual_seed(0)
    model = create_model(name, "debug").train()
    frames = torch.rand(4, 8, 1, 16, 16)
    losses = []
    for bf16 in (False, True):
        torch.manual_seed(1)  # the same scheduled-sampling mask
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            losses.append(model.loss({"frames": frames, "step": 20_000}).loss.float())
            state = model.init_state(4)
            for t in range(3):
                _, state = model.step(frames[:, t], state)
        dtypes = [s.dtype for s in flatten(state)]
        if not bf16:
            assert set(dtypes) == {torch.float32}  # float32 training is untouched
        elif name in BF16_STATE_DTYPES:
            assert dtypes == BF16_STATE_DTYPES[name]
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-2, atol=0)


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if i else [])
                                  for i, n in enumerate(PREDICTORS)])  # the first one by default
def test_a_compiled_bf16_step_gets_its_weights_cast_once_per_rollout(name, monkeypatch):
    """torch.compile does not see autocast's weight cache: each compiled step would cast every
    convolution weight again (found: all 6 of convlstm's, 14 of predrnn's, at every step). The
    rollout casts them once and the step graphs receive bf16 weights. The graphs are inspected as
    AOTAutograd hands them to the compiler (backend-independent, no C++ compile)."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    casts_of = []  # per compiled graph: shapes of graph inputs that the graph casts

    def inspect(gm, example_inputs):
        inputs = {n for n in gm.graph.nodes if n.op == "placeholder"}
        casts_of.append([tuple(n.args[0].meta["val"].shape) for n in gm.graph.nodes
                         if n.op == "call_function" and n.args and n.args[0] in inputs
                         and ("convert_element_type" in str(n.target) or "_to_copy" in str(n.target))])
        return make_boxed_func(gm)

    backend = aot_autograd(fw_compiler=inspect, bw_compiler=inspect)
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: torch._dynamo.optimize(backend)(fn))
    torch._dynamo.reset()
    torch.manual_seed(0)
    eager = create_model(name, "debug").train()
    compiled = create_model(name, "debug").train()
    compiled.load_state_dict(eager.state_dict())
    compiled.compile_steps("default")
    frames = torch.rand(2, 8, 1, 16, 16)
    results = []
    for model in (eager, compiled):
        torch.manual_seed(1)
        with torch.autocast("cpu", torch.bfloat16):
            loss = model.loss({"frames": frames, "step": 20_000}).loss
        loss.backward()
        results.append([loss.detach()] + [p.grad for p in model.parameters()])
    weight_shapes = {tuple(p.shape) for p in compiled.parameters()}
    assert casts_of and not [s for graph in casts_of for s in graph if s in weight_shapes]
    assert all(p.grad.dtype == torch.float32 for p in compiled.parameters())
    for a, b in zip(*results):  # the same bf16 numbers as eager autocast
        torch.testing.assert_close(b, a, rtol=1e-2, atol=1e-4)
    torch._dynamo.reset()
