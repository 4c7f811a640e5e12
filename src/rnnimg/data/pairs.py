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
from rnnimg.data.images import every_tenth, matched_stems, read_image
from rnnimg.data.registry import register_dataset
from rnnimg.errors import RnnImgError


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
    matched = matched_stems(f"pairs:{arg}", inputs, targets, ("input", "target"),
                            "Name each input and its target alike (a.png and a.jpg pair).")
    keep = every_tenth(matched, split, f"pairs:{arg}", "pairs")
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
