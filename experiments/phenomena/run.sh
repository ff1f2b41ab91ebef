#!/usr/bin/env bash
# Each phenomenon alone, swept in strength, for the shipped pair (issue 12, point 5): the technology-neutral
# profiles devices/device-to-device.yaml, cycle-to-cycle.yaml (write-to-write and read-to-read separately)
# and drift.yaml. Run from the repository root after the README's install; resumable (a sweep into its
# folder again skips the stored cells); the report alone: python experiments/phenomena/run.py.
# Cells (both checkpoints; clean reference included): device-to-device 5 strengths × 3 chips × 2 = 32,
# write 5 × 3 programmings × 2 = 32, read 5 × 3 reads × 2 = 32, drift 4 strengths × 2 compensations × 3 times
# × 3 programmings × 2 = 146: 242 cells, at 4–8 s each single-threaded about 16–32 CPU-minutes.
set -euo pipefail
cd "$(dirname "$0")/../.."
export HF_HUB_OFFLINE=1
OUT=experiments/phenomena/sweeps
PAIR=(--ckpt sst2-stoch --ckpt sst2-grasp)
# device-to-device: drawn once per chip, so chips are the realizations
noisesim sweep "${PAIR[@]}" --profile device-to-device --set device_to_device.scale=0.25,0.5,1,1.5,2 \
  --chips 3 --programs 1 --out $OUT/device-to-device
# cycle-to-cycle, write-to-write: programming noise alone (read noise off), 3 programmings
noisesim sweep "${PAIR[@]}" --profile cycle-to-cycle --set programming.scale=0.5,1,2,3,4 --set read.scale=0 \
  --programs 3 --out $OUT/cycle-to-cycle-write
# cycle-to-cycle, read-to-read: per-MVM read noise alone (programming noise off), 3 reads
noisesim sweep "${PAIR[@]}" --profile cycle-to-cycle --set read.scale=0.5,1,2,3,4 --set programming.scale=0 \
  --programs 1 --reads 3 --out $OUT/cycle-to-cycle-read
# temporal drift: ν scaled, at three times, without and with global compensation, 3 programmings
noisesim sweep "${PAIR[@]}" --profile drift --set drift.scale=0.25,0.5,1,2 --set drift.compensation=none,global \
  --time 1h,1d,1y --programs 3 --out $OUT/drift
python experiments/phenomena/run.py
