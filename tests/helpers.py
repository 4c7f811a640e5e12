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
