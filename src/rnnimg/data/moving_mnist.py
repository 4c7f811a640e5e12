"""``moving-mnist``: bouncing MNIST digits (Srivastava et al. 2015), ``stochastic-moving-mnist``
(Denton & Fergus 2018: random bounces), and ``mnist-test-seq:PATH``.

The generator is the standard one: digits of 28x28 on a 64x64 canvas; each digit starts at a
uniform position in [0, 1)^2 with a uniform random direction and step length 0.1; at every frame it
moves, then bounces (a coordinate that reaches 0 or 1 is clipped there and that velocity component
is negated, as in the original ``<= 0`` / ``>= 1`` test); its pixel offset is
``int((canvas - 28) * position)`` (``int(36 * pos)`` on 64x64); digits are composited with ``max``.
Like the original, the first frame shows the positions after one step. ``stochastic-moving-mnist``
(or ``moving-mnist`` with ``stochastic=True``) is the same except at a bounce: the digit leaves in a
random direction away from the wall (see :func:`trajectories`), so the future after a bounce is
uncertain; its val and test sets use the same seeds and digits.

Splits (every item is ``{"frames": float (T, 1, canvas, canvas) in [0, 1]}``):

- ``train``: a fresh clip on every access, drawn from the training digits with a seed taken from
  torch's global RNG, so ``--seed`` (which seeds torch, and through it every DataLoader worker)
  makes an epoch reproducible while every epoch and worker sees different clips. ``train_clips``
  sets the epoch length (default 10,000).
- ``val``: ``val_clips`` (default 1,000) fixed-seed clips from the TRAINING digits, for choosing
  checkpoints without looking at the test set (PITFALLS.md).
- ``test``: ``test_clips`` (default 10,000) fixed-seed clips from held-out TEST digits (the mnist-5k
  test split, or MNIST's test set with ``digits="mnist"``), or the clips of ``test_file`` (the
  ``mnist_test_seq.npy`` file of Srivastava et al.).

The val/test sets are cached in memory as their recipe (which digits, which offsets per frame: a
few MB) and each clip is rendered on access, which gives exactly the pixels
:func:`moving_mnist_clips` gives for the same seed; holding 10,000 rendered clips would take 819 MB.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from numpy.lib.stride_tricks import as_strided
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.clips import ClipDataset
from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices
from rnnimg.data.registry import load_dataset, register_dataset
from rnnimg.data.video_io import as_clips, check_values, load_array, unit_float
from rnnimg.errors import RnnImgError

DIGIT_SIZE = 28
STEP_LENGTH = 0.1
VAL_SEED = 1_000_001  # fixed: everyone's val and test sets are the same clips
TEST_SEED = 2_000_003


def trajectories(num_clips: int, frames: int, num_digits: int, rng: np.random.Generator,
                 step_length: float = STEP_LENGTH, stochastic: bool = False,
                 speed_jitter: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Bouncing trajectories in the unit square.

    Draws, in this order, the start positions (num_clips, num_digits, 2) uniform in [0, 1) and the
    directions (num_clips, num_digits) uniform in [0, 2 pi). Each frame moves every digit by its
    velocity, then bounces it off the walls.

    Plain bounces (``stochastic=False``) mirror the velocity component normal to the wall. A
    stochastic bounce (Stochastic Moving MNIST, Denton & Fergus 2018) sends the digit off in a new
    random direction: uniform over the directions that point away from every wall it touches (a
    half circle off one wall, a quarter off a corner), with the speed ``step_length * (1 + j)``,
    j uniform in [-speed_jitter, speed_jitter] (0: the speed never changes). Between bounces the
    velocity stays as it is. Each frame of a stochastic trajectory draws one angle and one speed
    factor per (clip, digit) whether or not it bounces, so the draws do not depend on the bounces.

    Returns:
        positions: float64 (num_clips, frames, num_digits, 2) in [0, 1], (y, x) after frame t's move
            and bounce.
        velocities: float64, same shape, the velocity after frame t's bounce (the one that moves the
            digit into frame t + 1); its length is ``step_length`` (times the last bounce's factor).
    """
    if not 0.0 <= speed_jitter < 1.0:
        raise RnnImgError(f"speed_jitter must be in [0, 1), got {speed_jitter}.")
    pos = rng.random((num_clips, num_digits, 2))
    theta = rng.random((num_clips, num_digits)) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], axis=-1) * step_length  # (N, D, 2) as (y, x)
    positions = np.empty((num_clips, frames, num_digits, 2))
    velocities = np.empty_like(positions)
    for t in range(frames):  # the recurrence; everything else is vectorised over clips and digits
        pos = pos + vel
        low, high = pos <= 0.0, pos >= 1.0  # (N, D, 2): which walls each digit touches
        hit = low | high
        if stochastic:
            angle = rng.random((num_clips, num_digits)) * 2 * np.pi
            speed = step_length * (1.0 + speed_jitter * (2.0 * rng.random((num_clips, num_digits)) - 1.0))
            new = np.stack([np.sin(angle), np.cos(angle)], axis=-1) * speed[..., None]  # (N, D, 2)
            away = np.where(low, 1.0, -1.0)  # off the low wall: positive; off the high one: negative
            new = np.where(hit, away * np.abs(new), new)  # free components keep their random sign
            vel = np.where(hit.any(-1, keepdims=True), new, vel)
        else:
            vel = np.where(hit, -vel, vel)
        pos = np.clip(pos, 0.0, 1.0)
        positions[:, t], velocities[:, t] = pos, vel
    return positions, velocities


def pixel_offsets(positions: np.ndarray, canvas: int = 64, digit_size: int = DIGIT_SIZE) -> np.ndarray:
    """Top-left pixel of each digit: ``int((canvas - digit_size) * position)``, int64."""
    return ((canvas - digit_size) * positions).astype(np.int64)


def render_clips(digits: np.ndarray, offsets: np.ndarray, canvas: int = 64) -> np.ndarray:
    """Paste digits at offsets and composite with max.

    Args:
        digits: uint8 (N, D, s, s), the digit each clip's slot d shows.
        offsets: int (N, T, D, 2) top-left (y, x), each in [0, canvas - s].

    Returns:
        uint8 (N, T, canvas, canvas).
    """
    n, t, d, _ = offsets.shape
    s = digits.shape[-1]
    out = np.zeros((n, t, canvas, canvas), dtype=np.uint8)
    k = canvas - s + 1
    sn, st, sy, sx = out.strides
    # (N, T, oy, ox, s, s): window [oy:oy+s, ox:ox+s] of every frame, a view into `out`, so one
    # fancy index copies whole s x s blocks instead of gathering pixel by pixel (10x faster).
    windows = as_strided(out, (n, t, k, k, s, s), (sn, st, sy, sx, sy, sx), writeable=True)
    clip_idx, time_idx = np.arange(n)[:, None], np.arange(t)[None, :]
    for slot in range(d):  # within one slot each frame gets one block, so no write overlaps
        oy, ox = offsets[:, :, slot, 0], offsets[:, :, slot, 1]
        block = windows[clip_idx, time_idx, oy, ox]  # (N, T, s, s), a copy
        windows[clip_idx, time_idx, oy, ox] = np.maximum(block, digits[:, slot, None])
    return out


def _recipe(num_pool: int, num_clips: int, frames: int, num_digits: int, canvas: int,
            rng: np.random.Generator, bounce: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Which pool digit each slot shows (N, D), then the offsets (N, T, D, 2), drawn in that order;
    ``bounce``: :func:`trajectories`' ``stochastic`` and ``speed_jitter``."""
    choice = rng.integers(num_pool, size=(num_clips, num_digits))
    positions, _ = trajectories(num_clips, frames, num_digits, rng, **(bounce or {}))
    return choice, pixel_offsets(positions, canvas)


def moving_mnist_clips(digits: np.ndarray, num_clips: int, frames: int = 20, num_digits: int = 2,
                       rng: np.random.Generator | None = None, canvas: int = 64,
                       stochastic: bool = False, speed_jitter: float = 0.0) -> np.ndarray:
    """Generate Moving MNIST clips (pure: the result depends only on the arguments and rng state).

    Args:
        digits: uint8 (P, 28, 28), the pool digits are drawn from (uniformly, with replacement).
        num_clips, frames, num_digits: N, T and digits per clip.
        rng: numpy Generator; its draws are the digit choice (N, D), then :func:`trajectories`.
        canvas: side of the square canvas (>= 28).
        stochastic, speed_jitter: random bounces (Stochastic Moving MNIST), see :func:`trajectories`.

    Returns:
        uint8 (num_clips, frames, canvas, canvas).
    """
    _check(digits, frames, num_digits, canvas)
    rng = np.random.default_rng() if rng is None else rng
    choice, offsets = _recipe(len(digits), num_clips, frames, num_digits, canvas, rng,
                              dict(stochastic=stochastic, speed_jitter=speed_jitter))
    return render_clips(digits[choice], offsets, canvas)


def _check(digits: np.ndarray, frames: int, num_digits: int, canvas: int) -> None:
    if digits.ndim != 3 or digits.shape[1:] != (DIGIT_SIZE, DIGIT_SIZE):
        raise RnnImgError(f"digits must be (N, 28, 28), got shape {tuple(digits.shape)}.")
    if frames < 1 or num_digits < 1:
        raise RnnImgError(f"frames and num_digits must be >= 1, got {frames} and {num_digits}.")
    if canvas < DIGIT_SIZE:
        raise RnnImgError(f"canvas must be >= {DIGIT_SIZE} pixels, got {canvas}.")


# ---------------------------------------------------------------------------------------------
# datasets


class FixedClips(Dataset):
    """A fixed set of clips stored as its recipe and rendered on access (see the module docstring).

    Attributes:
        pool: uint8 (P, 28, 28) digits; ``pool_ids`` their indices in their source (mnist-5k or
            MNIST's train/test set), so tests can check that test digits are held out.
    """

    def __init__(self, pool: np.ndarray, pool_ids: np.ndarray, num_clips: int, frames: int,
                 num_digits: int, canvas: int, seed: int, bounce: dict | None = None):
        _check(pool, frames, num_digits, canvas)
        self.pool, self.pool_ids, self.canvas = pool, pool_ids, canvas
        self.choice, self.offsets = _recipe(len(pool), num_clips, frames, num_digits, canvas,
                                            np.random.default_rng(seed), bounce)

    def __len__(self) -> int:
        return len(self.choice)

    def clip(self, i: int) -> np.ndarray:
        """uint8 (T, canvas, canvas) of clip ``i``."""
        i = _index(i, len(self))
        return render_clips(self.pool[self.choice[i:i + 1]], self.offsets[i:i + 1], self.canvas)[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"frames": unit_float(self.clip(i)[:, None])}  # (T, 1, H, W)


class RandomClips(Dataset):
    """Fresh clips on every access; ``len`` is only the epoch length."""

    def __init__(self, pool: np.ndarray, pool_ids: np.ndarray, num_clips: int, frames: int,
                 num_digits: int, canvas: int, bounce: dict | None = None):
        _check(pool, frames, num_digits, canvas)
        self.pool, self.pool_ids, self.bounce = pool, pool_ids, bounce or {}
        self.num_clips, self.frames, self.num_digits, self.canvas = num_clips, frames, num_digits, canvas

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        _index(i, len(self))  # bounds only: the clip does not depend on i
        # Seeded from torch's global RNG: --seed fixes it, DataLoader workers each get their own.
        seed = int(torch.randint(0, 2**63 - 1, (1,), dtype=torch.int64))
        clip = moving_mnist_clips(self.pool, 1, self.frames, self.num_digits,
                                  np.random.default_rng(seed), self.canvas, **self.bounce)[0]
        return {"frames": unit_float(clip[:, None])}  # (T, 1, H, W)


def _index(i: int, n: int) -> int:
    if not -n <= i < n:
        raise IndexError(f"clip {i} out of range for {n} clips")
    return i % n


def digit_pool(digits: str, split: str, data_dir: str = "data",
               download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (P, 28, 28) digits and their source indices: ``split`` is "train" or "test"."""
    if digits == "mnist-5k":
        images, _ = mnist_5k_arrays()
        ids = mnist_5k_split_indices(split)
        return images[ids], ids
    if digits == "mnist":
        ds = load_dataset("mnist", split, data_dir=data_dir, download=download)
        images = ds.images[:, 0].numpy()
        return images, np.arange(len(images))
    raise RnnImgError(f"digits must be 'mnist-5k' (shipped) or 'mnist' (torchvision, from --data-dir), "
                      f"got {digits!r}.")


@functools.lru_cache(maxsize=4)
def _fixed_set(digits: str, split: str, data_dir: str, download: bool, num_clips: int, frames: int,
               num_digits: int, canvas: int, seed: int, stochastic: bool = False,
               speed_jitter: float = 0.0) -> FixedClips:
    pool, ids = digit_pool(digits, split, data_dir, download)
    return FixedClips(pool, ids, num_clips, frames, num_digits, canvas, seed,
                      dict(stochastic=stochastic, speed_jitter=speed_jitter))


@register_dataset("moving-mnist", task="predict", splits=("train", "val", "test"),
                  description="bouncing MNIST digits, 64x64, 2 digits, 10+10 frames; train clips "
                  "generated on the fly, fixed-seed val (train digits) and test (held-out digits)")
def moving_mnist(split: str, num_digits: int = 2, frames: int = 20, canvas: int = 64,
                 digits: str = "mnist-5k", data_dir: str = "data", download: bool = False,
                 train_clips: int = 10_000, val_clips: int = 1_000, test_clips: int = 10_000,
                 test_file: str | None = None, frame_size: int | None = None,
                 channels: int | None = None, stochastic: bool = False,
                 speed_jitter: float = 0.0) -> Dataset:
    """Options: ``num_digits``, ``frames`` (T), ``canvas``, ``digits`` ("mnist-5k" or "mnist",
    the latter from ``data_dir``), ``train_clips`` (epoch length), ``val_clips``, ``test_clips``,
    ``test_file`` (read the test split from a ``mnist_test_seq.npy``-style file instead),
    ``frame_size`` (resize the rendered canvas, antialiased, e.g. 32 for a small model),
    ``channels`` (1, or 3 to repeat the grey channel), ``stochastic`` (random bounces, as
    ``stochastic-moving-mnist``) and ``speed_jitter`` (with ``stochastic``: each bounce scales the
    speed by a uniform factor in [1 - jitter, 1 + jitter]); see :func:`trajectories`."""
    if speed_jitter and not stochastic:
        raise RnnImgError("speed_jitter changes the speed at random bounces; add stochastic=true "
                          "(or use stochastic-moving-mnist).")
    if not 0.0 <= speed_jitter < 1.0:
        raise RnnImgError(f"speed_jitter must be in [0, 1), got {speed_jitter}.")
    dataset = _moving_mnist(split, num_digits, frames, canvas, digits, data_dir, download,
                            train_clips, val_clips, test_clips, test_file,
                            dict(stochastic=bool(stochastic), speed_jitter=float(speed_jitter)))
    if frame_size in (None, canvas) and channels in (None, 1):
        return dataset
    return Reframed(dataset, frame_size, channels)


class Reframed(Dataset):
    """Resizes (antialiased bilinear) and converts the channels of another clip dataset's frames,
    with the image datasets' transforms (:mod:`rnnimg.data.transforms`)."""

    def __init__(self, base: Dataset, frame_size: int | None, channels: int | None) -> None:
        if channels not in (None, 1, 3):
            raise RnnImgError(f"channels must be 1 or 3, got {channels}.")
        if frame_size is not None and frame_size < 2:
            raise RnnImgError(f"frame_size must be >= 2, got {frame_size}.")
        self.base, self.frame_size, self.channels = base, frame_size, channels

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name: str):  # pool, pool_ids, ... of the wrapped set
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        frames = self.base[i]["frames"]  # (T, C, H, W) in [0, 1]
        return {"frames": T.to_channels(T.resize(frames, self.frame_size), self.channels)}


def _moving_mnist(split: str, num_digits: int, frames: int, canvas: int, digits: str, data_dir: str,
                  download: bool, train_clips: int, val_clips: int, test_clips: int,
                  test_file: str | None, bounce: dict) -> Dataset:
    for name, value in (("train_clips", train_clips), ("val_clips", val_clips), ("test_clips", test_clips)):
        if value < 1:
            raise RnnImgError(f"{name} must be >= 1, got {value}.")
    if split == "test" and test_file is not None:
        if bounce["stochastic"]:
            raise RnnImgError("test_file holds fixed clips with their own bounces; drop test_file or "
                              "stochastic.")
        return mnist_test_seq(test_file, "test")
    if split == "train":
        pool, ids = digit_pool(digits, "train", data_dir, download)
        return RandomClips(pool, ids, train_clips, frames, num_digits, canvas, bounce)
    if split == "val":  # fixed clips of TRAINING digits, for choosing checkpoints
        return _fixed_set(digits, "train", str(data_dir), download, val_clips, frames, num_digits,
                          canvas, VAL_SEED, **bounce)
    return _fixed_set(digits, "test", str(data_dir), download, test_clips, frames, num_digits, canvas,
                      TEST_SEED, **bounce)


@register_dataset("stochastic-moving-mnist", task="predict", splits=("train", "val", "test"),
                  description="Stochastic Moving MNIST (Denton & Fergus 2018): digits that bounce off "
                  "walls in random new directions, 64x64, 2 digits; fixed-seed val and test")
def stochastic_moving_mnist(split: str, num_digits: int = 2, frames: int = 20, canvas: int = 64,
                            digits: str = "mnist-5k", data_dir: str = "data", download: bool = False,
                            train_clips: int = 10_000, val_clips: int = 1_000, test_clips: int = 10_000,
                            frame_size: int | None = None, channels: int | None = None,
                            speed_jitter: float = 0.0) -> Dataset:
    """``moving-mnist`` with ``stochastic=True``: the same options (but no ``test_file``), the same
    digits and seeds; only the bounces differ. ``speed_jitter`` > 0 varies the speed at every
    bounce as well (see :func:`trajectories`)."""
    return moving_mnist(split, num_digits, frames, canvas, digits, data_dir, download, train_clips,
                        val_clips, test_clips, None, frame_size, channels, True, speed_jitter)


@register_dataset("mnist-test-seq", prefix=True, task="predict", splits=("test",),
                  description="the fixed Moving MNIST test file mnist_test_seq.npy (T, N, 64, 64) "
                  "of Srivastava et al., or OpenSTL's saved (N, T, C, H, W) arrays")
def mnist_test_seq(arg: str, split: str, layout: str | None = None, key: str | None = None,
                   frames: int | None = None, frame_size: int | None = None,
                   channels: int | None = None) -> Dataset:
    """Accepted layouts (``layout`` overrides the guess):

    - 4-D: always (T, N, H, W), the layout of ``mnist_test_seq.npy`` (20, 10000, 64, 64) uint8;
      pass ``layout="NTHW"`` for a 4-D file that is clip-major.
    - 5-D: (N, T, C, H, W) as OpenSTL saves ``inputs/trues/preds.npy`` (float in [0, 1]), or
      (N, T, H, W, C); told apart as in :func:`rnnimg.data.clips.as_clips`.

    ``frames`` keeps the first ``frames`` frames of every clip (None: all); ``frame_size`` and
    ``channels`` resize and convert them as in :func:`rnnimg.data.clips.to_float_frames`.
    """
    path = Path(arg).expanduser()
    array = load_array(path, key)
    if layout is None and array.ndim == 4:
        layout = "TNHW"
    clips = as_clips(array, path, layout)
    check_values(clips, path)
    if frames is not None and not 1 <= frames <= clips.shape[1]:
        raise RnnImgError(f"{path}: frames must be in 1..{clips.shape[1]}, got {frames}.")
    return ClipDataset(clips, frames=frames, stride=clips.shape[1], channels=channels,
                       frame_size=frame_size)
