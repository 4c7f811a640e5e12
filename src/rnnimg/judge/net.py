"""The digit judge's network and its shipped weights.

:class:`DigitJudge`: 3 convolutions and one linear layer, 29,738 parameters (about 120 KB as
float32 safetensors in ``rnnimg/data/assets/digit_judge.safetensors``). It was trained on the 4,500
mnist-5k training digits, each seen both grey and Bernoulli-binarized, shifted by up to 3 pixels
(:mod:`rnnimg.judge.train`), and reads 492 of the 500 mnist-5k test digits right (0.984). Being
trained on mnist-5k it judges 28x28 digits; images of another size are resized to 28x28 first.
"""

from __future__ import annotations

import os
from importlib import resources

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file
from torch import Tensor, nn

from rnnimg.errors import RnnImgError

WEIGHTS = "digit_judge.safetensors"  # in rnnimg.data.assets, read-only package data


class DigitJudge(nn.Module):
    """(B, 1, 28, 28) in [0, 1] -> class logits (B, 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.head = nn.Linear(32 * 7 * 7, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x * 2 - 1)), 2)  # (B, 16, 14, 14)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 32, 7, 7)
        x = F.relu(self.conv3(x))
        return self.head(x.flatten(1))

    @torch.no_grad()
    def classify(self, images: Tensor) -> Tensor:
        """Class (B,) of grey images (B, C, H, W) in [0, 1] of any size (resized to 28x28)."""
        images = images.float()
        if images.shape[1] == 3:
            images = images.mean(1, keepdim=True)
        if images.shape[-2:] != (28, 28):
            images = F.interpolate(images, size=(28, 28), mode="bilinear", antialias=True,
                                   align_corners=False)
        return self(images).argmax(1)


def load_digit_judge(device: str | torch.device = "cpu", path: str | os.PathLike | None = None
                     ) -> DigitJudge:
    """The judge, in eval mode: the shipped weights, or those of ``path`` (a safetensors file
    written by :func:`rnnimg.judge.train.save_digit_judge`)."""
    judge = DigitJudge()
    if path is None:
        state = load_safetensors(resources.files("rnnimg.data.assets").joinpath(WEIGHTS).read_bytes())
    else:
        try:
            state = load_file(os.fspath(path))
        except (OSError, SafetensorError) as err:
            raise RnnImgError(f"cannot read judge weights {path}: {err}; give a .safetensors file "
                              "written by `python -m rnnimg.judge --train`.") from None
    try:
        judge.load_state_dict(state)
    except RuntimeError:
        raise RnnImgError(f"{path} holds no digit judge (its tensors have other names or shapes); "
                          "give a file written by `python -m rnnimg.judge --train`.") from None
    return judge.to(device).eval()
