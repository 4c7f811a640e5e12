"""Speed, memory and accuracy-per-budget of the segmenters (reseg, scanseg and their baseline unet).

Speed (each model and mode in a fresh subprocess, so peak memory is not inherited):

- training images/s: ``loss(batch)`` + backward + Adam step on random images and masks; the
  median of ``--steps`` timed steps after ``--warmup`` untimed ones;
- inference images/s: ``segment(image)``;
- peak memory. CPU: the process's peak resident set size (``ru_maxrss``) and, in brackets, its
  rise over the resident size after building the model and the batch. CUDA:
  ``torch.cuda.max_memory_allocated``.

Accuracy per budget (``--budget SECONDS``): each model is trained from the same seed on
mnist-scenes (fresh training scenes, batch ``--train-batch``, Adam lr 3e-3, gradient norm
clipped to 1) for the same wall-clock budget (or, ``--cpu-budget``, the same process CPU time),
one model after the other, then scored on the
fixed test scenes: mIoU pooled over the split (one confusion matrix), pixel accuracy.

It prints markdown tables and, with ``--out``, writes them with the command, machine and date.

    PYTHONPATH=src python benchmarks/bench_segment.py --threads 1 --image-size 32 --budget 120
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

from memory import peak_rss_mib, rss_mib  # benchmarks/memory.py


def _measure(name: str, mode: str, args: dict, queue) -> None:
    """Runs in a subprocess: time ``mode`` ("train" | "infer") and report memory."""
    import torch

    from rnnimg import create_model

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    device = torch.device(args["device"])
    model = create_model(name, args["preset"], image_size=args["image_size"]).to(device)
    batch = model.example_batch(args["batch_size"], torch.Generator().manual_seed(0))
    batch = {k: v.to(device) for k, v in batch.items()}
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step():
        if mode == "train":
            out = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()
        else:
            model.segment(batch["image"])
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train(mode == "train")
    base = rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(args["warmup"]):
        step()
    times = []
    for _ in range(args["steps"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        memory = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    else:
        peak = peak_rss_mib()
        memory = f"{peak:.0f} MiB (+{peak - base:.0f})"
    queue.put({"images_s": args["batch_size"] / statistics.median(times), "memory": memory,
               "params": sum(p.numel() for p in model.parameters())})


def speed_rows(args) -> list[str]:
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.models:
        result = {}
        for mode in ("train", "infer"):
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure, args=(name, mode, vars(args), queue))
            proc.start()
            result[mode] = queue.get()
            proc.join()
        rows.append(f"| {name} | {args.preset} | {result['train']['params']:,} | "
                    f"{args.image_size}x{args.image_size} | {args.batch_size} | "
                    f"{result['train']['images_s']:.1f} | {result['infer']['images_s']:.1f} | "
                    f"{result['train']['memory']} | {result['infer']['memory']} |")
    head = ["| model | preset | parameters | image | batch | train images/s | infer images/s | "
            "train peak memory | infer peak memory |", "|---|---|---|---|---|---|---|---|---|"]
    return head + rows


def budget_rows(args) -> list[str]:
    import torch
    from torch.utils.data import DataLoader

    from rnnimg import create_model
    from rnnimg.data import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for name in args.models:
        torch.manual_seed(args.seed)
        model = create_model(name, args.preset, image_size=args.image_size,
                             **json.loads(args.overrides)).to(device)
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        data = load_dataset("mnist-scenes", "train", **model.dataset_options())
        # the budget: wall-clock seconds, or (--cpu-budget) this process's CPU seconds, which
        # other jobs on a shared machine do not eat into
        clock = time.process_time if args.cpu_budget else time.perf_counter
        budget = args.cpu_budget or args.budget
        steps, start = 0, clock()
        model.train()
        while clock() - start <= budget:  # epochs of fresh scenes
            for batch in DataLoader(data, batch_size=args.train_batch):
                batch = {k: v.to(device) for k, v in batch.items()}
                out = model.loss(batch)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                steps += 1
                if device.type == "cuda":  # the budget counts finished steps, not queued ones
                    torch.cuda.synchronize(device)
                if clock() - start > budget:
                    break
        elapsed = clock() - start
        model.eval()
        total: dict = {}
        test = load_dataset("mnist-scenes", "test", **model.dataset_options())
        for batch in DataLoader(test, batch_size=100):
            batch = {k: v.to(device) for k, v in batch.items()}
            for k, v in model.evaluation_statistics(batch).items():
                total[k] = total.get(k, 0) + v.cpu()
        r = model.reduce_statistics(total)
        digits = [v for v in r["iou_per_class"][1:] if v == v]
        label = name if args.overrides == "{}" else f"{name} {args.overrides}"
        unit = "CPU-s" if args.cpu_budget else "s"
        rows.append(f"| {label} | {args.preset} | {sum(p.numel() for p in model.parameters()):,} | "
                    f"{args.image_size}x{args.image_size} | {elapsed:.0f} {unit} | {args.seed} | {steps} | "
                    f"{r['miou']:.3f} | {r['iou_per_class'][0]:.3f} | "
                    f"{sum(digits) / max(1, len(digits)):.3f} | {r['pixel_accuracy']:.3f} |")
        print(rows[-1], flush=True)
    head = ["| model | preset | parameters | image | budget | seed | steps | test mIoU | IoU background | "
            "mean IoU of the 10 digits | pixel accuracy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    return head + rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["reseg", "scanseg", "unet"])
    p.add_argument("--preset", default="scenes")
    p.add_argument("--set", dest="overrides", default="{}", help="model config overrides as "
                   "JSON, e.g. '{\"skip\": false}'")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--batch-size", type=int, default=16, help="batch of the speed measurements")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--budget", type=float, default=0, help="seconds of training per model for "
                   "the accuracy comparison on mnist-scenes (0: skip it)")
    p.add_argument("--cpu-budget", type=float, default=0, help="like --budget, but seconds of this "
                   "process's CPU time (time.process_time), fair on a shared machine; overrides --budget")
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--out", help="append the tables (markdown) to this file")
    args = p.parse_args(argv)
    lines = [f"command: `PYTHONPATH=src python benchmarks/bench_segment.py {shlex.join(sys.argv[1:])}`",
             f"machine: {platform.machine()} {platform.system()}, {args.device}, "
             f"{args.threads or 'default'} torch thread(s); date: {datetime.date.today()}", ""]
    if not args.skip_speed:
        lines += speed_rows(args) + [""]
    if args.budget > 0 or args.cpu_budget > 0:
        lines += budget_rows(args) + [""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(Path(args.out), "a") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
