"""``pairs:A,B``: the user's own aligned image pairs for the translate task.

Folder A holds the inputs and folder B the targets; an input and its target share a file stem
(``A/cat.png`` pairs with ``B/cat.jpg``; subfolders are part of the stem: ``A/x/1.png`` pairs with
``B/x/1.png``). Every stem must be in both folders, and a pair's two images must have the same
size. Sorted by stem, every 10th pair is the test split (as ``folder:PATH`` does).

Items are ``{"source": (C_in, H, W), "target": (C_out, H, W)}`` floats in [0, 1]. Options:
``image_size`` (resize both to a square; default: keep, all pairs must then share one size),
``channels`` (the targets' channel count, 1 or 3; default: as stored), ``source_channels`` (the
inputs'; default: as stored).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from rnnimg.data import transforms as T
from rnnimg.data.images import image_files, read_image
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError


def _by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in image_files(folder):
        stem = str(path.relative_to(folder).with_suffix(""))
        if stem in files:
            raise RnnImgError(f"{folder}: two images share the stem {stem!r} ({files[stem].name}, "
                              f"{path.name}); keep one of them.")
        files[stem] = path
    return files


def matched_stems(inputs: Path, targets: Path) -> list[tuple[str, Path, Path]]:
    """(stem, input file, target file) for every stem, sorted; a one-line error listing the first
    few stems that only one folder has."""
    a, b = _by_stem(inputs), _by_stem(targets)
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        parts = []
        for folder, missing, count in ((inputs, only_a, len(only_a)), (targets, only_b, len(only_b))):
            if missing:
                shown = ", ".join(missing[:5]) + (", ..." if count > 5 else "")
                parts.append(f"{count} only in {folder} ({shown})")
        raise RnnImgError(f"pairs: the stems of the two folders do not match: {'; '.join(parts)}. "
                          "Name each input and its target alike (a.png and a.jpg pair).")
    return [(stem, a[stem], b[stem]) for stem in sorted(a)]


class PairDataset(Dataset):
    """Aligned (source, target) images held in memory as uint8, converted on access."""

    def __init__(self, sources: Tensor, targets: Tensor, stems: list[str]) -> None:
        self.sources, self.targets, self.stems = sources, targets, stems

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"source": self.sources[i].float() / 255.0, "target": self.targets[i].float() / 255.0}


def _stack(images: list[Tensor], channels: int | None, image_size: int | None) -> Tensor:
    if channels is None:
        channels = 3 if len({im.shape[0] for im in images}) > 1 else images[0].shape[0]
    return torch.stack([T.resize(T.to_channels(im, channels).unsqueeze(0), image_size)[0]
                        for im in images])


@register_dataset("pairs", prefix=True, task="translate",
                  description="your own aligned pairs: pairs:INPUTS,TARGETS, matched by file stem; "
                              "every 10th pair is the test split")
def pairs(arg: str, split: str, image_size=None, channels=None, source_channels=None) -> PairDataset:
    parts = arg.split(",")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise RnnImgError(f"pairs:{arg}: give two folders separated by a comma, e.g. "
                          "pairs:noisy,clean (inputs first).")
    for name, value in (("channels", channels), ("source_channels", source_channels)):
        if value not in (None, 1, 3):
            raise RnnImgError(f"{name} must be 1 or 3, got {value!r}.")
    if image_size is not None and (not isinstance(image_size, int) or image_size < 2):
        raise RnnImgError(f"image_size must be a whole number >= 2, got {image_size!r}.")
    inputs, targets = (Path(p.strip()).expanduser() for p in parts)
    matched = matched_stems(inputs, targets)
    if split == "test" and len(matched) < 10:
        raise RnnImgError(f"pairs:{arg} has {len(matched)} pairs, too few for a test split (10 needed).")
    keep = [m for i, m in enumerate(matched) if (i % 10 == 9) == (split == "test") or len(matched) < 10]
    sources, goals = [], []
    for stem, a, b in keep:
        source, target = read_image(a), read_image(b)
        if source.shape[-2:] != target.shape[-2:]:
            raise RnnImgError(f"pair {stem!r}: {a} is {source.shape[-1]}x{source.shape[-2]} but {b} is "
                              f"{target.shape[-1]}x{target.shape[-2]}; aligned pairs need one size.")
        sources.append(source)
        goals.append(target)
    if image_size is None and len({s.shape[-2:] for s in sources}) > 1:
        raise RnnImgError(f"pairs:{arg}: the pairs have different sizes; pass --data-opt "
                          "image_size=N to resize them all.")
    return PairDataset(_stack(sources, source_channels, image_size), _stack(goals, channels, image_size),
                       [m[0] for m in keep])
