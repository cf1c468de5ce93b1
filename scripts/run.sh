#!/usr/bin/env bash
# The main job: installs what is missing, builds usmoe, then shows the
# compiler at work: the fused routing IR of examples/unified-router.mlir, and
# a batch routed on the CPU by all three routers through the Python API, and
# a whole MoE layer run with each of them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/build.sh >/dev/null
build_dir="${USMOE_BUILD_DIR:-build}"

echo "== examples/unified-router.mlir after -moe-fuse-routing -canonicalize"
"$build_dir/bin/usmoe-opt" examples/unified-router.mlir \
  -moe-fuse-routing -canonicalize
echo
PYTHONPATH="$build_dir/python_packages" /usr/bin/python3 examples/route_batch.py
echo
echo "== examples/moe_layer.py: a whole MoE layer with each router"
PYTHONPATH="$build_dir/python_packages" /usr/bin/python3 examples/moe_layer.py
