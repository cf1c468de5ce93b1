#!/usr/bin/env bash
# The one test command: installs what is missing, builds, runs every test
# suite and ends with a plain "N passed, N failed, N skipped" line.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/build.sh || { echo "0 passed, 1 failed"; exit 1; }
build_dir="${USMOE_BUILD_DIR:-build}"

passed=0 failed=0 skipped=0
status=0

# lit: IR tests, CPU execution tests, PTX tests (GPU execution is UNSUPPORTED
# without a GPU).
lit_log="$build_dir/lit.log"
/usr/lib/llvm-22/bin/lit -sv "$build_dir/test" 2>&1 | tee "$lit_log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
count() { grep -E "^ +$1: +[0-9]+" "$lit_log" | awk '{print $2}' | head -1; }
passed=$((passed + $(count Passed || true) + 0))
failed=$((failed + $(count Failed || echo 0) + 0))
skipped=$((skipped + $(count Unsupported || echo 0) + 0))

echo
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit $status
