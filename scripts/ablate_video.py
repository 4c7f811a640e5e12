"""Issue 12, item 1: video prediction quality per unit of compute (a quality study, so it lives in
scripts/: `scripts/gpu_check.sh` runs every benchmarks/ script with its defaults, and this one
trains eight variants for minutes each).

Each variant is one factor changed from the model's default (sampling, output head, loss), or a
combination. Every variant trains through the library's own trainer (``rnnimg.train.train``) with
the same seed and the same training clips (see :class:`SameData`), until its budget of PROCESS
CPU time is spent (``time.process_time()``, counted from the first training batch, validation
excluded: fair on a contended machine, where wall time depends on the other processes). The
FINAL weights are then scored with the library's evaluation (``rnnimg.train.evaluate``) on the
same fixed Moving MNIST test clips (held-out test digits; no checkpoint is chosen on them), next
to two model-free baselines on those clips: all-black frames and the last context frame repeated.

Setting: the shipped weights' size (64x64 Moving MNIST, 10 -> 10, patch 8, 2 layers x 32, kernel 3,
batch 16, lr 2e-3), 4,000 training clips, 1,000 test clips.

    python scripts/ablate_video.py --model convlstm --budget 300 --out ablation.md
    python scripts/ablate_video.py --model convlstm --variants baseline linear
    python scripts/ablate_video.py --model convlstm --combo best scheduled output=linear

Each variant's run and its result (``ablation.json``) go to ``--runs/MODEL-VARIANT[-sSEED]``; a
variant whose result is already there is not run again, so several processes can each run a subset
and any of them (or ``--table-only``) writes the table of everything found so far.

Schedules scaled to the budget: with N = budget / step_cost the steps the budget allows
(``--step-cost``, CPU-seconds per step measured with 1 thread: convlstm 0.26, predrnn 0.50),
``scheduled`` uses decay = 1 / (0.6 N), so eta reaches 0 at 60% of the run; ``reverse`` keeps the
fractions of PredRNN-V2's official 80,000-iteration run (start 25,000, end 50,000, alpha 5,000):
start = 0.3125 N, end = 0.625 N, alpha = 0.0625 N. ``scheduled-openstl`` is OpenSTL's decay 2e-5
(eta stays near 1 over a short budget: nearly teacher-forced).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import lightning as L  # noqa: E402

SHIPPED_SIZE = dict(frame_size=64, patch=8, context=10, horizon=10, hidden_size=32, num_layers=2,
                    kernel_size=3)
DATA_OPTIONS = dict(train_clips=4000, val_clips=64, test_clips=1000)
STEP_COST = {"convlstm": 0.26, "predrnn": 0.50}  # CPU-s per step, 1 thread, this setting


def variants(model: str, budget: float, step_cost: float) -> dict[str, dict]:
    """Variant name -> config overrides over the shipped size (one factor at a time)."""
    n = budget / step_cost  # steps the budget allows
    scheduled = dict(sampling="scheduled", sampling_decay=float(f"{1 / (0.6 * n):.3g}"))
    reverse = dict(sampling="reverse", reverse_start=round(0.3125 * n), reverse_end=round(0.625 * n),
                   reverse_alpha=float(round(0.0625 * n)))
    if model == "convlstm":
        return {"baseline": dict(sampling="none", output="clamp", loss="mse"),
                "scheduled-openstl": dict(sampling="scheduled", sampling_decay=2e-5),
                "scheduled": scheduled, "reverse": reverse,
                "linear": dict(output="linear"), "sigmoid": dict(output="sigmoid"),
                "mse+l1": dict(loss="mse+l1")}
    return {"none": dict(sampling="none"), "scheduled": scheduled, "reverse": reverse,
            "scheduled-openstl": dict(sampling="scheduled", sampling_decay=2e-5)}


class CPUBudget(L.Callback):
    """Stop training once the process has spent ``budget`` CPU-seconds on training
    (``time.process_time()``: every thread of this process, data loading included, validation
    excluded) since the first training batch."""

    def __init__(self, budget: float) -> None:
        self.budget, self.spent, self.start, self.paused_at = budget, 0.0, None, None
        self.steps = 0

    def _now(self) -> float:
        return time.process_time()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.start is None:
            self.start = self._now()

    def on_validation_start(self, trainer, pl_module) -> None:
        self.paused_at = self._now()

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.paused_at is not None and self.start is not None:
            self.start += self._now() - self.paused_at  # validation does not count
        self.paused_at = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.spent = self._now() - self.start
        self.steps = trainer.global_step
        if self.spent >= self.budget:
            trainer.should_stop = True


class SameData(L.Callback):
    """Every variant trains on the same clips. The training clips are drawn from torch's global
    RNG when a batch is fetched, and so is the scheduled-sampling mask inside the training step;
    without this, a variant that draws masks would see different clips from then on. Around each
    training step (batch fetches happen outside it) the global RNG is switched to a generator
    seeded by (seed, step) and restored after, so the masks are reproducible and the data stream
    is the one a variant that draws nothing sees."""

    def __init__(self, seed: int) -> None:
        self.seed, self.saved = seed, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.saved = torch.get_rng_state()
        torch.manual_seed(1_000_003 * (self.seed + 1) + trainer.global_step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        torch.set_rng_state(self.saved)


def baselines(clips_loader, context: int, horizon: int) -> dict[str, dict[str, float]]:
    """MSE/MAE/PSNR/SSIM of all-black frames and of the last context frame repeated."""
    from rnnimg.metrics import mae_per_frame, mse_per_frame, psnr, ssim

    sums: dict[str, dict[str, float]] = {"all-black frames": {}, "last context frame repeated": {}}
    count = 0
    for batch in clips_loader:
        frames = batch["frames"][:, :context + horizon].float()
        target = frames[:, context:]
        guesses = {"all-black frames": torch.zeros_like(target),
                   "last context frame repeated": frames[:, context - 1:context].expand_as(target)}
        for name, guess in guesses.items():
            for key, fn in (("mse", mse_per_frame), ("mae", mae_per_frame), ("psnr", psnr),
                            ("ssim", ssim)):
                sums[name][key] = sums[name].get(key, 0.0) + float(fn(guess, target).mean()) * len(frames)
        count += len(frames)
    return {name: {k: v / count for k, v in values.items()} for name, values in sums.items()}


def run_variant(model: str, name: str, overrides: dict, args, run_dir: Path) -> dict:
    from rnnimg.train import TrainSettings, evaluate, train

    budget = CPUBudget(args.budget)
    accelerator = "cpu" if args.device == "cpu" else "gpu"
    settings = TrainSettings(
        model=model, preset="debug", data="moving-mnist", overrides={**SHIPPED_SIZE, **overrides},
        data_options=DATA_OPTIONS, out=str(run_dir), max_steps=10**6, batch_size=16, lr=2e-3,
        seed=args.seed, val_batches=4, ckpt_every_n_steps=0, sample_every_n_steps=0,
        accelerator=accelerator, devices=1, progress=False, overwrite=True)
    wall = time.perf_counter()
    train(settings, callbacks=[budget, SameData(args.seed)])
    wall = time.perf_counter() - wall
    result = evaluate(run_dir, split="test", batch_size=50, device=args.device, progress=False)
    metrics = {k: result["metrics"][k] for k in ("mse", "mae", "ssim", "psnr")}
    return {"model": model, "variant": name, "overrides": overrides, "seed": args.seed,
            "budget_cpu_s": args.budget, "cpu_s": budget.spent, "steps": budget.steps,
            "train_wall_s": wall, "threads": args.threads, "device": args.device,
            "num_test_clips": result["num_items"], "metrics": metrics}


def write_table(runs: Path, out: Path | None, command: str) -> str:
    results = [json.loads(p.read_text()) for p in sorted(runs.glob("*/ablation.json"))]
    base_path = runs / "baselines.json"
    lines = [f"Command: `{command}`", "",
             "| model | variant | overrides | seed | steps | CPU-s | test MSE/frame | MAE | SSIM | PSNR |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["model"], r["metrics"]["mse"])):
        m = r["metrics"]
        sets = ", ".join(f"{k}={v}" for k, v in r["overrides"].items())
        lines.append(f"| {r['model']} | {r['variant']} | {sets} | {r['seed']} | {r['steps']} | "
                     f"{r['cpu_s']:.0f} | {m['mse']:.1f} | {m['mae']:.1f} | {m['ssim']:.3f} | "
                     f"{m['psnr']:.2f} |")
    if base_path.is_file():
        for name, m in json.loads(base_path.read_text()).items():
            lines.append(f"| - | {name} | | | | | {m['mse']:.1f} | {m['mae']:.1f} | "
                         f"{m['ssim']:.3f} | {m['psnr']:.2f} |")
    text = "\n".join(lines) + "\n"
    if out is not None:
        out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=tuple(STEP_COST), default="convlstm")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (training and evaluation)")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="process CPU-seconds of training per variant")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-cost", type=float, default=None,
                        help="CPU-s per step used to scale the schedules (default: measured value)")
    parser.add_argument("--variants", nargs="*", default=None, help="subset (default: all)")
    parser.add_argument("--combo", nargs="+", action="append", default=[],
                        metavar=("NAME BASE", "KEY=VALUE"),
                        help="an extra variant NAME: BASE variant's overrides plus KEY=VALUE ones")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablate_video")
    parser.add_argument("--out", type=Path, default=None, help="markdown table to write")
    parser.add_argument("--table-only", action="store_true", help="only write the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    command = "python scripts/ablate_video.py " + " ".join(sys.argv[1:] if argv is None else argv)

    table = variants(args.model, args.budget, args.step_cost or STEP_COST[args.model])
    for combo in args.combo:
        name, base, *pairs = combo
        extra = {}
        for pair in pairs:
            key, value = pair.split("=", 1)
            try:
                extra[key] = json.loads(value)
            except json.JSONDecodeError:
                extra[key] = value
        table[name] = {**table[base], **extra}
    chosen = args.variants if args.variants is not None else list(table)
    chosen += [c[0] for c in args.combo if c[0] not in chosen]
    for name in chosen:
        if name not in table:
            parser.error(f"unknown variant {name!r}; choose from {', '.join(table)}")
    args.runs.mkdir(parents=True, exist_ok=True)

    if not args.table_only:
        base_path = args.runs / "baselines.json"
        if not base_path.is_file():
            from rnnimg.data import load_dataset

            options = {"frames": 20, "frame_size": 64, "channels": 1, **DATA_OPTIONS}
            loader = torch.utils.data.DataLoader(load_dataset("moving-mnist", "test", **options),
                                                 batch_size=50)
            base_path.write_text(json.dumps(baselines(loader, 10, 10), indent=1))
        for name in chosen:
            suffix = f"-s{args.seed}" if args.seed else ""
            run_dir = args.runs / f"{args.model}-{name}{suffix}"
            if (run_dir / "ablation.json").is_file():
                print(f"{args.model} {name}: done before, kept", flush=True)
                continue
            result = run_variant(args.model, name, table[name], args, run_dir)
            (run_dir / "ablation.json").write_text(json.dumps(result, indent=1))
            print(json.dumps(result), flush=True)
    print(write_table(args.runs, args.out, command))


if __name__ == "__main__":
    main()
