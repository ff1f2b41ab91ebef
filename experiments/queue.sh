#!/usr/bin/env bash
# Every experiment of issue 11 in order, two processes at a time on 2 CPU cores (one thread each); resumable.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
bash experiments/methods/run.sh
python experiments/sigma/run.py all > experiments/sigma/log.txt 2>&1 &
python experiments/shipped/run.py all > experiments/shipped/log.txt 2>&1 &
wait
