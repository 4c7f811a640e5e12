"""``clips:PATH``: the user's own image sequences for the predict task, and :func:`read_clip`.

Every item is ``{"frames": float (T, C, H, W) in [0, 1]}``.

What PATH may be:

- a ``.npy`` / ``.npz`` array of clips, (N, T, H, W) or (N, T, H, W, C) (C = 1 or 3), or
  (N, T, C, H, W) as OpenSTL saves its ``inputs/trues/preds.npy`` (channels-first is recognised
  when axis 2 has 1 or 3 entries and the last axis has neither); ``layout=`` overrides the
  guess. An ``.npz`` must hold one array, or name it with ``key=``.
  Values are read by dtype, never by looking at them: ``uint8`` (and other integer types, whose
  values must then lie in 0..255) are 0-255 levels and are divided by 255; ``bool`` is 0/1;
  floating types must already lie in [0, 1] (a float array with values above 1 raises an error
  rather than being silently rescaled; save it as uint8 or divide by 255). NaN or Inf raises.
- a video file (``.gif`` through Pillow; ``.mp4``, ``.avi``, ``.mov``, ``.mkv``, ``.webm`` through
  imageio-ffmpeg, ``pip install rnnimg[video]``): one clip.
- a folder whose entries are the clips: subfolders of numbered frames (one subfolder per clip,
  frames sorted naturally so ``frame10`` comes after ``frame9``) and/or video files. A folder that
  holds image files directly and no clip entries is itself one clip.

Long clips are cut into windows of ``frames`` frames taken every ``stride`` frames; by default
``stride = frames``, i.e. consecutive, non-overlapping windows (a tail shorter than ``frames`` is
dropped); pass ``stride=1`` for sliding windows. Splits go by clip, before windowing, so windows
of one clip never land in both splits: every 10th clip (in natural order) is the test split, like
``folder:PATH``; with fewer than 10 clips ``train`` uses them all and ``test`` raises.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.images import IMAGE_SUFFIXES, read_image
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError

ARRAY_SUFFIXES = {".npy", ".npz"}
FFMPEG_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
VIDEO_SUFFIXES = {".gif"} | FFMPEG_SUFFIXES
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
    if suffix == ".gif":
        import imageio.v3 as iio

        try:
            frames = iio.imread(path, index=None, plugin="pillow")  # (T, H, W, 3|4), or (T, H, W) grey
        except Exception as err:  # Pillow raises several types for corrupt files
            raise RnnImgError(f"{path}: not a readable GIF ({err}); re-export the video.") from None
    elif suffix in FFMPEG_SUFFIXES:
        try:
            import imageio_ffmpeg
        except ImportError:
            raise RnnImgError(f"{path}: reading {suffix} videos needs imageio-ffmpeg; run pip install "
                              "rnnimg[video], or convert the video to GIF or frames.") from None
        try:
            reader = imageio_ffmpeg.read_frames(str(path))
            meta = next(reader)
            width, height = meta["size"]
            frames = np.stack([np.frombuffer(f, np.uint8).reshape(height, width, 3) for f in reader])
        except Exception as err:  # ffmpeg reports a corrupt file as RuntimeError/OSError/...
            raise RnnImgError(f"{path}: not a readable video ({err}); re-export the video.") from None
    else:
        raise RnnImgError(f"{path}: unknown video type {suffix!r}; use one of "
                          f"{', '.join(sorted(VIDEO_SUFFIXES))}.")
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


def _read_clip_uint8(path: Path) -> np.ndarray:
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
              frame_size: int | Sequence[int] | None = None, min_frames: int = 1) -> Tensor:
    """Read one clip for prediction: float (T, C, H, W) in [0, 1].

    Args:
        path: a ``.npy``/``.npz`` holding one clip (T, H, W), (T, H, W, C) or (T, C, H, W) (values
            read as in the module docstring), a folder of numbered frames, or a video file.
        channels: 1 or 3 to convert; ``None`` keeps the native count.
        frame_size: resize every frame to this side (or (height, width)); ``None`` keeps it.
        min_frames: raise if the clip is shorter (e.g. the model's context length + 1).

    Raises:
        RnnImgError: missing path, unreadable file, wrong array rank, NaN/Inf, values out of
            range, frames of different sizes, or fewer than ``min_frames`` frames.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise RnnImgError(f"{path}: no such file or folder.")
    if path.suffix.lower() in ARRAY_SUFFIXES and path.is_file():
        array = load_array(path)
        check_values(array, path)
        clip = _single_clip_array(array, path)
    elif path.is_dir() or path.suffix.lower() in VIDEO_SUFFIXES:
        clip = _read_clip_uint8(path)
    else:
        raise RnnImgError(f"{path}: not a clip; pass a .npy/.npz array, a folder of frames or a video "
                          f"({', '.join(sorted(VIDEO_SUFFIXES))}).")
    if len(clip) < min_frames:
        raise RnnImgError(f"{path}: the clip has {len(clip)} frames, {min_frames} are needed; "
                          "pass a longer clip or a shorter context.")
    return to_float_frames(clip, channels, frame_size)


# ---------------------------------------------------------------------------------------------
# the dataset


class ClipDataset(Dataset):
    """Windows of ``frames`` frames cut from clips, converted to float on access.

    Args:
        clips: a sequence of (T, C, H, W) arrays (a 5-D array, possibly memory-mapped, or a list).
        indices: the clips to use (``None``: all); indexing lazily keeps a memory map unread.
        frames: window length; ``None`` takes each clip whole (then all must have one length).
        stride: start-to-start distance of windows; ``None`` means ``frames`` (no overlap).
        channels, frame_size: as in :func:`to_float_frames`.
    """

    def __init__(self, clips: Sequence[np.ndarray], indices: Sequence[int] | None = None, *,
                 frames: int | None = None, stride: int | None = None, channels: int | None = None,
                 frame_size: int | Sequence[int] | None = None):
        if stride is not None and stride < 1:
            raise RnnImgError(f"stride must be >= 1, got {stride}.")
        self.clips, self.frames, self.channels, self.frame_size = clips, frames, channels, frame_size
        indices = range(len(clips)) if indices is None else indices
        lengths = {i: len(clips[i]) if isinstance(clips, list) else clips.shape[1] for i in indices}
        if frames is None:
            self.windows = [(i, 0, n) for i, n in lengths.items()]
        else:
            step = stride or frames
            self.windows = [(i, s, frames) for i, n in lengths.items()
                            for s in range(0, n - frames + 1, step)]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, k: int) -> dict[str, Tensor]:
        i, start, length = self.windows[k]
        clip = self.clips[i][start:start + length]
        return {"frames": to_float_frames(clip, self.channels, self.frame_size)}


def _split_clips(n: int, split: str, where: Path) -> list[int]:
    if split == "test" and n < 10:
        raise RnnImgError(f"{where} has {n} clips, too few for a test split (10 needed); "
                          "evaluate on another clips:PATH.")
    return [i for i in range(n) if n < 10 or (i % 10 == 9) == (split == "test")]


def _clip_entries(root: Path) -> list[Path]:
    """The clips inside a folder (see the module docstring)."""
    children = sorted((p for p in root.iterdir() if not p.name.startswith(".")), key=natural_key)
    entries = [p for p in children if p.is_dir() or p.suffix.lower() in VIDEO_SUFFIXES]
    frames = [p for p in children if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES - {".gif"}]
    if entries and frames:
        raise RnnImgError(f"{root} mixes frame images ({frames[0].name}) with clips ({entries[0].name}); "
                          "put each clip's frames in a subfolder of its own.")
    if frames:
        return [root]  # the folder itself is one clip
    if not entries:
        raise RnnImgError(f"{root}: no clips found; expected subfolders of numbered frames, video files "
                          f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a .npy/.npz array.")
    return entries


@register_dataset("clips", prefix=True, task="predict", splits=("train", "test"),
                  description="your own clips: a .npy/.npz array (N, T, H, W[, C]), a folder of "
                  "frame folders or video files; every 10th clip is the test split")
def clips(arg: str, split: str, frames: int | None = None, stride: int | None = None,
          min_frames: int = 2, frame_size=None, channels: int | None = None, strict: bool = False,
          key: str | None = None, layout: str | None = None) -> ClipDataset:
    """Options: ``frames`` (window length), ``stride`` (default ``frames``: consecutive windows),
    ``min_frames`` (shortest usable clip, e.g. context + 1), ``frame_size``, ``channels``,
    ``strict`` (stop at the first unreadable or too-short clip instead of skipping it with a
    warning), ``key`` and ``layout`` (for arrays)."""
    root = Path(arg).expanduser()
    if not root.exists():
        raise RnnImgError(f"{root}: no such file or folder.")
    if frames is not None and frames < 1:
        raise RnnImgError(f"frames must be >= 1, got {frames}.")
    need = max(min_frames, frames or 0)
    if root.is_file() and root.suffix.lower() in ARRAY_SUFFIXES:
        array = as_clips(load_array(root, key), root, layout)
        check_values(array, root)
        if array.shape[1] < need:
            raise RnnImgError(f"{root}: clips have {array.shape[1]} frames, {need} are needed; "
                              "lower frames/min_frames or use longer clips.")
        keep = _split_clips(len(array), split, root)
        return ClipDataset(array, keep, frames=frames, stride=stride, channels=channels,
                           frame_size=frame_size)
    if root.is_file() and root.suffix.lower() not in VIDEO_SUFFIXES:
        raise RnnImgError(f"{root}: not a clip source; pass a .npy/.npz array, a video "
                          f"({', '.join(sorted(VIDEO_SUFFIXES))}) or a folder of clips.")
    entries = [root] if root.is_file() else _clip_entries(root)
    keep = _split_clips(len(entries), split, root)
    loaded, skipped = [], []
    for i in keep:
        try:
            clip = _read_clip_uint8(entries[i])
            if len(clip) < need:
                raise RnnImgError(f"{entries[i]}: the clip has {len(clip)} frames, {need} are needed; "
                                  "lower frames/min_frames or remove the clip.")
            loaded.append(clip)
        except RnnImgError as err:
            if len(keep) == 1:
                raise
            if strict:
                raise RnnImgError(f"{err} (--strict stops at the first bad clip)") from None
            skipped.append((entries[i], err))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} bad clip(s) under {root}, e.g. {skipped[0][1]}; "
                      "pass --strict to stop instead.", stacklevel=2)
    if not loaded:
        raise RnnImgError(f"{root}: none of its {len(keep)} clips could be used.")
    if frame_size is None and len({c.shape[-2:] for c in loaded}) > 1:
        raise RnnImgError(f"{root}: clips have different frame sizes; pass frame_size to resize them.")
    if frames is None and len({len(c) for c in loaded}) > 1:
        raise RnnImgError(f"{root}: clips have different lengths; pass frames=N to cut windows of N frames.")
    if channels is None and len({c.shape[1] for c in loaded}) > 1:
        channels = 3
    return ClipDataset(loaded, frames=frames, stride=stride, channels=channels, frame_size=frame_size)
