"""The scaling table (issue 19, item 5): training and inference cost per pixel of each model at
several square image sizes (default 32, 64, 128 and 256), and its peak memory, so that one can see
which models grow linearly in pixels (constant microseconds per pixel) and which do not.

Every model runs at a small fixed width (its ``debug`` preset, plus the overrides in ``MODELS``),
so 256x256 fits and a step takes seconds; only the image size changes along a row of the table.
For each model, size and phase, in a fresh process (forked from a server that has only imported
torch and rnnimg, so that its peak memory is its own and the imports are paid once):

- parameters;
- inference, the model's own: ``nll_per_image`` (the exact NLL forward pass) for the generators,
  ``predict`` (5 context frames -> 5 predicted, a clip of 10 frames) for the video models,
  ``segment`` and ``translate`` for the others; the median of ``--steps`` timed calls after
  ``--warmup`` untimed ones, under ``torch.inference_mode``;
- sampling, for the pixel generators: their state-carrying sampler (``sample``). If the whole image
  fits in ``--sample-budget`` seconds it is timed whole (once, after a first pass that warms it
  up); otherwise its raster loop (``generate_cached``'s: ``start_row``, ``raster_pixel`` per
  pixel, ``end_row``) runs row by row until the budget is spent, and the time per row (first row
  excluded when there are two or more) is extrapolated to all rows: the table marks it ``(ext.)``;
- training: ``loss(batch)`` + backward + Adam step on the model's ``example_batch``; the median of
  ``--steps`` timed steps after ``--warmup`` untimed ones;
- peak memory of each phase. CPU: the peak resident set size (``ru_maxrss``, benchmarks/memory.py)
  over the phase less the resident size at its start, the peak reset to the current size at the
  start of each phase (/proc/self/clear_refs; where that fails, the peak is the process's so far,
  over the resident size after building the model and the batch). Before the measured model is
  built, the process runs its phase once on the same model at 8x8, so that the code and buffers
  torch loads on first use (~150 MiB at the first backward) are not counted as any size's memory;
  the few MiB that this warm-up frees and the allocator keeps can be reused by the phase unseen,
  so figures of a few MiB are a floor.
  CUDA: ``torch.cuda.max_memory_allocated`` over the phase less what was allocated at its start.

Time is process CPU time on the CPU (one thread by default, so a shared machine slows it less) and
wall-clock time after ``torch.cuda.synchronize`` on a GPU. Per image: the median step divided by
the batch; per pixel: that divided by the pixels of one item (size^2; 10 x size^2 for a clip of
10 frames; the output's size^2 for super-resolution, whose input is size / scale). The summary's
"growth" is the cost per pixel at the largest size divided by that at the smallest (and, beside it,
at the largest over the one before): 1.0 for a cost linear in pixels, below 1 where a fixed cost
per call is spread over more pixels, above 1 where the cost grows faster than the pixels; the
memory's growth over the last step of sizes is set against the pixels' (4x for a doubled side).

It prints markdown and, with ``--out X.md``, writes it there and the raw figures to ``X.json``.

    PYTHONPATH=src python benchmarks/bench_scaling.py --sizes 16 32 --steps 1 --models espcn
    flock /work/timing.lock env PYTHONPATH=src python benchmarks/bench_scaling.py --out docs/bench/scaling.md
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import multiprocessing as mp
import shlex
import statistics
import sys
import time
from pathlib import Path

from bench_video import machine  # benchmarks/bench_video.py: the CPU's model name (lscpu)
from memory import peak_rss_mib, reset_peak_rss, rss_mib  # benchmarks/memory.py

# label -> (registry name, preset, overrides); the image size is set on top of these
MODELS = {
    "pixelscan": ("pixelscan", "debug", {}),
    "pixelrnn-row": ("pixelrnn", "debug", {"variant": "row"}),
    "pixelrnn-diagonal": ("pixelrnn", "debug", {"variant": "diagonal"}),
    "convlstm": ("convlstm", "debug", {"context": 5, "horizon": 5, "patch": 4}),
    "convscan": ("convscan", "debug", {"context": 5, "horizon": 5, "patch": 4}),
    "reseg": ("reseg", "debug", {}),
    "scanseg": ("scanseg", "debug", {}),
    "unet": ("unet", "debug", {}),
    "translator": ("translator", "debug", {}),
    "recursr": ("recursr", "debug", {}),
    "espcn": ("espcn", "debug", {}),
}
DEFAULT_MODELS = list(MODELS)
INFERENCE = {"generate": "nll_per_image (exact NLL)", "predict": "predict 5 -> 5 frames",
             "segment": "segment", "translate": "translate"}


def build(label: str, size: int):
    """The model of ``label`` at ``size`` pixels square (frames of ``size`` for video models)."""
    import dataclasses

    from rnnimg import create_model
    from rnnimg.models.registry import get_model_class

    name, preset, overrides = MODELS[label]
    fields = {f.name for f in dataclasses.fields(get_model_class(name).config_class)}
    field = "frame_size" if "frame_size" in fields else "image_size"
    return create_model(name, preset, **overrides, **{field: size})


def pixels_per_item(model, size: int) -> int:
    """The pixels one batch item holds: a frame times the clip's frames for a video model."""
    c = model.config
    frames = c.context + c.horizon if hasattr(c, "frame_size") else 1
    return frames * size * size


def _row_sampler(model, n: int, budget: float, clock, sync, generator) -> tuple[float, int]:
    """Seconds per row of the state-carrying sampler (``generate_cached``'s loop, row by row,
    until ``budget`` seconds are spent or the image is done) and the rows run."""
    import torch

    c = model.config
    canvas = torch.zeros(n, c.channels, c.image_size, c.image_size, device=model.device)
    u = model.draw_uniforms(n, generator)
    times = []
    with torch.inference_mode():
        sampler = model.pixel_sampler(n, None)
        start = clock()
        for i in range(c.image_size):
            sampler.start_row(i)
            for j in range(c.image_size):
                model.raster_pixel(sampler, canvas, None, u, 1.0, i, j)
                sampler.end_pixel(j)
            sampler.end_row(i)
            sync()
            times.append(clock() - start)
            if times[-1] > budget:
                break
    rows = len(times)
    per_row = times[0] if rows == 1 else (times[-1] - times[0]) / (rows - 1)  # first row: warm-up
    return per_row, rows


def _measure(label: str, size: int, phase: str, args: dict, queue) -> None:
    """Runs in a fresh process: one phase of one model at one size."""
    import torch

    torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    # warm-up at 8x8: the first backward, optimizer step and sampler pull in code and buffers
    # (~150 MiB of RSS) that would otherwise count as the phase's memory at every size
    _phase(build(label, 8).to(device), phase, args | {"steps": 1, "warmup": 0, "sample_budget": 0.0},
           device, clock)
    gc.collect()
    torch.manual_seed(0)
    model = build(label, size).to(device)
    queue.put(_phase(model, phase, args, device, clock))


def _phase(model, phase: str, args: dict, device, clock) -> dict:
    """Time and measure ``phase`` of ``model``: "infer", "sample" (pixel generators) or "train"."""
    import torch

    cuda = device.type == "cuda"
    task = model.task
    size = model.config.frame_size if hasattr(model.config, "frame_size") else model.config.image_size
    gen = torch.Generator().manual_seed(0)
    batch = {k: v.to(device) if torch.is_tensor(v) else v
             for k, v in model.example_batch(args["batch"], gen).items()}

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    def timed(fn, steps: int, warmup: int) -> list[float]:
        for _ in range(warmup):
            fn()
        sync()
        times = []
        for _ in range(steps):
            start = clock()
            fn()
            sync()
            times.append(clock() - start)
        return times

    def memory_start() -> float:
        """The memory now; the peak is reset to it where the platform allows."""
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
            return torch.cuda.memory_allocated(device) / 2**20
        gc.collect()
        result["peak_reset"] = reset_peak_rss()  # else: the peak since the process started
        return rss_mib() if result["peak_reset"] else base

    def memory_rise(start: float) -> float:
        if cuda:
            return torch.cuda.max_memory_allocated(device) / 2**20 - start
        return max(0.0, peak_rss_mib() - start)

    def infer() -> None:
        with torch.inference_mode():
            if task == "generate":
                model.nll_per_image(batch["image"])
            elif task == "predict":
                c = model.config
                model.predict(batch["frames"][:, :c.context], c.horizon)
            elif task == "segment":
                model.segment(batch["image"])
            else:
                model.translate(batch["source"])

    base = rss_mib()
    result = {"name": model.name, "task": task,
              "params": sum(p.numel() for p in model.parameters()),
              "pixels_per_item": pixels_per_item(model, size), f"{phase}_base_rss_mib": base}

    model.train(phase == "train")
    if phase == "infer":
        start = memory_start()
        result["infer_s"] = statistics.median(timed(infer, args["steps"], args["warmup"]))
        result["infer_peak_mib"] = memory_rise(start)
    elif phase == "sample":  # the pixel generators' state-carrying sampler
        start = memory_start()
        n = args["batch"]
        per_row, rows = _row_sampler(model, n, args["sample_budget"], clock, sync,
                                     torch.Generator().manual_seed(0))
        if rows == model.config.image_size:  # the whole image fits the budget: time sample()
            (seconds,) = timed(lambda: model.sample(n, generator=torch.Generator().manual_seed(0)), 1, 0)
            result.update(sample_s=seconds, sample_extrapolated=False, sample_rows=rows)
        else:
            result.update(sample_s=per_row * model.config.image_size, sample_extrapolated=True,
                          sample_rows=rows)
        result["sample_peak_mib"] = memory_rise(start)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def train_step() -> None:
            out = model.loss(batch)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()

        start = memory_start()
        result["train_s"] = statistics.median(timed(train_step, args["steps"], args["warmup"]))
        result["train_peak_mib"] = memory_rise(start)
    result["threads"] = torch.get_num_threads()
    per_item = result[f"{phase}_s"] / args["batch"]
    result[f"{phase}_ms_per_item"] = 1e3 * per_item
    result[f"{phase}_us_per_pixel"] = 1e6 * per_item / result["pixels_per_item"]
    result[f"{phase}_peak_reset"] = result.pop("peak_reset", None)
    return result


def measure(label: str, size: int, args: dict) -> dict:
    """Every phase of ``label`` at ``size``, each by :func:`_measure` in a fresh process (forked
    from a server that imported torch and rnnimg), merged into one dict."""
    from rnnimg.models.registry import get_model_class

    sampler = hasattr(get_model_class(MODELS[label][0]), "pixel_sampler")
    ctx = mp.get_context("forkserver")
    result = {"label": label, "size": size}
    for phase in ("infer", *(["sample"] if sampler else []), "train"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_measure, args=(label, size, phase, args, queue))
        proc.start()
        result.update(queue.get())
        proc.join()
    return result


def growth(rows: list[dict], key: str, first: int = 0) -> float | None:
    """``key`` at the largest size over ``key`` at ``rows[first]`` (the smallest size by default;
    None if either is missing or zero)."""
    a, b = rows[first].get(key), rows[-1].get(key)
    return None if a is None or b is None or a == 0 else b / a


def summary(rows: list[dict]) -> dict[str, float | None]:
    """One model's growths, its ``rows`` sorted by size: the cost per pixel from the smallest to
    the largest size and over the last step of sizes, and the training memory over that step."""
    out = {}
    for key in ("train_us_per_pixel", "infer_us_per_pixel", "sample_us_per_pixel"):
        out[f"growth_{key}"] = growth(rows, key)
        out[f"growth_last_{key}"] = growth(rows, key, -2) if len(rows) > 1 else None
    out["growth_last_train_peak_mib"] = growth(rows, "train_peak_mib", -2) if len(rows) > 1 else None
    return out


def describe(label: str) -> str:
    name, preset, overrides = MODELS[label]
    extra = "".join(f", {k}={v}" for k, v in overrides.items())
    return f"{name} `{preset}`{extra}"


def _num(x: float | None) -> str:
    """A figure in 3 significant digits, whole numbers with separators from 100 up; '-' for None."""
    if x is None:
        return "-"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def bold(cell: str) -> str:
    return cell if cell == "-" else f"**{cell}**"


def tables(results: list[dict], sizes: list[int], cuda: bool, batch: int) -> str:
    """The markdown: one row per model and size, then one per model with the growth columns."""
    mem = "MiB (CUDA)" if cuda else "+MiB"
    lines = [f"| model (preset, overrides) | size | params | inference | infer ms / item | infer us / px "
             f"| sample ms / item | sample us / px | train ms / item | train us / px | infer {mem} "
             f"| sample {mem} | train {mem} |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        ext = " (ext.)" if r.get("sample_extrapolated") else ""
        size = f"{r['size']}x{r['size']}" + (" x10 frames" if r["task"] == "predict" else "")
        lines.append(
            f"| {describe(r['label'])} | {size} | {r['params']:,} | {INFERENCE[r['task']]} "
            f"| {_num(r['infer_ms_per_item'])} | {_num(r['infer_us_per_pixel'])} "
            f"| {_num(r.get('sample_ms_per_item'))}{ext} | {_num(r.get('sample_us_per_pixel'))}{ext} "
            f"| {_num(r['train_ms_per_item'])} | {_num(r['train_us_per_pixel'])} "
            f"| {r['infer_peak_mib']:.0f} | {_num(r.get('sample_peak_mib'))} | {r['train_peak_mib']:.0f} |")
    lo, hi = sizes[0], sizes[-1]
    prev = sizes[-2] if len(sizes) > 1 else lo
    at = "/".join(str(s) for s in sizes)
    lines += ["", f"Per model: the cost per pixel (us) at {at} pixels square; its growth {lo}->{hi} (the "
              f"cost per pixel at {hi} over that at {lo}: 1.0 = linear in pixels, below 1 = a fixed "
              f"cost per call spread over more pixels) and over the last step {prev}->{hi}; the training "
              f"memory ({mem}) at each size, its growth {prev}->{hi} against {(hi / prev) ** 2:.0f}x the "
              f"pixels, and per pixel at {hi} (KiB per pixel of the batch).", "",
              f"| model | train us/px | growth {lo}->{hi} per pixel (train) | {prev}->{hi} | infer us/px "
              f"| growth {lo}->{hi} per pixel (infer) | {prev}->{hi} | sample us/px "
              f"| growth {lo}->{hi} per pixel (sample) | {prev}->{hi} | train {mem} | memory {prev}->{hi} "
              f"| train KiB / px at {hi} |",
              "|---|---|---:|---:|---|---:|---:|---|---:|---:|---|---:|---:|"]
    for label in dict.fromkeys(r["label"] for r in results):
        rows = sorted((r for r in results if r["label"] == label), key=lambda r: r["size"])

        def series(key: str, rows: list[dict] = rows, num=_num) -> str:
            return " / ".join(num(r.get(key)) for r in rows) if rows[0].get(key) is not None else "-"

        g = {k: "-" if v is None else f"{v:.2f}" for k, v in summary(rows).items()}
        cells = [f"{series(f'{p}_us_per_pixel')} | {bold(g[f'growth_{p}_us_per_pixel'])} "
                 f"| {g[f'growth_last_{p}_us_per_pixel']}" for p in ("train", "infer", "sample")]
        top = rows[-1]
        per_px = 1024 * top["train_peak_mib"] / (batch * top["pixels_per_item"])
        memory = g["growth_last_train_peak_mib"]
        mib = series("train_peak_mib", num=lambda x: f"{x:.0f}")
        lines.append(f"| {label} | {' | '.join(cells)} | {mib} "
                     f"| {memory}{'x' if memory != '-' else ''} | {per_px:.2g} |")
    return "\n".join(lines)


def loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[32, 64, 128, 256],
                   help="image sides in pixels (default: 32 64 128 256)")
    p.add_argument("--models", nargs="+", default=DEFAULT_MODELS, choices=list(MODELS), metavar="MODEL",
                   help=f"any of {', '.join(MODELS)} (default: all)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--batch", type=int, default=2, help="images (clips) per step (default: 2)")
    p.add_argument("--steps", type=int, default=3, help="timed steps, median reported (default: 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default: 1)")
    p.add_argument("--sample-budget", type=float, default=3.0,
                   help="seconds of sampling per model and size before extrapolating (default: 3)")
    p.add_argument("--out", help="write the markdown here and the raw figures beside it as .json")
    a = p.parse_args(argv)
    if min(a.sizes) < 8 or any(s % 8 for s in a.sizes):
        p.error("--sizes: each must be a multiple of 8, at least 8 (the models' patch and pooling "
                "factors divide it)")
    sizes = sorted(set(a.sizes))
    args = {"device": a.device, "threads": a.threads, "batch": a.batch, "steps": a.steps,
            "warmup": a.warmup, "sample_budget": a.sample_budget}
    command = "PYTHONPATH=src python benchmarks/bench_scaling.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    # each process saves these imports (~3 CPU-s for torch, ~3 more for the torch._dynamo that
    # torch.optim's first optimizer imports)
    mp.set_forkserver_preload(["torch", "torch._dynamo", "rnnimg.models"])
    started, load_start = datetime.datetime.now(datetime.timezone.utc), loadavg()
    results = []
    for label in a.models:
        for size in sizes:
            r = measure(label, size, args)
            results.append(r)
            print(f"{label} {size}: train {r['train_us_per_pixel']:.3g} us/px, infer "
                  f"{r['infer_us_per_pixel']:.3g} us/px, sample {r.get('sample_us_per_pixel', '-')}, "
                  f"train +{r['train_peak_mib']:.0f} MiB", flush=True)
    ended, load_end = datetime.datetime.now(datetime.timezone.utc), loadavg()
    import torch

    cuda = a.device.startswith("cuda")
    head = (f"- Command: `{command}`\n"
            f"- Machine: {machine()}; device `{a.device}`, torch {torch.__version__}, "
            f"{results[0]['threads']} torch thread(s)\n"
            f"- Date: {started:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC; /proc/loadavg at the start "
            f"`{load_start}`, at the end `{load_end}`\n"
            f"- Batch {a.batch}; {a.warmup} warm-up + {a.steps} timed steps (median); "
            f"{'wall-clock time after torch.cuda.synchronize' if cuda else 'process CPU time'}; "
            f"sampling budget {a.sample_budget:g} s per model and size before extrapolating\n")
    text = head + "\n" + tables(results, sizes, cuda, a.batch) + "\n"
    print("\n" + text)
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        by_model = {}
        for label in dict.fromkeys(r["label"] for r in results):
            rows = sorted((r for r in results if r["label"] == label), key=lambda r: r["size"])
            by_model[label] = {"model": describe(label), **summary(rows)}
        out.with_suffix(".json").write_text(json.dumps(
            {"command": command, "machine": machine(), "device": a.device, "torch": torch.__version__,
             "started": started.isoformat(), "ended": ended.isoformat(), "loadavg_start": load_start,
             "loadavg_end": load_end, "sizes": sizes, **args, "results": results, "models": by_model},
            indent=1))
        print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
