"""voxscan (linear-recurrence scans) against voxcnn (3D PixelCNN) at equal CPU time on shapes3d,
issue 20's generator goal.

Each model (class-conditional, the ``shapes16`` or ``shapes32`` preset, parameters matched within
6%) trains in its own process with one torch thread for ``--budget`` seconds of *process* CPU time
(``time.process_time``: forward, backward and Adam steps; the shapes are built before the clock
starts), on shuffled epochs of shapes3d's 2,000 training shapes at ``--size``^3 (batch
``--batch-size``, Adam at ``--lr``). Then it reports:

- test NLL in bits per voxel, pooled over shapes3d's 200 fixed test shapes (``evaluation_statistics``,
  as ``rnnimg evaluate``), overall and per class;
- the shipped voxel judge (:mod:`rnnimg.judge3d`) on ``--samples-per-class`` class-conditional
  samples of each of the 8 classes (temperature 1): the share judged to be the class asked for,
  overall and per class, beside the judge's accuracy on the real test shapes at that size;
- the CPU seconds its sampler took, and a picture of the samples (one row per class) beside ``--out``.

``--pair`` runs both side by side (two processes started together, one thread each; run the whole
command under ``flock /work/timing.lock`` on the shared machine) and writes a markdown table with
the command, machine and date to ``--out`` (the raw numbers beside it as JSON).

    flock /work/timing.lock python benchmarks/bench_voxgen.py --pair --budget 300 --size 16 \\
        --out docs/bench/voxgen-16.md
    python benchmarks/bench_voxgen.py --pair --budget 5 --samples-per-class 1 --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from side_by_side import add_report_args, pictures_beside, report_one, run_side_by_side, write_report

MODELS = ("voxscan", "voxcnn")


def run_one(args) -> dict:
    import torch

    from rnnimg import create_model
    from rnnimg.data.shapes3d import SHAPE3D_CLASSES
    from rnnimg.judge3d import load_shape_judge, match_counts, shapes
    from rnnimg.tasks.volumes import volume_grid
    from rnnimg.viz import save_image

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = create_model(args.model, f"shapes{args.size}", num_classes=8,
                         class_names=SHAPE3D_CLASSES).to(device)
    x, y = shapes("train", args.size)
    x_test, y_test = shapes("test", args.size)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    steps, epochs, curve = 0, 0, []
    model.train()
    while time.process_time() - start_cpu < args.budget:
        for idx in torch.randperm(len(x), generator=gen).split(args.batch_size):
            if time.process_time() - start_cpu >= args.budget:
                break
            batch = {"voxels": x[idx].to(device), "label": y[idx].to(device)}
            opt.zero_grad(set_to_none=True)
            out = model.loss(batch)
            out.loss.backward()
            opt.step()
            steps += 1
            if steps % 50 == 0:
                curve.append((steps, round(time.process_time() - start_cpu, 1),
                              round(float(out.metrics["bits_per_voxel"]), 4)))
        else:
            epochs += 1
    train_cpu, train_wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    model.eval()
    total: dict = {}
    for idx in torch.arange(len(x_test)).split(50):
        batch = {"voxels": x_test[idx].to(device), "label": y_test[idx].to(device)}
        stats = model.evaluation_statistics(batch)
        for k, v in stats.items():
            total[k] = total.get(k, 0) + v
    nll = model.reduce_statistics(total)
    judge = load_shape_judge(args.judge, device)
    real = match_counts(judge.classify(x_test.to(device)).cpu(), y_test)
    label = torch.arange(8).repeat_interleave(args.samples_per_class)
    t0 = time.process_time()
    volumes = model.sample(len(label), label=label.to(device), generator=torch.Generator().manual_seed(1))
    sample_cpu = time.process_time() - t0
    judged = match_counts(judge.classify(volumes).cpu(), label)
    if args.picture:
        save_image(volume_grid(volumes.cpu(), 48, nrow=args.samples_per_class), args.picture)
    per_class = (judged["match_per_class"] / judged["judged_per_class"]).tolist()
    return dict(model=args.model, size=args.size, params=sum(p.numel() for p in model.parameters()),
                steps=steps, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                train_cpu_s=round(train_cpu, 1), train_wall_s=round(train_wall, 1),
                test_bits_per_voxel=nll["bits_per_voxel"],
                test_bits_per_class=nll["bits_per_voxel_per_class"],
                sample_accuracy=float(judged["match_per_class"].sum() / judged["judged_per_class"].sum()),
                sample_accuracy_per_class=per_class, samples=len(label),
                sample_occupancy=float(volumes.mean()), test_occupancy=float(x_test.mean()),
                judge_real_accuracy=float(real["match_per_class"].sum() / real["judged_per_class"].sum()),
                sample_cpu_s=round(sample_cpu, 1), curve=curve)


def table(results: list[dict]) -> str:
    from rnnimg.data.shapes3d import SHAPE3D_CLASSES

    head = ("model", "params", "train CPU s", "steps (epochs)", "test bits/voxel",
            "judge on samples", "judge on real test", "sampling CPU s")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        rows.append("| " + " | ".join([
            r["model"], f"{r['params']:,}", f"{r['train_cpu_s']:.0f}", f"{r['steps']} ({r['epochs']})",
            f"{r['test_bits_per_voxel']:.4f}", f"{r['sample_accuracy']:.3f} of {r['samples']}",
            f"{r['judge_real_accuracy']:.3f}", f"{r['sample_cpu_s']:.0f}"]) + " |")
    rows += ["", "Per class (" + ", ".join(SHAPE3D_CLASSES) + "):", ""]
    for r in results:
        bits = " ".join(f"{b:.3f}" for b in r["test_bits_per_class"])
        acc = " ".join(f"{a:.2f}" for a in r["sample_accuracy_per_class"])
        rows.append(f"- {r['model']}: test bits/voxel {bits}; judge on samples {acc}")
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="voxscan")
    p.add_argument("--pair", action="store_true", help="voxscan and voxcnn side by side")
    p.add_argument("--size", type=int, choices=(16, 32), default=16, help="voxel grid side")
    p.add_argument("--budget", type=float, default=300.0, help="process CPU seconds of training")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--samples-per-class", type=int, default=8)
    p.add_argument("--judge", default=None, help="judge weights (default: the shipped ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    add_report_args(p, pictures=True)
    args = p.parse_args(argv)
    if not args.pair:
        return report_one(run_one(args), args.json)
    out = Path(args.out or "voxgen-bench.md")
    results, started, where, command = run_side_by_side(__file__, argv, MODELS, out,
                                                        extra=pictures_beside(out))
    text = (f"# voxscan vs voxcnn at equal CPU time: shapes3d {args.size}^3, class-conditional\n\n"
            f"`{command}`\n\n{started}; {where}; one torch thread per process, both processes side "
            f"by side; 2,000 training shapes, 200 fixed test shapes, {args.samples_per_class} samples a "
            f"class judged by the shipped voxel judge\n\n{table(results)}\n")
    return write_report(out, text)


if __name__ == "__main__":
    sys.exit(main())
