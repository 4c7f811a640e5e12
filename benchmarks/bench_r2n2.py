"""Reconstruction at an equal process-CPU budget: train one ``reconstruct`` model on ``shapes3d``
for ``--budget`` seconds of this process's CPU time, then score it on the test split: pooled IoU
at 0.4 with 1..5 views, per class, and how much the prediction changes when the views come in
other orders. Writes one JSON file.

A comparison is a side-by-side pair started together under the timing lock, one torch thread
each (docs/benchmarks.md has the commands)::

    flock /work/timing.lock bash -c '
      python benchmarks/bench_r2n2.py --model r2n2 --out a.json &
      python benchmarks/bench_r2n2.py --model viewpool --out b.json & wait'

The training items are built (voxels + 12 rendered views) before the clock starts; both models
see the same data in the same order (``--seed``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch.utils.data import DataLoader


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="r2n2")
    p.add_argument("--preset", default="shapes3d")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="config override (JSON value), repeatable")
    p.add_argument("--budget", type=float, default=240.0, help="training process-CPU seconds")
    p.add_argument("--train-size", type=int, default=1000)
    p.add_argument("--test-size", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--permutations", type=int, default=3, help="random view orders scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default="", help="also write the whole result here as JSON")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    from rnnimg import create_model, load_dataset
    from rnnimg.metrics import voxel_iou_per_shape, voxel_iou_pooled, voxel_iou_sums

    overrides = dict(kv.split("=", 1) for kv in args.set)
    overrides = {k: parse_value(v) for k, v in overrides.items()}
    torch.manual_seed(args.seed)
    model = create_model(args.model, args.preset, **overrides).to(args.device)
    train = load_dataset("shapes3d", "train", train_size=args.train_size, seed=args.seed)
    test = load_dataset("shapes3d", "test", test_size=args.test_size)
    t0 = time.process_time()
    for i in range(len(train)):  # build (render) every item before the clock starts
        train[i]
    for i in range(len(test)):
        test[i]
    build_s = time.process_time() - t0

    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(args.seed))
    steps, start, wall = 0, time.process_time(), time.time()
    losses = []
    model.train()
    while time.process_time() - start < args.budget:
        for batch in loader:
            batch = {k: v.to(args.device) for k, v in batch.items()}
            out = model.loss(batch)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            steps += 1
            losses.append(out.loss.item())
            if time.process_time() - start >= args.budget:
                break
    train_cpu, train_wall = time.process_time() - start, time.time() - wall

    model.eval()
    stats: dict[str, torch.Tensor] = {}
    gen = torch.Generator().manual_seed(123)
    k = model.config.eval_views
    perms = [torch.randperm(k, generator=gen) for _ in range(args.permutations)]
    per_shape = {"eval": [], **{f"perm{j}": [] for j in range(len(perms))}}
    perm_inter = torch.zeros(len(perms), dtype=torch.float64)
    perm_union = torch.zeros(len(perms), dtype=torch.float64)
    with torch.no_grad():
        for batch in DataLoader(test, batch_size=20):
            batch = {k2: v.to(args.device) for k2, v in batch.items()}
            for key, value in model.evaluation_statistics(batch).items():
                stats[key] = stats.get(key, 0) + value
            order = model.eval_order(batch["views"].shape[1])[:k].to(args.device)
            target = batch["voxels"]
            per_shape["eval"].append(voxel_iou_per_shape(model.reconstruct(batch["views"][:, order]), target))
            for j, perm in enumerate(perms):
                prob = model.reconstruct(batch["views"][:, order[perm.to(args.device)]])
                per_shape[f"perm{j}"].append(voxel_iou_per_shape(prob, target))
                inter, union = voxel_iou_sums(prob, target)
                perm_inter[j] += inter.sum().cpu()
                perm_union[j] += union.sum().cpu()
    scores = model.reduce_statistics(stats)
    base = torch.cat(per_shape["eval"])
    changes = [float((torch.cat(per_shape[f"perm{j}"]) - base).abs().mean()) for j in range(len(perms))]
    result = {
        "model": args.model, "preset": args.preset, "overrides": overrides,
        "parameters": sum(p.numel() for p in model.parameters()),
        "budget_cpu_s": args.budget, "train_cpu_s": train_cpu, "train_wall_s": train_wall,
        "data_build_cpu_s": build_s, "steps": steps, "batch_size": args.batch_size, "lr": args.lr,
        "train_size": args.train_size, "test_size": args.test_size, "seed": args.seed,
        "loss_first_50": sum(losses[:50]) / max(1, len(losses[:50])),
        "loss_last_50": sum(losses[-50:]) / max(1, len(losses[-50:])),
        "test": scores, "class_names": list(test.class_names),
        "permutation_iou": [float(voxel_iou_pooled(i, u)) for i, u in zip(perm_inter, perm_union)],
        "permutation_mean_abs_iou_change": sum(changes) / max(1, len(changes)),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": args.threads, "device": args.device, "load_avg_end": os.getloadavg(),
                    "torch": torch.__version__},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k2: result[k2] for k2 in ("model", "steps", "train_cpu_s")} |
                     {"iou_per_views": scores["iou_per_views"],
                      "perm_change": result["permutation_mean_abs_iou_change"]}))


if __name__ == "__main__":
    main()
