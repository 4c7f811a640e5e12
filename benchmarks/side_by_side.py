"""The side-by-side harness of the equal-CPU benchmarks (bench_svg.py, bench_voxgen.py): run one
benchmark script once per model as parallel processes (one torch thread each, each writing its
result as JSON), wait for all, and return the results with when, where and how it ran."""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def machine() -> str:
    """The CPU, its logical count and the load average now (a shared machine's figures need it)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
            f"load average {load:.1f} at the start")


def report_one(result: dict, json_path: str | None) -> int:
    """The one-model branch of a side-by-side benchmark (a process :func:`run_side_by_side`
    starts, or a user's single run): print ``result`` as JSON, also into ``json_path`` if given."""
    text = json.dumps(result, indent=1)
    if json_path:
        Path(json_path).write_text(text)
    print(text)
    return 0


def add_report_args(p, pictures: bool = False) -> None:
    """The output flags every side-by-side benchmark shares: ``--json`` (one model's result),
    ``--out`` (the pair's markdown table) and, with ``pictures``, ``--picture`` (one model's samples)."""
    if pictures:
        p.add_argument("--picture", default=None, help="(one model) write its samples here (PNG)")
    p.add_argument("--json", default=None, help="(one model) write its result here")
    p.add_argument("--out", default=None, help="(--pair) markdown table; raw JSON "
                   + ("and pictures " if pictures else "") + "beside it")


def pictures_beside(out: Path) -> Callable[[str], list[str]]:
    """``extra`` for :func:`run_side_by_side`: each model writes its samples to OUT-NAME.png."""
    return lambda name: ["--picture", str(out.with_name(f"{out.stem}-{name}.png"))]


def write_report(out: Path, text: str) -> int:
    """Write the pair's markdown report to ``out`` and print it; the exit code 0."""
    out.write_text(text)
    print(text)
    return 0


def run_side_by_side(script: str, argv: list[str] | None, models, out: Path,
                     extra: Callable[[str], list[str]] = lambda name: []) -> tuple[list[dict], str, str, str]:
    """Run ``script`` with this call's arguments (less ``--pair`` and ``--out``) plus ``--model NAME
    --json OUT-NAME.json`` and ``extra(NAME)`` for every model at once; returns (results in the
    order of ``models``, the UTC start, :func:`machine`, the command line to record).

    Raises:
        SystemExit: if a process failed.
    """
    argv = list(argv if argv is not None else sys.argv[1:])
    out.parent.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    base = [a for a in argv if a != "--pair"]
    base = [a for i, a in enumerate(base) if a != "--out" and (i == 0 or base[i - 1] != "--out")]
    procs = []
    for name in models:
        path = out.with_name(f"{out.stem}-{name}.json")
        cmd = [sys.executable, script, *base, "--model", name, "--json", str(path), *extra(name)]
        procs.append((path, subprocess.Popen(cmd, stdout=subprocess.DEVNULL)))
    codes = [proc.wait() for _, proc in procs]
    if any(codes):
        raise SystemExit(f"a benchmark process failed: exit codes {codes}")
    results = [json.loads(path.read_text()) for path, _ in procs]
    command = f"python benchmarks/{Path(script).name} " + shlex.join(argv)
    return results, started, where, command
