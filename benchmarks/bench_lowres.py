"""Stochastic high resolution: pixelscan given the low-resolution image against pixelscan alone.

Both models (pixelscan's ``mnist`` widths on colour data: 4 layers, 32 features, a 256-way
softmax per channel; the conditional one with ``low_res_scale=S``) train on ``shapes`` at
``--size`` for the same ``--budget`` seconds of process CPU time each (``time.process_time``, one
torch thread, so the same computation whatever else the machine runs; ``--wall-clock`` on a GPU),
one after the other, batch 16, Adam at the recipe's lr, gradient clipping 1 (the trainer's
default). Then, on the fixed test split:

- **NLL**: bits/dim of the high-resolution image, given its downscale for the conditional model
  (exact: the sum of the per-pixel cross-entropies), alone for the unconditional one;
- **consistency** (issue 19's goal): ``--samples`` samples of each of ``--inputs`` test inputs
  (temperature 1), each downscaled by S (the data's own bicubic, antialiased downscale) and
  compared with the input: mean absolute difference on the [0, 1] scale (x255 for grey levels).
  For scale: the same for the bicubic upscale of the input (a deterministic upscaler) and for the
  unconditional model's samples (what ignoring the input gives);
- **diversity**: the mean absolute difference between two samples of the same input, averaged
  over all pairs (0 would be one image every time, as a regression model gives).

    flock /work/timing.lock env PYTHONPATH=src python benchmarks/bench_lowres.py --budget 300

Writes the figures as JSON (``--out``), a picture of inputs and samples (``--grid``) and the
trained models (``--save-dir``) so that ``rnnimg sample RUN --low-res`` can be tried on them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import torch


def build(scale: int, size: int, device: str):
    from rnnimg.models import create_model

    torch.manual_seed(0)
    return create_model("pixelscan", "mnist", image_size=size, channels=3, output="categorical",
                        levels=256, low_res_scale=scale).to(device)


def load(model, split: str, scale: int) -> dict[str, torch.Tensor]:
    """The whole split, with each image's downscale by ``scale`` beside it (both models see the
    same images; the unconditional one ignores ``low_res``)."""
    from rnnimg.data import load_dataset

    data = load_dataset("shapes", split, **{**model.dataset_options(), "low_res": scale})
    return torch.utils.data.default_collate([data[i] for i in range(len(data))])


@torch.no_grad()
def test_bits(model, test: dict[str, torch.Tensor], device: str) -> float:
    model.eval()
    total = 0.0
    for start in range(0, len(test["image"]), 100):
        image = test["image"][start:start + 100].to(device)
        low = test["low_res"][start:start + 100].to(device) if model.config.low_res_scale else None
        total += model.nll_per_image(image, low_res=low).sum().item()
    model.train()
    return total / (len(test["image"]) * test["image"][0].numel() * math.log(2))


def train(model, budget: float, device: str, clock, scale: int) -> tuple[int, float, list]:
    from rnnimg.recipes import training_defaults

    data, test = load(model, "train", scale), load(model, "test", scale)
    lr = training_defaults("pixelscan", "mnist").lr
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(0)
    order, cursor, spent, steps = torch.randperm(len(data["image"]), generator=gen), 0, 0.0, 0
    marks, curve = [budget / 2, budget], []  # test NLL at half the budget and at the end
    conditional = bool(model.config.low_res_scale)
    model.train()
    while spent < budget:
        start = clock()
        if cursor + 16 > len(order):
            order, cursor = torch.randperm(len(order), generator=gen), 0
        idx = order[cursor:cursor + 16]
        cursor += 16
        batch = {"image": data["image"][idx].to(device)}
        if conditional:
            batch["low_res"] = data["low_res"][idx].to(device)
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        spent += clock() - start
        steps += 1
        if len(curve) < len(marks) and spent >= marks[len(curve)]:
            bits = test_bits(model, test, device)
            while len(curve) < len(marks) and spent >= marks[len(curve)]:
                curve.append((round(spent, 1), steps, round(bits, 4)))
            print(f"  {'conditional' if conditional else 'unconditional'}: {spent:.0f} s, {steps} "
                  f"steps, test {bits:.4f} bits/dim", flush=True)
    return steps, lr, curve


@torch.no_grad()
def consistency(cond, uncond, test, inputs: int, samples: int, scale: int, device: str,
                temperature: float = 1.0) -> dict:
    from rnnimg.data.corrupt import downscale
    from rnnimg.models.translate.superres import bicubic_upscale

    low = test["low_res"][:inputs].to(device)  # (I, C, h, w)
    gen = torch.Generator(device=device).manual_seed(0)
    many = low.repeat_interleave(samples, 0)  # (I * S, C, h, w)
    drawn = cond.sample(len(many), low_res=many, generator=gen, temperature=temperature)  # (I*S, C, H, W)
    free = uncond.sample(len(many), generator=gen, temperature=temperature)

    def mad_after_downscale(images):
        return (downscale(images.cpu(), scale) - many.cpu()).abs().mean().item()

    upscaled = bicubic_upscale(low, scale).clamp(0, 1)
    upscaled = torch.round(upscaled * 255) / 255
    per_input = drawn.view(inputs, samples, *drawn.shape[1:]).cpu()
    pairs = [(a, b) for a in range(samples) for b in range(a + 1, samples)]
    diversity = torch.stack([(per_input[:, a] - per_input[:, b]).abs().mean() for a, b in pairs]).mean()
    truth = test["image"][:inputs].repeat_interleave(samples, 0)
    return {
        "inputs": inputs, "samples_per_input": samples, "temperature": temperature,
        "consistency_mad_conditional": mad_after_downscale(drawn),
        "consistency_mad_bicubic_upscale": (downscale(upscaled.cpu(), scale) - low.cpu()).abs().mean().item(),
        "consistency_mad_unconditional": mad_after_downscale(free),
        "consistency_mad_truth": mad_after_downscale(truth),
        "diversity_mad_between_samples": diversity.item(),
        "mad_samples_vs_truth": (drawn.cpu() - truth).abs().mean().item(),
        "mad_bicubic_vs_truth": (upscaled.cpu() - test["image"][:inputs]).abs().mean().item(),
        "_pictures": (low.cpu(), upscaled.cpu(), per_input, test["image"][:inputs]),
    }


def save_grid(path: str, pictures, rows: int = 6) -> None:
    from rnnimg.tasks import save_picture
    from rnnimg.viz import make_grid

    low, upscaled, per_input, truth = pictures
    tiles = []
    for i in range(min(rows, len(low))):  # bicubic upscale, samples, truth
        tiles += [upscaled[i], *per_input[i], truth[i]]
    save_picture(make_grid(torch.stack(tiles), nrow=per_input.shape[1] + 2), path, scale=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=16, help="side of the high-resolution images")
    parser.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    parser.add_argument("--budget", type=float, default=300.0, help="training seconds per model")
    parser.add_argument("--wall-clock", action="store_true", help="budget in wall time (GPU)")
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--out", default="lowres_bench.json")
    parser.add_argument("--grid", default="lowres_samples.png")
    parser.add_argument("--save-dir", help="save the two trained models under this folder")
    parser.add_argument("--from-dir", help="skip training: load the two models a --save-dir run saved")
    parser.add_argument("--temperature", type=float, default=1.0, help="of the samples scored")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall_clock or args.device != "cpu" else time.process_time
    result = {"command": "python benchmarks/bench_lowres.py " + " ".join(sys.argv[1:]),
              "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                         f"{args.device}", "load_before": os.getloadavg(), "threads": args.threads,
              "budget_s": args.budget, "clock": clock.__name__, "data": f"shapes {args.size}x{args.size}",
              "scale": args.scale, "models": {}}
    wall = time.perf_counter()
    models = {}
    for name, scale in (("conditional", args.scale), ("unconditional", 0)):
        if args.from_dir:
            from rnnimg.models import load_pretrained

            models[name] = load_pretrained(Path(args.from_dir) / name).to(args.device).eval()
            continue
        model = build(scale, args.size, args.device)
        steps, lr, curve = train(model, args.budget, args.device, clock, args.scale)
        models[name] = model.eval()
        result["models"][name] = {"steps": steps, "lr": lr, "curve_s_steps_bits": curve,
                                  "test_bits_per_dim": curve[-1][2],
                                  "params": sum(p.numel() for p in model.parameters())}
        if args.save_dir:
            model.save_pretrained(Path(args.save_dir) / name)
    test = load(models["conditional"], "test", args.scale)
    stats = consistency(models["conditional"], models["unconditional"], test, args.inputs,
                        args.samples, args.scale, args.device, args.temperature)
    save_grid(args.grid, stats.pop("_pictures"))
    result["samples"] = stats
    result["load_after"] = os.getloadavg()
    result["wall_s"] = round(time.perf_counter() - wall, 1)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
