#!/usr/bin/env bash
# rnnimg's checks on a machine with an NVIDIA GPU. From a checkout of rnnimg:
#
#   bash scripts/gpu_check.sh              # logs in ./gpu-check/ (or in $OUT when that is set)
#
# 1. installs the checkout in place, without touching its dependencies (torch, lightning,
#    torchmetrics must be installed; GPU_CHECK_NO_INSTALL=1 skips this when rnnimg already is);
# 2. runs the default test suite with the GPU visible (it must pass exactly as on the CPU);
# 3. trains every registered model (the registry is asked, so a new model is included) briefly on
#    its debug preset and its demo data with --accelerator gpu, then evaluates the run folder on
#    the GPU as a user would;
# 4. runs every benchmark in benchmarks/ that takes --device, with --device cuda.
# Prints a summary last; the full output of each step is in the log folder.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
PY=${PYTHON:-python3}
LOG=${OUT:-./gpu-check}
mkdir -p "$LOG"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$LOG/gpu.txt" \
  || { echo "no NVIDIA GPU visible (nvidia-smi failed)"; exit 1; }
if [ "${GPU_CHECK_NO_INSTALL:-0}" != 1 ]; then
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . >"$LOG/install.log" 2>&1 \
    || { echo "install failed (see $LOG/install.log)"; exit 1; }
fi
summary=()

parallel=()
if "$PY" -c "import xdist" 2>/dev/null; then parallel=(-n 8); fi
timeout 1800 "$PY" -m pytest -q -m "not slow" "${parallel[@]}" -p no:cacheprovider >"$LOG/pytest.log" 2>&1
summary+=("pytest with a GPU present: $(tail -1 "$LOG/pytest.log")")

# one line per registered model: its name, then its demo recipe's --data and --data-opt flags (a
# model without one takes those of a model of the same task that has one)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" - >"$work/models.txt" <<'PY'
from rnnimg.models.registry import get_model_class, list_models
from rnnimg.recipes import list_recipes

demos = {r.model: r for r in list_recipes(kind="demo")}
by_task = {}
for recipe in demos.values():
    by_task.setdefault(get_model_class(recipe.model).task, recipe)
for name in list_models():
    demo = demos.get(name) or by_task.get(get_model_class(name).task)
    flags = ["--data", demo.data if demo else "mnist-5k"]
    for key, value in (demo.data_options if demo else {}).items():
        flags += ["--data-opt", f"{key}={value}"]
    print(name, *flags)
PY
while read -r model flags; do
  # shellcheck disable=SC2086  # the flags are words on purpose
  if timeout 600 "$PY" -m rnnimg train "$model" --preset debug $flags --max-steps 30 --accelerator gpu \
       --out "$work/$model" --no-progress >"$LOG/train-$model.log" 2>&1; then
    if timeout 600 "$PY" -m rnnimg evaluate "$work/$model" --max-batches 2 --device cuda \
         >"$LOG/evaluate-$model.log" 2>&1; then
      summary+=("train $model ($flags) with --accelerator gpu, evaluate with --device cuda: ok")
    else
      summary+=("evaluate $model with --device cuda: FAILED ($(grep -v '^\s*$' "$LOG/evaluate-$model.log" | tail -1))")
    fi
  else
    summary+=("train $model ($flags) with --accelerator gpu: FAILED ($(grep -v '^\s*$' "$LOG/train-$model.log" | tail -1))")
  fi
done <"$work/models.txt"

for bench in benchmarks/*.py; do
  if grep -q -- "--device" "$bench"; then
    name=$(basename "$bench" .py)
    if timeout 600 "$PY" "$bench" --device cuda >"$LOG/$name.log" 2>&1; then
      summary+=("$name --device cuda: ok (table in $LOG/$name.log)")
    else
      summary+=("$name --device cuda: FAILED ($(tail -1 "$LOG/$name.log"))")
    fi
  fi
done

echo
echo "== GPU check summary (logs in $LOG) =="
printf -- '- %s\n' "${summary[@]}"
