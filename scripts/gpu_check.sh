#!/usr/bin/env bash
# GPU check for one H100/H200 with no network: bash scripts/gpu_check.sh [OUT_DIR]
# Runs scripts/gpu_check.py (training/eval/export throughput of the default model) and, when present,
# scripts/gpu_layers.py (per-layer time of the research mixers). zstandard is the one dependency a
# bare CUDA image may lack: wheels carried in .whl/ are installed to /tmp/site without network.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check_out}
mkdir -p "$out"
if ! python3 -c "import zstandard" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/device.txt"
python3 scripts/gpu_check.py --out "$out" 2>&1 | tee "$out/gpu_check_console.txt"
if [ -f scripts/gpu_layers.py ]; then
  python3 scripts/gpu_layers.py 2>&1 | tee "$out/layers.txt"
fi
