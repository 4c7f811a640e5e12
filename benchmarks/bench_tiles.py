"""Peak memory against image size for tiled inference (issue 19, item 4): ``rnnimg translate``,
``rnnimg segment --no-resize`` and plain ``rnnimg segment`` (the image resized to the training
size a band of rows at a time, the labels resized back) on a 1000x750 and a 4000x3000 photo, each
run in a fresh process through the CLI (read, tile, blend, write), so its peak resident set size
(``ru_maxrss``; on CUDA also ``torch.cuda.max_memory_allocated``) is that of one run.

The photo is scikit-image's ``camera`` (512x512 grey) resized with PIL's bicubic filter to each
size. Models: the shipped ``pretrained:translator-denoise`` (ConvGRU refiner, receptive radius 50,
exact tiles) and ``pretrained:reseg-scenes`` (whole-image sweeps, approximate tiles). The goal:
the 4000x3000 peak within 1.5x of the 1000x750 one.

    flock /work/timing.lock env PYTHONPATH=src python benchmarks/bench_tiles.py --out /tmp/tiles.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = ((1000, 750), (4000, 3000))
VERBS = {
    "translate": ["translate", "pretrained:translator-denoise"],
    "segment": ["segment", "pretrained:reseg-scenes", "--no-resize"],
    "segment-resize": ["segment", "pretrained:reseg-scenes"],
}

_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
from rnnimg.cli import main
t0, c0 = time.perf_counter(), time.process_time()
rc = main(sys.argv[3:])
peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({"rc": rc, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "peak_cuda_mib": peak_cuda, "wall_s": time.perf_counter() - t0,
                  "cpu_s": time.process_time() - c0}), file=open(sys.argv[2], "w"))
"""


def _photo(width: int, height: int, path: Path) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    Image.fromarray(np.asarray(data.camera())).resize((width, height), Image.BICUBIC).save(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--verbs", default="translate,segment,segment-resize", help="of " + ", ".join(VERBS))
    ap.add_argument("--out", help="also write the markdown table here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for verb in args.verbs.split(","):
            for width, height in SIZES:
                photo = Path(tmp) / f"photo{width}.png"
                if not photo.exists():
                    _photo(width, height, photo)
                out, report = Path(tmp) / f"{verb}{width}.png", Path(tmp) / "report.json"
                cmd = [*VERBS[verb], str(photo), "-o", str(out), "--tile", str(args.tile),
                       "--device", args.device, "--overwrite"]
                subprocess.run([sys.executable, "-c", _CHILD, str(args.threads), str(report), *cmd],
                               check=True, env=os.environ.copy())
                r = json.loads(report.read_text())
                assert r["rc"] == 0, r
                rows.append((verb, f"{width}x{height}", r))
                print(verb, width, height, r, flush=True)
    lines = ["| verb | image | peak RSS MiB | peak CUDA MiB | wall s | CPU s |", "|---|---|---|---|---|---|"]
    for verb, size, r in rows:
        cuda = f"{r['peak_cuda_mib']:.0f}" if r["peak_cuda_mib"] is not None else "-"
        lines.append(f"| {verb} | {size} | {r['peak_rss_mib']:.0f} | {cuda} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} |")
    for verb in args.verbs.split(","):
        small, big = (r["peak_rss_mib"] for v, _, r in rows if v == verb)
        lines.append(f"\n{verb}: 4000x3000 / 1000x750 peak RSS = {big / small:.2f}")
    table = "\n".join(lines)
    print(table)
    if args.out:
        head = (f"`{shlex.join(['python', 'benchmarks/bench_tiles.py', *sys.argv[1:]])}` on "
                f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                f"{datetime.date.today()}, {time.strftime('%H:%M')}\n\n")
        Path(args.out).write_text(head + table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
