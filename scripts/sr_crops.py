"""Crops of held-out photos upscaled by a super-resolution run: bicubic | model | truth, one photo a row.

    python scripts/sr_crops.py pretrained:sr-photos-x4 -o docs/images/sr-photos-x4-crops.png
    python scripts/sr_crops.py RUN --photos astronaut coffee --side 128 --enlarge 2 -o crops.png

The model upscales the WHOLE downscaled photo (the test split of ``photos`` with the run's
``corrupt=downscale`` scale), then the same window is cut from bicubic, the model's output and the
original, so the crop shows what the model does inside a photo, not at a border. Each photo's window
is centred on a detail (:data:`CENTRES`). ``scripts/train_pretrained.py`` draws the card picture of
a super-resolution recipe with :func:`draw_crops`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

# the centre of each photo's window, as fractions of (height, width) of the photo
CENTRES = {"astronaut": (0.24, 0.47), "coffee": (0.45, 0.50), "camera": (0.30, 0.45),
           "gravel": (0.50, 0.50), "coins": (0.30, 0.30)}
COLUMNS = ("bicubic", "model", "truth")


def window(height: int, width: int, centre: tuple[float, float], side: int,
           scale: int) -> tuple[int, int, int]:
    """(top, left, side) of a square window inside (height, width) around ``centre``; top, left and
    side are multiples of ``scale`` (so the window is whole low-resolution pixels)."""
    side = min(side, height, width) // scale * scale
    top = min(max(0, round(centre[0] * height - side / 2)), height - side) // scale * scale
    left = min(max(0, round(centre[1] * width - side / 2)), width - side) // scale * scale
    return top, left, side


@torch.no_grad()
def crops(model, photos: tuple[str, ...] = tuple(CENTRES), side: int = 96) -> list[torch.Tensor]:
    """One (3, 3, side, side) tensor per photo: bicubic, the model's output, the original."""
    from rnnimg.data import load_dataset
    from rnnimg.models.translate.superres import bicubic_upscale

    scale = model.config.scale
    test = load_dataset("photos", "test", corrupt="downscale", scale=scale,
                        channels=model.config.in_channels)
    names = list(test.base.names)
    rows = []
    for photo in photos:
        if photo not in names:
            raise SystemExit(f"--photos: {photo!r} is not a held-out photo; choose from {', '.join(names)}")
        item = test[names.index(photo)]
        source, target = item["source"][None].to(model.device), item["target"][None]
        output = model.translate(source).cpu()
        bicubic = bicubic_upscale(source, scale).cpu()
        top, left, s = window(*target.shape[-2:], CENTRES.get(photo, (0.5, 0.5)), side, scale)
        row = torch.cat([bicubic, output, target.float()])[..., top:top + s, left:left + s]
        rows.append(row.expand(-1, 3, -1, -1) if row.shape[1] == 1 else row)
    return rows


def draw_crops(model, path: str | Path, photos: tuple[str, ...] = tuple(CENTRES), side: int = 96,
               enlarge: int = 1) -> Path:
    """Write :func:`crops` as one picture, photos as rows, ``enlarge`` x nearest."""
    from rnnimg.tasks import save_picture
    from rnnimg.viz import frames_strip

    return save_picture(frames_strip(crops(model, photos, side)), path, scale=enlarge)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="a super-resolution run folder or pretrained:NAME")
    parser.add_argument("-o", "--out", required=True, help="the picture to write (.png)")
    parser.add_argument("--photos", nargs="+", default=list(CENTRES), help="held-out photos, one row each")
    parser.add_argument("--side", type=int, default=96, help="side of each crop in output pixels")
    parser.add_argument("--enlarge", type=int, default=1, help="nearest-neighbour enlargement")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    from rnnimg.models.checkpoint import load_pretrained

    model = load_pretrained(args.run).eval()
    if getattr(model.config, "scale", 1) < 2:
        raise SystemExit(f"{args.run} is not a super-resolution model (no scale > 1)")
    out = draw_crops(model, args.out, tuple(args.photos), args.side, args.enlarge)
    print(f"{out}: {' | '.join(COLUMNS)}, rows {', '.join(args.photos)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
