#!/usr/bin/env bash
# Validates and benchmarks usmoe's GPU kernels against the CPU path.
#
#   scripts/gpu-check.sh pack [DIR]   build here (no GPU needed) and pack into
#                                     DIR (default .gpu/pack): cubin/PTX +
#                                     JSON metadata per case, inputs, the CPU
#                                     path's expected outputs, the runtime
#                                     library and run.py
#   scripts/gpu-check.sh run [DIR]    on a GPU machine (no MLIR needed: NumPy
#                                     and the CUDA driver): run the host
#                                     libraries, compare, time; prints a
#                                     table; then the Python API on
#                                     torch.cuda tensors, the router and
#                                     the layer benchmarks against PyTorch
#                                     (needs PyTorch; from the packed cache)
#   scripts/gpu-check.sh emulate [DIR] the packed cases on the GPU emulator
#                                     (here, no GPU; CI runs this)
#   scripts/gpu-check.sh [DIR]        pack, then run if a GPU is present
#
# Record every run on a GPU in docs/gpu-validation.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

mode="${1:-all}"
case "$mode" in pack|run|emulate) dir="${2:-.gpu/pack}" ;; *) dir="${1:-.gpu/pack}"; mode=all ;; esac

pack() {
  bash scripts/build.sh >/dev/null
  rm -rf "$dir" && mkdir -p "$dir"
  /usr/bin/python3 scripts/gpu_check/pack.py "$dir"
  # The Python API's GPU path too: the package (its native module cannot
  # load there, and need not) and its kernels for sm_90, compiled here
  # against the fake driver into the pack's kernel cache.
  mkdir -p "$dir/python"
  cp -r build/python_packages/usmoe "$dir/python/"
  rm -rf "$dir/python/usmoe/__pycache__"
  cp scripts/gpu_check/api_check.py "$dir/"
  LD_LIBRARY_PATH="$root/build/test/fake-cuda" PYTHONPATH=build/python_packages \
    /usr/bin/python3 "$dir/api_check.py" prefill "$dir"
  # The router benchmark against PyTorch (eager, torch.compile): its host
  # libraries and the HBM floor of every shape, computed here.
  cp benchmarks/bench_gpu_router.py benchmarks/bench_cpu_vs_torch.py "$dir/"
  LD_LIBRARY_PATH="$root/build/test/fake-cuda" PYTHONPATH=build/python_packages \
    /usr/bin/python3 "$dir/bench_gpu_router.py" prefill "$dir"
  # The layer benchmark (tensor-core experts against torch._grouped_mm).
  cp benchmarks/bench_gpu_layer.py "$dir/"
  LD_LIBRARY_PATH="$root/build/test/fake-cuda" PYTHONPATH=build/python_packages \
    /usr/bin/python3 "$dir/bench_gpu_layer.py" prefill "$dir"
}

run() {
  local status=0
  PYTHONUNBUFFERED=1 python3 "$dir/run.py" || status=$?
  PYTHONUNBUFFERED=1 PYTHONPATH="$dir/python" python3 "$dir/api_check.py" run "$dir" \
    || status=$((status ? status : $?))
  PYTHONUNBUFFERED=1 PYTHONPATH="$dir/python" python3 "$dir/bench_gpu_router.py" run "$dir" \
    || status=$((status ? status : $?))
  PYTHONUNBUFFERED=1 PYTHONPATH="$dir/python" python3 "$dir/bench_gpu_layer.py" run "$dir" \
    || status=$((status ? status : $?))
  return "$status"
}

case "$mode" in
  pack) pack ;;
  emulate) /usr/bin/python3 scripts/gpu_check/emulate.py "$dir" ;;
  run) run ;;
  all)
    pack
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      run
    else
      echo "no GPU here: packed only; run 'scripts/gpu-check.sh run $dir' on a GPU machine"
    fi
    ;;
esac
