"""``clips:PATH``: the user's own image sequences for the predict task (reading the files is
``video_io.py``'s job).

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

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data.images import IMAGE_SUFFIXES
from rnnimg.data.registry import register_dataset
from rnnimg.data.video_io import (
    ARRAY_SUFFIXES,
    VIDEO_SUFFIXES,
    as_clips,
    check_values,
    load_array,
    natural_key,
    read_clip,
    read_clip_uint8,
    read_video,
    to_float_frames,
)
from rnnimg.errors import RnnImgError

__all__ = ["ClipDataset", "clips", "read_clip", "read_video"]


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
            clip = read_clip_uint8(entries[i])
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
