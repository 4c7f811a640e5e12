"""Benchmarks of the translate task: speed and memory, and denoising quality at one budget.

``speed``: for translator, translator with the adversarial loss (``+gan``), translator with a 2D-scan
global context (``+scan``, ``context="scan"``) and dncnn on one
preset, each in a fresh spawned process so that peak memory is its own:

- training images/s: ``loss(batch)`` + backward + Adam step (for ``+gan`` also the
  discriminator's step first, as the trainer's two-optimizer hook does), the median of ``--steps``
  timed steps after ``--warmup``;
- inference images/s: ``translate(source)``;
- peak memory: CPU, the peak resident set size (ru_maxrss) and its rise over the resident size
  after building the model and the batch; CUDA, ``torch.cuda.max_memory_allocated``.

``quality``: the PSNR gain over the noisy input (Gaussian noise, sigma on the 0-255 scale, drawn
once per test image from the fixed corrupt_seed 0) of translator, translator+gan and dncnn, each
trained from the same seed for the same number of steps (or, ``--cpu-budget S``, until S seconds
of this process's CPU time are spent on training, fair on a shared machine), batch size and
learning rate, on the same training images with fresh noise, then scored on the whole test split with
``evaluation_statistics`` (PSNR and SSIM with data range 1, all channels, no border crop for PSNR).
The training loop here is the trainer's scheme in a dozen lines (Adam, gradient norm clipped to
1, the discriminator step before the generator step), so all three see exactly the same batches.

    PYTHONPATH=src python benchmarks/bench_translate.py speed --device cpu
    PYTHONPATH=src python benchmarks/bench_translate.py quality --data mnist-5k --steps 300
    PYTHONPATH=src python benchmarks/bench_translate.py quality --cpu-budget 240 --threads 1 \
        --variants translator+scan --json scan.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import time

from memory import peak_rss_mib, rss_mib  # benchmarks/memory.py

VARIANTS = {"translator": ("translator", {}), "translator+gan": ("translator", {"adv_weight": 0.01}),
            "translator+scan": ("translator", {"context": "scan"}), "dncnn": ("dncnn", {})}



def _optimizers(model, lr: float):
    import torch

    d_params = model.discriminator_parameters()
    d_ids = {id(p) for p in d_params}
    opt_g = torch.optim.Adam([p for p in model.parameters() if id(p) not in d_ids], lr=lr)
    opt_d = torch.optim.Adam(d_params, lr=lr, betas=(0.5, 0.999)) if d_params else None
    return opt_g, opt_d


def train_step(model, batch, opt_g, opt_d, clip: float = 1.0) -> float:
    """One step of the trainer's scheme: the discriminator first (if any), then the rest."""
    import torch

    if opt_d is not None:
        opt_d.zero_grad(set_to_none=True)
        model.discriminator_loss(batch).loss.backward()
        opt_d.step()
    opt_g.zero_grad(set_to_none=True)
    loss = model.loss(batch).loss
    loss.backward()
    params = [p for group in opt_g.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt_g.step()
    return float(loss.detach())


def train_for(model, loader, opt_g, opt_d, device, steps: int, cpu_budget: float = 0.0) -> dict:
    """Train on ``loader`` (epoch after epoch) for ``steps`` steps or, if ``cpu_budget`` > 0, until
    this process's CPU time spent here reaches ``cpu_budget`` seconds (``steps`` then ignored).
    Returns the steps taken and the CPU and wall seconds they took."""
    import torch

    def done(step: int) -> bool:
        return time.process_time() - cpu0 >= cpu_budget if cpu_budget > 0 else step >= steps

    cpu0, wall0, step = time.process_time(), time.perf_counter(), 0
    while not done(step):
        for batch in loader:
            batch = {k: v.to(device) for k, v in batch.items()}
            train_step(model, batch, opt_g, opt_d)
            if device.type == "cuda":  # a budget counts finished steps, not queued ones
                torch.cuda.synchronize(device)
            step += 1
            if done(step):
                break
    return {"steps": step, "train_cpu_seconds": time.process_time() - cpu0,
            "train_seconds": time.perf_counter() - wall0}


def _speed(variant: str, preset: str, mode: str, args: dict, queue) -> None:
    import torch

    from rnnimg import create_model

    if args["threads"]:
        torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    device = torch.device(args["device"])
    name, overrides = VARIANTS[variant]
    model = create_model(name, preset, **overrides).to(device)
    batch = model.example_batch(args["batch_size"], torch.Generator().manual_seed(0))
    batch = {k: v.to(device) for k, v in batch.items()}
    opt_g, opt_d = _optimizers(model, 1e-4)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_once():
        if mode == "infer":
            model.translate(batch["source"])
        else:
            train_step(model, batch, opt_g, opt_d)

    model.train(mode != "infer")
    rss_before = rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(args["warmup"]):
        run_once()
    sync()
    times = []
    for _ in range(args["steps"]):
        start = time.perf_counter()
        run_once()
        sync()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak, rise = torch.cuda.max_memory_allocated(device) / 2**20, float("nan")
    else:
        peak = peak_rss_mib()
        rise = peak - rss_before
    queue.put({"params": sum(p.numel() for p in model.parameters()),
               "images_per_s": args["batch_size"] / statistics.median(times), "peak_mib": peak,
               "rise_mib": rise, "threads": torch.get_num_threads()})


def speed(a) -> None:
    ctx = mp.get_context("spawn")
    args = {"batch_size": a.batch_size, "steps": a.steps, "warmup": a.warmup, "device": a.device,
            "threads": a.threads}
    mem = "peak MiB" if a.device.startswith("cuda") else "peak RSS MiB (rise)"
    print(f"| model | params | mode | images/s | {mem} |\n|---|---:|---|---:|---:|")
    for variant in VARIANTS:
        for mode in ("train", "infer"):
            queue = ctx.Queue()
            proc = ctx.Process(target=_speed, args=(variant, a.preset, mode, args, queue))
            proc.start()
            r = queue.get()
            proc.join()
            rise = "" if r["rise_mib"] != r["rise_mib"] else f" (+{r['rise_mib']:.0f})"
            print(f"| {variant} | {r['params'] / 1e3:.1f} k | {mode} | {r['images_per_s']:.3g} | "
                  f"{r['peak_mib']:.0f}{rise} |", flush=True)
    print(f"(preset {a.preset}, batch {a.batch_size}, device {a.device}, threads {r['threads']})")


def quality(a) -> None:
    import torch
    from torch.utils.data import DataLoader

    from rnnimg import create_model
    from rnnimg.data import load_dataset

    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    results = {}
    for variant in a.variants:
        name, overrides = VARIANTS[variant]
        torch.manual_seed(a.seed)
        model = create_model(name, a.preset, **overrides).to(device)
        options = {**model.dataset_options(), "corrupt": "denoise", "sigma": a.sigma}
        train_set = load_dataset(a.data, "train", **options)
        test_set = load_dataset(a.data, "test", **options)
        model.check_dataset(train_set, a.data)
        opt_g, opt_d = _optimizers(model, a.lr)
        generator = torch.Generator().manual_seed(a.seed)  # the same batches for every variant
        loader = DataLoader(train_set, batch_size=a.batch_size, shuffle=True, drop_last=True,
                            generator=generator)
        model.train()
        spent = train_for(model, loader, opt_g, opt_d, device, a.steps, a.cpu_budget)
        model.eval()
        total: dict = {}
        for batch in DataLoader(test_set, batch_size=100):
            batch = {k: v.to(device) for k, v in batch.items()}
            for k, v in model.evaluation_statistics(batch).items():
                total[k] = total.get(k, 0) + v
        metrics = model.reduce_statistics(total)
        metrics.update(spent, params=sum(p.numel() for p in model.parameters()))
        results[variant] = metrics
        print(f"| {a.data} | {variant} | {metrics['params'] / 1e3:.1f} k | {metrics['input_psnr']:.2f} | "
              f"{metrics['psnr']:.2f} | **{metrics['psnr_gain']:+.2f}** | {metrics['input_ssim']:.3f} | "
              f"{metrics['ssim']:.3f} | {spent['steps']} | {spent['train_cpu_seconds']:.0f} | "
              f"{spent['train_seconds']:.0f} |", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"data": a.data, "preset": a.preset, "sigma": a.sigma, "steps": a.steps,
                       "cpu_budget": a.cpu_budget, "threads": a.threads, "batch_size": a.batch_size,
                       "lr": a.lr, "results": results}, f, indent=2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed", help="training / inference images/s and peak memory")
    s.add_argument("--preset", default="denoise")
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--steps", type=int, default=5, help="timed steps, median reported")
    s.add_argument("--warmup", type=int, default=2)
    q = sub.add_parser("quality", help="PSNR gain over the noisy input after one budget")
    q.add_argument("--data", default="mnist-5k", help="an image dataset (mnist-5k, shapes, ...)")
    q.add_argument("--preset", default=None, help="default: denoise (grey data) or colour (shapes)")
    q.add_argument("--variants", nargs="+", default=["translator", "translator+gan", "dncnn"],
                   choices=list(VARIANTS))
    q.add_argument("--sigma", type=float, default=25.0)
    q.add_argument("--steps", type=int, default=300)
    q.add_argument("--cpu-budget", type=float, default=0.0, help="train each variant until this "
                   "many seconds of this process's CPU time are spent (overrides --steps)")
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--lr", type=float, default=2e-3)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--json", default="", help="also write the results here")
    for x in (s, q):
        x.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
        x.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("speed", "quality", "-h", "--help"):
        argv = ["speed", *argv]  # no subcommand: speed (``bench_translate.py --device cuda``)
    a = p.parse_args(argv)
    if a.what == "speed":
        speed(a)
    else:
        a.preset = a.preset or ("colour" if a.data in ("shapes", "cifar10") else "denoise")
        print("| data | model | params | input PSNR | PSNR | gain | input SSIM | SSIM | steps | train CPU-s "
              "| train s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        quality(a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
