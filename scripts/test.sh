#!/usr/bin/env bash
# The one test command: installs what is missing, builds, runs every suite
# (lit: IR, CPU execution, PTX; pytest: Python API and differential tests)
# and ends with a plain "N passed, N failed, N skipped" line.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! bash scripts/build.sh; then
  echo "build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
build_dir="${USMOE_BUILD_DIR:-build}"
reports="$build_dir/test-reports"
rm -rf "$reports" && mkdir -p "$reports"

echo "== lit"
/usr/lib/llvm-22/bin/lit -sv --xunit-xml-output "$reports/lit.xml" "$build_dir/test"

echo "== pytest"
PYTHONPATH="$build_dir/python_packages" /usr/bin/python3 -m pytest -q \
  -p no:cacheprovider --junit-xml "$reports/pytest.xml" test/python

echo
python3 scripts/summarize_results.py "$reports/lit.xml" "$reports/pytest.xml"
