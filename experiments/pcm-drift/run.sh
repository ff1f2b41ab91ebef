#!/usr/bin/env bash
# Accuracy over time on PCM (IBM's statistical model, devices/pcm.yaml) for the shipped checkpoints.
# Run from the repository root after the README's install; `unshare -n` (no network) is optional.
# The committed results predate pcm's periphery: --profile pcm-ideal-periphery reproduces them (into a fresh
# --out; rerun into the committed folder, pcm's new cells would join the old ones under the same label).
set -euo pipefail
export HF_HUB_OFFLINE=1
# 1. The command: 3 chips × 3 programmings per chip × 4 times, global drift compensation (the profile's default).
noisesim sweep --ckpt sst2-stoch --ckpt sst2-grasp --profile pcm --time 1s,1h,1d,1y --chips 3 \
  --csv --out experiments/pcm-drift/results
# 2. With and without drift compensation (3 chips × 1 programming each).
noisesim sweep --ckpt sst2-stoch --ckpt sst2-grasp --profile pcm --time 1s,1h,1d,1y --chips 3 --seeds 1 \
  --set drift.compensation=none,global --csv --out experiments/pcm-drift/compensation
