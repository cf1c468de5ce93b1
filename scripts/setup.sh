#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test usmoe. Idempotent:
# packages already present are skipped, so a second run costs about a second.
set -euo pipefail

PKGS=(
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 libclang-rt-22-dev
  pybind11-dev python3-dev python3-numpy python3-pytest python3-pytest-xdist python3-torch
  python3-venv
  cmake ninja-build libdnnl-dev libomp-22-dev
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "usmoe setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "usmoe setup: all packages present"
fi
