"""Reading clips from files: ``.npy``/``.npz`` arrays, video files and folders of frames, and
their conversion to float frames. :func:`read_clip` reads one clip for ``rnnimg predict``; the
``clips:PATH`` dataset (``clips.py``) and ``moving_mnist.py`` build on the array helpers.

Arrays are read by dtype, never by looking at the values: ``uint8`` (and other integer types,
whose values must then lie in 0..255) are 0-255 levels and are divided by 255; ``bool`` is 0/1;
floating types must already lie in [0, 1] (a float array with values above 1 raises an error
rather than being silently rescaled). NaN or Inf raises.

Video files go through imageio v3: GIF with its Pillow plugin, every other container (``.mp4``,
``.avi``, ``.mov``, ``.mkv``, ``.webm`` ...) with its PyAV plugin (``pip install rnnimg[video]``),
the same code path that :func:`rnnimg.viz.write_video` writes MP4 with.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnimg.data import transforms as T
from rnnimg.data.images import IMAGE_SUFFIXES, read_image
from rnnimg.errors import RnnImgError

ARRAY_SUFFIXES = {".npy", ".npz"}
AV_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
VIDEO_SUFFIXES = {".gif"} | AV_SUFFIXES
LAYOUTS = ("NTHW", "NTHWC", "NTCHW", "TNHW")
_CHUNK = 256  # clips checked at a time, so validating a memory-mapped file stays small in RAM


def natural_key(path: Path) -> tuple:
    """Sort key that orders ``frame9`` before ``frame10``."""
    return tuple(int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", path.name))


# ---------------------------------------------------------------------------------------------
# arrays


def load_array(path: Path, key: str | None = None) -> np.ndarray:
    """Open a ``.npy`` (memory-mapped, so a 800 MB file costs nothing until read) or ``.npz``."""
    if not path.exists():
        raise RnnImgError(f"{path}: no such file.")
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False)
        with np.load(path, allow_pickle=False) as data:
            names = list(data.keys())
            if key is None and len(names) != 1:
                raise RnnImgError(f"{path} holds arrays {', '.join(names) or '(none)'}; "
                                  "pick one with the key option, e.g. key=clips.")
            name = key if key is not None else names[0]
            if name not in names:
                raise RnnImgError(f"{path} has no array {name!r}; it has {', '.join(names)}.")
            return data[name]
    except RnnImgError:
        raise
    except (OSError, ValueError, EOFError) as err:
        raise RnnImgError(f"{path}: not a readable .npy/.npz array ({err}).") from None


def check_values(array: np.ndarray, path: Path) -> None:
    """Raise unless ``array`` holds what the module docstring allows (dtype decides the scale)."""
    if array.dtype == np.uint8 or array.dtype == np.bool_:
        return
    if np.issubdtype(array.dtype, np.integer):
        lo, hi, fits = 0, 255, "0..255 (uint8 levels)"
    elif np.issubdtype(array.dtype, np.floating):
        lo, hi, fits = 0.0, 1.0, "[0, 1] (save 0-255 data as uint8, or divide by 255)"
    else:
        raise RnnImgError(f"{path}: arrays of dtype {array.dtype} are not clips; use uint8 0-255 "
                          "or float 0-1.")
    array = array.reshape(1, -1) if array.ndim == 0 else array
    for start in range(0, len(array), _CHUNK):
        part = np.asarray(array[start:start + _CHUNK])
        if part.dtype.kind == "f" and not np.isfinite(part).all():
            raise RnnImgError(f"{path}: the array holds NaN or Inf values; clean or regenerate it.")
        if part.size and (part.min() < lo or part.max() > hi):
            raise RnnImgError(f"{path}: {array.dtype} values span {part.min():g}..{part.max():g}; "
                              f"they must lie in {fits}.")


def as_clips(array: np.ndarray, path: Path, layout: str | None = None) -> np.ndarray:
    """View an array of clips as (N, T, C, H, W) without copying it.

    Args:
        array: 4-D (N, T, H, W), or 5-D (N, T, H, W, C) / (N, T, C, H, W) with C in {1, 3};
            or 4-D (T, N, H, W) (the Moving MNIST file) when ``layout="TNHW"``.
        path: where it came from, for error messages.
        layout: one of ``LAYOUTS``; ``None`` guesses (see the module docstring).
    """
    if layout is not None and layout not in LAYOUTS:
        raise RnnImgError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}.")
    if layout is None:
        if array.ndim == 4:
            layout = "NTHW"
        elif array.ndim == 5:
            layout = "NTCHW" if array.shape[2] in (1, 3) and array.shape[4] not in (1, 3) else "NTHWC"
        else:
            raise RnnImgError(f"{path}: expected clips of shape (N, T, H, W) or (N, T, H, W, C), "
                              f"got an array of shape {tuple(array.shape)}.")
    if array.ndim != len(layout):
        raise RnnImgError(f"{path}: layout {layout} needs a {len(layout)}-D array, got shape "
                          f"{tuple(array.shape)}.")
    if layout == "NTHW":
        clips = array[:, :, None]
    elif layout == "TNHW":
        clips = array.transpose(1, 0, 2, 3)[:, :, None]
    elif layout == "NTHWC":
        clips = array.transpose(0, 1, 4, 2, 3)
    else:
        clips = array
    if clips.shape[2] not in (1, 3):
        raise RnnImgError(f"{path}: clips of shape {tuple(array.shape)} read as {layout} have "
                          f"{clips.shape[2]} channels; 1 or 3 are supported (pass layout=...).")
    return clips


def _single_clip_array(array: np.ndarray, path: Path) -> np.ndarray:
    """One clip (T, H, W), (T, H, W, C), (T, C, H, W) or a batch of one, as (T, C, H, W)."""
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4 and array.shape[-1] in (1, 3):
        return array.transpose(0, 3, 1, 2)
    if array.ndim == 4 and array.shape[1] in (1, 3):
        return array
    if array.ndim in (4, 5) and array.shape[0] == 1:
        return as_clips(array, path)[0]
    raise RnnImgError(f"{path}: expected one clip of shape (T, H, W) or (T, H, W, C), got shape "
                      f"{tuple(array.shape)}; for many clips use the dataset clips:{path}.")


# ---------------------------------------------------------------------------------------------
# videos and frame folders


def read_video(path: Path) -> np.ndarray:
    """Decode a video file to uint8 (T, C, H, W); C = 1 when all three colour channels agree."""
    if not path.exists():
        raise RnnImgError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise RnnImgError(f"{path}: unknown video type {suffix!r}; use one of "
                          f"{', '.join(sorted(VIDEO_SUFFIXES))}.")
    import imageio.v3 as iio

    plugin = "pillow" if suffix == ".gif" else "pyav"
    if plugin == "pyav" and importlib.util.find_spec("av") is None:
        raise RnnImgError(f"{path}: reading {suffix} videos needs PyAV; run pip install "
                          "rnnimg[video], or convert the video to GIF or frames.")
    try:
        frames = iio.imread(path, index=None, plugin=plugin)  # (T, H, W, 3|4), or (T, H, W) grey
    except Exception as err:  # Pillow and FFmpeg raise many types for corrupt files
        raise RnnImgError(f"{path}: not a readable video ({str(err).splitlines()[0][:120]}); "
                          "re-export the video.") from None
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or len(frames) == 0:
        raise RnnImgError(f"{path}: decoded no frames; re-export the video.")
    frames = frames[..., :3]  # drop alpha: a clip has no transparency
    if frames.shape[-1] == 3 and (frames == frames[..., :1]).all():
        frames = frames[..., :1]
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2))


def frame_files(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural order."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith(".")), key=natural_key)


def read_frame_folder(folder: Path) -> np.ndarray:
    """Read a folder of numbered frames as one uint8 clip (T, C, H, W)."""
    files = frame_files(folder)
    if not files:
        raise RnnImgError(f"{folder}: no frames found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}).")
    frames = [read_image(f) for f in files]
    first = tuple(frames[0].shape[-2:])
    for file, frame in zip(files, frames):
        if tuple(frame.shape[-2:]) != first:
            raise RnnImgError(f"{folder}: frames differ in size ({files[0].name} is {first}, {file.name} "
                              f"is {tuple(frame.shape[-2:])}); all frames of a clip must have one size.")
    channels = max(f.shape[0] for f in frames)
    return torch.stack([T.to_channels(f, channels) for f in frames]).numpy()


def read_clip_uint8(path: Path) -> np.ndarray:
    """One clip from a frame folder or a video file, uint8 (T, C, H, W)."""
    if path.is_dir():
        return read_frame_folder(path)
    return read_video(path)


# ---------------------------------------------------------------------------------------------
# conversion


def to_float_frames(clip: np.ndarray, channels: int | None = None,
                    frame_size: int | Sequence[int] | None = None) -> Tensor:
    """(T, C, H, W) uint8 / integer / bool / float array -> float32 tensor in [0, 1]."""
    x = unit_float(clip)
    if channels not in (None, 1, 3):
        raise RnnImgError(f"channels must be 1 or 3, got {channels}.")
    if channels is not None and x.shape[1] != channels:
        x = torch.stack([T.to_channels(f, channels) for f in x])
    if frame_size is not None:
        size = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
        if len(size) != 2 or min(size) < 2:
            raise RnnImgError(f"frame_size must be a side >= 2 or (height, width), got {frame_size}.")
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
            x = x.clamp_(0.0, 1.0)
    return x


def unit_float(array: np.ndarray) -> Tensor:
    """uint8/integer (levels 0-255), bool or float array -> float32 tensor in [0, 1].

    Converted in numpy: it copies out of a memory map, and torch's multi-threaded elementwise ops
    on clip-sized tensors cost ~100x more on a loaded 2-core machine (measured in a data worker).
    """
    array = np.asarray(array)
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.floating):
        return torch.from_numpy(array.astype(np.float32))
    return torch.from_numpy(array.astype(np.float32) / np.float32(255.0))


def read_clip(path: str | Path, channels: int | None = None,
              frame_size: int | Sequence[int] | None = None, min_frames: int = 1,
              key: str | None = None) -> Tensor:
    """Read one clip for prediction: float (T, C, H, W) in [0, 1].

    Args:
        path: a ``.npy``/``.npz`` holding one clip (T, H, W), (T, H, W, C) or (T, C, H, W) (values
            read as in the module docstring), a folder of numbered frames, or a video file.
        channels: 1 or 3 to convert; ``None`` keeps the native count.
        frame_size: resize every frame to this side (or (height, width)); ``None`` keeps it.
        min_frames: raise if the clip is shorter (e.g. the model's context length + 1).
        key: the array to read from a ``.npz`` holding several.

    Raises:
        RnnImgError: missing path, unreadable file, wrong array rank, NaN/Inf, values out of
            range, frames of different sizes, or fewer than ``min_frames`` frames.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise RnnImgError(f"{path}: no such file or folder.")
    if path.suffix.lower() in ARRAY_SUFFIXES and path.is_file():
        array = load_array(path, key)
        check_values(array, path)
        clip = _single_clip_array(array, path)
    elif path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES:
        clip = read_clip_uint8(path)
    else:
        raise RnnImgError(f"{path}: not a clip; pass a .npy/.npz array, a folder of frames or a video "
                          f"({', '.join(sorted(VIDEO_SUFFIXES))}).")
    if len(clip) < min_frames:
        raise RnnImgError(f"{path}: the clip has {len(clip)} frames, {min_frames} are needed; "
                          "pass a longer clip or a shorter context.")
    return to_float_frames(clip, channels, frame_size)
