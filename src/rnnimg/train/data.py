"""The training data: train/validation sets and loaders whose order and randomness are a pure
function of (seed, epoch, position), so an interrupted run resumes exactly.

Two pieces make that so:

- :class:`EpochSampler` draws epoch ``e``'s permutation from a generator seeded with
  ``(seed, e)`` (not from the global RNG, as ``RandomSampler`` does), shards it across DDP ranks
  like ``DistributedSampler``, and can start in the middle of an epoch.
- :class:`SeededItems` runs ``dataset[i]`` with the global torch RNG seeded from the item's place
  in that order, so per-item random choices (dynamic binarization, generated clips) no longer
  depend on worker processes, prefetching or where the run was resumed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from rnnimg.data.registry import dataset_task, get_dataset_entry, load_dataset, task_mismatch_hint
from rnnimg.errors import RnnImgError
from rnnimg.models.base import RnnImgModel

_VAL_EPOCH = -1  # the "epoch" of validation items: the same draws at every validation


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A 63-bit seed for the item at ``position`` of ``epoch``'s order (SplitMix64 mixing)."""
    x = (seed * 0x9E3779B97F4A7C15 + (epoch + 2) * 0xBF58476D1CE4E5B9 + position) & (2**64 - 1)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return (x ^ (x >> 31)) & (2**63 - 1)


class SeededItems(Dataset):
    """Wraps a dataset whose items are fetched by ``(index, seed)`` keys (from
    :class:`EpochSampler`): each item is built with the global torch RNG seeded from its key, and
    the RNG state of the caller is left as it was."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        # The CPU generator itself: torch.manual_seed + fork_rng cost ~0.4 ms an item (they also
        # visit the accelerators), this ~6 us.
        generator = torch.default_generator
        state = generator.get_state()
        generator.manual_seed(seed)
        try:
            return self.dataset[index]
        finally:
            generator.set_state(state)


class EpochSampler(Sampler):
    """Yields ``(index, item_seed)`` for one epoch per ``iter()``: a fresh permutation of epoch
    ``e`` drawn from ``(seed, e)`` (or the identity when ``shuffle`` is off), padded and sharded
    across DDP ranks as ``DistributedSampler`` does (rank r takes every W-th position).

    Args:
        size: dataset length.
        batch_size: to skip whole batches on resume.
        seed: the run's seed.
        shuffle: permute every epoch (training) or not (validation: fixed order and draws).
        shard: split across DDP ranks (training) or give every rank everything (validation).
    """

    def __init__(self, size: int, batch_size: int, seed: int, shuffle: bool = True,
                 shard: bool = True, drop_last: bool = False) -> None:
        self.size, self.batch_size, self.seed = size, batch_size, seed
        self.drop_last = drop_last
        self.shuffle, self.shard = shuffle, shard
        self.next_epoch = 0
        self._resume_batches: int | None = None

    @staticmethod
    def _world() -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        world = self._world()[1] if self.shard else 1
        return -(-self.size // world)  # ceil: the last positions are padded with the first ones

    def batches_per_epoch(self) -> int:
        """As the DataLoader counts them."""
        n = len(self)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def resume_after(self, batches_done: int) -> None:
        """Make the next ``iter()`` continue after ``batches_done`` batches of training."""
        self._resume_batches = batches_done

    def __iter__(self):
        skip = 0
        if self._resume_batches is not None:
            per_epoch = self.batches_per_epoch()
            self.next_epoch, skip = divmod(self._resume_batches, per_epoch)
            self._resume_batches = None
        epoch = self.next_epoch if self.shuffle else _VAL_EPOCH
        self.next_epoch += 1
        if self.shuffle:
            gen = torch.Generator().manual_seed(item_seed(self.seed, epoch, -1))
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        rank, world = self._world() if self.shard else (0, 1)
        total = len(self) * world
        order = (order * (total // max(1, len(order)) + 1))[:total]  # pad by repeating
        positions = range(rank, total, world)
        keys = [(order[p], item_seed(self.seed, epoch, p)) for p in positions]
        return iter(keys[skip * self.batch_size:])


def build_datasets(settings, model: RnnImgModel) -> tuple[Dataset, Dataset | None]:
    """Train and validation sets. Validation comes from the dataset's own ``val`` split, or else a
    fixed ``val_fraction`` of ``train`` (the same images whatever the seed); never from test.

    The model checks that the data can feed it (:meth:`RnnImgModel.check_dataset`).
    """
    entry, _ = get_dataset_entry(settings.data)
    options = {**model.dataset_options(), **settings.data_options}
    task = dataset_task(settings.data, options)  # corrupt=... makes an image dataset a translate one
    if not model.takes_data_of(task):
        raise RnnImgError(f"dataset {settings.data!r} is for the {task!r} task, but "
                          f"{model.name!r} does {'/'.join(model.tasks())}; "
                          f"{task_mismatch_hint(task, model.tasks())}.")
    train_set = load_dataset(settings.data, "train", **options)
    if len(train_set) == 0:
        raise RnnImgError(f"dataset {settings.data!r} has no training items.")
    check_dataset(model, train_set, settings.data)
    if "val" in entry.splits:
        return train_set, load_dataset(settings.data, "val", **options)
    n_val = int(len(train_set) * settings.val_fraction)
    if n_val == 0:
        return train_set, None
    perm = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0)).tolist()
    # data that draw at random per access (corruption noise) draw validation's once, fixed by index
    held_out = train_set.with_fixed_draws() if hasattr(train_set, "with_fixed_draws") else train_set
    return Subset(train_set, perm[n_val:]), Subset(held_out, perm[:n_val])


def check_dataset(model: RnnImgModel, dataset: Dataset, name: str) -> None:
    """Ask the model whether ``dataset`` can feed it (one-line RnnImgError if not)."""
    model.check_dataset(dataset, name)


def make_loaders(train_set: Dataset, val_set: Dataset | None, batch_size: int, seed: int,
                 num_workers: int, pin_memory: bool = False
                 ) -> tuple[DataLoader, DataLoader | None, EpochSampler]:
    """Loaders over :class:`SeededItems` with :class:`EpochSampler` s. Each loader has its own
    generator, so creating its iterator draws nothing from the global RNG.

    Worker processes persist across epochs (no re-spawn, no re-pickling of the dataset per
    epoch). ``pin_memory`` (for a CUDA run) puts each batch in page-locked memory, so that its
    copy to the GPU (``non_blocking``, as Lightning moves batches) overlaps the running step.
    """
    kw: dict[str, Any] = dict(batch_size=batch_size, num_workers=num_workers,
                              persistent_workers=num_workers > 0, pin_memory=pin_memory)
    drop_last = len(train_set) > batch_size
    sampler = EpochSampler(len(train_set), batch_size, seed, shuffle=True, shard=True,
                           drop_last=drop_last)
    train_loader = DataLoader(SeededItems(train_set), sampler=sampler, drop_last=drop_last,
                              generator=torch.Generator().manual_seed(seed), **kw)
    val_loader = None
    if val_set is not None:
        val_loader = DataLoader(SeededItems(val_set), generator=torch.Generator().manual_seed(seed),
                                sampler=EpochSampler(len(val_set), batch_size, seed, shuffle=False,
                                                     shard=False), **kw)
    return train_loader, val_loader, sampler
