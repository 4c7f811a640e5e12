"""Benchmark rowrnn: training and sampling throughput (images/s) and peak memory, per cell.

Each measurement runs in a fresh process so peak memory is its own. On the CPU, peak memory is the
process's peak resident set size (ru_maxrss) minus the resident size just before the timed work;
on CUDA it is torch.cuda.max_memory_allocated().

    python benchmarks/bench_rowrnn.py                 # all cells, CPU
    python benchmarks/bench_rowrnn.py --device cuda   # on a GPU
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time

from memory import peak_rss_mib, rss_mib  # benchmarks/memory.py


def measure(kind: str, cell: str, preset: str, batch: int, steps: int, device: str, q) -> None:
    import torch

    from rnnimg import create_model

    torch.manual_seed(0)
    model = create_model("rowrnn", preset, cell=cell).to(device)
    data = model.example_batch(batch, torch.Generator().manual_seed(0))
    data = {k: v.to(device) for k, v in data.items()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step():
        opt.zero_grad(set_to_none=True)
        model.loss(data).loss.backward()
        opt.step()

    def sample_step():
        model.sample(batch, generator=torch.Generator(device=device).manual_seed(0))

    step = train_step if kind == "train" else sample_step
    model.train(kind == "train")
    step()  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    before = rss_mib()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = peak_rss_mib() - before
    q.put((batch * steps / (time.perf_counter() - start), max(peak, 0.0),
           sum(p.numel() for p in model.parameters())))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    p.add_argument("--preset", default="mnist", help="rowrnn preset (default mnist: 28x28, 256 levels)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-steps", type=int, default=20)
    p.add_argument("--sample-steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    print(f"rowrnn, preset {args.preset}, batch {args.batch}, device {args.device}, "
          f"{platform.processor() or platform.machine()}")
    print("| cell | params | train images/s | train peak MB | sample images/s | sample peak MB |")
    print("|---|---|---|---|---|---|")
    for cell in args.cells:
        row = []
        for kind, steps in (("train", args.train_steps), ("sample", args.sample_steps)):
            q = ctx.Queue()
            proc = ctx.Process(target=measure, args=(kind, cell, args.preset, args.batch, steps,
                                                     args.device, q))
            proc.start()
            rate, peak, params = q.get()
            proc.join()
            row += [f"{rate:,.0f}", f"{peak:,.0f}"]
        print(f"| {cell} | {params:,} | {' | '.join(row)} |", flush=True)


if __name__ == "__main__":
    main()
