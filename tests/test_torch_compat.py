"""The one adapter to torch's private modules (rnnimg.runtime.torch_compat), checked on its own: a
torch upgrade that moves one of them fails here, by name."""

from __future__ import annotations

import torch

from rnnimg.runtime.torch_compat import TorchDispatchMode, foreach_norm, recompile_limit


def test_dispatch_mode_sees_the_aten_ops_that_run():
    seen = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    x = torch.ones(3)
    with Record():
        y = torch.sigmoid(x * 2)
    assert "mul" in seen and "sigmoid" in seen
    assert torch.allclose(y, torch.sigmoid(torch.full((3,), 2.0)))  # the ops still ran


def test_recompile_limit_holds_inside_the_block_only():
    import torch._dynamo

    before = torch._dynamo.config.recompile_limit
    with recompile_limit(before + 57):
        assert torch._dynamo.config.recompile_limit == before + 57
    assert torch._dynamo.config.recompile_limit == before


def test_foreach_norm_is_each_tensors_two_norm():
    torch.manual_seed(0)
    tensors = [torch.randn(3, 4), torch.randn(7), torch.tensor([3.0, 4.0])]
    norms = foreach_norm(tensors)
    assert len(norms) == 3 and abs(float(norms[2]) - 5.0) < 1e-6
    for t, n in zip(tensors, norms):
        assert torch.allclose(n, torch.linalg.vector_norm(t))
    mixed = foreach_norm([torch.ones(4, dtype=torch.float64), torch.ones(9, dtype=torch.bfloat16)])
    assert [float(n) for n in mixed] == [2.0, 3.0]
    assert not torch.isfinite(foreach_norm([torch.tensor([1.0, float("nan")])])[0])
