"""Cost of the resumable data order (rnnimg/train/data.py): batches of 64 mnist-5k digits with
dynamic binarization through a shuffling DataLoader, and through EpochSampler + SeededItems (which
seeds the CPU generator per item so every draw is a function of seed, epoch and position).

    python benchmarks/bench_data_order.py [--batches 200]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from rnnimg import load_dataset
from rnnimg.train.data import EpochSampler, SeededItems


def ms_per_batch(loader: DataLoader, batches: int) -> float:
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i + 1 == batches:
            break
    return (time.perf_counter() - start) / batches * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist-5k", "train", binarize="dynamic")
    plain = DataLoader(data, batch_size=64, shuffle=True)
    seeded = DataLoader(SeededItems(data), batch_size=64, drop_last=True,
                        sampler=EpochSampler(len(data), 64, seed=0, drop_last=True))
    for name, loader in (("shuffle=True", plain), ("EpochSampler+SeededItems", seeded)) * 2:
        print(f"{name:26s} {ms_per_batch(loader, args.batches):6.2f} ms/batch")


if __name__ == "__main__":
    main()
