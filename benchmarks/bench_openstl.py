"""Issue 18, video: does the scan predictor (``convscan``) pay, against rnnimg's ``convlstm`` and
OpenSTL's own ConvLSTM network, on the same clips at the same budget?

Three modes, each writing JSON per run and a markdown table to ``--out``:

- ``speed``: training clips per CPU-second (``loss`` + backward + Adam step; process CPU time,
  median of ``--steps`` after one warm-up) on random clips of ``--frames`` frames, for each
  ``--models`` entry. ``NAME:FIELD=VALUE,...`` sets config fields, e.g.
  ``convscan:hidden_size=126`` for the parameter count of ``convlstm`` 2 x 64.
- ``quality``: train each model until the process has spent ``--budget`` CPU-seconds on
  training (``time.process_time()``; scoring excluded), then score the final weights on
  ``--test-clips`` fixed Moving MNIST test clips (held-out digits), predicting ``--horizon``
  frames from ``--context`` with its own predictions fed back: MSE and MAE per frame (summed over
  pixels, OpenSTL's convention), SSIM (data range 1) and PSNR, each per predicted frame.
  Every model sees the same training clips: batch k is rendered from a generator seeded with
  (``--seed``, k), whatever the model draws from torch's RNG.
- ``table``: the table of every result JSON found under ``--runs``.

Models: any registered rnnimg predictor (``convscan``, ``convlstm``, ...), and ``openstl``:
OpenSTL's ``ConvLSTM_Model`` (openstl/models/convlstm_model.py with its cell from
openstl/modules/convlstm_modules.py), imported from a local checkout given by ``--openstl PATH``
(bypassing the package ``__init__`` files, which need OpenSTL's other dependencies). It is
trained as OpenSTL's ConvLSTM method trains it: patches folded into channels, the MSE of all
next-frame predictions, scheduled sampling with eta = max(0, 1 - 2e-5 * iteration) after the
context, a linear head fed back unclipped; at test time its own predictions after the context,
clipped to [0, 1] for scoring. Without a checkout the ``openstl`` rows are skipped with a message.
No OpenSTL code is copied here.

    PYTHONPATH=src python benchmarks/bench_openstl.py speed --models convlstm convscan --frames 20
    PYTHONPATH=src python benchmarks/bench_openstl.py quality --models convscan openstl \\
        --openstl /work/openstl --budget 240 --test-clips 500
    PYTHONPATH=src python benchmarks/bench_openstl.py quality --models convscan convlstm \\
        --context 10 --horizon 90 --budget 240 --late 50 90 --tag long

Run two ``quality`` processes side by side (one model each, ``--threads 1``) under one flock.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rnnimg import create_model  # noqa: E402
from rnnimg.data import load_dataset  # noqa: E402
from rnnimg.data.moving_mnist import digit_pool, moving_mnist_clips  # noqa: E402
from rnnimg.data.transforms import resize  # noqa: E402
from rnnimg.metrics import mae_per_frame, mse_per_frame, psnr, ssim  # noqa: E402
from rnnimg.nn import space_to_depth  # noqa: E402


def parse_model(spec: str) -> tuple[str, dict]:
    """"NAME" or "NAME:FIELD=VALUE,FIELD=VALUE" -> (name, overrides)."""
    name, _, rest = spec.partition(":")
    overrides = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


# --- OpenSTL's network -------------------------------------------------------------------------

def load_openstl_convlstm(path: str | None):
    """OpenSTL's ConvLSTM_Model class from the checkout at ``path``, or None with a message."""
    root = Path(path) if path else None
    model_file = root / "openstl" / "models" / "convlstm_model.py" if root else None
    cell_file = root / "openstl" / "modules" / "convlstm_modules.py" if root else None
    if root is None or not model_file.is_file() or not cell_file.is_file():
        print(f"skipping openstl: no OpenSTL checkout at {path!r} (give --openstl PATH to a checkout "
              "of github.com/chengtan9907/OpenSTL)")
        return None

    def load(name: str, file: Path):
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    cells = load("openstl_convlstm_modules", cell_file)
    # convlstm_model.py says `from openstl.modules import ConvLSTMCell`: give it just that
    sys.modules.setdefault("openstl", types.ModuleType("openstl"))
    stub = types.ModuleType("openstl.modules")
    stub.ConvLSTMCell = cells.ConvLSTMCell
    saved = sys.modules.get("openstl.modules")
    sys.modules["openstl.modules"] = stub
    try:
        return load("openstl_convlstm_model", model_file).ConvLSTM_Model
    finally:
        if saved is None:
            del sys.modules["openstl.modules"]
        else:
            sys.modules["openstl.modules"] = saved


class OpenSTLConvLSTM(torch.nn.Module):
    """OpenSTL's network behind rnnimg's loss / predict calls, trained as OpenSTL's method does."""

    def __init__(self, network_class, frame_size: int, context: int, horizon: int, patch: int,
                 hidden_size: int, num_layers: int, kernel_size: int) -> None:
        super().__init__()
        configs = types.SimpleNamespace(
            in_shape=(context + horizon, 1, frame_size, frame_size), patch_size=patch,
            filter_size=kernel_size, stride=1, layer_norm=0, pre_seq_length=context,
            aft_seq_length=horizon, reverse_scheduled_sampling=0)
        self.net = network_class(num_layers, [hidden_size] * num_layers, configs)
        self.context, self.horizon, self.patch = context, horizon, patch
        self.iteration = 0

    def _patches(self, frames):  # (B, T, 1, H, W) -> (B, T, h, w, p*p) channels last, OpenSTL's layout
        b, t = frames.shape[:2]
        x = space_to_depth(frames.flatten(0, 1), self.patch)
        return x.unflatten(0, (b, t)).permute(0, 1, 3, 4, 2).contiguous()

    def _frames(self, patches):  # inverse of _patches
        b, t = patches.shape[:2]
        x = patches.permute(0, 1, 4, 2, 3).flatten(0, 1)
        return F.pixel_shuffle(x, self.patch).unflatten(0, (b, t))

    def set_training_step(self, step: int) -> None:
        self.iteration = step

    def loss(self, batch):
        frames = batch["frames"]
        patches = self._patches(frames)
        b, t = patches.shape[:2]
        eta = max(0.0, 1.0 - 2e-5 * self.iteration)  # OpenSTL's schedule_sampling, stop iter 50,000
        true = (torch.rand(b, t - self.context - 1, device=frames.device) < eta).float()
        mask = true[:, :, None, None, None].expand(-1, -1, *patches.shape[2:])
        _, loss = self.net(patches, mask)
        return types.SimpleNamespace(loss=loss)

    @torch.no_grad()
    def predict(self, context, horizon):
        b = context.shape[0]
        frames = torch.cat([context, context.new_zeros(b, horizon, *context.shape[2:])], 1)
        patches = self._patches(frames)
        mask = patches.new_zeros(b, frames.shape[1] - self.context - 1, *patches.shape[2:])
        trained, self.net.configs.aft_seq_length = self.net.configs.aft_seq_length, horizon  # its loop length
        try:
            next_frames, _ = self.net(patches, mask, return_loss=False)
        finally:
            self.net.configs.aft_seq_length = trained
        return self._frames(next_frames)[:, self.context - 1:].clamp(0, 1)


def build(spec: str, args) -> tuple[torch.nn.Module, dict]:
    name, overrides = parse_model(spec)
    size = dict(frame_size=args.frame_size, context=args.context, horizon=args.horizon, patch=args.patch,
                hidden_size=args.hidden, num_layers=args.layers, kernel_size=args.kernel)
    if name == "openstl":
        network = load_openstl_convlstm(args.openstl)
        if network is None:
            return None, {}
        return OpenSTLConvLSTM(network, **{**size, **overrides}), overrides
    return create_model(name, "debug", **{**size, **overrides}), overrides


# --- training data: the same clips for every model --------------------------------------------

class Clips:
    """Batch k: ``batch_size`` Moving MNIST clips rendered from numpy's generator seeded with
    (seed, k), from the training digits, resized to ``frame_size`` as moving-mnist's option does."""

    def __init__(self, frames: int, frame_size: int, batch_size: int, seed: int) -> None:
        self.pool, _ = digit_pool("mnist-5k", "train")
        self.frames, self.frame_size, self.batch_size, self.seed = frames, frame_size, batch_size, seed

    def batch(self, k: int) -> dict:
        clips = moving_mnist_clips(self.pool, self.batch_size, self.frames, 2,
                                   np.random.default_rng([self.seed, k]))  # uint8 (B, T, 64, 64)
        x = torch.from_numpy(clips).float().div(255)  # (B, T, 64, 64)
        x = resize(x, self.frame_size)  # (B, T, s, s)
        return {"frames": x[:, :, None]}  # (B, T, 1, s, s)


def to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) for k, v in batch.items()}


# --- modes -------------------------------------------------------------------------------------

def run_speed(args) -> list[dict]:
    rows = []
    for spec in args.models:
        torch.manual_seed(0)
        model, _ = build(spec, args)
        if model is None:
            continue
        model.to(args.device).train()
        if hasattr(model, "config"):  # the clip length of this row
            model.config.horizon = args.frames - model.config.context
            if getattr(model.config, "closed_loop", 0) > model.config.horizon - 1:
                model.config.closed_loop = model.config.horizon - 1
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        batch = to_device(Clips(args.frames, args.frame_size, args.batch_size, args.seed).batch(0),
                          args.device)
        times = []
        for i in range(args.steps + 1):
            start = time.process_time()
            opt.zero_grad(set_to_none=True)
            model.set_training_step(i)
            model.loss(batch).loss.backward()
            opt.step()
            times.append(time.process_time() - start)
        seconds = statistics.median(times[1:])
        params = sum(p.numel() for p in model.parameters())
        rows.append({"model": spec, "frames": args.frames, "params": params, "cpu_s_per_step": seconds,
                     "clips_per_cpu_s": args.batch_size / seconds})
        print(rows[-1], flush=True)
    return rows


@torch.no_grad()
def score(model, args, horizon: int | None = None, clips: int | None = None, late=None) -> dict:
    model.eval()
    horizon, clips = horizon or args.horizon, clips or args.test_clips
    test = load_dataset("moving-mnist", "test", frames=args.context + horizon,
                        frame_size=args.frame_size, test_clips=clips)
    sums, n = {}, 0
    for start in range(0, len(test), 50):
        frames = torch.stack([test[i]["frames"] for i in range(start, min(start + 50, len(test)))])
        prediction = model.predict(frames[:, :args.context].to(args.device), horizon).float().cpu()
        target = frames[:, args.context:]
        for key, fn in (("mse", mse_per_frame), ("mae", mae_per_frame), ("ssim", ssim), ("psnr", psnr)):
            value = fn(prediction, target).double() * len(frames)
            sums[key] = sums.get(key, 0) + value
        n += len(frames)
    per_step = {k: (v / n).tolist() for k, v in sums.items()}
    out = {k: float(np.mean(v)) for k, v in per_step.items()}
    out.update({f"{k}_per_step": v for k, v in per_step.items()})
    if late:
        lo, hi = late
        out[f"mse_{lo}_{hi}"] = float(np.mean(per_step["mse"][lo - 1:hi]))
        out[f"ssim_{lo}_{hi}"] = float(np.mean(per_step["ssim"][lo - 1:hi]))
    return out


def run_quality(args) -> list[dict]:
    rows = []
    clips = Clips(args.context + args.horizon, args.frame_size, args.batch_size, args.seed)
    for spec in args.models:
        torch.manual_seed(args.seed)
        model, overrides = build(spec, args)
        if model is None:
            continue
        model.to(args.device).train()
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        spent, step, losses = 0.0, 0, []
        while spent < args.budget:
            batch = to_device(clips.batch(step), args.device)
            start = time.process_time()
            model.set_training_step(step)
            opt.zero_grad(set_to_none=True)
            loss = model.loss(batch).loss
            loss.backward()
            opt.step()
            spent += time.process_time() - start
            losses.append(loss.item())
            step += 1
            if step % 50 == 0:
                print(f"{spec}: step {step}, {spent:.0f} CPU-s, loss {np.mean(losses[-50:]):.5f}", flush=True)
        result = {"model": spec, "tag": args.tag, "steps": step, "cpu_s": spent, "seed": args.seed,
                  "params": sum(p.numel() for p in model.parameters()),
                  "final_train_loss": float(np.mean(losses[-20:])), **score(model, args, late=args.late)}
        if args.long:  # the same weights rolled out further than they were trained for
            long = score(model, args, args.long, args.long_clips, late=args.long_late)
            result.update({f"long_{k}": v for k, v in long.items()})
        rows.append(result)
        name = f"{args.tag}-{spec.replace(':', '_').replace(',', '_').replace('=', '')}-s{args.seed}.json"
        Path(args.runs).mkdir(parents=True, exist_ok=True)
        (Path(args.runs) / name).write_text(json.dumps({**result, "args": vars(args)}, indent=1))
        print({k: v for k, v in result.items() if not k.endswith("_per_step")}, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    if rows and "clips_per_cpu_s" in rows[0]:
        lines = ["| model | frames | parameters | CPU-s / step | clips / CPU-s |",
                 "|---|---:|---:|---:|---:|"]
        lines += [f"| `{r['model']}` | {r['frames']} | {r['params']:,} | {r['cpu_s_per_step']:.3f} | "
                  f"{r['clips_per_cpu_s']:.2f} |" for r in rows]
        return "\n".join(lines)
    late = sorted({k for r in rows for k in r if k.startswith(("mse_", "ssim_", "long_mse", "long_ssim_"))
                   and not k.endswith("per_step")})
    head = "| tag | model | seed | parameters | steps | test MSE / frame | SSIM | MAE | PSNR |" + \
        "".join(f" {k} |" for k in late)
    lines = [head, "|" + "---|" * (9 + len(late))]
    for r in rows:
        lines.append(f"| {r['tag']} | `{r['model']}` | {r['seed']} | {r['params']:,} | {r['steps']} | "
                     f"{r['mse']:.2f} | {r['ssim']:.3f} | {r['mae']:.1f} | {r['psnr']:.2f} |"
                     + "".join(f" {r[k]:.2f} |" if k in r else " - |" for k in late))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("mode", nargs="?", default="speed", choices=["speed", "quality", "table"],
                   help="default: speed (a few steps of each model: what check.sh runs)")
    p.add_argument("--models", nargs="+", default=["convscan", "convlstm"],
                   help="rnnimg model names or 'openstl', each optionally NAME:FIELD=VALUE,...")
    p.add_argument("--openstl", help="path of a local OpenSTL checkout (for the 'openstl' model)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (default cpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--frame-size", type=int, default=32)
    p.add_argument("--context", type=int, default=10)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--frames", type=int, default=20, help="clip length of the speed mode")
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--kernel", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--budget", type=float, default=240, help="training CPU-seconds per model")
    p.add_argument("--steps", type=int, default=3, help="timed steps of the speed mode")
    p.add_argument("--test-clips", type=int, default=500)
    p.add_argument("--late", type=int, nargs=2, metavar=("FIRST", "LAST"),
                   help="also report MSE and SSIM averaged over predicted frames FIRST..LAST (1-based)")
    p.add_argument("--long", type=int, metavar="H",
                   help="also score the trained weights at horizon H (e.g. 90) on --long-clips clips")
    p.add_argument("--long-clips", type=int, default=200)
    p.add_argument("--long-late", type=int, nargs=2, default=(50, 90), metavar=("FIRST", "LAST"),
                   help="with --long: MSE and SSIM over these predicted frames (default 50 90)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tag", default="quality", help="name of this setting in the table")
    p.add_argument("--runs", default="runs/bench_openstl", help="where result JSONs go")
    p.add_argument("--out", default="", help="append the markdown table here ('' = print only)")
    args = p.parse_args(argv)
    if args.device != "cpu":
        print("note: this harness times process CPU; --device cuda runs but CPU-s budgets then "
              "measure the host side only")
    torch.set_num_threads(args.threads)
    if args.mode == "speed":
        rows = run_speed(args)
    elif args.mode == "quality":
        rows = run_quality(args)
    else:
        rows = [json.loads(f.read_text()) for f in sorted(Path(args.runs).glob("*.json"))]
    text = table(rows)
    print(text)
    if args.out:
        stamp = (f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
                 f"{platform.processor() or platform.machine()}")
        with open(args.out, "a") as f:
            f.write(f"\n<!-- {' '.join(sys.argv)} ({stamp}) -->\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
