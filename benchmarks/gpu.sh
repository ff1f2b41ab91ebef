#!/usr/bin/env bash
# The speed benchmark on one GPU (under 5 minutes on an H100): clean pass vs its floor, noisy cell, per-MVM read
# noise, the Fig. 6 grid from process start, training steps, the scale curve; JSON and scale-cuda.png beside this.
#   bash benchmarks/gpu.sh            (after the README's install with a CUDA build of torch)
#   AIHWKIT=1 bash benchmarks/gpu.sh  (also aihwkit-lightning's noisy evaluation: pip install aihwkit-lightning)
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this is the GPU benchmark')"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
extra=()
if [[ "${AIHWKIT:-0}" == 1 ]]; then extra+=(--aihwkit); fi
timeout 290 python benchmarks/speed.py --device cuda --repeats 5 --train-steps 10 --scale-sentences 872 \
    --json benchmarks/speed-cuda.json "${extra[@]}"
