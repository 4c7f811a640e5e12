"""benchmarks/bench_translate.py's training loop: a step budget takes exactly that many steps, a
process-CPU budget (``--cpu-budget``) stops once the CPU time is spent, going round the data as
often as it needs (the recurrence table in docs/benchmarks.md is measured this way)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_translate  # noqa: E402

from rnnimg import create_model  # noqa: E402


def _setup():
    torch.manual_seed(0)
    model = create_model("dncnn", "denoise", image_size=16, depth=3, features=8)
    batches = [model.example_batch(2, torch.Generator().manual_seed(k)) for k in range(2)]
    opt_g, opt_d = bench_translate._optimizers(model, 1e-3)
    return model, batches, opt_g, opt_d


def test_step_budget_takes_exactly_the_steps_over_several_epochs():
    model, batches, opt_g, opt_d = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    spent = bench_translate.train_for(model, batches, opt_g, opt_d, torch.device("cpu"), steps=5)
    assert spent["steps"] == 5  # 2 batches a pass: the loop went round three times
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_cpu_budget_stops_after_the_cpu_time_not_the_steps():
    model, batches, opt_g, opt_d = _setup()
    spent = bench_translate.train_for(model, batches, opt_g, opt_d, torch.device("cpu"), steps=1,
                                      cpu_budget=0.3)
    assert spent["train_cpu_seconds"] >= 0.3
    assert spent["steps"] > 1  # --steps is ignored under a CPU budget
