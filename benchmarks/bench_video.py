"""Speed and memory of the video predictors (convlstm, predrnn) on one preset.

For each model it measures, each in a fresh subprocess so that peak memory is not inherited:

- training clips/s: ``loss(batch)`` + backward + Adam step on random clips of context + horizon
  frames; the median of ``--steps`` timed steps after ``--warmup`` untimed ones;
- inference clips/s: ``predict(context, horizon)`` (10 -> 10 on the mmnist preset), with its
  buffer-based per-frame step (``graph="auto"``: a CUDA graph replayed per frame on a GPU,
  captured in the warm-up) and as the plain loop of ``step`` calls (``graph=False``);
- with ``--precision bf16`` training runs under ``torch.autocast(device, bfloat16)`` as
  ``rnnimg train --precision bf16-mixed`` does, and with ``--compile [MODE]`` through
  ``model.compile_steps(MODE)`` as ``rnnimg train --compile`` does; the first (warm-up) step's wall
  time, which includes compiling, is reported apart;
- with ``--count-ops``, the aten ops (views excluded) and casts per time step of a training step
  under each precision, counted with a TorchDispatchMode as the difference between clips of two
  lengths (what a launch-bound GPU pays per step; see docs/benchmarks.md, issue 12);
- peak memory. CPU: the process's peak resident set size (``ru_maxrss``) and its rise over the
  resident size right after building the model and the batch (activations, gradients, optimizer
  state). CUDA: ``torch.cuda.max_memory_allocated``;
- the parameter count.

It prints a markdown table and writes it, with the command, machine and date, to ``--out``.

    PYTHONPATH=src python benchmarks/bench_video.py --batch-size 4 --steps 2
    python benchmarks/bench_video.py --device cuda --batch-size 16 --precision bf16 --compile
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from memory import peak_rss_mib, rss_mib  # benchmarks/memory.py

CPU_MEMORY = ("peak resident set size (ru_maxrss) of a fresh process per row; in brackets its rise "
              "over the resident size after building the model and the batch (activations, "
              "gradients, optimizer state)")
CUDA_MEMORY = "torch.cuda.max_memory_allocated over the warm-up and timed steps"



def _measure(name: str, preset: str, mode: str, args: dict, queue) -> None:
    """Runs in a subprocess: time ``mode`` ("train" | "infer") and report memory."""
    import torch

    from rnnimg import create_model

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    device = torch.device(args["device"])
    overrides = {**args["overrides"], **({"grad_checkpoint": True} if mode == "train-ckpt" else {})}
    model = create_model(name, preset, **overrides).to(device)
    if args["compile"] and not mode.startswith("infer"):
        model.compile_steps(args["compile"])
    bf16 = args["precision"] == "bf16" and not mode.startswith("infer")
    c = model.config
    batch = model.example_batch(args["batch_size"], torch.Generator().manual_seed(0))
    batch = {k: v.to(device) for k, v in batch.items()}
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=1e-4) if not mode.startswith("infer") else None
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_once():
        if opt is None:  # "infer": buffered step (a CUDA graph on a GPU); "infer-plain": without
            model.predict(batch["frames"][:, :c.context], c.horizon,
                          graph="auto" if mode == "infer" else False)
        else:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, torch.bfloat16, enabled=bf16):
                loss = model.loss(batch).loss
            loss.backward()
            opt.step()

    model.train(not mode.startswith("infer"))
    rss_before = rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args["warmup"]):
        run_once()
    sync()
    warmup_s = time.perf_counter() - start  # with --compile: compiling (wall: gcc runs apart)
    times, cpu_times = [], []
    for _ in range(args["steps"]):
        start, cpu_start = time.perf_counter(), time.process_time()
        run_once()
        sync()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    seconds = statistics.median(times)  # robust to another job's burst on a shared machine
    if device.type == "cuda":
        peak, rise = torch.cuda.max_memory_allocated(device) / 2**20, float("nan")
    else:
        peak = peak_rss_mib()
        rise = peak - rss_before
    queue.put({"params": params, "clips_per_s": args["batch_size"] / seconds, "peak_mib": peak,
               "rise_mib": rise, "threads": torch.get_num_threads(), "warmup_s": warmup_s,
               "cpu_ms": 1e3 * statistics.median(cpu_times)})


def count_step_ops(name: str, preset: str, overrides: dict, bf16: bool,
                   device: str) -> dict[str, float]:
    """Aten ops per time step of a training step (loss + backward), views excluded, under bf16
    autocast or float32: the difference between clips of two lengths, so per-rollout work (the
    weight casts autocast caches, the loss) cancels. Eager only: a compiled step is one graph."""
    import torch

    from rnnimg import create_model
    from rnnimg.runtime.graphs import KernelCounter

    counts, lengths = [], []
    for extra in (2, 6):  # clips of context + 2 and context + 6 frames
        torch.manual_seed(0)
        model = create_model(name, preset, **overrides).to(device).train()
        c = model.config
        length = c.context + extra
        lengths.append(length)
        frames = torch.rand(2, length, c.channels, c.frame_size, c.frame_size, device=device)
        with KernelCounter() as count:
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
                loss = model.loss({"frames": frames, "step": 20_000}).loss
            loss.backward()
        counts.append(count.kernels)
    steps = lengths[1] - lengths[0]
    return {k: (counts[1][k] - counts[0][k]) / steps for k in counts[0] | counts[1]}


# glibc settings that keep freed memory in the process instead of returning it to the OS, so a
# step does not re-fault pages the previous step gave back. On the (virtual, shared) machine this
# was written on, some 2-thread training runs were 8x slower without them; with one thread the
# two measured the same, so contention may have been the cause. Measure, don't assume.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(2**40),
                     "MALLOC_TOP_PAD_": str(2**30)}


def measure(name: str, preset: str, mode: str, args: dict, keep_freed_memory: bool) -> dict:
    """Run :func:`_measure` in a fresh spawned interpreter (glibc reads MALLOC_* at start-up)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    saved = {k: os.environ.get(k) for k in KEEP_FREED_MEMORY}
    if keep_freed_memory:
        os.environ.update(KEEP_FREED_MEMORY)
    try:
        proc = ctx.Process(target=_measure, args=(name, preset, mode, args, queue))
        proc.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    result = queue.get()
    proc.join()
    return result


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                     if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["convlstm", "predrnn"])
    p.add_argument("--preset", default="mmnist", help="model preset (default: mmnist)")
    p.add_argument("--batch-size", type=int, default=4, help="clips per step (default: 4)")
    p.add_argument("--steps", type=int, default=3, help="timed steps, median reported (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", dest="overrides",
                   help="override a config field of the preset (repeatable), e.g. --set patch=8")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                   help="training under bf16 autocast or in float32 (default); predict stays fp32")
    p.add_argument("--compile", nargs="?", const="default", metavar="MODE",
                   help="train through model.compile_steps(MODE) (default mode: default)")
    p.add_argument("--count-ops", action="store_true",
                   help="only count the aten ops and casts per time step (fp32 and bf16), no timing")
    p.add_argument("--grad-checkpoint", action="store_true",
                   help="also time training with grad_checkpoint=True")
    p.add_argument("--malloc", choices=["default", "keep", "both"], default="default",
                   help="glibc malloc: as is (default), or 'keep' freed memory (MALLOC_TRIM_THRESHOLD_ "
                   "and friends) so steps do not re-fault pages; 'both' measures each")
    p.add_argument("--note", default="", help="a sentence about the machine's load, for the report")
    p.add_argument("--out", default="docs/benchmarks-video.md", help="markdown report ('' = none)")
    a = p.parse_args(argv)
    from rnnimg.cli.common import parse_assignments
    from rnnimg.models.base import check_compile_mode

    overrides = parse_assignments(a.overrides, "--set")
    check_compile_mode(a.compile)
    if a.count_ops:
        rows = ["| model | layers | fp32 ops/step | bf16 ops/step | bf16 casts/step |",
                "|---|---:|---:|---:|---:|"]
        for name in a.models:
            ops = [count_step_ops(name, a.preset, overrides, bf16, a.device) for bf16 in (False, True)]
            from rnnimg import create_model

            layers = create_model(name, a.preset, **overrides).config.num_layers
            rows.append(f"| {name} | {layers} | {sum(ops[0].values()):.0f} | "
                        f"{sum(ops[1].values()):.0f} | {ops[1].get('_to_copy', 0):.0f} |")
            print(rows[-1], flush=True)
        print("\n" + "\n".join(rows))
        return 0
    args = {"batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup, "device": a.device,
            "threads": a.threads, "overrides": overrides, "precision": a.precision,
            "compile": a.compile}
    modes = ["train", *(["train-ckpt"] if a.grad_checkpoint else []), "infer", "infer-plain"]
    mem = "peak MiB" if a.device.startswith("cuda") else "peak RSS MiB (rise)"
    rows = [f"| model | params | mode | malloc | clips/s | CPU ms/step | warm-up s | {mem} |",
            "|---|---:|---|---|---:|---:|---:|---:|"]
    train_how = ", ".join(x for x in ("bf16" if a.precision == "bf16" else "",
                                      f"compiled ({a.compile})" if a.compile else "") if x)
    threads = None
    for name in a.models:
        for mode in modes:
            for keep in {"default": [False], "keep": [True], "both": [False, True]}[a.malloc]:
                r = measure(name, a.preset, mode, args, keep)
                threads = r["threads"]
                rise = "" if r["rise_mib"] != r["rise_mib"] else f" (+{r['rise_mib']:.0f})"
                what = {"train": "train (loss + backward + Adam)", "train-ckpt": "train, grad_checkpoint",
                        "infer": "predict (buffered step)", "infer-plain": "predict (graph=False)"}[mode]
                if not mode.startswith("infer") and train_how:
                    what += f", {train_how}"
                rows.append(f"| {name} | {r['params'] / 1e6:.2f} M | {what} | "
                            f"{'keep' if keep else 'default'} | {r['clips_per_s']:.3g} | "
                            f"{r['cpu_ms']:.1f} | {r['warmup_s']:.1f} | {r['peak_mib']:.0f}{rise} |")
                print(rows[-1], flush=True)
    import torch

    table = "\n".join(rows)
    print("\n" + table)
    if a.out:
        command = "PYTHONPATH=src python benchmarks/bench_video.py " + shlex.join(
            sys.argv[1:] if argv is None else argv)
        changed = "".join(f", {k}={v}" for k, v in overrides.items())
        text = f"""# Video predictor benchmarks

Preset `{a.preset}`{changed}, batch {a.batch_size}, {a.warmup} warm-up + {a.steps} timed steps (median),
device `{a.device}`, torch threads: {threads}, torch {torch.__version__}.

- Machine: {machine()}. {a.note}
- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC
- Command: `{command.strip()}`
- Training: `model.loss(batch)` + backward + Adam step on random clips (context + horizon frames)
  (precision {a.precision}{f", compile mode {a.compile}" if a.compile else ""}). CPU ms/step: the
  median process time of a timed step; warm-up s: the wall time of the untimed steps (compiling).
  Inference: `model.predict(context, horizon)`, buffered (`graph="auto"`: a CUDA graph replayed per
  frame on a GPU, captured in the warm-up) and plain (`graph=False`).
- Memory: {CUDA_MEMORY if a.device.startswith("cuda") else CPU_MEMORY}.
- malloc `keep`: the measuring process ran with {", ".join(f"{k}={v}" for k, v in KEEP_FREED_MEMORY.items())},
  so glibc keeps freed memory instead of returning it to the OS and re-faulting it every step.

{table}
"""
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(text)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
