"""svg (SVG-LP) against convlstm at equal CPU time on (Stochastic) Moving MNIST, issue 21's goals.

Each model trains in its own process with one torch thread for ``--budget`` seconds of *process*
CPU time (``time.process_time``: data generation, forward, backward and Adam steps all count), on
fresh training clips of ``--data`` (batch ``--batch-size``, Adam at ``--lr``), then predicts
``--horizon`` frames from ``--context`` on the first ``--test-clips`` clips of the fixed-seed test
set and reports, for the frames after the context:

- best-of-N and mean-of-N SSIM, PSNR and MSE (MSE summed over the 64x64 pixels, averaged over
  frames; ``rnnimg.models.predict.base.sample_statistics``, as ``rnnimg evaluate --samples N``);
  svg draws N = ``--samples`` futures per clip, convlstm has one (N = 1);
- diversity: the mean over pairs of futures of their squared distance (summed over pixels);
- sharpness: mean image gradient energy, the mean over pixels of (dI/dx)^2 + (dI/dy)^2 with forward
  differences, of the predicted frames and of the true ones (a blurred frame has less).

``--pair`` runs svg and convlstm side by side (two processes started together, one thread each;
run the whole command under ``flock /work/timing.lock`` on the shared machine) and writes a
markdown table with the command, machine and date to ``--out`` (and the raw numbers beside it as
JSON).

    flock /work/timing.lock python benchmarks/bench_svg.py --pair --budget 300 \\
        --data stochastic-moving-mnist --out docs/bench/svg-smmnist.md
    python benchmarks/bench_svg.py --pair --budget 10 --test-clips 8 --samples 3 --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from side_by_side import add_report_args, report_one, run_side_by_side, write_report

# small enough for a CPU; both at 64x64, 5 -> 10 (set by --context/--horizon)
CONFIGS = {
    "svg": ("svg", "smmnist", dict(patch=4, levels=2, features=16, rnn_size=128)),
    "convlstm": ("convlstm", "debug", dict(frame_size=64, patch=8, hidden_size=32, num_layers=2,
                                           kernel_size=3)),
}


def gradient_energy(frames):
    """Mean over pixels of squared forward differences along x plus along y: (..., H, W) -> float."""
    dx = frames[..., :, 1:] - frames[..., :, :-1]
    dy = frames[..., 1:, :] - frames[..., :-1, :]
    return float(dx.pow(2).mean() + dy.pow(2).mean())


def run_one(args) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from rnnimg import create_model, load_dataset
    from rnnimg.metrics import sample_statistics

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    name, preset, overrides = CONFIGS[args.model]
    overrides = {**overrides, "context": args.context, "horizon": args.horizon}
    model = create_model(name, preset, **overrides).to(device)
    frames = args.context + args.horizon
    data_opts = dict(frames=frames, num_digits=args.num_digits, **json.loads(args.data_options))
    train = load_dataset(args.data, "train", train_clips=10 ** 7, **data_opts)
    loader = iter(DataLoader(train, batch_size=args.batch_size))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    steps, curve = 0, []
    model.train()
    while time.process_time() - start_cpu < args.budget:
        batch = {k: v.to(device) for k, v in next(loader).items()}
        opt.zero_grad(set_to_none=True)
        out = model.loss(batch)
        out.loss.backward()
        opt.step()
        steps += 1
        if steps % 50 == 0:
            curve.append((steps, round(time.process_time() - start_cpu, 1), out.loss.item()))
    train_cpu, train_wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    model.eval()
    test = load_dataset(args.data, "test", test_clips=args.test_clips, **data_opts)
    samples = args.samples if model.stochastic else 1
    totals: dict = {}
    energy_pred = energy_true = 0.0
    gen = torch.Generator().manual_seed(args.seed)
    for clips in DataLoader(test, batch_size=32):
        clip = clips["frames"].to(device)
        context, target = clip[:, :args.context], clip[:, args.context:]
        if model.stochastic:
            futures = model.predict(context, args.horizon, generator=gen, samples=samples)
        else:
            futures = model.predict(context, args.horizon).unsqueeze(1)  # (B, 1, T, C, H, W)
        stats = sample_statistics(futures.float().cpu(), target.float().cpu())
        for k, v in stats.items():
            totals[k] = totals.get(k, 0) + v
        energy_pred += gradient_energy(futures.float()) * len(clip)
        energy_true += gradient_energy(target.float()) * len(clip)
    n = len(test)
    result = {k.removesuffix("_per_step"): float(v.mean() / n) for k, v in totals.items()
              if k.endswith("_per_step")}
    result.update(model=args.model, config=overrides, params=sum(p.numel() for p in model.parameters()),
                  steps=steps, train_cpu_s=round(train_cpu, 1), train_wall_s=round(train_wall, 1),
                  samples=samples, test_clips=n, sharpness_pred=energy_pred / n,
                  sharpness_true=energy_true / n, curve=curve,
                  eval_cpu_s=round(time.process_time() - start_cpu - train_cpu, 1))
    if args.save:
        model.save_pretrained(Path(args.save) / args.model,
                              extra={"data": {"name": args.data, "options": data_opts}})
    return result


def table(results: list[dict]) -> str:
    head = ("model", "params", "CPU s", "steps", "N", "best SSIM", "mean SSIM", "best PSNR", "mean PSNR",
            "best MSE", "mean MSE", "diversity", "sharpness (truth)")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        rows.append("| " + " | ".join([
            r["model"], f"{r['params']:,}", f"{r['train_cpu_s']:.0f}", str(r["steps"]), str(r["samples"]),
            f"{r['best_ssim']:.4f}", f"{r['ssim']:.4f}", f"{r['best_psnr']:.2f}", f"{r['psnr']:.2f}",
            f"{r['best_mse']:.1f}", f"{r['mse']:.1f}", f"{r['diversity']:.1f}",
            f"{r['sharpness_pred']:.5f} ({r['sharpness_true']:.5f})"]) + " |")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(CONFIGS), default="svg")
    p.add_argument("--pair", action="store_true", help="svg and convlstm side by side")
    p.add_argument("--data", default="stochastic-moving-mnist")
    p.add_argument("--data-options", default="{}", help="more dataset options, as JSON")
    p.add_argument("--num-digits", type=int, default=2)
    p.add_argument("--context", type=int, default=5)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--budget", type=float, default=300.0, help="process CPU seconds of training")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--samples", type=int, default=20, help="futures per clip for svg (best-of-N)")
    p.add_argument("--test-clips", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--save", default=None, help="save the trained model into SAVE/MODEL")
    add_report_args(p)
    args = p.parse_args(argv)
    if not args.pair:
        return report_one(run_one(args), args.json)
    out = Path(args.out or "svg-bench.md")
    results, started, where, command = run_side_by_side(__file__, argv, ("svg", "convlstm"), out)
    text = (f"# svg vs convlstm at equal CPU time: {args.data}\n\n`{command}`\n\n{started}; {where}; "
            f"one torch thread per process, both processes side by side; {args.context} -> "
            f"{args.horizon} frames at 64x64, {args.num_digits} digits, {args.test_clips} fixed test "
            f"clips\n\n{table(results)}\n")
    return write_report(out, text)


if __name__ == "__main__":
    sys.exit(main())
