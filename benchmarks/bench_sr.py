"""Super-resolution at x4 on the held-out photos (issue 19, item 2 goals): ``recursr`` (recursive,
shared weights) against its parameter-matched non-recurrent baseline ``espcn``, each trained for
the same budget of process CPU time, one thread each, started together as a side-by-side pair;
bicubic is the floor.

Training: preset ``photos-x4`` (colour, 96x96 targets, 24x24 sources), ``photos`` training crops
with ``corrupt=downscale, scale=4`` (PIL-bicubic antialiased downscale), Adam (the preset's lr),
batch 16, gradient norm clipped to 1, seed 0, until ``--budget`` CPU seconds are spent.
Scoring: the five whole test photos (astronaut, coffee, camera, gravel, coins), PSNR and SSIM on
the Y channel with 4 pixels shaved from each border (rnnimg.metrics.psnr_y_per_image /
ssim_y_per_image, equal to scikit-image's), per photo and averaged, for each model and bicubic.

    flock /work/timing.lock env PYTHONPATH=src python benchmarks/bench_sr.py --budget 300 \
        --out docs/bench/sr-x4.md

``--score-at 300 900`` also scores both models when their training reaches those CPU seconds (the
scoring's own CPU time is not counted), and ``--out`` is rewritten after every budget both models
have reached, so a long run that has to be stopped still leaves its shorter budgets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
from pathlib import Path

MODELS = ("recursr", "espcn")


def _train_and_score(name: str, args: dict, queue) -> None:
    import torch
    from torch.utils.data import default_collate

    from rnnimg import create_model
    from rnnimg.data import load_dataset
    from rnnimg.metrics import psnr_y_per_image, ssim_y_per_image
    from rnnimg.models.translate.superres import bicubic_upscale
    from rnnimg.recipes import training_defaults

    torch.set_num_threads(args["threads"])
    torch.manual_seed(args["seed"])
    device = torch.device(args["device"])
    model = create_model(name, args["preset"]).to(device)
    lr = training_defaults(name, args["preset"]).lr
    scale = model.config.scale
    train = load_dataset("photos", "train", image_size=model.config.image_size, corrupt="downscale",
                         scale=scale, train_size=10**9)
    opt = torch.optim.Adam(model.parameters(), lr)
    test = load_dataset("photos", "test", corrupt="downscale", scale=scale)
    params = sum(p.numel() for p in model.parameters())

    @torch.no_grad()
    def score() -> list[dict]:
        model.eval()
        rows = []
        for i, photo in enumerate(test.base.names):
            item = test[i]
            source, target = item["source"][None].to(device), item["target"][None].to(device)
            output = model.translate(source)
            bicubic = bicubic_upscale(source, scale)
            rows.append({"photo": photo, "psnr_y": float(psnr_y_per_image(output, target, scale)[0]),
                         "ssim_y": float(ssim_y_per_image(output, target, scale)[0]),
                         "bicubic_psnr_y": float(psnr_y_per_image(bicubic, target, scale)[0]),
                         "bicubic_ssim_y": float(ssim_y_per_image(bicubic, target, scale)[0])})
        model.train()
        return rows

    budgets = sorted({b for b in args["score_at"] if b < args["budget"]} | {args["budget"]})
    cpu, steps, index = 0.0, 0, 0  # cpu: process CPU seconds of training only
    for budget in budgets:
        while cpu < budget:
            start = time.process_time()
            batch = default_collate([train[index + i] for i in range(args["batch_size"])])
            index += args["batch_size"]
            out = model.loss({k: v.to(device) for k, v in batch.items()})
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            steps += 1
            cpu += time.process_time() - start
        queue.put((name, budget, {"steps": steps, "cpu_s": cpu, "params": params, "photos": score()}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=300.0, help="CPU seconds of training per model")
    ap.add_argument("--preset", default="photos-x4")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--score-at", type=float, nargs="*", default=[],
                    help="also score at these CPU seconds of training (below --budget)")
    ap.add_argument("--out", help="also write the markdown here (rewritten after every budget)")
    args = ap.parse_args()
    settings = vars(args) | {"batch_size": args.batch_size}
    budgets = sorted({b for b in args.score_at if b < args.budget} | {args.budget})
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_train_and_score, args=(name, settings, queue)) for name in MODELS]
    head = (f"`{shlex.join(['python', 'benchmarks/bench_sr.py', *sys.argv[1:]])}` on "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{datetime.date.today()} {time.strftime('%H:%M')} (load {os.getloadavg()[0]:.1f} at the start)")
    wall = time.perf_counter()
    for p in procs:
        p.start()
    results: dict[float, dict[str, dict]] = {}
    sections = []
    for _ in range(len(procs) * len(budgets)):
        name, budget, result = queue.get()
        results.setdefault(budget, {})[name] = result
        if len(results[budget]) == len(MODELS):
            done = (f"- reached at {time.strftime('%H:%M')}, {time.perf_counter() - wall:.0f} s wall after "
                    f"the start (load {os.getloadavg()[0]:.1f})")
            sections.append(f"### {budget:g} CPU s each\n\n{_table(results[budget])}\n{done}\n")
            print(sections[-1], flush=True)
            if args.out:
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(head + "\n\n" + "\n".join(sections))
                Path(args.out).with_suffix(".json").write_text(json.dumps(
                    {f"{b:g}": r for b, r in results.items() if len(r) == len(MODELS)}, indent=1))
    for p in procs:
        p.join()
    return 0


def _table(results: dict[str, dict]) -> str:
    """The markdown table of one budget: per photo and mean, bicubic and each model."""
    photos = [r["photo"] for r in results[MODELS[0]]["photos"]]
    header = " | ".join(f"{m} PSNR-Y / SSIM-Y" for m in MODELS)
    lines = [f"| photo | bicubic PSNR-Y / SSIM-Y | {header} |", "|---|---|" + "---|" * len(MODELS)]

    def cell(row, key=""):
        return f"{row[key + 'psnr_y']:.2f} / {row[key + 'ssim_y']:.4f}"

    means = {m: {k: sum(r[k] for r in results[m]["photos"]) / len(photos)
                 for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y")} for m in MODELS}
    for i, photo in enumerate(photos):
        lines.append(f"| {photo} | {cell(results[MODELS[0]]['photos'][i], 'bicubic_')} | "
                     + " | ".join(cell(results[m]["photos"][i]) for m in MODELS) + " |")
    lines.append(f"| **mean** | {cell(means[MODELS[0]], 'bicubic_')} | "
                 + " | ".join(cell(means[m]) for m in MODELS) + " |")
    lines.append("")
    for m in MODELS:
        r = results[m]
        gain = means[m]["psnr_y"] - means[m]["bicubic_psnr_y"]
        lines.append(f"- {m}: {r['params']:,} parameters, {r['steps']} steps in {r['cpu_s']:.0f} CPU s; "
                     f"PSNR-Y gain over bicubic {gain:+.2f} dB")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
