#!/usr/bin/env bash
# Reproduces the shipped checkpoints sst2-grasp and sst2-stoch and their Fig. 6-style sweep.
# Each training run takes about 13 (grasp-w) and 18 (stochgrasp) minutes on 2 CPU cores.
# Trained checkpoints go to the user store (~/.noisesim/checkpoints), which shadows the bundled ones.
set -euo pipefail
cd "$(dirname "$0")"

noisesim train --method grasp-w --k 64 --layers all --rows per-row --steps 1000 --eval-every 100 \
  --dropout 0 --seed 0 --perm-seed 0 --out sst2-grasp
noisesim train --method stochgrasp --k 64 --layers all --rows per-row --steps 1000 --eval-every 100 \
  --dropout 0 --seed 0 --perm-seed 0 --sigma-init 0.003 --sigma-target 0.03 --target-warmup 0.3 \
  --lambda 0.01 --sigma-reduction sum --sigma-lr 5e-4 --twin sst2-grasp --out sst2-stoch
noisesim sweep --ckpt sst2-stoch --ckpt sst2-grasp --sigma 0.01,0.02,0.03,0.04,0.05 --seeds 5 --out results
