"""Benchmark PixelRNN (Row LSTM and Diagonal BiLSTM): training throughput, sampling throughput of
the naive sampler, the plain state-carrying sampler (``graph=False``) and the buffered one
(``graph="auto"``: a CUDA graph replayed on a GPU, the same static buffers run eagerly on the
CPU), the kernels each pixel of the cached sampler launches, and peak memory. Prints a markdown
table.

Each measurement runs in a fresh child process. Memory: on the CPU the peak resident set size of
the child (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) minus its resident set size after the
model was built (the memory the phase itself added, weights excluded; for training it includes
the optimizer state); on a GPU ``torch.cuda.max_memory_allocated`` over the phase. Timing: process
CPU time on the CPU (one thread by default, so a busy machine slows it less), wall-clock time with
``torch.cuda.synchronize`` on a GPU. The cached samplers run once untimed (the buffered one
captures its graph then) and ``--repeats`` times timed (median). The naive sampler runs a full
forward pass per pixel, so it is timed on the first ``--naive-pixels`` pixels and extrapolated
linearly to the whole image (every pixel costs the same forward pass); the table says so.

``--count-ops`` counts, with a ``TorchDispatchMode``, the aten operations of one cached sampling
run divided by the pixels: all of them, and those that launch a kernel on a GPU (views and
allocations excluded; an approximation: a composite op such as ``linear`` counts once). On a GPU
the cached sampler is launch-bound, so kernels per pixel x launch cost x pixels is its time per
batch.

``--compile [MODE]`` adds the sampler whose per-pixel step is compiled (``sample(...,
compile=MODE)``, default mode "default"; on a GPU its kernels are captured in the whole-image CUDA
graph), timed like the others after one untimed call that compiles (its "first s"). With
``--count-ops`` the kernels per pixel of the eager and the compiled sampler are then also counted
with ``torch.profiler`` (:func:`count_kernels`): what a GPU would launch per pixel.

    PYTHONPATH=src python benchmarks/bench_pixelrnn.py                      # mnist preset, both variants
    PYTHONPATH=src python benchmarks/bench_pixelrnn.py --compile --count-ops --variants row
    PYTHONPATH=src python benchmarks/bench_pixelrnn.py --device cuda --count-ops
    PYTHONPATH=src python benchmarks/bench_pixelrnn.py --preset debug --batch 4 --repeats 1 --train-steps 1
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import time

from memory import peak_rss_mib, rss_mib  # benchmarks/memory.py


def count_ops(model, batch: int) -> tuple[float, float]:
    """(aten ops, kernel-launching ops) per pixel of one cached sampling run (``graph=False``:
    the buffered step runs the very same operations)."""
    import torch

    from rnnimg.runtime.graphs import KernelCounter

    gen = torch.Generator().manual_seed(0)
    with torch.inference_mode(), KernelCounter() as counter:
        model.sample(batch, generator=gen, graph=False)
    pixels = model.config.image_size ** 2
    return counter.ops / pixels, counter.kernels.total() / pixels


# ops that only re-describe or allocate memory: no kernel on a GPU
NO_KERNEL = {"empty", "empty_strided", "empty_like", "as_strided", "view", "reshape", "_reshape_alias",
             "select", "slice", "narrow", "squeeze", "unsqueeze", "permute", "transpose", "t", "expand",
             "alias", "detach", "unfold", "split", "chunk", "unbind", "resolve_conj", "resolve_neg",
             "lift_fresh", "_unsafe_view", "view_as", "expand_as", "split_with_sizes", "numpy_T",
             "contiguous", "result_type", "is_nonzero", "_local_scalar_dense", "item"}


def count_kernels(model, batch: int, compile: bool | str) -> dict:
    """Kernels per pixel of one cached sampling run (``graph=False``), eager or with the compiled
    per-pixel step, counted with ``torch.profiler`` on the CPU: inductor's generated kernels
    (``cpp_fused_*``, recorded with ``torch._inductor.config.cpp.enable_kernel_profile``; each is
    one fused Triton kernel on a GPU) and the outermost aten operations that launch a kernel (the
    eager per-row work, and the matrix multiplies a compiled graph hands to extern kernels; views
    and allocations excluded, as in :func:`count_ops`)."""
    import torch
    import torch._inductor.config as inductor_config
    from torch.profiler import ProfilerActivity, profile

    inductor_config.cpp.enable_kernel_profile = True
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with torch.inference_mode():
        model.sample(batch, generator=gen(), graph=False, compile=compile)  # compiles
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.sample(batch, generator=gen(), graph=False, compile=compile)
    fused = aten = 0
    for e in prof.events():
        if "cpp_fused" in e.name:
            fused += 1
        elif e.name.startswith("aten::") and e.name[6:] not in NO_KERNEL:
            parent = e.cpu_parent
            while parent is not None and not parent.name.startswith("aten::"):
                parent = parent.cpu_parent
            aten += parent is None  # the outermost aten op only: linear, not its addmm as well
    pixels = model.config.image_size ** 2
    return {"fused": fused / pixels, "aten": aten / pixels, "kernels": (fused + aten) / pixels}


def _measure(args: dict) -> dict:
    """One phase in a fresh process: returns seconds, items and the memory the phase added."""
    import statistics

    import torch

    from rnnimg.models import create_model

    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    device = torch.device(args["device"])
    cuda = device.type == "cuda"
    model = create_model("pixelrnn", args["preset"], variant=args["variant"]).to(device)
    phase = args["phase"]

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    clock = time.perf_counter if cuda else time.process_time  # CPU time of this one-thread process
    base = rss_mib()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    extra = {}
    if phase == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = model.example_batch(args["train_batch"], torch.Generator().manual_seed(0))
        batch = {k: v.to(device) for k, v in batch.items()}

        def step():
            out = model.loss(batch)
            opt.zero_grad()
            out.loss.backward()
            opt.step()

        step()  # warm-up (also allocates the optimizer state, counted in the memory)
        sync()
        start = clock()
        for _ in range(args["train_steps"]):
            step()
        sync()
        seconds = clock() - start
        items = args["train_steps"] * args["train_batch"]
    elif phase == "naive":
        model.eval()
        gen = torch.Generator().manual_seed(0)
        sync()
        start = clock()
        model.sample_naive(args["batch"], generator=gen, max_pixels=args["naive_pixels"])
        sync()
        pixels = model.config.image_size ** 2
        seconds = (clock() - start) * pixels / args["naive_pixels"]  # extrapolated
        items = args["batch"]
    else:  # "eager" (graph=False) | "buffered" (graph="auto") | "compiled" (+ compile=MODE)
        model.eval()
        graph = False if phase == "eager" else "auto"
        compile = args["compile"] if phase == "compiled" else False
        if compile and args["count_ops"]:  # compile once, with the kernels named for the profiler
            import torch._inductor.config as inductor_config

            inductor_config.cpp.enable_kernel_profile = True
        gen = torch.Generator().manual_seed(0)
        start = clock()
        # buffered: capture (GPU); compiled: compile (+ capture)
        model.sample(args["batch"], generator=gen, graph=graph, compile=compile)
        sync()
        extra["first_s"] = clock() - start
        times = []
        for _ in range(args["repeats"]):
            start = clock()
            model.sample(args["batch"], generator=gen, graph=graph, compile=compile)
            sync()
            times.append(clock() - start)
        seconds = statistics.median(times)
        items = args["batch"]
    added = (torch.cuda.max_memory_allocated(device) / 2**20 if cuda
             else max(0.0, peak_rss_mib() - base))
    if phase == "eager" and args["count_ops"]:  # after the memory reading: the counter adds some
        extra["ops"], extra["kernels"] = count_ops(model, args["batch"])
        if args["compile"]:
            extra["profiled"] = count_kernels(model, args["batch"], False)
    if phase == "compiled" and args["count_ops"]:
        extra["profiled"] = count_kernels(model, args["batch"], args["compile"])
    return {"seconds": seconds, "items": items, "added_mib": added,
            "params": sum(p.numel() for p in model.parameters()), **extra}


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
    parser.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs of each cached sampler after one untimed (default 3)")
    parser.add_argument("--count-ops", action="store_true",
                        help="also count aten ops and kernels per pixel of the cached sampler")
    parser.add_argument("--compile", nargs="?", const="default", default=False,
                        choices=["default", "max-autotune-no-cudagraphs"],
                        help="also time the sampler with a compiled per-pixel step (mode: default)")
    parser.add_argument("--phases", nargs="+", default=["train", "naive", "eager", "buffered"],
                        choices=["train", "naive", "eager", "buffered"],
                        help="phases to run besides compiled (default: all)")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    rows = []
    for variant in args.variants:
        result = {}
        for phase in [*args.phases, *(["compiled"] if args.compile else [])]:
            job = dict(vars(args), variant=variant, phase=phase)
            with ctx.Pool(1) as pool:
                result[phase] = pool.apply(_measure, (job,))
        rows.append((variant, result))

    cuda = args.device.startswith("cuda")
    memory = ("Memory = torch.cuda.max_memory_allocated over the phase (MiB)" if cuda else
              "Memory = peak RSS (getrusage ru_maxrss) minus RSS after the model was built, in a "
              "fresh process per phase")
    buffered = "CUDA graph, replayed" if cuda else "static buffers, eager"
    print(f"pixelrnn preset `{args.preset}`, device {args.device}, "
          f"{platform.processor() or platform.machine()}, torch threads {args.threads}; sampling "
          f"batch {args.batch}, training batch {args.train_batch}. "
          f"{'Wall-clock time after torch.cuda.synchronize' if cuda else 'Process CPU time'}; "
          f"cached samplers: median of {args.repeats} runs after one untimed (first = that run, "
          f"which captures the graph on a GPU). Naive sampler timed on {args.naive_pixels} pixels "
          f"and extrapolated linearly to the whole image. {memory}.\n")
    ops = args.count_ops
    if set(args.phases) == {"train", "naive", "eager", "buffered"}:
        print(f"| variant | params | train img/s | train +MiB | naive img/s | eager cached img/s | "
              f"buffered img/s ({buffered}) | buffered first s | buffered / eager | eager / naive "
              f"| cached +MiB (eager, buffered) |" + (" aten ops / pixel | kernels / pixel |" if ops else ""))
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if ops else ""))
        for variant, r in rows:
            train, eager, buf = r["train"], r["eager"], r["buffered"]
            speed = {k: v["items"] / v["seconds"] for k, v in r.items()}
            line = (f"| {variant} | {train['params']:,} | {speed['train']:.1f} | {train['added_mib']:.0f} "
                    f"| {speed['naive']:.3f} (extrapolated) | {speed['eager']:.1f} "
                    f"| {speed['buffered']:.1f} | {buf['first_s']:.2f} "
                    f"| {speed['buffered'] / speed['eager']:.2f}x | {speed['eager'] / speed['naive']:.0f}x "
                    f"| {eager['added_mib']:.0f}, {buf['added_mib']:.0f} |")
            if ops:
                line += f" {eager['ops']:.1f} | {eager['kernels']:.1f} |"
            print(line)
    if args.compile:
        mode = "CUDA graph of the compiled step, replayed" if cuda else "static buffers, compiled step"
        print(f"\nCompiled per-pixel step (mode {args.compile!r}; {mode}). Kernels / pixel counted "
              f"with torch.profiler (count_kernels): generated fused kernels + outermost "
              f"kernel-launching aten ops.\n")
        print("| variant | phase | img/s | first s (compiles) | fused kernels / pixel | aten kernels / pixel "
              "| kernels / pixel |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for variant, r in rows:
            for phase in ("eager", "buffered", "compiled"):
                if phase not in r:
                    continue
                m = r[phase]
                k = m.get("profiled")
                counts = (f"{k['fused']:.1f} | {k['aten']:.1f} | {k['kernels']:.1f}" if k else "- | - | -")
                print(f"| {variant} | {phase} | {m['items'] / m['seconds']:.1f} | {m['first_s']:.2f} "
                      f"| {counts} |")


if __name__ == "__main__":
    main()
