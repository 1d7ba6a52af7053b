#!/usr/bin/env bash
# Wheels for the bare GPU image, one command on any machine with network: bash scripts/fetch_gpu_wheels.sh
# Downloads every package named in scripts/gpu_wheels.txt for Python 3.10-3.13 (manylinux x86_64) into .whl/
# (git-ignored: carry the folder with the tree, e.g. the device tool's carry [".whl"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t packages < <(grep -v '^\s*#' scripts/gpu_wheels.txt | grep -v '^\s*$')
for version in 3.10 3.11 3.12 3.13; do
  python3 -m pip download --quiet --only-binary=:all: --no-deps --python-version "$version" \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 -d .whl "${packages[@]}"
done
ls .whl
