"""Benchmark pixelscan against pixelrnn (Diagonal BiLSTM and Row LSTM) at their ``mnist`` presets.

Sections (each a flag; with none, --scan --train --sample --coverage run):

- ``--scan``: the linear-scan methods of ``rnnimg.nn.scan``, forward + backward time and the float32
  error against a float64 loop, at an image row (16 x 28 rows of 28 x 32) and at 4,096 steps.
- ``--train``: training images/s (forward, backward, Adam step) at batch 16; the models take turns
  for ``--rounds`` rounds and the table gives each one's median, so that a busy machine slows all
  of them alike.
- ``--sample``: the state-carrying samplers (batch 64, whole 28x28 images; ``graph="auto"``: a
  CUDA graph on a GPU, captured in one untimed call first), and pixelscan's naive sampler timed on
  ``--naive-pixels`` pixels and extrapolated linearly to 784.
- ``--coverage``: the share of its causal past (the pixels before it in raster order) that each
  logit depends on, from exact input gradients in float64 (random weights, small widths: the share
  depends on the wiring, not the width).
- ``--nll``: test NLL on mnist-5k (fixed binarization, seed 0; 4,500 train / 500 test digits) after
  training each model for the same time budget (``--budget`` seconds of training, evaluation time
  not counted), one after another; NLL at four points of the budget. On the CPU the budget is
  counted in process CPU time (``--wall-clock`` for wall time): one thread on an idle core gives
  the same figure, and on a shared machine every model still gets the same computation.

    PYTHONPATH=src python benchmarks/bench_pixelscan.py                 # scan, train, sample, coverage
    PYTHONPATH=src python benchmarks/bench_pixelscan.py --nll --budget 240
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time

import torch

MODELS = {  # label -> (registry name, overrides of the mnist preset)
    "pixelrnn diagonal": ("pixelrnn", dict(variant="diagonal")),
    "pixelrnn row": ("pixelrnn", dict(variant="row")),
    "pixelscan": ("pixelscan", {}),
}


def build(label: str, device: str, **extra):
    from rnnimg.models import create_model

    name, overrides = MODELS[label]
    torch.manual_seed(0)
    return create_model(name, "mnist", **overrides, **extra).to(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_scan(device: str) -> None:
    from rnnimg.nn.scan import linear_scan, linear_scan_reference

    print("\n### linear_scan: forward + backward, float32 (median of 5; CPU time on the CPU), error "
          "vs a float64 loop\n")
    print("| shape (scan axis) | method | ms | max abs error |")
    print("|---|---|---:|---:|")
    for shape, dim in (((16, 28, 28, 32), 2), ((8, 4096, 64), 1)):
        gen = torch.Generator().manual_seed(0)
        a = (torch.rand(shape, generator=gen) * 0.5 + 0.5).to(device)
        b = torch.randn(shape, generator=gen).to(device)
        want = linear_scan_reference(a.double(), b.double(), dim=dim)
        for method in ("doubling", "sequential", "log"):
            times = []
            clock = time.process_time if device == "cpu" else time.perf_counter
            for _ in range(6):
                ar, br = a.clone().requires_grad_(), b.clone().requires_grad_()
                sync(device)
                start = clock()
                out = linear_scan(ar, br, dim=dim, method=method)
                out.sum().backward()
                sync(device)
                times.append(clock() - start)
            error = (out.double() - want).abs().max().item()
            print(f"| {tuple(shape)} ({dim}) | {method} | {statistics.median(times[1:]) * 1e3:.1f} "
                  f"| {error:.1e} |")


def bench_train(device: str, rounds: int, steps: int) -> dict[str, float]:
    models, opts, batches, speeds, cpu_speeds = {}, {}, {}, {}, {}
    for label in MODELS:
        model = build(label, device).train()
        models[label] = model
        opts[label] = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = model.example_batch(16, torch.Generator().manual_seed(0))
        batches[label] = {k: v.to(device) for k, v in batch.items()}
        speeds[label], cpu_speeds[label] = [], []

    def step(label):
        out = models[label].loss(batches[label])
        opts[label].zero_grad()
        out.loss.backward()
        opts[label].step()

    for label in MODELS:
        step(label)  # warm-up
    for _ in range(rounds):
        for label in MODELS:
            sync(device)
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                step(label)
            sync(device)
            speeds[label].append(16 * steps / (time.perf_counter() - start))
            cpu_speeds[label].append(16 * steps / (time.process_time() - cpu))
    print(f"\n### Training, batch 16, {rounds} rounds x {steps} steps (median; min-max)\n")
    print("images per second of this process's CPU time (one thread: the idle-core figure) and "
          "per second of wall-clock time (depends on what else runs)\n")
    print("| model | params | images/CPU-s | range | vs diagonal | images/wall-s | vs diagonal |")
    print("|---|---:|---:|---|---:|---:|---:|")
    base = statistics.median(cpu_speeds["pixelrnn diagonal"])
    base_wall = statistics.median(speeds["pixelrnn diagonal"])
    result = {}
    for label, s in cpu_speeds.items():
        params = sum(p.numel() for p in models[label].parameters())
        med, wall = statistics.median(s), statistics.median(speeds[label])
        result[label] = med
        print(f"| {label} | {params:,} | {med:.1f} | {min(s):.1f}-{max(s):.1f} | {med / base:.2f}x "
              f"| {wall:.1f} | {wall / base_wall:.2f}x |")
    return result


def bench_sample(device: str, rounds: int, naive_pixels: int) -> None:
    models = {label: build(label, device).eval() for label in MODELS}
    times = {label: [] for label in MODELS}
    walls = {label: [] for label in MODELS}
    clock = time.process_time if device == "cpu" else time.perf_counter
    for model in models.values():  # untimed: on a GPU this call captures the sampler's CUDA graph
        model.sample(64, generator=torch.Generator(device).manual_seed(0))
    for _ in range(rounds):
        for label, model in models.items():
            sync(device)
            start, wall = clock(), time.perf_counter()
            model.sample(64, generator=torch.Generator(device).manual_seed(0))
            sync(device)
            times[label].append(clock() - start)
            walls[label].append(time.perf_counter() - wall)
    model = models["pixelscan"]
    sync(device)
    start = clock()
    model.sample_naive(64, generator=torch.Generator(device).manual_seed(0), max_pixels=naive_pixels)
    sync(device)
    naive = (clock() - start) * 784 / naive_pixels
    print(f"\n### Sampling 64 images of 28x28, state-carrying samplers ({rounds} rounds, median)\n")
    print("| model | CPU s / batch | images/CPU-s | vs pixelrnn diagonal | vs pixelrnn row "
          "| wall s / batch |")
    print("|---|---:|---:|---:|---:|---:|")
    base = statistics.median(times["pixelrnn diagonal"])
    row = statistics.median(times["pixelrnn row"])
    for label, t in times.items():
        med = statistics.median(t)
        print(f"| {label} | {med:.2f} | {64 / med:.0f} | {base / med:.2f}x | {row / med:.2f}x "
              f"| {statistics.median(walls[label]):.2f} |")
    fast = statistics.median(times["pixelscan"])
    print(f"\npixelscan naive sampler: {naive:.0f} s / batch (timed on {naive_pixels} pixels, "
          f"extrapolated); state-carrying is {naive / fast:.0f}x faster.")


def coverage(model, size: int, images: int = 8) -> tuple[float, float, int]:
    """(mean share of the causal past seen, worst pixel's share, pixels seeing all of it).

    A pixel counts as seen by logit p if the gradient of logit p with respect to it is non-zero
    for any of ``images`` random binary images (so one image's ReLUs sitting at zero do not hide
    a connection). Batched: copy r of an image carries the logit of pixel r.
    """
    model = model.double().eval()
    n = size * size
    gen = torch.Generator().manual_seed(0)
    seen = torch.zeros(n, n, dtype=torch.bool)  # [logit, input pixel]
    for _ in range(images):
        image = (torch.rand(1, 1, size, size, generator=gen) < 0.5).double()
        for start in range(0, n, 112):
            idx = torch.arange(start, min(start + 112, n))
            x = image.expand(len(idx), -1, -1, -1).clone().requires_grad_(True)
            picked = model(x).flatten(1)[torch.arange(len(idx)), idx]  # logit r of copy r
            (grad,) = torch.autograd.grad(picked.sum(), x)
            seen[idx] |= grad.flatten(1) != 0
    past = torch.ones(n, n, dtype=torch.bool).tril(-1)  # [p, q]: q before p
    assert not (seen & ~past).any(), "a logit sees its own or a later pixel"
    share = (seen & past).sum(1)[1:].double() / torch.arange(1, n).double()  # pixel 0 has no past
    return share.mean().item(), share.min().item(), int((share == 1).sum())


def bench_coverage(size: int) -> None:
    print(f"\n### Share of the causal past each logit sees ({size}x{size}, mnist layer counts, "
          "hidden 8, random weights, float64 gradients, any of 8 images)\n")
    print("| model | mean share | worst pixel | pixels that see all their past |")
    print("|---|---:|---:|---:|")
    for label in MODELS:
        extra = dict(hidden=8, head_hidden=8, image_size=size)
        model = build(label, "cpu", **extra)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.5)
            model.head_hidden.bias.add_(2.0)  # fewer head ReLUs at zero
        mean, worst, full = coverage(model, size)
        print(f"| {label} | {mean:.4f} | {worst:.4f} | {full} / {size * size - 1} |")


def load_mnist(model, split: str) -> torch.Tensor:
    from rnnimg.data import load_dataset

    data = load_dataset("mnist-5k", split, **model.dataset_options())
    return torch.stack([data[i]["image"] for i in range(len(data))])


@torch.no_grad()
def test_nll(model, images: torch.Tensor, device: str) -> float:
    model.eval()
    total = 0.0
    for chunk in images.split(100):
        total += model.nll_per_image(chunk.to(device)).sum().item()
    model.train()
    return total / len(images)


def bench_nll(device: str, budget: float, save_dir: str | None = None, cpu_clock: bool = True,
              labels: list[str] | None = None) -> None:
    """Train each model for ``budget`` seconds and report the test NLL at four points.

    With ``cpu_clock`` (the default on the CPU) the budget is this process's CPU time
    (``time.process_time``): with one thread on an idle core that equals wall-clock time, and on a
    shared machine it still gives every model the same computation, whatever the others run.
    """
    from rnnimg.recipes import training_defaults

    clock = time.process_time if cpu_clock and device == "cpu" else time.perf_counter
    marks = [budget * k / 4 for k in (1, 2, 3, 4)]
    rows = []
    for label in labels or MODELS:
        model = build(label, device).train()
        lr = training_defaults(MODELS[label][0], "mnist").lr
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        train, test = load_mnist(model, "train"), load_mnist(model, "test")
        gen = torch.Generator().manual_seed(0)
        order, cursor = torch.randperm(len(train), generator=gen), 0
        spent, steps, curve = 0.0, 0, []
        wall = time.perf_counter()
        while spent < budget:
            start = clock()
            if cursor + 16 > len(order):
                order, cursor = torch.randperm(len(train), generator=gen), 0
            batch = {"image": train[order[cursor:cursor + 16]].to(device)}
            cursor += 16
            out = model.loss(batch)
            opt.zero_grad()
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # the trainer's default
            opt.step()
            sync(device)
            spent += clock() - start
            steps += 1
            if len(curve) < len(marks) and spent >= marks[len(curve)]:
                nll = test_nll(model, test, device)
                while len(curve) < len(marks) and spent >= marks[len(curve)]:  # a slow step
                    curve.append((spent, steps, nll))  # can pass two marks
                print(f"  {label}: {spent:.0f} s, {steps} steps, test NLL {nll:.2f} "
                      f"({time.perf_counter() - wall:.0f} s wall so far)", flush=True)
        rows.append((label, lr, curve))
        if save_dir:
            model.save_pretrained(f"{save_dir}/{label.replace(' ', '-')}")
    kind = "CPU" if clock is time.process_time else "wall-clock"
    print(f"\n### Test NLL (nats) on mnist-5k, fixed binarization, after equal training time "
          f"({budget:.0f} s of {kind} time each, batch 16, Adam, grad clip 1)\n")
    print("| model | lr | " + " | ".join(f"{m:.0f} s" for m in marks) + " | steps | images/s |")
    print("|---|---:|" + "---:|" * (len(marks) + 2))
    for label, lr, curve in rows:
        cells = " | ".join(f"{nll:.2f}" for _, _, nll in curve)
        spent, steps, _ = curve[-1]
        print(f"| {label} | {lr:g} | {cells} | {steps} | {16 * steps / spent:.1f} |")
    bits = {label: curve[-1][2] / (784 * math.log(2)) for label, _, curve in rows}
    print("\nbits/dim at the end: " + ", ".join(f"{k} {v:.4f}" for k, v in bits.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag in ("scan", "train", "sample", "coverage", "nll"):
        parser.add_argument(f"--{flag}", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (train, sample)")
    parser.add_argument("--steps", type=int, default=3, help="training steps per round")
    parser.add_argument("--naive-pixels", type=int, default=8)
    parser.add_argument("--coverage-size", type=int, default=16)
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per model (--nll)")
    parser.add_argument("--wall-clock", action="store_true",
                        help="--nll: budget in wall-clock time (default on the CPU: process CPU time)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), metavar="MODEL",
                        help=f"--nll: which of {', '.join(MODELS)} (default all, in that order)")
    parser.add_argument("--save-dir", help="--nll: save each trained model under this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    chosen = [f for f in ("scan", "train", "sample", "coverage", "nll") if getattr(args, f)]
    chosen = chosen or ["scan", "train", "sample", "coverage"]
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"{platform.processor() or platform.machine()}, device {args.device}, torch "
          f"{torch.__version__}, {args.threads} thread(s), {when}")
    if "scan" in chosen:
        bench_scan(args.device)
    if "train" in chosen:
        bench_train(args.device, args.rounds, args.steps)
    if "sample" in chosen:
        bench_sample(args.device, args.rounds, args.naive_pixels)
    if "coverage" in chosen:
        bench_coverage(args.coverage_size)
    if "nll" in chosen:
        bench_nll(args.device, args.budget, args.save_dir, not args.wall_clock, args.models)


if __name__ == "__main__":
    main()
