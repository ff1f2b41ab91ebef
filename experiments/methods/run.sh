#!/usr/bin/env bash
# The committed methods table: two training/sweep processes side by side on 2 CPU cores (one thread each), then
# the table and the figure. Resumable: rerun after an interruption.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
python experiments/methods/run.py all stochgrasp,grasp-w-hwa,lora,bitfit,head > experiments/methods/log-a.txt 2>&1 &
python experiments/methods/run.py all grasp-w,full,ia3,grasp,full-hwa > experiments/methods/log-b.txt 2>&1 &
wait
python experiments/methods/run.py table
