"""The multi-scale chain (``multiscale``) against one unconditional pixelscan at equal CPU time:
64x64 colour ``shapes`` drawn at 64x64 (``native_size=64``), issue 19 item 3.

``multiscale`` (preset ``shapes64``: an unconditional pixelscan at 32x32 and one at 64x64 given the
32x32 downscale, pixelscan's ``mnist`` widths per stage) against ``pixelscan`` at 64x64 widened to
the same parameter count (``hidden=64, head_hidden=48``: 183,600 against 183,392). Each trains in
its own process with one torch thread for ``--budget`` seconds of *process* CPU time
(``time.process_time``; the images are built before the clock starts), on shuffled epochs of the
5,000 training images (batch ``--batch-size``, Adam at ``--lr``, gradient clipping 1, as the
trainer). Then:

- test NLL in bits/dim of the 64x64 image, over the first ``--test-count`` of the 500 fixed test
  images. pixelscan's is exact. multiscale's is the pair's, -log p(small) - log p(image | small),
  exact for the pair and an upper bound on the chain's NLL of the image alone; it is also split
  into the two stages';
- ``--samples`` samples at temperature 1 and the CPU seconds the sampler took, as a picture beside
  ``--out`` (multiscale: its 32x32 first-stage draws, upscaled, above the 64x64 images drawn from them);
- the trained model as a run folder under ``--save-dir`` (``rnnimg sample`` / ``evaluate`` take it).

``--data photos``: the same on scikit-image's photographs (:mod:`rnnimg.data.photos`): random
``--size`` crops of the 13 training photos (grey ones repeated to colour), and as the test set every
non-overlapping ``--size`` tile, from the top left, of the 5 whole held-out photos (270 at 64).

``--pair`` runs both side by side (two processes started together, one thread each; run the whole
command under ``flock /work/timing.lock`` on the shared machine) and writes a markdown table with
the command, machine and date to ``--out`` (the raw numbers beside it as JSON).

    flock /work/timing.lock python benchmarks/bench_multiscale.py --pair --budget 600 \\
        --out docs/bench/multiscale-64.md --save-dir runs/multiscale-bench
    python benchmarks/bench_multiscale.py --pair --budget 5 --test-count 8 --samples 2 --out /tmp/x.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from side_by_side import add_report_args, pictures_beside, report_one, run_side_by_side, write_report

MODELS = ("multiscale", "pixelscan")
BASELINE = dict(image_size=64, channels=3, output="categorical", levels=256, hidden=64, head_hidden=48)


def data_options(args) -> dict:
    if args.data == "photos":
        return {"image_size": args.size, "channels": 3}
    return {"native_size": args.size, "image_size": args.size, "channels": 3, "levels": 256}


def images(split: str, args):
    """shapes: the whole split (N, 3, S, S); photos: the test photos' tiles, or for ``train`` a
    dataset of random crops."""
    import torch

    from rnnimg.data import load_dataset

    data = load_dataset(args.data, split, **data_options(args))
    if args.data == "photos" and split == "train":
        return data
    if args.data == "photos":
        s = args.size
        return torch.cat([data[i]["image"].unfold(1, s, s).unfold(2, s, s).permute(1, 2, 0, 3, 4)
                          .reshape(-1, 3, s, s) for i in range(len(data))])
    return torch.stack([data[i]["image"] for i in range(len(data))])


def batches(x, args, gen):
    """Batches of training images for ever: shuffled epochs of shapes, random photo crops."""
    import torch

    while True:
        if args.data == "photos":
            yield torch.stack([x[int(i)]["image"] for i in torch.randint(0, 10 ** 6, (args.batch_size,),
                                                                        generator=gen)]), False
            continue
        for idx in torch.randperm(len(x), generator=gen).split(args.batch_size):
            yield x[idx], False
        yield None, True  # an epoch ended


def run_one(args) -> dict:
    import torch

    from rnnimg import create_model
    from rnnimg.tasks import save_picture
    from rnnimg.viz import make_grid

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    if args.model == "multiscale":
        preset, overrides = "shapes64", dict(image_size=args.size, scale=args.scale)
    else:
        preset, overrides = "mnist", dict(BASELINE, image_size=args.size)
    device = torch.device(args.device)
    model = create_model(args.model, preset, **overrides).to(device)
    x = images("train", args)
    x_test = images("test", args)[:args.test_count]
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(args.seed)
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    steps, epochs, curve = 0, 0, []
    model.train()
    stream = batches(x, args, gen)
    while time.process_time() - start_cpu < args.budget:
        batch, epoch_end = next(stream)
        if epoch_end:
            epochs += 1
            continue
        out = model.loss({"image": batch.to(device)})
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        steps += 1
        if steps % 25 == 0:
            curve.append((steps, round(time.process_time() - start_cpu, 1),
                          round(float(out.metrics["bits_per_dim"]), 4)))
    train_cpu, train_wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    model.eval()
    t0 = time.process_time()
    nats, stages = 0.0, [0.0, 0.0]
    with torch.no_grad():
        for batch in x_test.split(25):
            batch = batch.to(device)
            if args.model == "multiscale":
                first, second = model.stage_nlls(batch)
                stages[0] += first.sum().item()
                stages[1] += second.sum().item()
                nats += (first + second).sum().item()
            else:
                nats += model.nll_per_image(batch).sum().item()
    dims = len(x_test) * x_test[0].numel() * math.log(2)
    eval_cpu = time.process_time() - t0
    t0 = time.process_time()
    sgen = torch.Generator().manual_seed(1)
    if args.model == "multiscale":  # the chain stage by stage: model.sample draws the same (tested)
        small = model.small.sample(args.samples, generator=sgen)
        drawn = model.large.sample(args.samples, low_res=small, generator=sgen)
        shown = torch.cat([small.repeat_interleave(args.scale, -1).repeat_interleave(args.scale, -2),
                           drawn])
    else:
        drawn = model.sample(args.samples, generator=sgen)
        shown = drawn
    shown = shown.cpu()
    sample_cpu = time.process_time() - t0
    if args.picture:
        save_picture(make_grid(shown, nrow=args.samples), args.picture, scale=1)
    if args.save_dir:
        model.cpu().save_pretrained(Path(args.save_dir) / args.model, extra={
            "preset": preset, "data": {"name": args.data, "options": data_options(args)},
            "steps_trained": steps})
    result = dict(model=args.model, preset=preset, overrides=overrides, size=args.size,
                  params=sum(p.numel() for p in model.parameters()), steps=steps, epochs=epochs,
                  batch_size=args.batch_size, lr=args.lr, train_cpu_s=round(train_cpu, 1),
                  train_wall_s=round(train_wall, 1), test_images=len(x_test),
                  test_bits_per_dim=nats / dims, eval_cpu_s=round(eval_cpu, 1), samples=args.samples,
                  sample_cpu_s=round(sample_cpu, 1), curve=curve)
    if args.model == "multiscale":
        result.update(test_small_bits_per_dim_of_large=stages[0] / dims,
                      test_large_given_small_bits_per_dim=stages[1] / dims,
                      test_small_bits_per_dim=stages[0] * args.scale ** 2 / dims)
    return result


def table(results: list[dict]) -> str:
    head = ("model", "params", "train CPU s (wall s)", "steps (epochs)", "test bits/dim",
            "eval CPU s", "sampling CPU s")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        rows.append("| " + " | ".join([
            r["model"], f"{r['params']:,}", f"{r['train_cpu_s']:.0f} ({r['train_wall_s']:.0f})",
            f"{r['steps']} ({r['epochs']})", f"{r['test_bits_per_dim']:.4f}", f"{r['eval_cpu_s']:.0f}",
            f"{r['sample_cpu_s']:.0f} for {r['samples']}"]) + " |")
    for r in results:
        if "test_large_given_small_bits_per_dim" in r:
            rows += ["", f"multiscale's bits/dim of the image = small image "
                     f"{r['test_small_bits_per_dim_of_large']:.4f} + large given small "
                     f"{r['test_large_given_small_bits_per_dim']:.4f} (the small image alone: "
                     f"{r['test_small_bits_per_dim']:.4f} bits per dimension of its own)"]
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=MODELS, default="multiscale")
    p.add_argument("--pair", action="store_true", help="multiscale and pixelscan side by side")
    p.add_argument("--data", choices=("shapes", "photos"), default="shapes")
    p.add_argument("--size", type=int, default=64, help="image side (shapes drawn at this size)")
    p.add_argument("--scale", type=int, choices=(2, 3, 4), default=2, help="multiscale's scale")
    p.add_argument("--budget", type=float, default=600.0, help="process CPU seconds of training")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--test-count", type=int, default=500, help="test images scored (of 500)")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu | cuda (the budget stays process CPU time)")
    p.add_argument("--save-dir", default=None, help="save each trained model as SAVE_DIR/MODEL")
    add_report_args(p, pictures=True)
    args = p.parse_args(argv)
    if not args.pair:
        return report_one(run_one(args), args.json)
    out = Path(args.out or "multiscale-bench.md")
    results, started, where, command = run_side_by_side(__file__, argv, MODELS, out,
                                                        extra=pictures_beside(out))
    train = "random crops of 13 photos" if args.data == "photos" else "5,000 training images"
    text = (f"# multiscale vs pixelscan at equal CPU time: {args.data} {args.size}x{args.size} colour\n\n"
            f"`{command}`\n\n{started}; {where}; one torch thread per process, both processes side "
            f"by side; {train}, {results[0]['test_images']} test images, 256 levels\n\n"
            f"{table(results)}\n")
    return write_report(out, text)


if __name__ == "__main__":
    sys.exit(main())
