#!/usr/bin/env bash
# Each phenomenon alone, swept in strength, for the shipped pair (issue 12, point 5): the technology-neutral
# profiles devices/device-to-device.yaml, cycle-to-cycle.yaml (write-to-write and read-to-read separately)
# and drift.yaml. Run from the repository root after the README's install; resumable (a sweep into its
# folder again skips the stored cells); the report alone: python experiments/phenomena/run.py.
# Cells (both checkpoints, plus a clean reference each): device-to-device 4 strengths × 2 chips, write
# 4 × 2 programmings, read 3 × 2 reads, drift 3 strengths × 2 compensations × 2 times × 2 programmings:
# 88 noisy cells; the CPU time measured is in phenomena.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
OUT=experiments/phenomena/sweeps
PAIR=(--ckpt sst2-stoch --ckpt sst2-grasp)
# device-to-device: drawn once per chip, so chips are the realizations
noisesim sweep "${PAIR[@]}" --profile device-to-device --set device_to_device.scale=0.5,1,2,3 \
  --chips 2 --programs 1 --out $OUT/device-to-device
# cycle-to-cycle, write-to-write: programming noise alone (read noise off), 3 programmings
noisesim sweep "${PAIR[@]}" --profile cycle-to-cycle --set programming.scale=0.5,1,2,4 --set read.scale=0 \
  --programs 2 --out $OUT/cycle-to-cycle-write
# cycle-to-cycle, read-to-read: per-MVM read noise alone (programming noise off), 3 reads
noisesim sweep "${PAIR[@]}" --profile cycle-to-cycle --set read.scale=1,2,4 --set programming.scale=0 \
  --programs 1 --reads 2 --out $OUT/cycle-to-cycle-read
# temporal drift: ν scaled, at three times, without and with global compensation, 3 programmings
noisesim sweep "${PAIR[@]}" --profile drift --set drift.scale=0.5,1,2 --set drift.compensation=none,global \
  --time 1d,1y --programs 2 --out $OUT/drift
python experiments/phenomena/run.py
