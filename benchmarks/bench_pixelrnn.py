"""Benchmark PixelRNN (Row LSTM and Diagonal BiLSTM): training throughput, sampling throughput of
the naive and the state-carrying sampler, and peak memory. Prints a markdown table.

Each measurement runs in a fresh child process, so that its peak memory can be read from
``resource.getrusage(RUSAGE_SELF).ru_maxrss``: the table reports the peak resident set size of the
child minus its resident set size after the model was built (the memory the phase itself added,
weights excluded; for training it includes the optimizer state). The naive sampler runs a full
forward pass per pixel, so it is timed on the first ``--naive-pixels`` pixels and extrapolated
linearly to the whole image (every pixel costs the same forward pass); the table says so.

    PYTHONPATH=src python benchmarks/bench_pixelrnn.py                      # mnist preset, both variants
    PYTHONPATH=src python benchmarks/bench_pixelrnn.py --variants row --threads 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time


def _rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _measure(args: dict) -> dict:
    """One phase in a fresh process: returns seconds, items and the memory the phase added."""
    import torch

    from rnnimg.models import create_model

    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    model = create_model("pixelrnn", args["preset"], variant=args["variant"])
    phase = args["phase"]
    if phase == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = model.example_batch(args["train_batch"], torch.Generator().manual_seed(0))

        def step():
            out = model.loss(batch)
            opt.zero_grad()
            out.loss.backward()
            opt.step()

        base = _rss_mib()
        step()  # warm-up (also allocates the optimizer state, counted in the memory)
        start = time.perf_counter()
        for _ in range(args["train_steps"]):
            step()
        seconds = time.perf_counter() - start
        items = args["train_steps"] * args["train_batch"]
    else:
        model.eval()
        gen = torch.Generator().manual_seed(0)
        base = _rss_mib()
        start = time.perf_counter()
        if phase == "fast":
            model.sample(args["batch"], generator=gen)
            seconds = time.perf_counter() - start
        else:
            model.sample_naive(args["batch"], generator=gen, max_pixels=args["naive_pixels"])
            pixels = model.config.image_size ** 2
            seconds = (time.perf_counter() - start) * pixels / args["naive_pixels"]  # extrapolated
        items = args["batch"]
    return {"seconds": seconds, "items": items, "added_mib": max(0.0, _peak_mib() - base),
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mnist", help="pixelrnn preset (default: mnist)")
    parser.add_argument("--variants", nargs="+", default=["row", "diagonal"],
                        choices=["row", "diagonal"])
    parser.add_argument("--batch", type=int, default=64, help="sampling batch size (default 64)")
    parser.add_argument("--train-batch", type=int, default=16,
                        help="training batch size (default 16, the mnist training preset)")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps")
    parser.add_argument("--naive-pixels", type=int, default=4,
                        help="pixels the naive sampler is timed on before extrapolating (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    rows = []
    for variant in args.variants:
        result = {}
        for phase in ("train", "fast", "naive"):
            job = dict(vars(args), variant=variant, phase=phase)
            with ctx.Pool(1) as pool:
                result[phase] = pool.apply(_measure, (job,))
        fast, naive, train = result["fast"], result["naive"], result["train"]
        rows.append((variant, train["params"],
                     train["items"] / train["seconds"], train["added_mib"],
                     naive["items"] / naive["seconds"], naive["seconds"], naive["added_mib"],
                     fast["items"] / fast["seconds"], fast["seconds"], fast["added_mib"],
                     naive["seconds"] / fast["seconds"]))

    print(f"pixelrnn preset `{args.preset}`, {platform.processor() or platform.machine()}, "
          f"torch threads {args.threads}; sampling batch {args.batch}, training batch "
          f"{args.train_batch}. Naive sampler timed on {args.naive_pixels} pixels and extrapolated "
          "linearly to the whole image. Memory = peak RSS (getrusage ru_maxrss) minus RSS after the "
          "model was built, in a fresh process per phase.\n")
    print("| variant | params | train img/s | train +MiB | naive img/s | naive s/batch | naive +MiB "
          "| fast img/s | fast s/batch | fast +MiB | fast / naive |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:,} | {r[2]:.1f} | {r[3]:.0f} | {r[4]:.3f} | {r[5]:.0f} (extrapolated) "
              f"| {r[6]:.0f} | {r[7]:.1f} | {r[8]:.2f} | {r[9]:.0f} | {r[10]:.0f}x |")


if __name__ == "__main__":
    main()
