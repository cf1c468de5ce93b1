#!/usr/bin/env bash
# The one test command: installs what is missing, builds, runs every suite
# (lit: IR, CPU execution, PTX; pytest: Python API and differential tests)
# and ends with a plain "N passed, N failed, N skipped" line.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Each step's wall time, printed after it (CI's budget is ~30 minutes).
step_start=$SECONDS
step_done() { echo "time: $1 took $((SECONDS - step_start)) s"; step_start=$SECONDS; }

if ! bash scripts/build.sh; then
  echo "build failed"
  echo "0 passed, 1 failed, 0 skipped"
  exit 1
fi
step_done "setup and build"
build_dir="${USMOE_BUILD_DIR:-build}"
reports="$build_dir/test-reports"
# Both pytest tiers spread over the cores (pytest-xdist); a module whose
# fixture is costly keeps its tests on one worker (xdist_group).
parallel=(-n "$(nproc)" --dist loadgroup)
rm -rf "$reports" && mkdir -p "$reports"

echo "== lit"
/usr/lib/llvm-22/bin/lit -sv --xunit-xml-output "$reports/lit.xml" "$build_dir/test"
step_done lit

echo "== pytest"
PYTHONPATH="$build_dir/python_packages" /usr/bin/python3 -m pytest -q "${parallel[@]}" \
  -p no:cacheprovider --junit-xml "$reports/pytest.xml" test/python
step_done pytest

# The Python package as users get it: a wheel built with `pip wheel .`,
# installed into a venv with
# PyPI's NumPy 2, PyTorch 2.x and transformers 5 (the Debian tier above has
# NumPy 1.24 and PyTorch 1.13; usmoe.torch's custom ops need >= 2.4, and
# usmoe.hf patches transformers 5's MoE blocks). Needs PyPI; without
# it the tier is reported as not run (a missing report counts as a failure).
# The wheel is built by scikit-build-core in the build directory above
# (pyproject.toml's own default is a fresh one under build/pip/): it only
# re-links the Python module there, where a fresh build compiled the whole
# project a second time (4.5 of CI's 31 minutes). It leaves that build
# configured for the venv's interpreter (the same CPython: only
# usmoe/_build_info.py, which names it in an error message, differs).
echo "== pytest: pip-installed usmoe with PyPI NumPy 2 and PyTorch 2"
venv="$build_dir/venv-numpy2"
numpy2_report="$reports/pytest-numpy2.xml"
wheels="$build_dir/wheels"
rm -rf "$wheels"
pip_quiet=(-q --disable-pip-version-check)
if { [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"; } &&
   "$venv/bin/pip" wheel "${pip_quiet[@]}" --no-deps -w "$wheels" \
     --config-settings=build-dir="$build_dir" . &&
   "$venv/bin/pip" install "${pip_quiet[@]}" "numpy>=2" "torch>=2.4" "transformers>=5" pytest \
     pytest-xdist &&
   "$venv/bin/pip" install "${pip_quiet[@]}" --force-reinstall --no-deps "$wheels"/usmoe-*.whl; then
  USMOE_TEST_INSTALLED=1 "$venv/bin/python" -m pytest -q "${parallel[@]}" -p no:cacheprovider \
    --junit-xml "$numpy2_report" test/python \
    --ignore test/python/test_gpu_check_pack.py --ignore test/python/test_differential.py
else
  echo "could not build usmoe's wheel or install it with NumPy 2 into $venv (is PyPI reachable?)"
fi
step_done "pytest (pip-installed, NumPy 2)"

# libFuzzer over parse + verify + every pipeline, under ASan + UBSan: a
# bounded smoke run (its own instrumented build in build-fuzz/).
echo "== fuzz smoke (libFuzzer, ${USMOE_FUZZ_SECONDS:-120} s)"
USMOE_FUZZ_REPORT="$reports/fuzz.xml" bash scripts/fuzz.sh "${USMOE_FUZZ_SECONDS:-120}"
step_done "fuzz smoke"

echo
python3 scripts/summarize_results.py "$reports/lit.xml" "$reports/pytest.xml" "$numpy2_report" \
  "$reports/fuzz.xml"
