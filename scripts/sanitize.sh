#!/usr/bin/env bash
# Builds usmoe with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ and runs the lit and pytest tiers there. Not part of CI (a
# second full build); run it after changes to C++ code and record the result
# in docs/Testing.md. Debian's libMLIR is not instrumented; Python preloads
# the shared ASan runtime; leak checking is off (the JIT and Python keep
# memory until exit by design); allow_user_poisoning=0 avoids false reports
# from LLVM's allocators.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build_dir=build-asan
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -G Ninja -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DPython_EXECUTABLE=/usr/bin/python3 "-DUSMOE_SANITIZERS=address;undefined"
fi
ninja -C "$build_dir" -j"$(nproc)" || exit 1
asan_rt="$(clang++-22 -print-file-name=libclang_rt.asan-x86_64.so)"
# No fake stacks: one per fiber (up to 1024 per block) exhausts memory.
export ASAN_OPTIONS="detect_leaks=0:allow_user_poisoning=0:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
echo "== lit (ASan + UBSan)"
# mlir-runner is not instrumented: preload the runtime for the emulator.
LD_PRELOAD="$asan_rt" /usr/lib/llvm-22/bin/lit -s "$build_dir/test" || status=1
echo "== pytest (ASan + UBSan)"
LD_PRELOAD="$asan_rt" USMOE_PYTHON_PACKAGES="$build_dir/python_packages" \
  /usr/bin/python3 -m pytest -q -p no:cacheprovider test/python \
  --ignore test/python/test_gpu_check_pack.py || status=1
exit "$status"
