"""Pictures: image grids, PNG writing and training-curve plots."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnimg.models.base import atomic_write_bytes


def make_grid(images: Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.5) -> Tensor:
    """Tile images (N, C, H, W) in [0, 1] into one RGB picture (3, H', W'), ``nrow`` per row."""
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, _, h, w = images.shape
    ncol = min(nrow, n)
    nrows = math.ceil(n / ncol)
    grid = torch.full((3, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for k in range(n):
        r, c = divmod(k, ncol)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, y:y + h, x:x + w] = images[k]
    return grid


def to_uint8(image: Tensor) -> np.ndarray:
    """(3|1, H, W) float [0, 1] -> (H, W, 3|1) uint8."""
    return (image.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def save_image(image: Tensor, path: str | os.PathLike, scale: int = 1) -> Path:
    """Write (C, H, W) in [0, 1] as a PNG (or any format PIL knows from the suffix), atomically.

    ``scale`` enlarges small images with nearest-neighbour so that pixels stay crisp.
    """
    import io

    from PIL import Image

    arr = to_uint8(image)
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format=(Image.registered_extensions().get(Path(path).suffix.lower()) or "PNG"))
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """Lightning's metrics.csv as {metric: [(step, value), ...]} (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in ("", None):
                    continue
                series.setdefault(key, []).append((step, float(value)))
    return series


def plot_curves(series: dict[str, dict[str, list[tuple[int, float]]]], path: str | os.PathLike,
                title: str = "training curves") -> Path:
    """Plot one panel per metric; ``series`` maps run label -> read_metrics_csv(...) output."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = sorted({m for s in series.values() for m in s if not m.startswith("lr")})
    if not metrics:
        raise ValueError("no metrics to plot")
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        for label, s in series.items():
            if metric in s:
                steps, values = zip(*s[metric])
                ax.plot(steps, values, label=label, marker="." if len(steps) < 30 else None)
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)
