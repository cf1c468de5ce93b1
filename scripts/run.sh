#!/usr/bin/env bash
# The main job: installs what is missing, builds usmoe, and shows the
# compiler at work on examples/unified-router.mlir (fused routing IR).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

bash scripts/build.sh >/dev/null
build_dir="${USMOE_BUILD_DIR:-build}"

echo "== examples/unified-router.mlir after -moe-fuse-routing -canonicalize"
"$build_dir/bin/usmoe-opt" examples/unified-router.mlir \
  -moe-fuse-routing -canonicalize
