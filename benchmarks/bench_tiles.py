"""Peak memory against image size for tiled inference (issue 19, item 4): ``rnnimg translate``,
``rnnimg segment --no-resize`` and plain ``rnnimg segment`` (the image resized to the training
size a band of rows at a time, the labels resized back) on a 1000x750 and a 4000x3000 photo, each
run in a fresh process through the CLI (read, tile, blend, write), so its peak resident set size
(``ru_maxrss``; on CUDA also ``torch.cuda.max_memory_allocated``) is that of one run.

The photo is scikit-image's ``camera`` (512x512 grey) resized with PIL's bicubic filter to each
size. Models: the shipped ``pretrained:translator-denoise`` (ConvGRU refiner, receptive radius 50,
exact tiles) and ``pretrained:reseg-scenes`` (whole-image sweeps, approximate tiles). The goal:
the 4000x3000 peak within 1.5x of the 1000x750 one.

``sr``: ``rnnimg translate pretrained:sr-photos-x4`` (recursr, colour, x4) on scikit-image's
``astronaut`` (512x512 RGB) resized the same way. Its output is 16 times the input (16000x12000x3
bytes = 549 MiB for 4000x3000), held whole and written as one PNG, so its peak cannot stay within
1.5x of the small run's; the table gives the output's size, the peak before the PNG is written
(tiling: the output, one band of tiles, one tile's activations), the peak while it is written
(the output and PIL's copy of it, RGB at 4 bytes a pixel) and the peak minus the output. Every
translate run also checks that the progress bar over the tiles was drawn (stderr).

    flock /work/timing.lock env PYTHONPATH=src python benchmarks/bench_tiles.py --out /tmp/tiles.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
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
    "sr": ["translate", "pretrained:sr-photos-x4"],
}
COLOUR = {"sr"}  # verbs whose model takes colour: the astronaut instead of the camera

_CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(int(sys.argv[1]))
import rnnimg.viz as viz
from rnnimg.cli import main

def hwm_mib():  # the peak resident set size since the last reset (VmHWM)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

marks, _save = {}, viz.save_image
def save_image(image, path, scale=1):  # translate writes its output first: mark the phases
    if "output_mib" not in marks:
        marks["output_mib"] = image.numel() * image.element_size() / 2**20
        marks["before_write_mib"] = hwm_mib()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM: what follows is the write's peak
    out = _save(image, path, scale)
    if "write_mib" not in marks:
        marks["write_mib"] = hwm_mib()
    return out
viz.save_image = save_image
t0, c0 = time.perf_counter(), time.process_time()
rc = main(sys.argv[3:])
peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, marks.get("before_write_mib", 0),
           marks.get("write_mib", 0))
print(json.dumps({"rc": rc, "peak_rss_mib": peak, "peak_cuda_mib": peak_cuda,
                  "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, **marks}),
      file=open(sys.argv[2], "w"))
"""


def _photo(width: int, height: int, path: Path, colour: bool = False) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data

    photo = data.astronaut() if colour else data.camera()
    Image.fromarray(np.asarray(photo)).resize((width, height), Image.BICUBIC).save(path)


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
                photo = Path(tmp) / f"photo{width}{'rgb' if verb in COLOUR else ''}.png"
                if not photo.exists():
                    _photo(width, height, photo, colour=verb in COLOUR)
                out, report = Path(tmp) / f"{verb}{width}.png", Path(tmp) / "report.json"
                cmd = [*VERBS[verb], str(photo), "-o", str(out), "--tile", str(args.tile),
                       "--device", args.device, "--overwrite"]
                run = subprocess.run([sys.executable, "-c", _CHILD, str(args.threads), str(report), *cmd],
                                     check=True, env=os.environ.copy(), stderr=subprocess.PIPE, text=True)
                r = json.loads(report.read_text())
                assert r["rc"] == 0, r
                # tqdm's bar over the tiles ("translating: 17%|...| 1/6 [...]"), on stderr
                bar = re.search(r"(translating|segmenting)\S*:\s+\d+%.*\d+/\d+", run.stderr)
                r["progress_bar"] = bar is not None
                rows.append((verb, f"{width}x{height}", r))
                print(verb, width, height, r, flush=True)
    lines = ["| verb | image | peak RSS MiB | peak CUDA MiB | wall s | CPU s | output MiB | peak before "
             "write MiB | peak while writing MiB | peak - output MiB | progress bar |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def mib(r, key):
        return f"{r[key]:.0f}" if key in r else "-"

    for verb, size, r in rows:
        cuda = f"{r['peak_cuda_mib']:.0f}" if r["peak_cuda_mib"] is not None else "-"
        beyond = f"{r['peak_rss_mib'] - r['output_mib']:.0f}" if "output_mib" in r else "-"
        lines.append(f"| {verb} | {size} | {r['peak_rss_mib']:.0f} | {cuda} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {mib(r, 'output_mib')} | {mib(r, 'before_write_mib')} | "
                     f"{mib(r, 'write_mib')} | {beyond} | {'yes' if r['progress_bar'] else 'no'} |")
    for verb in args.verbs.split(","):
        small, big = (r for v, _, r in rows if v == verb)
        lines.append(f"\n{verb}: 4000x3000 / 1000x750 peak RSS = "
                     f"{big['peak_rss_mib'] / small['peak_rss_mib']:.2f}")
        if "output_mib" in big:
            beyond = [r["peak_rss_mib"] - r["output_mib"] for r in (small, big)]
            lines[-1] += (f"; peak minus the output: {beyond[1] / beyond[0]:.2f}; peak before writing: "
                          f"{big['before_write_mib'] / small['before_write_mib']:.2f}")
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
