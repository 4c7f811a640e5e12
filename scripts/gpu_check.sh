#!/usr/bin/env bash
# rnnimg's checks on a machine with an NVIDIA GPU. From a checkout of rnnimg:
#
#   bash scripts/gpu_check.sh              # logs in ./gpu-check/ (or in $OUT when that is set)
#   GPU_CHECK_QUICK=1 bash scripts/gpu_check.sh   # the same checks in about 7 minutes on 16 cores
#
# 1. installs the checkout in place, without touching its dependencies (torch, lightning,
#    torchmetrics must be installed; GPU_CHECK_NO_INSTALL=1 skips this when rnnimg already is);
# 2. runs the default test suite with the GPU visible (it must pass exactly as on the CPU);
# 3. trains every registered model (the registry is asked, so a new model is included) briefly on
#    its debug preset and its demo data with --accelerator gpu, then evaluates the run folder on
#    the GPU as a user would;
# 4. runs every benchmark in benchmarks/ that takes --device, with --device cuda.
#
# GPU_CHECK_QUICK=1 is for a short lease: the three stages run at the same time (the tests on
# half the cores, GPU_CHECK_JOBS trainings at once, default 3), every benchmark gets a small
# budget and GPU_CHECK_STEP_TIMEOUT seconds (default 120), and the logs are also packed into one
# gpu-check.tar.gz under $OUT. To run a part again: GPU_CHECK_TESTS (pytest's arguments),
# GPU_CHECK_MODELS and GPU_CHECK_BENCHES (names, space-separated) narrow the three stages. Timings from a quick run share the GPU and are for smoke, not for
# docs/benchmarks.md, except the video throughput table, which runs first.
# Prints a summary last; the full output of each step is in the log folder.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python3}
QUICK=${GPU_CHECK_QUICK:-0}
STEP_TIMEOUT=${GPU_CHECK_STEP_TIMEOUT:-$([ "$QUICK" = 1 ] && echo 120 || echo 600)}
JOBS=${GPU_CHECK_JOBS:-$([ "$QUICK" = 1 ] && echo 3 || echo 1)}
# no step starts later than this many seconds after the start (quick mode: 380), so that a lease
# gets its logs back; a step left out says so in the summary
DEADLINE=$((SECONDS + ${GPU_CHECK_DEADLINE:-$([ "$QUICK" = 1 ] && echo 380 || echo 100000)}))
if [ -n "${OUT:-}" ] && [ "$QUICK" = 1 ]; then LOG=$(mktemp -d)/gpu-check; else LOG=${OUT:-./gpu-check}; fi
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
# quick mode runs many processes at once: a few threads each, not one per core each
[ "$QUICK" = 1 ] && export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$LOG/gpu.txt" \
  || { echo "no NVIDIA GPU visible (nvidia-smi failed)"; exit 1; }
"$PY" -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$LOG/gpu.txt"
if [ "${GPU_CHECK_NO_INSTALL:-0}" != 1 ]; then
  if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$LOG/install.log" 2>&1; then
    # a machine with no registry and an old setuptools cannot build the editable install: run
    # from the source tree instead (python -m rnnimg, and the tests, need nothing more)
    echo "pip install -e . failed (see install.log); running from $ROOT/src" | tee -a "$LOG/gpu.txt"
    export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cores=$(nproc)

tests() {
  local parallel=()
  if "$PY" -c "import xdist" 2>/dev/null; then
    parallel=(-n "$([ "$QUICK" = 1 ] && echo $((cores / 2 > 1 ? cores / 2 : 1)) || echo 8)")
  fi
  # shellcheck disable=SC2086  # GPU_CHECK_TESTS: pytest's arguments, e.g. a few test files
  timeout "$([ "$QUICK" = 1 ] && echo 360 || echo 1800)" "$PY" -m pytest -q -m "not slow" "${parallel[@]}" \
    -p no:cacheprovider ${GPU_CHECK_TESTS:-} >"$LOG/pytest.log" 2>&1
  echo "pytest with a GPU present: $(tail -1 "$LOG/pytest.log")" >"$work/summary-tests"
}

# one line per registered model: its name, then its demo recipe's --data and --data-opt flags (a
# model without one takes those of a model of the same task and data that has one)
"$PY" - ${GPU_CHECK_MODELS:-} >"$work/models.txt" <<'PY'
import sys

from rnnimg.models.registry import get_model_class, list_models

only = set(sys.argv[1:])
from rnnimg.recipes import list_recipes

from rnnimg.models.registry import build_config


def kind(name):  # models alike in task, data and scale share a demo (voxcnn takes voxscan's)
    cls, config = get_model_class(name), build_config(name, "debug")
    return cls.task, tuple(cls.data_tasks), getattr(config, "scale", 1), hasattr(config, "voxel_size")


demos = {r.model: r for r in list_recipes(kind="demo")}
by_kind = {}
for recipe in demos.values():
    by_kind.setdefault(kind(recipe.model), recipe)
for name in list_models():
    if only and name not in only:
        continue
    demo = demos.get(name) or by_kind.get(kind(name))
    flags = ["--data", demo.data if demo else "mnist-5k"]
    for key, value in (demo.data_options if demo else {}).items():
        flags += ["--data-opt", f"{key}={value}"]
    print(name, *flags)
PY

train_one() {  # model flags...: writes one summary line to $work/summary-train-MODEL
  local model=$1; shift
  local line
  if [ "$SECONDS" -ge "$DEADLINE" ]; then
    echo "train $model: not run (past the check's deadline)" >"$work/summary-train-$model"; return
  fi
  # shellcheck disable=SC2068  # the flags are words on purpose
  if timeout "$STEP_TIMEOUT" "$PY" -m rnnimg train "$model" --preset debug $@ --max-steps 30 \
       --accelerator gpu --out "$work/run-$model" --no-progress >"$LOG/train-$model.log" 2>&1; then
    if timeout "$STEP_TIMEOUT" "$PY" -m rnnimg evaluate "$work/run-$model" --max-batches 2 --device cuda \
         >"$LOG/evaluate-$model.log" 2>&1; then
      line="train $model ($*) with --accelerator gpu, evaluate with --device cuda: ok"
    else
      line="evaluate $model with --device cuda: FAILED ($(grep -v '^\s*$' "$LOG/evaluate-$model.log" | tail -1))"
    fi
  else
    line="train $model ($*) with --accelerator gpu: FAILED ($(grep -v '^\s*$' "$LOG/train-$model.log" | tail -1))"
  fi
  echo "$line" >"$work/summary-train-$model"
}

trainings() {
  while read -r model flags; do
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do sleep 1; done
    # shellcheck disable=SC2086
    train_one "$model" $flags &
  done <"$work/models.txt"
  wait
}

bench_args() {  # the quick mode's small budgets, by benchmark
  [ "$QUICK" = 1 ] || return 0
  case $1 in
    bench_video) echo "--models convlstm convscan predrnn --batch-size 8 --steps 5" ;;
    bench_draw) echo "--steps 20 --samples 8" ;;
    bench_loop) echo "--steps 40" ;;
    bench_lowres|bench_r2n2|bench_sr|bench_svg|bench_voxgen|bench_openstl) echo "--budget 15" ;;
  esac
}

benchmarks() {
  local bench name
  # the slowest (bench_loop times whole training loops) last, so the deadline cuts it first
  for bench in $(ls benchmarks/*.py | grep -v bench_loop) benchmarks/bench_loop.py; do
    grep -q -- "--device" "$bench" || continue
    name=$(basename "$bench" .py)
    [ -e "$work/summary-bench-$name" ] && continue  # bench_video, run alone first
    if [ -n "${GPU_CHECK_BENCHES:-}" ] && [[ " $GPU_CHECK_BENCHES " != *" $name "* ]]; then continue; fi
    if [ "$SECONDS" -ge "$DEADLINE" ]; then
      echo "$name: not run (past the check's deadline)" >"$work/summary-bench-$name"; continue
    fi
    # shellcheck disable=SC2046
    if timeout "$STEP_TIMEOUT" "$PY" "$bench" --device cuda $(bench_args "$name") >"$LOG/$name.log" 2>&1; then
      echo "$name --device cuda: ok (table in $LOG/$name.log)"
    else
      echo "$name --device cuda: FAILED ($(tail -1 "$LOG/$name.log"))"
    fi >"$work/summary-bench-$name"
  done
}

if [ "$QUICK" = 1 ] && [[ -z "${GPU_CHECK_BENCHES:-}" || " $GPU_CHECK_BENCHES " == *" bench_video "* ]]; then
  # the video throughput table first, alone on the GPU, so its numbers can be recorded
  benchmarks_first=benchmarks/bench_video.py
  if timeout "$STEP_TIMEOUT" "$PY" "$benchmarks_first" --device cuda $(bench_args bench_video) \
       >"$LOG/bench_video.log" 2>&1; then
    echo "bench_video --device cuda, alone: ok (table in $LOG/bench_video.log)"
  else
    echo "bench_video --device cuda: FAILED ($(tail -1 "$LOG/bench_video.log"))"
  fi >"$work/summary-bench-bench_video"
fi
if [ "$QUICK" = 1 ]; then
  tests & trainings & benchmarks & wait
else
  tests; trainings; benchmarks
fi

{
  echo
  echo "== GPU check summary (logs in $LOG) =="
  for f in "$work"/summary-*; do printf -- '- %s\n' "$(cat "$f")"; done
} | tee "$LOG/summary.txt"
if [ -n "${OUT:-}" ] && [ "$QUICK" = 1 ]; then
  tar czf "$OUT/gpu-check.tar.gz" -C "$(dirname "$LOG")" gpu-check && cp "$LOG/summary.txt" "$OUT/"
fi
