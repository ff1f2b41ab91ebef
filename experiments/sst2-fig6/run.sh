#!/usr/bin/env bash
# Reproduces the shipped checkpoints sst2-grasp and sst2-stoch (into ./ckpts: a shipped name is never a training
# target) and the Fig. 6-style sweeps of the shipped pair. The shipped ones were trained with one thread each,
# side by side on 2 CPU cores (13 min 26 s and 19 min 4 s of training); other thread counts give the same recipe
# but not bit-identical weights.
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1

noisesim train --method grasp-w --k 64 --layers all --rows per-row --steps 2000 --eval-every 200 \
  --dropout 0 --seed 0 --perm-seed 0 --out ./ckpts/sst2-grasp &
twin=$!
noisesim train --method stochgrasp --k 64 --layers all --rows per-row --steps 2000 --eval-every 200 \
  --dropout 0 --seed 0 --perm-seed 0 --noise-path local --sigma-init 0.003 --sigma-target 0.03 \
  --target-warmup 0.3 --lambda 0.01 --sigma-reduction sum --sigma-lr 5e-4 --twin sst2-grasp \
  --out ./ckpts/sst2-stoch &
stoch=$!
wait "$twin"  # one wait per run: a bare `wait` returns 0 even when a run failed
wait "$stoch"
unset OMP_NUM_THREADS
# the shipped pair, bundled with the package: the committed results/ and main-command/
noisesim sweep --ckpt sst2-stoch --sigma 0.01,0.02,0.03,0.04,0.05 --programs 5 --csv --out results
noisesim sweep --ckpt sst2-stoch --sigma 0.01,0.02,0.05 --out main-command
