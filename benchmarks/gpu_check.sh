#!/usr/bin/env bash
# One command for a lent GPU, under 8 minutes in all: (1) the tests that exercise the accelerator
# path, on the GPU; (2) the PGGAN stage steps 1024², 512², 256², 128² in float32 and bfloat16:
# images/s, XLA's FLOPs and MFU against the device's nominal peak (benchmarks/accelerator.py
# steps); (3) two minutes of the main job (experiments/run.py, stopped by SIGINT, which it takes
# as "stop cleanly"). Every part has its own time limit, cut to what is left of the budget, and
# writes its log under OUT_DIR; summary.txt collects the figures.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]             # on the GPU machine (default OUT_DIR:
#                                                      # $OUT, else benchmarks/results/gpu_check)
#   bash benchmarks/gpu_check.sh --dry-run [OUT_DIR]   # here, on CPU: the same plumbing with tiny
#                                                      # settings (stages 8, 4; 45 s of the main job)
#
# Needs a JAX with CUDA (pip install -e ".[cuda12]"); PYTHON picks the interpreter (default
# python3). GPU_CHECK_BUDGET_S (default 460) is the whole run's budget in seconds.
set -uo pipefail
cd "$(dirname "$0")/.."

dry=0
if [ "${1:-}" = "--dry-run" ]; then
  dry=1
  shift
fi
out_dir="${1:-${OUT:-benchmarks/results/gpu_check}}"
py="${PYTHON:-python3}"
budget="${GPU_CHECK_BUDGET_S:-460}"
mkdir -p "$out_dir"
summary="$out_dir/summary.txt"
: >"$summary"
start=$SECONDS

say() { echo "$*" | tee -a "$summary"; }
left() { echo $((budget - (SECONDS - start))); }

# run_part NAME LIMIT_S CMD...: CMD with a SIGINT at LIMIT_S (cut to the budget left, minus
# RESERVE_S kept for the parts after it) and a kill 20 s later; output in OUT_DIR/NAME.log.
run_part() {
  local name=$1 limit=$2
  shift 2
  local avail=$(($(left) - ${RESERVE_S:-0}))
  [ "$avail" -lt "$limit" ] && limit=$avail
  if [ "$limit" -lt 10 ]; then
    say "== $name: skipped, ${limit}s left of the ${budget}s budget"
    return 0
  fi
  say "== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --signal=INT --kill-after=20 "$limit" "$@" >"$out_dir/$name.log" 2>&1
  local rc=$?
  say "   exit $rc after $((SECONDS - t0))s$([ "$rc" -eq 124 ] && echo ' (time limit)'); log: $out_dir/$name.log"
  return 0
}

# --- 0. what this machine is ---
if ! "$py" -c 'import jax' 2>/dev/null; then
  say "no JAX for $py: install jaxgan first (pip install -e \".[cuda12]\")"
  exit 3
fi
if [ "$dry" -eq 1 ]; then
  export JAX_PLATFORMS=cpu
  backend_want=cpu
else
  unset JAX_PLATFORMS
  backend_want=gpu
fi
backend=$("$py" -c 'import jax; print(jax.default_backend())' 2>/dev/null)
"$py" -c 'import jax, jaxlib; d = jax.devices()[0]
print(f"jax {jax.__version__}, jaxlib {jaxlib.__version__}: {jax.default_backend()}, {jax.device_count()} x {d.device_kind}")' 2>&1 | tee -a "$summary"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$summary"
if [ "$backend" != "$backend_want" ]; then
  say "JAX's backend is '$backend', not '$backend_want': install a CUDA JAX (pip install -e \".[cuda12]\") or use --dry-run"
  exit 3
fi

# --- 1. tests of the accelerator path, on the device ---
tests=(tests/test_accelerator_lowering.py tests/test_train_step.py tests/test_strided.py
  tests/test_progressive_models.py tests/test_layers.py tests/test_losses.py tests/test_penalties.py)
if [ "$dry" -eq 1 ]; then
  RESERVE_S=120 run_part tests 150 "$py" -m pytest -q -p no:cacheprovider \
    tests/test_accelerator_lowering.py -k "default_backend or unknown_critic_loop or StridedConvTranspose"
else
  xdist=()
  "$py" -c 'import xdist' 2>/dev/null && xdist=(-n 4 --dist loadfile)
  # conftest.py defaults JAX_PLATFORMS to cpu: name the GPU first so that it is the default
  # device; float32 compared at full precision (no TF32); the test processes share the GPU
  JAX_PLATFORMS=cuda,cpu JAX_DEFAULT_MATMUL_PRECISION=highest XLA_PYTHON_CLIENT_PREALLOCATE=false \
    RESERVE_S=340 run_part tests 90 "$py" -m pytest -q -p no:cacheprovider "${xdist[@]}" "${tests[@]}"
fi
tail -n 3 "$out_dir/tests.log" 2>/dev/null | sed 's/^/   /' | tee -a "$summary"

# --- 2. PGGAN stage steps: images/s, FLOPs, MFU ---
if [ "$dry" -eq 1 ]; then
  stage_args=(--res 8,4 --final 8 --budget-s 2)
  stage_limit=120
else
  stage_args=(--res 128,256,512,1024 --final 1024 --budget-s 6)
  stage_limit=220
fi
avail=$(($(left) - 140))
[ "$avail" -lt "$stage_limit" ] && stage_limit=$avail
# no new case in the last 15 s of this part (cases run from the largest stage down, and the
# script skips one that the last case's duration says would not end in time)
RESERVE_S=140 run_part stages "$stage_limit" "$py" benchmarks/accelerator.py steps "${stage_args[@]}" \
  --dtypes float32,bfloat16 --deadline-s $((stage_limit > 25 ? stage_limit - 15 : 10)) \
  --out "$out_dir/stages.json"
grep -E "^(PGGAN|  *pggan|pggan)" "$out_dir/stages.log" | sed 's/^/   /' | tee -a "$summary"

# --- 3. the main job, two minutes ---
main_s=120
[ "$dry" -eq 1 ] && main_s=45
rm -rf "$out_dir/main_job"
RESERVE_S=5 run_part main_job "$main_s" "$py" experiments/run.py --workdir "$out_dir/main_job" --quiet
"$py" - "$out_dir/main_job/metrics.jsonl" <<'EOF' 2>&1 | sed 's/^/   /' | tee -a "$summary"
import json, sys
try:
    rows = [json.loads(line) for line in open(sys.argv[1])]
except OSError as e:
    sys.exit(f"no metrics: {e}")
last = next((r for r in reversed(rows) if "critic_loss" in r), None)
if last is None:
    sys.exit(f"{len(rows)} metric lines, none with losses yet")
keys = ("step", "images_seen", "images_per_sec", "resolution", "alpha", "critic_loss", "generator_loss", "w_estimate", "gp")
print("main job, last log line: " + ", ".join(f"{k} {last[k]:.4g}" if isinstance(last[k], float) else f"{k} {last[k]}" for k in keys if k in last))
EOF

say "== total $((SECONDS - start))s (budget ${budget}s); results in $out_dir"
