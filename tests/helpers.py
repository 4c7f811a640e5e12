"""Helpers several test files share (pytest puts this folder on sys.path: ``from helpers import``)."""

from __future__ import annotations

import lightning as L
import torch


class CrashAt(L.Callback):
    """Dies like kill -9 would, as far as the run folder can tell: no checkpoint on the way out,
    at the start of training step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.step:
            raise RuntimeError("simulated crash")


# --- raster generators (pixelrnn, pixelscan) ----------------------------------------------------
def random_level_image(model, n: int = 2, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    """(n, C, H, W) of the model's levels (0/1 for a Bernoulli model), drawn from ``seed``."""
    c = model.config
    gen = torch.Generator().manual_seed(seed)
    top = c.levels - 1 if c.output == "categorical" else 1
    shape = (n, c.channels, c.image_size, c.image_size)
    return (torch.randint(0, top + 1, shape, generator=gen).float() / top).to(dtype)


def raster_order(model) -> list[tuple[int, int, int]]:
    """Positions (i, j, channel) in the model's generation order: raster, then R, G, B."""
    c = model.config
    return [(p // c.image_size, p % c.image_size, ch) for p in range(c.image_size ** 2)
            for ch in range(c.channels)]


def per_position(logits: torch.Tensor) -> torch.Tensor:
    """(B, C, [K,] H, W) logits -> (B, H, W, C, K) so that [:, i, j, ch] is one position."""
    return (logits if logits.dim() == 5 else logits.unsqueeze(2)).permute(0, 3, 4, 1, 2)


def generation_ranks(model) -> torch.Tensor:
    """(H, W, C) long: the place of each position in the generation order (raster, then R, G, B)."""
    c = model.config
    return torch.arange(c.image_size ** 2 * c.channels).view(c.image_size, c.image_size, c.channels)


def inputs_seen_by_each_logit(model, image: torch.Tensor):
    """For each position k = (i, j, ch) in generation order, yield (k, (i, j, ch), seen): seen is
    (H, W, C) bool (indexed like :func:`generation_ranks`), the inputs whose gradient into the
    logits of position k is non-zero for some image of ``image`` (B, C, H, W)."""
    image = image.detach().requires_grad_(True)
    logits = per_position(model(image))  # (B, H, W, C, K)
    for k, (i, j, ch) in enumerate(raster_order(model)):
        (grad,) = torch.autograd.grad(logits[:, i, j, ch].sum(), image, retain_graph=True)
        yield k, (i, j, ch), (grad != 0).any(dim=0).permute(1, 2, 0)  # (H, W, C)


@torch.no_grad()
def later_logits_changed_by_flips(model, image: torch.Tensor) -> int:
    """Flip each input position in generation order (to another level of the model) and assert
    that no logit at or before it changes; returns how many later logits changed in all, so the
    caller can check that the test has teeth."""
    rank = generation_ranks(model)
    base = per_position(model(image))
    later_changed = 0
    for k, (i, j, ch) in enumerate(raster_order(model)):
        changed = image.clone()
        changed[:, ch, i, j] = 1 - changed[:, ch, i, j]
        differs = (per_position(model(changed)) != base).any(dim=-1).any(dim=0)  # (H, W, C)
        assert not differs[rank <= k].any(), f"an earlier logit changed with input {(i, j, ch)}"
        later_changed += int(differs[rank > k].sum())
    return later_changed


def check_fast_sampler_matches_naive(model, channels: int, size: int) -> None:
    """The state-carrying sampler and the naive one draw identical samples from one seed; another
    seed draws others; samples have the model's shape and range."""
    fast = model.sample(3, temperature=0.8, generator=torch.Generator().manual_seed(5))
    naive = model.sample_naive(3, temperature=0.8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(fast, naive)
    other = model.sample(3, temperature=0.8, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(fast, other)
    assert fast.shape == (3, channels, size, size) and fast.min() >= 0 and fast.max() <= 1


def check_completion(model, image: torch.Tensor, known: torch.Tensor) -> None:
    """``complete`` keeps the known pixels, draws the unknown ones as the naive sampler does from
    the same uniforms, and draws others from another seed."""
    out = model.complete(image, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[known.expand_as(out)], image[known.expand_as(image)])
    unknown = ~known.expand_as(out)
    assert not torch.equal(out[unknown], image[unknown])
    assert torch.equal(out, model.complete_naive(image, known, generator=torch.Generator().manual_seed(0)))
    again = model.complete(image, known, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(again[unknown], out[unknown])


def check_cached_logits_match_forward(model, conditional: bool) -> None:
    """The cached per-pixel step gives the full forward's logits, with and without labels."""
    image = random_level_image(model, n=3)
    label = torch.tensor([0, 1, 2]) if conditional else None
    with torch.no_grad():
        full = model(image, label)
    torch.testing.assert_close(model.cached_logits(image, label), full, atol=1e-5, rtol=1e-5)


def check_label_changes_logits_and_samples(model) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels 0 and 2 give other logits and other samples from one seed; returns the samples."""
    image = random_level_image(model)
    with torch.no_grad():
        assert not torch.allclose(model(image, torch.tensor([0, 0])), model(image, torch.tensor([2, 2])))
    a = model.sample(4, label=0, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, label=2, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)
    return a, b


def loss_after_fitting(name: str, steps: int = 30, **overrides):
    """(first, last) LossOutput of the ``debug`` model ``name`` fitted with Adam for ``steps`` on 4
    fixed binarized 10x10 digits; returns the batch too."""
    from rnnimg.data import load_dataset
    from rnnimg.models import create_model

    data = load_dataset("mnist-5k", "train", binarize="fixed", image_size=10)
    batch = {"image": torch.stack([data[i]["image"] for i in range(4)])}
    torch.manual_seed(0)
    model = create_model(name, "debug", image_size=10, **overrides)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(batch)
    for _ in range(steps):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    return first, model.loss(batch)


# --- model lists derived from the registry ------------------------------------------------------
# Per-task tests iterate these rather than naming models, so a new model of the task is covered
# without edits (and fails where it breaks what its task promises).
def frame_predictors() -> list[str]:
    """The registered deterministic frame predictors (a stochastic one, such as svg, draws its
    futures from a generator and has tests of its own)."""
    from rnnimg.models.registry import get_model_class, list_models

    return [n for n in list_models("predict") if not get_model_class(n).stochastic]


def raster_samplers() -> list[tuple[str, dict]]:
    """(name, overrides) of every raster generator (pixel by pixel, with a buffered sampling step
    and ``complete``), once per ``variant`` its presets use (pixelrnn's Row LSTM and Diagonal
    BiLSTM)."""
    from rnnimg.models.generate.raster import RasterGenerator
    from rnnimg.models.registry import get_model_class, list_models

    found = []
    for name in list_models("generate"):
        cls = get_model_class(name)
        if issubclass(cls, RasterGenerator):
            variants = sorted({p["variant"] for p in cls.presets.values() if "variant" in p})
            found += [(name, {"variant": v}) for v in variants] or [(name, {})]
    return found


def sampler_id(sampler: tuple[str, dict]) -> str:
    """``row``/``diagonal`` for pixelrnn's variants (the ids the tests had), else the name."""
    name, overrides = sampler
    return overrides.get("variant", name)
