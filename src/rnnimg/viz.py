"""Pictures: image grids, PNG writing, training-curve plots, and clips as GIF/MP4, strips and
side-by-side comparisons."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rnnimg.fileio import atomic_write, atomic_write_bytes


def make_grid(images: Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.5) -> Tensor:
    """Tile images (N, C, H, W) in [0, 1] into one RGB picture (3, H', W'), ``nrow`` per row
    (torchvision's ``make_grid``, on the CPU, clamped to [0, 1])."""
    from torchvision.utils import make_grid as tv_make_grid

    images = images.detach().float().cpu().clamp(0, 1)
    return tv_make_grid(images, nrow=nrow, padding=padding, pad_value=pad_value)


def to_uint8(image: Tensor) -> np.ndarray:
    """(3|1, H, W) float [0, 1] (or already uint8) -> (H, W, 3|1) uint8."""
    if image.dtype == torch.uint8:
        return image.detach().cpu().permute(1, 2, 0).numpy()
    return (image.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def pil_image(image: Tensor):
    """(3|1, H, W) float [0, 1] (or uint8) as a PIL image, the pixels of :func:`to_uint8`.

    A uint8 image costs PIL's own copy only: each channel is handed to PIL without a copy (a
    mode "L" image over the tensor's memory) and merged into RGB, where an (H, W, 3) array would be
    copied once more to make it contiguous (576 MB for a 16000x12000 upscale).
    """
    from PIL import Image

    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a (1|3, H, W) image, got shape {tuple(image.shape)}")
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().byte()
    image = image.detach().cpu().contiguous()  # no copy when it is already
    bands = [Image.fromarray(image[c].numpy()) for c in range(image.shape[0])]
    return bands[0] if len(bands) == 1 else Image.merge("RGB", bands)


def save_image(image: Tensor, path: str | os.PathLike, scale: int = 1) -> Path:
    """Write (C, H, W) in [0, 1] (or uint8) as a PNG (or any format PIL knows from the suffix),
    atomically.

    ``scale`` enlarges small images with nearest-neighbour so that pixels stay crisp. PIL encodes
    straight into the file, so no second copy of the encoded image is held in memory.
    """
    from PIL import Image

    img = pil_image(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    fmt = Image.registered_extensions().get(Path(path).suffix.lower()) or "PNG"

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            img.save(f, format=fmt)
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)
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


# ---------------------------------------------------------------------------------------------
# clips: GIF/MP4 writing, strips and side-by-side comparisons

CONTEXT_COLOUR = (0.1, 0.75, 0.2)  # green border: a frame that was given (context or ground truth)
PREDICTED_COLOUR = (0.9, 0.15, 0.1)  # red border: a frame the model predicted


def _rgb_frames(frames: Tensor) -> Tensor:
    """(T, 1|3, H, W) -> float (T, 3, H, W) in [0, 1] on the CPU."""
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be (T, 1|3, H, W), got {tuple(frames.shape)}")
    frames = frames.detach().float().cpu().clamp(0, 1)
    return frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames


def _uint8_frames(frames: Tensor, scale: int) -> np.ndarray:
    """(T, C, H, W) [0, 1] -> uint8 (T, H*scale, W*scale, C), nearest-neighbour enlarged."""
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be (T, 1|3, H, W), got {tuple(frames.shape)}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    arr = (frames.detach().float().cpu().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    if scale > 1:
        arr = arr.repeat(scale, axis=1).repeat(scale, axis=2)
    return np.ascontiguousarray(arr)


def _check_fps(fps: float) -> None:
    from rnnimg.errors import RnnImgError

    if not fps > 0:  # also refuses NaN
        raise RnnImgError(f"fps must be > 0, got {fps}.")


def write_gif(frames: Tensor, path: str | os.PathLike, fps: float = 4, scale: int = 1,
              loop: int = 0) -> Path:
    """Write frames (T, 1|3, H, W) in [0, 1] as an animated GIF, atomically.

    Grey frames are stored exactly (mode "L"); colour frames go through Pillow's 256-colour
    palette. Pillow merges a frame identical to the one before it into a single longer frame, so
    playback timing is right but such a file holds fewer frames than were passed.

    Args:
        frames: the clip.
        path: where to write (the suffix is not checked).
        fps: frames per second (GIF stores delays in 10 ms units, so 1000/fps is rounded).
        scale: integer nearest-neighbour enlargement (64x64 Moving MNIST is tiny on screen).
        loop: 0 loops forever, n plays n + 1 times.

    Raises:
        RnnImgError: fps not > 0.
    """
    import io

    from PIL import Image

    _check_fps(fps)
    arr = _uint8_frames(frames, scale)
    images = [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=loop)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def write_video(frames: Tensor, path: str | os.PathLike, fps: float = 4, scale: int = 1) -> Path:
    """Write frames (T, 1|3, H, W) in [0, 1] as ``.gif`` or ``.mp4``, chosen by the suffix.

    MP4 (H.264, yuv420p) goes through imageio v3's PyAV plugin (``pip install rnnimg[video]``),
    the code path that reading videos uses too; frames are padded with black to even sizes, which
    yuv420p requires. Both are written to a temporary file in the same folder and renamed, so a
    crash never leaves half a video behind.

    Raises:
        RnnImgError: another suffix, MP4 without PyAV, or fps not > 0.
    """
    import importlib.util

    from rnnimg.errors import RnnImgError

    _check_fps(fps)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        return write_gif(frames, path, fps=fps, scale=scale)
    if suffix != ".mp4":
        raise RnnImgError(f"{path}: cannot write {suffix or 'files without a suffix'}; use .gif or .mp4.")
    if importlib.util.find_spec("av") is None:
        raise RnnImgError(f"{path}: writing MP4 needs PyAV; run pip install rnnimg[video], "
                          "or write a .gif instead.")
    import imageio.v3 as iio

    arr = _uint8_frames(_rgb_frames(frames), scale)  # (T, H, W, 3)
    _, h, w, _ = arr.shape
    arr = np.ascontiguousarray(np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0))))
    atomic_write(path, lambda tmp: iio.imwrite(tmp, arr, plugin="pyav", codec="libx264", fps=float(fps),
                                               out_pixel_format="yuv420p"))
    return path


def frames_strip(rows: list[Tensor], labels: list[str] | None = None, padding: int = 2,
                 pad_value: float = 0.5) -> Tensor:
    """Lay clips out as rows of frames, e.g. ground truth above prediction: (3, H', W') in [0, 1].

    Rows may differ in length; a shorter row is aligned to the RIGHT, so a 10-frame prediction
    sits under the last 10 frames of a 20-frame ground truth, each frame under the one it predicts.

    Args:
        rows: clips (T_i, 1|3, H, W) with one H and W.
        labels: optional text per row, drawn in a left margin.
    """
    rows = [_rgb_frames(r) for r in rows]
    if not rows or len({tuple(r.shape[-2:]) for r in rows}) != 1:
        raise ValueError("frames_strip needs at least one row, all with the same frame size")
    if labels is not None and len(labels) != len(rows):
        raise ValueError(f"got {len(labels)} labels for {len(rows)} rows")
    h, w = rows[0].shape[-2:]
    cols = max(len(r) for r in rows)
    margin = 0 if not labels else 6 * max(len(s) for s in labels) + 2 * padding
    strip = torch.full((3, len(rows) * (h + padding) + padding, margin + cols * (w + padding) + padding),
                       pad_value)
    for i, row in enumerate(rows):
        y = padding + i * (h + padding)
        for j, frame in enumerate(row):
            x = margin + padding + (cols - len(row) + j) * (w + padding)
            strip[:, y:y + h, x:x + w] = frame
    if labels:
        from PIL import Image, ImageDraw

        img = Image.fromarray(to_uint8(strip))
        draw = ImageDraw.Draw(img)
        for i, text in enumerate(labels):
            draw.text((padding, padding + i * (h + padding) + max(0, h // 2 - 5)), text, fill=(0, 0, 0))
        strip = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).float() / 255.0
    return strip


def _bordered(frames: Tensor, colour: tuple[float, float, float], border: int) -> Tensor:
    """(T, 3, H, W) -> (T, 3, H + 2b, W + 2b) framed in ``colour``."""
    t, _, h, w = frames.shape
    out = torch.tensor(colour).view(1, 3, 1, 1).repeat(t, 1, h + 2 * border, w + 2 * border)
    out[:, :, border:border + h, border:border + w] = frames
    return out


def comparison_frames(context: Tensor, truth: Tensor | None, prediction: Tensor, border: int = 2,
                      gap: int = 4, pad_value: float = 1.0) -> Tensor:
    """Frames of a side-by-side movie: ground truth (left) beside the prediction (right).

    Time step t < T0 shows context frame t in both panels with a green border; later steps show
    the true future frame (green border) beside the predicted one (red border). With ``truth``
    None there is one panel: the context (green) followed by the prediction (red).

    Args:
        context: (T0, 1|3, H, W) in [0, 1], the frames the model was given.
        truth: (T1, 1|3, H, W) the real continuation, or None.
        prediction: (T1, 1|3, H, W) the model's continuation.
        border: border width in pixels; gap: pixels between the panels.

    Returns:
        (T0 + T1, 3, H + 2 border, W') in [0, 1]; write it with :func:`write_video`.
    """
    context, prediction = _rgb_frames(context), _rgb_frames(prediction)
    if truth is not None:
        truth = _rgb_frames(truth)
        if truth.shape != prediction.shape:
            raise ValueError(f"truth {tuple(truth.shape)} and prediction {tuple(prediction.shape)} "
                             "must have one shape")
    if context.shape[-2:] != prediction.shape[-2:]:
        raise ValueError(f"context frames {tuple(context.shape[-2:])} and predicted frames "
                         f"{tuple(prediction.shape[-2:])} differ in size")
    given = _bordered(context, CONTEXT_COLOUR, border)
    right = torch.cat([given, _bordered(prediction, PREDICTED_COLOUR, border)])  # (T0 + T1, 3, H', W')
    if truth is None:
        return right
    left = torch.cat([given, _bordered(truth, CONTEXT_COLOUR, border)])
    spacer = torch.full((len(left), 3, left.shape[2], gap), pad_value)
    return torch.cat([left, spacer, right], dim=3)
