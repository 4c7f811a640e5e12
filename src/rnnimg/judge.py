"""Does the picture match the condition? A small digit classifier shipped with rnnimg, used to
score conditional generators: the share of samples whose digit (and, for captions, place) is the
one asked for.

The classifier (:class:`DigitJudge`, 3 convolutions and one linear layer, 29,738 parameters, about
120 KB as float32 in ``rnnimg/data/assets/digit_judge.npz``) was trained on the 4,500 mnist-5k
training digits, each seen both grey and Bernoulli-binarized, shifted by up to 3 pixels, with

    python -m rnnimg.judge --train --epochs 12 --seed 0

(it printed mnist-5k test accuracy 0.9840: 492 of the 500 test digits). Being trained
on mnist-5k it judges 28x28 digits; generated images of another size are resized to 28x28 first.

Scoring (:func:`match_statistics`, additive like ``evaluation_statistics``):

- a batch with ``label``: sample one image per item with that label; it matches if the judge's
  class is the label;
- a batch of ``mnist-captions`` (``text``, ``digits``, ``places``): sample one image per caption;
  it matches if, for every digit the caption names, the judge reads that digit in the 28x28 cell of
  its place (so a right digit in the wrong place does not match). ``place_match`` counts the
  samples whose ink is where the caption says, whatever the digits: each named cell holds at least
  1 / (2 k) of the image's ink for k named digits (a blob in the right place passes; for a
  pair it checks that both places hold ink, not which digit is in which).
"""

from __future__ import annotations

import argparse
import io
from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS = "digit_judge.npz"


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


def load_digit_judge(device: str | torch.device = "cpu") -> DigitJudge:
    """The shipped judge, in eval mode."""
    judge = DigitJudge()
    with resources.files("rnnimg.data.assets").joinpath(WEIGHTS).open("rb") as f:
        arrays = np.load(io.BytesIO(f.read()))
        judge.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    return judge.to(device).eval()


@torch.no_grad()
def match_statistics(model, batch: dict[str, Tensor], judge: DigitJudge,
                     generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Sample one image per item of ``batch`` under its condition and judge it.

    Returns:
        {"match": number of matching samples, "judged": number of items} (and for captions
        "place_match"), float64 sums.
    """
    device = model.device
    judge = judge.to(device)
    if "text" in batch and "digits" in batch:
        text = batch["text"].to(device)
        images = model.sample(len(text), text=text, generator=generator)
        ok = torch.ones(len(text), dtype=torch.bool, device=device)
        placed = torch.ones_like(ok)
        named = (batch["digits"] >= 0).sum(1).to(device)  # digits the caption names, (B,)
        ink = images.flatten(1).sum(1).clamp(min=1e-6)
        for slot in range(batch["digits"].shape[1]):
            digit = batch["digits"][:, slot].to(device)
            place = batch["places"][:, slot].clamp(min=0).to(device)
            crops = torch.stack([cell(img, int(p)) for img, p in zip(images, place)])
            ok &= (digit < 0) | (judge.classify(crops) == digit)
            share = crops.flatten(1).sum(1) / ink  # of the image's ink inside this place's cell
            placed &= (digit < 0) | (share >= 0.5 / named)
        return {"match": ok.double().sum().cpu(), "place_match": placed.double().sum().cpu(),
                "judged": torch.tensor(float(len(ok)), dtype=torch.float64)}
    elif "label" in batch:
        label = batch["label"].to(device)
        images = model.sample(len(label), label=label, generator=generator)
        ok = judge.classify(images) == label
    else:
        raise ValueError("the batch has neither labels nor captions to judge")
    return {"match": ok.double().sum().cpu(), "judged": torch.tensor(float(len(ok)), dtype=torch.float64)}


def cell(image: Tensor, place: int) -> Tensor:
    """The 28x28 cell of ``place`` (row place // 3, column place % 3) of a 60x60 caption image."""
    from rnnimg.data.mnist_captions import DIGIT, place_box

    y, x = place_box(place)
    return image[:, y:y + DIGIT, x:x + DIGIT]


def train_digit_judge(epochs: int = 12, seed: int = 0) -> tuple[DigitJudge, float]:
    """Train the judge on mnist-5k (train split) and return it with its test accuracy."""
    from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices

    torch.manual_seed(seed)
    images, labels = mnist_5k_arrays()
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    train_idx = torch.from_numpy(mnist_5k_split_indices("train"))
    test_idx = torch.from_numpy(mnist_5k_split_indices("test"))
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
    accuracy = float((judge.classify(x[test_idx]) == y[test_idx]).float().mean())
    return judge, accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description="Train (or test) the digit judge shipped with rnnimg.")
    parser.add_argument("--train", action="store_true", help="train and write the package's weights")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.train:
        from pathlib import Path

        from rnnimg.fileio import atomic_write_bytes

        judge, accuracy = train_digit_judge(args.epochs, args.seed)
        buffer = io.BytesIO()
        np.savez(buffer, **{k: v.numpy() for k, v in judge.state_dict().items()})
        path = Path(str(resources.files("rnnimg.data.assets").joinpath(WEIGHTS)))
        atomic_write_bytes(path, buffer.getvalue())
        print(f"wrote {path} ({len(buffer.getvalue())} bytes); mnist-5k test accuracy {accuracy:.4f}")
    else:
        from rnnimg.data.images import mnist_5k_arrays, mnist_5k_split_indices

        images, labels = mnist_5k_arrays()
        idx = mnist_5k_split_indices("test")
        x = torch.from_numpy(images[idx]).float().div(255).unsqueeze(1)
        judged = load_digit_judge().classify(x).numpy()
        print(f"mnist-5k test accuracy {(judged == labels[idx]).mean():.4f}")


if __name__ == "__main__":
    main()
