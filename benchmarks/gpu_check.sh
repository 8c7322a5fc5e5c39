#!/usr/bin/env bash
# The one prepared script for a GPU session (device tool): CUDA tests, then the benchmarks,
# everything written under $OUT. Run from the repository root, e.g.
#   run(command="bash benchmarks/gpu_check.sh", carry=["carry", ".whl"], timeout_s=590)
# carry/cifar10/ holds train.zip and test.zip copied from ../shared/data/cifar10 (git-ignored),
# .whl/ holds Inf-CL's wheel (README, "GPU session"). STAGES picks the stages, so that the work
# can be split over two calls within the 10-minute call limit, e.g.
#   STAGES="gate tests masked infonce" bash benchmarks/gpu_check.sh # about 6 minutes
#   STAGES="unlearn" bash benchmarks/gpu_check.sh                   # about 5 minutes
set -u
OUT=${OUT:-/tmp/wsscl_gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export WSSCL_CIFAR10=${WSSCL_CIFAR10:-$PWD/carry/cifar10}
export WSSCL_CACHE=${WSSCL_CACHE:-/tmp/wsscl_cache}
STAGES=${STAGES:-gate tests masked infonce unlearn}
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/gpu_check.log"; }

if ls .whl/*.whl > /dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
log "install"
python3 -m pip install -q --no-deps --no-build-isolation -e . > "$OUT/install.log" 2>&1 || log "install failed (install.log)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
for stage in $STAGES; do
  log "stage $stage"
  case $stage in
    gate)  # the ahead-of-time compile gate under this machine's Triton (3.6), before any kernel runs
      timeout 120 python3 -m wsscl_fast.kernels.compile_gate --jobs 16 --out "$OUT/compile_gate.md" \
        > "$OUT/compile_gate.log" 2>&1
      log "compile gate rc=$?" ;;
    tests)
      timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_infonce.py tests/test_optim.py \
        tests/test_saliency_select.py tests/test_fast_path.py > "$OUT/pytest_cuda.log" 2>&1
      log "pytest rc=$?" ;;
    masked)
      timeout 120 python3 -m benchmarks.kernels.bench_masked_step --out "$OUT" > "$OUT/bench_masked_step.log" 2>&1
      log "bench_masked_step rc=$?" ;;
    infonce)
      timeout 170 python3 -m benchmarks.kernels.bench_infonce --out "$OUT" > "$OUT/bench_infonce.log" 2>&1
      log "bench_infonce rc=$?" ;;
    unlearn)
      timeout 330 python3 -m benchmarks.kernels.bench_unlearn --out "$OUT" ${UNLEARN_ARGS:-} > "$OUT/bench_unlearn.log" 2>&1
      log "bench_unlearn rc=$?" ;;
    *) log "unknown stage $stage" ;;
  esac
done
ls -la "$OUT" | tee -a "$OUT/gpu_check.log"
