"""Benchmark draw: training and sampling throughput (images/s), and the test NLL bound and
importance-weighted NLL on mnist-5k (fixed binarization, seed 0) after a stated budget, with
attention and without.

    python benchmarks/bench_draw.py speed [--device cuda] [--preset mnist]
    python benchmarks/bench_draw.py quality --steps 2000 [--device cpu] [--samples 10]
    python benchmarks/bench_draw.py evaluate RUN [RUN ...] [--samples 10]

``quality`` trains two runs with ``rnnimg.train`` (``runs/bench-draw-attention`` and
``runs/bench-draw-noattention``; the same config but ``attention``), then scores each on the 500
test digits: the negative ELBO (analytic KL, averaged over the K draws) and the importance-weighted
estimate with K draws from Q (Burda et al. 2016). Speed is measured with one thread per process
unless --threads says otherwise; the machine may be shared, so say so with the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

# the CPU-sized comparison model: the paper's read 2x2 / write 5x5 grids, fewer steps and units
SMALL = dict(steps=16, enc_hidden=128, dec_hidden=128, z_size=32)


def speed(args) -> None:
    import torch

    from rnnimg import create_model

    torch.manual_seed(0)
    rows = []
    for attention in (True, False):
        model = create_model("draw", args.preset, attention=attention).to(args.device)
        batch = {k: v.to(args.device) for k, v in
                 model.example_batch(args.batch, torch.Generator().manual_seed(0)).items()}
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def train_step(model=model, batch=batch, opt=opt):
            opt.zero_grad(set_to_none=True)
            model.loss(batch).loss.backward()
            opt.step()

        def sample_step(model=model):
            model.sample(args.batch, generator=torch.Generator(device=args.device).manual_seed(0))

        for kind, step in (("train", train_step), ("sample", sample_step)):
            model.train(kind == "train")
            step()  # warm-up
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.repeats):
                step()
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            rate = args.batch * args.repeats / (time.perf_counter() - start)
            rows.append((attention, kind, rate))
            print(f"draw {args.preset} attention={attention} {kind}: {rate:.1f} images/s "
                  f"(batch {args.batch}, {args.repeats} steps, {args.device}, "
                  f"{torch.get_num_threads()} thread(s))", flush=True)
    print(json.dumps({"preset": args.preset, "device": args.device, "batch": args.batch,
                      "machine": platform.processor() or platform.machine(),
                      "rates": rows}))


def score(run: str, samples: int, device: str, batch_size: int = 100) -> dict:
    """Bound and IWAE NLL of ``run`` on the mnist-5k test split (fixed binarization, seed 0)."""
    import torch
    from torch.utils.data import DataLoader

    from rnnimg.data import load_dataset
    from rnnimg.models.checkpoint import load_pretrained

    model = load_pretrained(run, map_location=device).eval()
    options = {**model.dataset_options(), "binarize": "fixed", "binarize_seed": 0}
    data = load_dataset("mnist-5k", "test", **options)
    gen = torch.Generator(device=device).manual_seed(0)
    total: dict = {}
    start = time.perf_counter()
    for batch in DataLoader(data, batch_size=batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        for key, value in model.evaluation_statistics(batch, importance_samples=samples,
                                                      generator=gen).items():
            total[key] = total.get(key, 0) + value
    metrics = model.reduce_statistics(total)
    metrics.pop("kl_nats_per_step")
    return {"run": run, "items": int(total["count"]), "importance_samples": samples,
            "binarization": "fixed, seed 0", "seconds": round(time.perf_counter() - start, 1),
            **{k: round(v, 2) for k, v in metrics.items()}}


def quality(args) -> None:
    from rnnimg.train import TrainSettings, train

    for attention in [a for a in (True, False) if args.only in (None, str(a).lower())]:
        out = f"runs/{args.prefix}-{'attention' if attention else 'noattention'}"
        if not args.skip_training:
            start = time.perf_counter()
            train(TrainSettings(model="draw", preset="mnist", data="mnist-5k",
                                overrides={**SMALL, "attention": attention}, out=out,
                                max_steps=args.steps, batch_size=64, lr=args.lr, seed=0,
                                accelerator="gpu" if args.device.startswith("cuda") else "cpu",
                                devices=1, overwrite=True, progress=False,
                                sample_every_n_steps=args.steps, ckpt_every_n_steps=args.steps))
            print(f"trained {out}: {args.steps} steps in {time.perf_counter() - start:.0f} s",
                  flush=True)
        print(json.dumps(score(out, args.samples, args.device)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="?", default="speed", choices=["speed", "quality", "evaluate"],
                        help="default: speed (so `bench_draw.py --device cuda` times the model)")
    parser.add_argument("runs", nargs="*", help="run folders (evaluate)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--preset", default="mnist")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2000, help="training steps per run (quality)")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--samples", type=int, default=10, help="importance samples K")
    parser.add_argument("--only", choices=["true", "false"], help="only attention=true or =false")
    parser.add_argument("--prefix", default="bench-draw", help="run folders runs/PREFIX-...")
    parser.add_argument("--skip-training", action="store_true", help="score existing runs only")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.what == "speed":
        speed(args)
    elif args.what == "quality":
        quality(args)
    else:
        for run in args.runs:
            print(json.dumps(score(run, args.samples, args.device)), flush=True)


if __name__ == "__main__":
    main()
