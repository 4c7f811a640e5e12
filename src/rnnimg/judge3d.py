"""Is the shape of the class asked for? A small voxel classifier shipped with rnnimg, used to score
class-conditional voxel generators (``voxscan``, ``voxcnn``) the way the digit judge
(:mod:`rnnimg.judge`) scores DRAW: the share of samples whose class is the one asked for.

:class:`ShapeJudge` is a 3D CNN (three 3x3x3 convolutions, two 2x2x2 max-poolings, a global mean
and a linear layer; 17,816 parameters, 72 KB as float32 safetensors in
``rnnimg/data/assets/shape_judge.safetensors``) over 16^3 occupancy grids. It reads shapes3d's 8
classes (chair, table, lamp, bench, shelf, mug, car, plane; Choy et al. 2016's 32^3 protocol for
the data). Grids of another size are resampled to 16^3 first (the mean occupancy of each 2x2x2
block for 32^3; nearest voxels otherwise). It is trained on the shapes3d training split drawn both
at 16^3 and at 32^3 (pooled to 16^3), mirrored in x and z at random, with

    python -m rnnimg.judge3d --train --out DIR [--epochs 3 --seed 0]

which writes ``DIR/shape_judge.safetensors`` and prints its accuracy on the test split at both sizes
(the shipped file is that run's output with the defaults, copied into the package's assets; it
printed test accuracy 0.970 at 16^3 and 0.995 at 32^3, after 27 CPU seconds on one thread).
``python -m rnnimg.judge3d`` alone scores the shipped weights.

Scoring (:func:`shape_match_statistics`, additive like ``evaluation_statistics``): per class, the
number of samples drawn with that label and how many the judge assigns to it.
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS = "shape_judge.safetensors"
JUDGE_SIZE = 16
CLASSES = ("chair", "table", "lamp", "bench", "shelf", "mug", "car", "plane")  # shapes3d's order


class ShapeJudge(nn.Module):
    """(B, 16, 16, 16) occupancy in [0, 1], indexed [z, y, x] -> class logits (B, 8)."""

    def __init__(self, num_classes: int = len(CLASSES)) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv3d(8, 16, 3, padding=1)
        self.conv3 = nn.Conv3d(16, 32, 3, padding=1)
        self.head = nn.Linear(32, num_classes)

    def forward(self, voxels: Tensor) -> Tensor:
        x = voxels.unsqueeze(1) * 2 - 1  # (B, 1, 16, 16, 16)
        x = F.max_pool3d(F.relu(self.conv1(x)), 2)  # (B, 8, 8, 8, 8)
        x = F.max_pool3d(F.relu(self.conv2(x)), 2)  # (B, 16, 4, 4, 4)
        x = F.relu(self.conv3(x)).mean((2, 3, 4))  # (B, 32)
        return self.head(x)

    @torch.no_grad()
    def classify(self, voxels: Tensor) -> Tensor:
        """Class (B,) of occupancy grids (B, D, D, D) of any cubic size."""
        return self(resample(voxels.float().to(self.head.weight.device))).argmax(1)


def resample(voxels: Tensor, size: int = JUDGE_SIZE) -> Tensor:
    """(B, D, D, D) -> (B, size, size, size): block means when D is a multiple of ``size``, else
    nearest voxels."""
    d = voxels.shape[-1]
    if d == size:
        return voxels
    if d % size == 0:
        return F.avg_pool3d(voxels.unsqueeze(1), d // size).squeeze(1)
    return F.interpolate(voxels.unsqueeze(1), size=(size,) * 3, mode="nearest").squeeze(1)


def load_shape_judge(path: str | Path | None = None, device: str | torch.device = "cpu") -> ShapeJudge:
    """The shipped judge (or the weights at ``path``: a .safetensors file or a folder holding one),
    in eval mode."""
    from safetensors.torch import load

    judge = ShapeJudge()
    if path is None:
        data = resources.files("rnnimg.data.assets").joinpath(WEIGHTS).read_bytes()
    else:
        path = Path(path)
        data = (path / WEIGHTS if path.is_dir() else path).read_bytes()
    judge.load_state_dict(load(data))
    return judge.to(device).eval()


@torch.no_grad()
def shape_match_statistics(model, label: Tensor, judge: ShapeJudge,
                           generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Sample one volume per entry of ``label`` (B,) and judge it.

    Returns:
        {"match_per_class": (K,) samples of each class the judge assigns to it, "judged_per_class":
        (K,) samples drawn per class}, float64 sums over K = 8 classes.
    """
    label = label.to(model.device)
    volumes = model.sample(len(label), label=label, generator=generator)
    return match_counts(judge.classify(volumes).cpu(), label.cpu())


def match_counts(judged: Tensor, label: Tensor, num_classes: int = len(CLASSES)) -> dict[str, Tensor]:
    """Per class: how many items of that label the judge got right, and how many there were."""
    k = torch.zeros(num_classes, dtype=torch.float64)
    ok = (judged == label).double()
    return {"match_per_class": k.index_add(0, label, ok),
            "judged_per_class": k.index_add(0, label, torch.ones_like(ok))}


def shapes(split: str, size: int, count: int | None = None) -> tuple[Tensor, Tensor]:
    """shapes3d's voxels (N, size^3) and labels (N,) of ``split`` (views skipped: one 8x8)."""
    from rnnimg.data import load_dataset

    opts = {"voxel_size": size, "num_views": 1, "view_size": 8}
    if count is not None:
        opts[f"{split}_size"] = count
    data = load_dataset("shapes3d", split, **opts)
    items = [data[i] for i in range(len(data))]
    return torch.stack([it["voxels"] for it in items]), torch.stack([it["label"] for it in items])


def train_shape_judge(epochs: int = 3, seed: int = 0, train_size: int = 2000
                      ) -> tuple[ShapeJudge, dict[str, float]]:
    """Train on shapes3d's train split at 16^3 and at 32^3 (pooled); returns the judge and its test
    accuracy at both sizes."""
    torch.manual_seed(seed)
    x16, y16 = shapes("train", 16, train_size)
    x32, y32 = shapes("train", 32, train_size)
    x = torch.cat([x16, resample(x32)])
    y = torch.cat([y16, y32])
    judge = ShapeJudge()
    opt = torch.optim.Adam(judge.parameters(), lr=3e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(32):
            batch = x[idx]
            if torch.rand(()) < 0.5:  # mirror images of the classes are the same classes
                batch = batch.flip(-1)
            if torch.rand(()) < 0.5:
                batch = batch.flip(1)
            loss = F.cross_entropy(judge(batch), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    judge.eval()
    return judge, test_accuracy(judge)


def test_accuracy(judge: ShapeJudge) -> dict[str, float]:
    """Accuracy on shapes3d's test split (200 shapes) at 16^3 and 32^3."""
    out = {}
    for size in (16, 32):
        x, y = shapes("test", size)
        out[f"test_accuracy_{size}"] = float((judge.classify(x) == y).double().mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Train (or test) the voxel shape judge.")
    parser.add_argument("--train", action="store_true", help="train and write DIR/shape_judge.safetensors")
    parser.add_argument("--out", help="the folder to write the weights to (with --train)")
    parser.add_argument("--weights", help="score these weights instead of the shipped ones")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.train:
        from safetensors.torch import save_file

        from rnnimg.errors import RnnImgError
        from rnnimg.fileio import atomic_write

        if not args.out:
            raise SystemExit(str(RnnImgError("--train needs --out DIR, the folder for the weights.")))
        out = Path(args.out)
        if (out / WEIGHTS).exists():
            raise SystemExit(f"{out / WEIGHTS} exists; choose another --out (nothing is overwritten).")
        judge, scores = train_shape_judge(args.epochs, args.seed)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in judge.state_dict().items()}
        atomic_write(out / WEIGHTS, lambda tmp: save_file(state, str(tmp)))
        print(f"wrote {out / WEIGHTS}; {scores}")
    else:
        print(test_accuracy(load_shape_judge(args.weights)))


if __name__ == "__main__":
    main()
