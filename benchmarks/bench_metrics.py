"""Cost of the video metrics, and of evaluating a predictor with them.

1. SSIM of ``--frames`` frames of ``--size`` x ``--size`` (default 640 of 64x64, one channel), three
   ways, each the median of ``--repeats`` timed calls after one warm-up call:

   - ``torchmetrics``: what ``rnnimg.metrics.ssim`` did before (torchmetrics'
     ``structural_similarity_index_measure`` map on float64 input, border cropped, chunks of 256);
   - ``rnnimg``: ``rnnimg.metrics.ssim`` now (separable gaussian as banded float32 products);
   - ``scikit-image``: a Python loop calling ``skimage.metrics.structural_similarity`` per frame
     (CPU only; the reference values), plus the largest difference of each path from it.

2. An ``rnnimg evaluate``-like pass of a convlstm: ``model.evaluation_statistics`` (prediction from
   the context frames + the validation loss + MSE/MAE/PSNR/SSIM, what ``rnnimg evaluate`` and
   validation during training call per batch) over ``--eval-batches`` batches of 64 Moving MNIST
   test clips, with the new SSIM, with the old one patched back in, and the model's ``predict``
   alone (the floor: what evaluation costs without metrics).

    PYTHONPATH=src python benchmarks/bench_metrics.py --threads 1
    PYTHONPATH=src python benchmarks/bench_metrics.py --device cuda --frames 6400
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from contextlib import contextmanager

import numpy as np
import torch


def torchmetrics_ssim_per_clip(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The replaced implementation (rnnimg before the house issue), kept here to time it."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    b, t = pred.shape[:2]
    pred, target = pred.detach().double().flatten(0, 1), target.detach().double().flatten(0, 1)
    per_frame = []
    for start in range(0, len(pred), 256):
        _, ssim_map = structural_similarity_index_measure(
            pred[start:start + 256].contiguous(), target[start:start + 256].contiguous(),
            gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0, reduction="none",
            return_full_image=True)
        per_frame.append(ssim_map[..., 5:-5, 5:-5].mean(dim=(1, 2, 3)))
    return torch.cat(per_frame).view(b, t)


def skimage_ssim_per_frame(pred: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    from skimage.metrics import structural_similarity

    x = pred.double().flatten(0, 1).cpu().numpy()  # (N, C, H, W)
    y = target.double().flatten(0, 1).cpu().numpy()
    return np.array([structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False, data_range=1.0, channel_axis=0)
                     for a, b in zip(x, y)])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextmanager
def _old_ssim():
    """Patch the torchmetrics implementation back into rnnimg.metrics."""
    from rnnimg import metrics

    saved = metrics.ssim, metrics.ssim_per_clip
    metrics.ssim_per_clip = torchmetrics_ssim_per_clip
    metrics.ssim = lambda p, t: torchmetrics_ssim_per_clip(p, t).mean(0).float()
    try:
        yield
    finally:
        metrics.ssim, metrics.ssim_per_clip = saved


def bench_ssim(args, device: torch.device) -> None:
    from rnnimg import metrics

    gen = torch.Generator().manual_seed(0)
    shape = (args.frames // 10, 10, 1, args.size, args.size)  # (B, T, C, H, W)
    target = torch.rand(shape, generator=gen)
    pred = (target + 0.2 * torch.randn(shape, generator=gen)).clamp(0, 1)
    reference = skimage_ssim_per_frame(pred, target) if args.skimage else None
    pred, target = pred.to(device), target.to(device)
    rows = [("torchmetrics (before)", lambda: torchmetrics_ssim_per_clip(pred, target)),
            ("rnnimg.metrics.ssim (now)", lambda: metrics.ssim_per_clip(pred, target))]
    if args.skimage:
        rows.append(("scikit-image loop", lambda: skimage_ssim_per_frame(pred, target)))
    print(f"\nSSIM of {args.frames} frames {args.size}x{args.size} on {device} "
          f"(median of {args.repeats}):\n")
    print("| path | seconds | frames/s | max abs diff from scikit-image |")
    print("|---|---:|---:|---:|")
    for name, fn in rows:
        if name.startswith("torchmetrics") and args.skip_old:
            continue
        seconds = _time(fn, device, args.repeats)
        values = np.asarray(torch.as_tensor(fn()).double().cpu()).reshape(-1)
        diff = f"{np.abs(values - reference).max():.1e}" if reference is not None else "-"
        print(f"| {name} | {seconds:.3f} | {args.frames / seconds:,.0f} | {diff} |")


def _seconds_per_batch(fn, batches: list[torch.Tensor], device: torch.device) -> float:
    """Median seconds of ``fn(frames)`` over the batches after the first (a warm-up)."""
    times = []
    with torch.inference_mode():
        for k, frames in enumerate(batches):
            frames = frames.to(device)
            _sync(device)
            start = time.perf_counter()
            fn(frames)
            _sync(device)
            if k:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_evaluate(args, device: torch.device) -> None:
    from rnnimg import create_model, load_dataset

    print(f"\nconvlstm evaluation, {args.eval_batches} batches of 64 Moving MNIST test clips on "
          f"{device} (seconds per batch, median of the batches after one warm-up batch):\n")
    print("| model | frames | predict only | evaluate, SSIM now | evaluate, SSIM before |")
    print("|---|---|---:|---:|---:|")
    for label, overrides in (("convlstm `debug`", {}),
                             ("convlstm `debug` at 64x64", dict(frame_size=64, patch=4))):
        torch.manual_seed(0)
        model = create_model("convlstm", "debug", **overrides).to(device).eval()
        c = model.config
        data = load_dataset("moving-mnist", "test", test_clips=64 * (args.eval_batches + 1),
                            **model.dataset_options())
        batches = [torch.stack([data[i]["frames"] for i in range(k * 64, (k + 1) * 64)])
                   for k in range(args.eval_batches + 1)]
        hook = model.evaluation_statistics

        def predict(frames, model=model, c=c):
            return model.predict(frames[:, :c.context], c.horizon)

        def evaluate(frames, hook=hook):
            return hook({"frames": frames})

        predict_s = _seconds_per_batch(predict, batches, device)
        now = _seconds_per_batch(evaluate, batches, device)
        if args.skip_old:
            before = float("nan")
        else:
            with _old_ssim():
                before = _seconds_per_batch(evaluate, batches, device)
        side = c.frame_size
        print(f"| {label} | {side}x{side}, {c.context} -> {c.horizon} | {predict_s:.3f} | {now:.3f} | "
              f"{before:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    parser.add_argument("--frames", type=int, default=640)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-batches", type=int, default=3)
    parser.add_argument("--no-skimage", dest="skimage", action="store_false",
                        help="skip the scikit-image loop (and the value check)")
    parser.add_argument("--skip-old", action="store_true", help="skip the torchmetrics path (slow)")
    parser.add_argument("--skip-evaluate", action="store_true")
    args = parser.parse_args()
    try:
        import torchmetrics  # noqa: F401  (only the "before" path needs it)
    except ImportError:
        print("torchmetrics is not installed: the before path is skipped")
        args.skip_old = True
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"# bench_metrics: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    bench_ssim(args, device)
    if not args.skip_evaluate:
        bench_evaluate(args, device)


if __name__ == "__main__":
    main()
