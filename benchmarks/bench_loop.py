"""The training loop's own cost: ``rnnimg.train.train(TrainSettings(...))`` against a bare loop.

Both loops train the same model (same seed, so the same weights), on the same datasets and loaders
that ``train()`` builds (``build_datasets`` + ``make_loaders``: same items, same order), at the
same batch size, with Adam at the same learning rate and the same gradient-norm clipping. The bare
loop is what a step costs with nothing around it::

    batch = next(loader)                 # (moved to the device)
    model.set_training_step(step)
    loss = model.loss(batch).loss
    opt.zero_grad(set_to_none=True); loss.backward()
    clip_grad_norm_(params, grad_clip); opt.step()

The real loop runs ``train()`` with the default settings (logging every 10 steps, progress bar,
checkpoints and previews every 200 steps, 20 validation batches per epoch), or a variant.

Timing: steady state only, and interleaved finely because the machine is shared. The bare loop
runs inside the real run's process, in bursts: at every ``--chunk``-th step of the timed window
the real loop pauses (in a callback, before its step) while the bare loop takes ``--chunk``
steps, so the two alternate every few hundred milliseconds and a slow spell of the machine hits
both; the bursts' time is taken out of the real loop's window. The window runs from the start of
step ``--warmup`` to the start of step ``--warmup + --steps`` (set-up, warm-up and the final
checkpoint fall outside; a window of a multiple of 200 steps holds its share of the periodic
checkpoints and previews). On the CPU the clock is the process's CPU time
(``time.process_time``; with ``--num-workers 0`` every cost is in this process), on CUDA the wall
clock after a synchronize. ``--reps`` runs; the overhead reported is the median over runs.

Breakdown: inside the window the real loop's pieces are timed by wrapping them (a few
microseconds a step): ``self.log`` and Lightning's logger connector, the loggers' writes, the
progress bar, the checkpoint and preview callbacks, validation, the NaN checks; and the bare
loop's batch fetching, which both loops pay.
Validation does not fall inside a window unless an epoch ends there; its cost per run is measured
on its own (``--val-runs``) and amortized over the default epoch length.

    PYTHONPATH=src python benchmarks/bench_loop.py --sizes convlstm/debug convlstm/shipped --reps 3
    PYTHONPATH=src python benchmarks/bench_loop.py --device cuda --sizes convlstm/mmnist \
        --mmnist-warmup 20 --mmnist-steps 200
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import functools
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from rnnimg.models.registry import create_model
from rnnimg.recipes import get_recipe
from rnnimg.train import TrainSettings, train
from rnnimg.train.data import build_datasets, make_loaders

DEFAULTS = TrainSettings("convlstm")  # the default cadences, read from the dataclass


def sizes() -> dict[str, dict]:
    """Named sizes: (model, TrainSettings fields). ``shipped`` is each model's shipped-weights run
    (64x64 Moving MNIST, patch 8, 2 x 32, kernel 3, batch 16), read from its pretrained recipe."""
    out = {}
    for name in ("convlstm", "predrnn"):
        out[f"{name}/debug"] = dict(model=name, preset="debug", data="moving-mnist")
        shipped = get_recipe(f"{name}-mmnist", kind="pretrained").settings()
        shipped.pop("max_steps", None)
        out[f"{name}/shipped"] = shipped
        out[f"{name}/mmnist"] = dict(model=name, preset="mmnist", data="moving-mnist")
    return out


VARIANTS = {
    "default": {},
    # Everything optional off: what the loop costs with nothing but a log row every 10 steps.
    "lean": dict(progress=False, ckpt_every_n_steps=0, sample_every_n_steps=0, val_batches=0),
    "log1": dict(log_every_n_steps=1),
    "workers2": dict(num_workers=2),
}


class Clock:
    """CPU time of this process on the CPU; wall time after a synchronize on CUDA."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __call__(self, sync: bool = True) -> float:
        if self.cuda:
            if sync:
                torch.cuda.synchronize()
            return time.perf_counter()
        return time.process_time()


class Window(L.Callback):
    """Reads the clock at the start of steps ``start`` and ``stop`` and, in between, times the
    loop's pieces by wrapping them (host time on CUDA: no synchronize inside the wrappers)."""

    def __init__(self, start: int, stop: int, clock: Clock, bare: BareLoop | None = None,
                 chunk: int = 20) -> None:
        self.start, self.stop, self.clock = start, stop, clock
        self.bare, self.chunk = bare, chunk
        self.bare_seconds = self.bare_fetch = 0.0
        self.bare_steps = 0
        self.t0 = self.t1 = None
        self.inside = False
        self.active: str | None = None
        self.pieces: dict[str, float] = {}
        self.validations: list[float] = []

    def _wrap(self, owner, attr: str, bucket: str) -> None:
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if not self.inside or self.active:  # a piece inside another counts once, outermost
                return fn(*args, **kwargs)
            self.active = bucket
            t = self.clock(sync=False)
            try:
                return fn(*args, **kwargs)
            finally:
                self.pieces[bucket] = self.pieces.get(bucket, 0.0) + self.clock(sync=False) - t
                self.active = None

        setattr(owner, attr, timed)

    def on_fit_start(self, trainer, pl_module) -> None:
        from lightning.pytorch.callbacks import ModelCheckpoint
        from lightning.pytorch.callbacks.progress import ProgressBar

        for cb in trainer.callbacks:
            if cb is self:
                continue
            bucket = ("progress bar" if isinstance(cb, ProgressBar) else
                      "checkpoints" if isinstance(cb, ModelCheckpoint) else
                      "previews" if type(cb).__name__ == "PreviewCallback" else
                      "other callbacks")
            for hook in ("on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step",
                         "on_after_backward", "on_before_backward", "on_before_zero_grad"):
                if getattr(type(cb), hook) is not getattr(L.Callback, hook):
                    self._wrap(cb, hook, bucket)
        lc = trainer._logger_connector
        for attr in ("update_train_step_metrics", "on_batch_end", "on_batch_start"):
            self._wrap(lc, attr, "logging: Lightning's result collection")
        self._wrap(trainer.fit_loop.epoch_loop, "_save_loggers_on_train_batch_end",
                   "logging: metrics.csv / TensorBoard writes")
        for attr in ("_log_metrics", "_log_step_metrics"):
            self._wrap(pl_module, attr, "logging: self.log")
        for attr in ("_check_loss", "_check_grads", "_watch", "check_finite",
                     "on_before_optimizer_step"):
            self._wrap(pl_module, attr, "NaN/Inf checks")
        val_loop = trainer.fit_loop.epoch_loop.val_loop
        run = val_loop.run

        def timed_validation(*args, **kwargs):
            t = self.clock()
            try:
                return run(*args, **kwargs)
            finally:
                self.validations.append(self.clock() - t)

        val_loop.run = timed_validation

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self.start:
            if self.bare is not None:
                self.bare.run(min(self.start, 20), self.clock)  # the bare loop's warm-up
            self.t0, self.inside = self.clock(), True
        elif step == self.stop:
            self.t1, self.inside = self.clock(), False
        if self.bare is not None and self.start <= step < self.stop and \
                (step - self.start) % self.chunk == 0:
            self.inside = False
            seconds, fetch = self.bare.run(min(self.chunk, self.stop - step), self.clock)
            self.bare_seconds += seconds
            self.bare_fetch += fetch
            self.bare_steps += min(self.chunk, self.stop - step)
            self.inside = True

    def seconds_per_step(self) -> float:
        """The real loop's, bursts of the bare loop taken out."""
        return (self.t1 - self.t0 - self.bare_seconds) / (self.stop - self.start)


def loop_run(settings: TrainSettings, warmup: int, steps: int, clock: Clock,
             bare: BareLoop | None = None, chunk: int = 20) -> Window:
    window = Window(warmup, warmup + steps, clock, bare, chunk)
    s = dataclasses.replace(settings, max_steps=warmup + steps + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        train(s, callbacks=[window])
    assert window.t1 is not None, "the window did not close"
    return window


class BareLoop:
    """The bare loop over the model, data, batch size, Adam and clipping that ``train()`` would
    build from ``settings`` (same seed: same initial weights; same loaders: same batches)."""

    def __init__(self, settings: TrainSettings, device: torch.device) -> None:
        s = settings.resolved()
        L.seed_everything(s.seed, workers=True, verbose=False)
        self.model = create_model(s.model, s.preset, **s.overrides)
        train_set, _ = build_datasets(s, self.model)
        self.loader, _, _ = make_loaders(train_set, None, s.batch_size, s.seed, s.num_workers,
                                         pin_memory=device.type == "cuda")
        self.model.to(device).train()
        self.params = list(self.model.parameters())
        self.opt = torch.optim.Adam(self.params, lr=s.lr, weight_decay=s.weight_decay)
        self.grad_clip, self.device = s.grad_clip, device
        self.batches = self._batches()
        self.step = 0

    def _batches(self):
        while True:
            yield from self.loader

    def run(self, steps: int, clock: Clock) -> tuple[float, float]:
        """Take ``steps`` steps: (seconds, of which fetching the batches)."""
        fetch = 0.0
        t0 = clock()
        with torch.enable_grad():
            for _ in range(steps):
                f = clock(sync=False)
                batch = {k: v.to(self.device, non_blocking=True) for k, v in next(self.batches).items()}
                fetch += clock(sync=False) - f
                self.model.set_training_step(self.step)
                loss = self.model.loss(batch).loss
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                if self.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
                self.opt.step()
                self.step += 1
        return clock() - t0, fetch


def measure(size: str, variant: str, a, device: torch.device, clock: Clock) -> dict:
    spec = sizes()[size]
    kind = size.split("/")[1]
    warmup, steps = {"mmnist": (a.mmnist_warmup, a.mmnist_steps),
                     "shipped": (a.shipped_warmup, a.shipped_steps)}.get(kind, (a.warmup, a.steps))
    bare, loop, fetch, windows = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        settings = TrainSettings(**{**spec, "progress": a.progress, **VARIANTS[variant],
                                    "out": str(Path(tmp) / "run"), "overwrite": True,
                                    "accelerator": device.type, "devices": 1})
        for rep in range(a.reps):
            w = loop_run(settings, warmup, steps, clock, BareLoop(settings, device), a.chunk)
            b, f = w.bare_seconds / w.bare_steps, w.bare_fetch / w.bare_steps
            bare.append(b)
            fetch.append(f)
            loop.append(w.seconds_per_step())
            windows.append(w)
            print(f"  {size} {variant} rep {rep}: bare {1 / b:.2f} steps/s, loop "
                  f"{1 / loop[-1]:.2f} steps/s ({loop[-1] / b - 1:+.1%})", flush=True)
    pieces = {k: statistics.median(w.pieces.get(k, 0.0) for w in windows) / steps
              for k in sorted({k for w in windows for k in w.pieces})}
    overheads = [lo / b - 1 for lo, b in zip(loop, bare)]
    return {"size": size, "variant": variant, "bare": statistics.median(bare),
            "loop": statistics.median(loop), "fetch": statistics.median(fetch),
            "overheads": overheads, "overhead": statistics.median(overheads), "pieces": pieces,
            "batch_size": settings.resolved().batch_size, "steps": steps, "warmup": warmup}


def validation_cost(size: str, a, device: torch.device, clock: Clock) -> dict:
    """One validation run (``val_batches`` batches) inside the real loop, timed by making an
    epoch end inside the window, and the default epoch length it is amortized over."""
    spec = sizes()[size]
    default = TrainSettings(**spec).resolved()
    model = create_model(default.model, default.preset, **default.overrides)
    train_set, _ = build_datasets(default, model)
    epoch = len(train_set) // default.batch_size
    short = max(8, a.warmup // 2)  # a short epoch: validation runs inside the window
    options = {**spec.get("data_options", {}), "train_clips": short * default.batch_size}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        s = TrainSettings(**{**spec, "data_options": options}, out=str(Path(tmp) / "run"),
                          overwrite=True, accelerator=device.type, devices=1, progress=False,
                          sample_every_n_steps=0, ckpt_every_n_steps=0)
        for _ in range(a.val_runs):
            runs += loop_run(s, short, short, clock).validations
    return {"size": size, "seconds": statistics.median(runs), "epoch_steps": epoch,
            "val_batches": default.val_batches, "runs": len(runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["convlstm/debug", "convlstm/shipped"],
                   help=f"of {', '.join(sizes())} (default: convlstm/debug convlstm/shipped)")
    p.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS))
    p.add_argument("--device", default="cpu", help="cpu | cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--warmup", type=int, default=50, help="untimed steps first (default: 50)")
    p.add_argument("--steps", type=int, default=400,
                   help="timed steps; a multiple of the 200-step cadences (default: 400)")
    p.add_argument("--shipped-warmup", type=int, default=10)
    p.add_argument("--shipped-steps", type=int, default=200)
    p.add_argument("--mmnist-warmup", type=int, default=2)
    p.add_argument("--mmnist-steps", type=int, default=5)
    p.add_argument("--reps", type=int, default=3, help="runs, medians (default: 3)")
    p.add_argument("--chunk", type=int, default=20,
                   help="steps of each loop between switches (default: 20)")
    p.add_argument("--val-runs", type=int, default=1, help="runs timing validation (0: skip)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="the progress bar in the default variant (default: on, as train's)")
    p.add_argument("--out", default="", help="also write the markdown tables here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    clock = Clock(device)
    from rnnimg.cli.common import quiet_libraries

    quiet_libraries()
    results = []
    for size in a.sizes:
        for variant in a.variants:
            results.append(measure(size, variant, a, device, clock))
    vals = [validation_cost(size, a, device, clock) for size in a.sizes
            if a.val_runs and not size.endswith("mmnist")]

    clock_name = "CPU time of the process" if device.type == "cpu" else "wall time, synchronized"
    lines = ["| size | variant | batch | window (steps) | bare steps/s | loop steps/s | overhead: "
             "median of the pairs (each pair) |", "|---|---|---:|---:|---:|---:|---|"]
    for r in results:
        reps = ", ".join(f"{o:+.1%}" for o in r["overheads"])
        lines.append(f"| {r['size']} | {r['variant']} | {r['batch_size']} | {r['steps']} | "
                     f"{1 / r['bare']:.2f} | {1 / r['loop']:.2f} | {r['overhead']:+.1%} ({reps}) |")
    lines += ["", "Breakdown inside the window, ms per step (median over reps); 'data' is the bare "
              "loop's fetch, part of both loops:", "",
              "| size | variant | bare step | data | " + " | ".join(
                  k := sorted({k for r in results for k in r["pieces"]})) + " | sum of the pieces "
              "| rest (Lightning's hooks and loops, and noise) |",
              "|---|---|---:|---:|" + "---:|" * (len(k) + 2)]
    for r in results:
        total = sum(r["pieces"].values())
        rest = r["loop"] - r["bare"] - total
        lines.append(f"| {r['size']} | {r['variant']} | {1e3 * r['bare']:.2f} | "
                     f"{1e3 * r['fetch']:.2f} | " + " | ".join(
                         f"{1e3 * r['pieces'].get(x, 0.0):.3f}" for x in k) +
                     f" | {1e3 * total:.2f} ({total / r['bare']:.1%}) | {1e3 * rest:+.2f} |")
    if vals:
        lines += ["", "| size | one validation run (val_batches) | default epoch | amortized "
                  "per step | share of a bare step |", "|---|---:|---:|---:|---:|"]
        for v in vals:
            bare = next(r["bare"] for r in results if r["size"] == v["size"])
            per = v["seconds"] / v["epoch_steps"]
            lines.append(f"| {v['size']} | {v['seconds']:.2f} s ({v['val_batches']}) | "
                         f"{v['epoch_steps']} steps | {1e3 * per:.2f} ms | {per / bare:.1%} |")
    table = "\n".join(lines)
    command = "PYTHONPATH=src python benchmarks/bench_loop.py " + shlex.join(
        sys.argv[1:] if argv is None else argv)
    header = (f"{command}\n{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"device {a.device}, {torch.get_num_threads()} thread(s), clock: {clock_name}, "
              f"{a.warmup} warm-up + {a.steps} timed steps, torch {torch.__version__}, "
              f"lightning {L.__version__}\n")
    print("\n" + header + "\n" + table)
    if a.out:
        Path(a.out).write_text(header + "\n" + table + "\n")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
