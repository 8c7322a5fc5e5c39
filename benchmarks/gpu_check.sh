#!/usr/bin/env bash
# The one prepared script for a GPU session (device tool): CUDA tests, then the benchmarks,
# everything written under $OUT. Run from the repository root, e.g.
#   run(command="bash benchmarks/gpu_check.sh", carry=["carry"], timeout_s=540)
# where carry/ holds a copy of ../shared/data/cifar10 (git-ignored) if the quality runs need it.
set -u
OUT=${OUT:-/tmp/wsscl_gpu_out}
mkdir -p "$OUT"
export WSSCL_CIFAR10=${WSSCL_CIFAR10:-$PWD/carry/cifar10}
python3 -m pip install -q --no-build-isolation -e . > "$OUT/install.log" 2>&1 || echo "install failed (see install.log)"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
timeout 200 python3 -m pytest -q -x tests/test_infonce.py tests/test_optim.py > "$OUT/pytest_cuda.log" 2>&1
echo "pytest rc=$?" >> "$OUT/pytest_cuda.log"
timeout 150 python3 benchmarks/bench_infonce.py --out "$OUT" > "$OUT/bench_infonce.log" 2>&1
timeout 120 python3 benchmarks/bench_masked_step.py --out "$OUT" > "$OUT/bench_masked_step.log" 2>&1
ls -la "$OUT"
