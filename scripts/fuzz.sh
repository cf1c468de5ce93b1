#!/usr/bin/env bash
# Fuzzes parse + verify + every usmoe pipeline with libFuzzer (clang-22) for
# SECONDS seconds (default 120, the CI smoke run; pass e.g. 3600 for a long
# run), under ASan + UBSan (static runtimes in the one executable), in
# build-fuzz/. Seeds: every test .mlir, split at
# `// -----`. The corpus grows in build-fuzz/corpus between runs on one
# machine. A crash leaves its input in build-fuzz/crashes/ and fails the
# run; minimize it (usmoe-fuzz -minimize_crash=1 FILE), fix the bug and keep
# the input under test/Fuzz/crashers/ (lit runs every pipeline on it).
# USMOE_FUZZ_NVVM=1 adds usmoe-to-nvvm (slower per input).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${1:-120}"
bash scripts/setup.sh >/dev/null
build_dir=build-fuzz
if [ ! -f "$build_dir/build.ninja" ]; then
  cmake -G Ninja -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DMLIR_DIR=/usr/lib/llvm-22/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-22/bin/lit \
    -DPython_EXECUTABLE=/usr/bin/python3 \
    -DUSMOE_FUZZER=ON \
    "-DCMAKE_CXX_FLAGS=-fsanitize=address,undefined -fno-sanitize=function -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null || exit 1
fi
if ! ninja -C "$build_dir" -j"$(nproc)" usmoe-fuzz > "$build_dir/ninja.log" 2>&1; then
  tail -30 "$build_dir/ninja.log"
  exit 1
fi

seeds="$build_dir/seeds"
rm -rf "$seeds" && mkdir -p "$seeds" "$build_dir/corpus" "$build_dir/crashes"
/usr/bin/python3 - "$seeds" <<'PY'
import pathlib, sys
out = pathlib.Path(sys.argv[1])
count = 0
for path in sorted(pathlib.Path("test").rglob("*.mlir")):
    for part in path.read_text().split("// -----"):
        body = "\n".join(l for l in part.splitlines() if not l.lstrip().startswith("//"))
        if "func.func" in body or "module" in body:
            (out / f"seed{count:04d}.mlir").write_text(body + "\n")
            count += 1
print(f"usmoe fuzz: {count} seeds")
PY

export ASAN_OPTIONS="detect_leaks=0:allow_user_poisoning=0:detect_container_overflow=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
"$build_dir/bin/usmoe-fuzz" "$build_dir/corpus" "$seeds" \
  -dict=tools/usmoe-fuzz/moe.dict -max_total_time="$seconds" -max_len=4096 \
  -timeout=20 -rss_limit_mb=6144 -print_final_stats=1 \
  -artifact_prefix="$build_dir/crashes/" 2>&1 | tail -25
status=${PIPESTATUS[0]}
if [ "$status" != 0 ]; then
  echo "usmoe fuzz: FAILED; the input is in $build_dir/crashes/" >&2
fi
# USMOE_FUZZ_REPORT=FILE: the run as a one-test JUnit report (scripts/test.sh).
if [ -n "${USMOE_FUZZ_REPORT:-}" ]; then
  failures=$([ "$status" = 0 ] && echo 0 || echo 1)
  printf '<testsuite name="fuzz" tests="1" failures="%s" skipped="0"><testcase name="usmoe-fuzz %ss"/></testsuite>\n' \
    "$failures" "$seconds" > "$USMOE_FUZZ_REPORT"
fi
exit "$status"
