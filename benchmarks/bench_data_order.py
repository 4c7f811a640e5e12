"""Cost of the resumable data order (rnnimg/train/data.py): batches of 64 mnist-5k digits with
dynamic binarization through a shuffling DataLoader, and through EpochSampler + SeededItems (which
seeds the CPU generator per item so every draw is a function of seed, epoch and position).

``--device`` is where the batches go: each batch is moved there (``non_blocking``, from pinned
memory on a GPU) and, on a GPU, ``torch.cuda.synchronize`` runs before the clock is read, so the
figure is the cost of a batch arriving on the device, transfer included. With ``cpu`` nothing
moves.

    python benchmarks/bench_data_order.py [--batches 200] [--device cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from rnnimg import load_dataset
from rnnimg.train.data import EpochSampler, SeededItems


def ms_per_batch(loader: DataLoader, batches: int, device: torch.device) -> float:
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for i, batch in enumerate(loader):
        if device.type != "cpu":
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if i + 1 == batches:
            break
    if cuda:
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / batches * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--device", default="cpu", help="where each batch goes: cpu | cuda")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    pin = device.type == "cuda"
    data = load_dataset("mnist-5k", "train", binarize="dynamic")
    plain = DataLoader(data, batch_size=64, shuffle=True, pin_memory=pin)
    seeded = DataLoader(SeededItems(data), batch_size=64, drop_last=True, pin_memory=pin,
                        sampler=EpochSampler(len(data), 64, seed=0, drop_last=True))
    print(f"device {device}{', pinned memory' if pin else ''}")
    for name, loader in (("shuffle=True", plain), ("EpochSampler+SeededItems", seeded)) * 2:
        print(f"{name:26s} {ms_per_batch(loader, args.batches, device):6.2f} ms/batch")


if __name__ == "__main__":
    main()
