#!/usr/bin/env bash
# GPU check for one H100/H200 with no network, unattended, one command: bash scripts/gpu_check.sh OUT_DIR
# At most GPU_CHECK_SECONDS (400) after the machine's start-up, so that a lent GPU's 15 minutes leave room for a
# second try: scripts/gpu_check.py (the default recipe, 50 timed steps with torch.compile, eval, export; its
# trainer is stopped at 280 s) prints its table, then scripts/gpu_layers.py times one A, S and G layer in the
# time left. OUT_DIR gets small files only (device.txt, the console, the trainer's log, the table, layers.txt);
# the weights (final.pt, ~98 MB), the artifact and the data stay in a work folder outside it.
#
# Packages a bare CUDA image may lack are named in scripts/gpu_wheels.txt; they are installed from .whl/, which
# scripts/fetch_gpu_wheels.sh fills on a machine with network (git-ignored: carry the folder with the tree).
# Without them the trainer still trains and evaluates, then stops where it writes the artifact; the table still
# shows everything but the artifact rows.
set -uo pipefail
cd "$(dirname "$0")/.."
total=${GPU_CHECK_SECONDS:-400}
deadline=$((SECONDS + total))
out=${1:-gpu_check_out}
work=${TMPDIR:-/tmp}/gpu_check_work
mkdir -p "$out" "$work"
py=$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
echo "python $py: $(command -v python3)" | tee "$out/device.txt"
shopt -s nullglob
for package in $(grep -v '^\s*#' scripts/gpu_wheels.txt); do
  python3 -c "import $package" 2>/dev/null && continue
  wheels=(.whl/"$package"-*-cp"${py/./}"-*.whl)
  if (( ${#wheels[@]} )); then
    python3 -m pip install -q --no-index --no-deps --no-compile --target "$work/site" "${wheels[0]}" \
      && export PYTHONPATH=$work/site${PYTHONPATH:+:$PYTHONPATH}
  else
    echo "$package: not installed and no wheel for Python $py in .whl/ (run bash scripts/fetch_gpu_wheels.sh where"
    echo "  there is network, then carry .whl/ with the tree); the timing table still comes."
  fi
done
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "nvidia-smi: not available"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } 2>&1 | tee -a "$out/device.txt"
# GPU_CHECK_SMOKE=1: the same script with a tiny CPU model (tests/test_gpu_check.py runs it so).
smoke=${GPU_CHECK_SMOKE:+--smoke}
timeout -k 10 $((total - 90)) python3 scripts/gpu_check.py --out "$out" --work "$work" --budget $((total - 120)) $smoke \
  2>&1 | tee "$out/gpu_check_console.txt"
status=${PIPESTATUS[0]}
left=$((deadline - SECONDS))
layers=${GPU_CHECK_SMOKE:+--device cpu --seq 64 --batch 1 --letters A --no-compile --warmup 0 --iters 1}
if (( left > 20 )); then
  timeout -k 5 $((left - 5)) python3 scripts/gpu_layers.py $layers 2>&1 | tee "$out/layers.txt"
else
  echo "layers: skipped, ${left} s left of ${total} s" | tee "$out/layers.txt"
fi
exit "$status"
