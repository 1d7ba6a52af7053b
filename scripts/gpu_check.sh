#!/usr/bin/env bash
# GPU check for one H100/H200 with no network, unattended, one command: bash scripts/gpu_check.sh [OUT_DIR]
# About 6 minutes plus the machine's start-up: scripts/gpu_check.py (the default recipe, 50 timed steps with
# torch.compile, eval, export; its trainer stops at 330 s) prints its table and writes OUT_DIR/gpu_check_table.md;
# only then scripts/gpu_layers.py times one A, S and G layer under its own 150 s limit, so it cannot cost the table.
#
# zstandard, needed only to write the artifact, is often missing on a bare CUDA image. Carry a wheel for
# the image's Python in .whl/ (git-ignored: copy the folder along with the tree), made on any machine with
#   pip download --only-binary=:all: --python-version 3.X --platform manylinux2014_x86_64 zstandard -d .whl
# where 3.X is the Python this script prints first (wheels for several versions can sit side by side).
# Without one the trainer still trains and evaluates, then stops with "the artifact needs the zstandard
# package", and the table still shows everything but the artifact rows.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check_out}
mkdir -p "$out"
py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
echo "python $py: $(command -v python3)" | tee "$out/device.txt"
if ! python3 -c "import zstandard" 2>/dev/null; then
  shopt -s nullglob
  wheels=(.whl/zstandard-*-cp${py/./}-*.whl)
  if (( ${#wheels[@]} )); then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "${wheels[0]}" \
      && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "zstandard: not installed and no wheel for Python $py in .whl/, so no artifact (the timing table still comes)."
    echo "  to carry one: pip download --only-binary=:all: --python-version $py --platform manylinux2014_x86_64 zstandard -d .whl"
  fi
fi
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee -a "$out/device.txt"
# GPU_CHECK_SMOKE=1: the same script with a tiny CPU model (tests/test_gpu_check.py runs it so).
smoke=${GPU_CHECK_SMOKE:+--smoke}
timeout -k 10 400 python3 scripts/gpu_check.py --out "$out" --data "${TMPDIR:-/tmp}/gpu_check_data" --budget 330 $smoke \
  2>&1 | tee "$out/gpu_check_console.txt"
status=${PIPESTATUS[0]}
layers=${GPU_CHECK_SMOKE:+--device cpu --seq 64 --batch 1 --letters A --no-compile --warmup 0 --iters 1}
timeout -k 10 150 python3 scripts/gpu_layers.py $layers 2>&1 | tee "$out/layers.txt"
exit "$status"
