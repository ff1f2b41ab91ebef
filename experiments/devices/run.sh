#!/usr/bin/env bash
# The shipped checkpoints on every shipped device profile, and PCM with stronger programming noise.
# The committed results predate pcm's periphery: --profile pcm-ideal-periphery reproduces them (into a fresh
# --out; rerun into the committed folder, pcm's new cells would join the old ones under the same label).
set -euo pipefail
export HF_HUB_OFFLINE=1
noisesim sweep --ckpt sst2-stoch --ckpt sst2-grasp --profile rram --profile fefet --chips 2 --seeds 2 \
  --csv --out experiments/devices/results
noisesim sweep --ckpt sst2-stoch --ckpt sst2-grasp --profile pcm --time 1d --set programming.scale=2,4,8 \
  --seeds 3 --csv --out experiments/devices/pcm-programming-scale
