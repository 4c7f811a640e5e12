"""The digit judge's training loop, its test accuracy, and where trained weights go: a folder the
user chooses (the shipped weights are read-only package data and are never written here)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as save_safetensors

from rnnimg.errors import RnnImgError
from rnnimg.fileio import atomic_write_bytes
from rnnimg.judge.net import WEIGHTS, DigitJudge


def mnist_5k_test_accuracy(judge: DigitJudge) -> float:
    """The share of the 500 mnist-5k test digits (grey) that ``judge`` reads right."""
    from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices

    images, labels = mnist_5k_arrays()
    idx = mnist_5k_split_indices("test")
    x = torch.from_numpy(images[idx]).float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
    judged = judge.classify(x.to(next(judge.parameters()).device)).cpu().numpy()
    return float((judged == labels[idx]).mean())


def train_digit_judge(epochs: int = 12, seed: int = 0) -> tuple[DigitJudge, float]:
    """Train the judge on mnist-5k (train split) and return it with its test accuracy."""
    from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices

    torch.manual_seed(seed)
    images, labels = mnist_5k_arrays()
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx = torch.from_numpy(mnist_5k_split_indices("train"))
    judge = DigitJudge()
    opt = torch.optim.Adam(judge.parameters(), lr=2e-3)
    for _ in range(epochs):
        for idx in train_idx[torch.randperm(len(train_idx))].split(64):
            batch = x[idx]
            binary = torch.rand(batch.shape[0]) < 0.5  # half the batch Bernoulli-binarized
            batch = torch.where(binary[:, None, None, None], (torch.rand_like(batch) < batch).float(),
                                batch)
            dy, dx = (int(v) for v in torch.randint(-3, 4, (2,)))
            batch = torch.roll(batch, shifts=(dy, dx), dims=(2, 3))
            loss = F.cross_entropy(judge(batch), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    judge.eval()
    return judge, mnist_5k_test_accuracy(judge)


def save_digit_judge(judge: DigitJudge, folder: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write ``judge``'s weights to ``folder/digit_judge.safetensors`` (atomically) and return the
    path; an existing file is kept unless ``overwrite``."""
    path = Path(folder) / WEIGHTS
    if path.exists() and not overwrite:
        raise RnnImgError(f"{path} already exists; pass --overwrite to replace it, or --out to choose "
                          "another folder.")
    state = {k: v.detach().cpu().contiguous() for k, v in judge.state_dict().items()}
    return atomic_write_bytes(path, save_safetensors(state, metadata={"format": "pt"}))
