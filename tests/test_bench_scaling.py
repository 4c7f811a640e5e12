"""benchmarks/bench_scaling.py (issue 19, item 5) runs end to end at tiny sizes and writes a JSON
whose figures are complete and consistent with each other (no wall-clock asserts)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_scaling_writes_consistent_figures(tmp_path):
    out = tmp_path / "scaling.md"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    # --sample-budget 0: the sampler runs one row and is extrapolated (the 256x256 path)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_scaling.py"), "--sizes", "16", "8",
                    "--steps", "1", "--warmup", "0", "--batch", "2", "--models", "pixelscan",
                    "--sample-budget", "0", "--out", str(out)], check=True, env=env, cwd=tmp_path,
                   stdout=subprocess.DEVNULL)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["sizes"] == [8, 16] and report["device"] == "cpu" and report["batch"] == 2
    rows = report["results"]
    assert [(r["label"], r["size"]) for r in rows] == [("pixelscan", 8), ("pixelscan", 16)]
    assert rows[0]["params"] == rows[1]["params"] > 0  # only the size changes
    for r in rows:
        assert r["pixels_per_item"] == r["size"] ** 2 and r["threads"] == 1
        for phase in ("infer", "sample", "train"):
            seconds, us = r[f"{phase}_s"], r[f"{phase}_us_per_pixel"]
            assert math.isfinite(seconds) and seconds > 0
            assert math.isclose(us, 1e6 * seconds / 2 / r["pixels_per_item"])
            assert math.isclose(r[f"{phase}_ms_per_item"], 1e3 * seconds / 2)
            assert r[f"{phase}_peak_mib"] >= 0
        assert r["sample_extrapolated"] and r["sample_rows"] == 1
    growth = report["models"]["pixelscan"]
    assert math.isclose(growth["growth_train_us_per_pixel"],
                        rows[1]["train_us_per_pixel"] / rows[0]["train_us_per_pixel"])
    text = out.read_text()
    assert f"| pixelscan `debug` | 16x16 | {rows[1]['params']:,} |" in text and "growth 8->16" in text
    assert "(ext.)" in text and report["loadavg_start"] in text
