#!/usr/bin/env bash
# Issue 12's periphery experiments on the shipped pair (sst2-grasp, sst2-stoch), SST-2 dev (872 sentences).
# Resumable: rerun the same command to finish; every sweep below stores its cells in its --out folder.
#   bash experiments/periphery/run.sh            # all, then tables and plots
#   bash experiments/periphery/run.sh plots      # tables and plots from what is stored
# CPU time (2 cores, two single-threaded processes side by side): see periphery.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
E=experiments/periphery
CKPTS="--ckpt sst2-grasp --ckpt sst2-stoch"

bits() {
  # 1. accuracy against ADC bits and against DAC bits (ideal devices: the converters alone; deterministic)
  noisesim sweep $CKPTS --profile $E/adc.yaml --set periphery.adc.bits=2,3,4,5,6,8,10 --out $E/adc-bits
  noisesim sweep $CKPTS --profile $E/dac.yaml --set periphery.dac.bits=2,3,4,5,6,8 --out $E/dac-bits
}
pcm() {
  # 2. PCM over time: no, global and per-column drift compensation (shipped pcm profile, its periphery on)
  noisesim sweep $CKPTS --profile pcm --set drift.compensation=none,global,column \
    --time 1d,30d,1y --programs 2 --out $E/pcm-compensation
}
sens_sigma() {
  # 3a. which layer hurts most: each of the 36 layers alone under Gaussian σ = 0.04, the rest clean
  noisesim sensitivity --ckpt sst2-grasp --sigma 0.04 --by layer --programs 4 --out $E/sensitivity-sigma0.04
}
sens_pcm() {
  # 3b. the same under the shipped pcm profile one year after programming
  noisesim sensitivity --ckpt sst2-grasp --profile pcm --time 1y --by layer --programs 3 \
    --out $E/sensitivity-pcm-1y
}
plots() { python $E/plot.py; }

case "${1:-all}" in
  all) (bits; pcm) & (sens_sigma; sens_pcm) & wait; plots ;;
  bits|pcm|sens_sigma|sens_pcm|plots) "$1" ;;
  *) echo "usage: $0 [all|bits|pcm|sens_sigma|sens_pcm|plots]" >&2; exit 2 ;;
esac
