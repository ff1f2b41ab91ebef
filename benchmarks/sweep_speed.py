"""How close a noisy sweep cell is to the floor: a clean evaluation pass of the same model on the same tokens.

    python benchmarks/sweep_speed.py [--repeats 3] [--json out.json] [--aihwkit]

Measures, on MiniLM + SST-2 dev (872 sentences), in one process:
(a) a noisy Gaussian cell (σ = 0.02: draw + program all 36 layers, evaluate) against a clean pass;
(b) the Fig. 6 grid (sst2-stoch and sst2-grasp × σ ∈ {0, 0.01, 0.02, 0.05} × 3 seeds = 20 cells) end to end
    through ``noisesim.engine.run.run`` with the backbone already loaded: wall time and cells per minute;
(c) peak resident memory of a noisy cell against a clean pass (Linux VmHWM, reset between the two);
(d) with --aihwkit, the same noisy evaluation in aihwkit-lightning, as a ratio (see ``aihwkit_pass``);
(e) the arithmetic floor: FLOPs of one pass (linear layers + attention, on the padded and on the real
    tokens) over the sustained fp32 matmul rate this machine reaches, hence the least time the grid
    can take however little else a sweep does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from noisesim import checkpoints  # noqa: E402
from noisesim.devices import gaussian, load_profile  # noqa: E402
from noisesim.engine.execute import _backbone  # noqa: E402
from noisesim.engine.program import ProgrammedWeights
from noisesim.engine.run import run  # noqa: E402
from noisesim.evaluate import accuracy  # noqa: E402
from noisesim.methods import adapters_of  # noqa: E402


def peak_rss_reset() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def matmul_gflops(d: int = 384, f: int = 1536, tokens: int = 4096, repeats: int = 10) -> float:
    """Best sustained fp32 rate (GFLOP/s) of the FF matmuls at MiniLM's width: the hardware's ceiling."""
    x, w1, w2 = torch.randn(tokens, d), torch.randn(d, f), torch.randn(f, d)
    best = float("inf")
    for _ in range(repeats + 2):
        start = time.perf_counter()
        (x @ w1) @ w2
        best = min(best, time.perf_counter() - start)
    return 4 * tokens * d * f / best / 1e9


def pass_gflop(batches, model) -> dict:
    """FLOPs of one evaluation pass: linear layers (2·in·out per token) and attention (4·L·d per token)."""
    cfg = model.encoder.config
    d, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 2 * n * (4 * d * d + 2 * d * f)
    padded = sum(b["input_ids"].numel() for b in batches.batches)
    real = sum(int(b["attention_mask"].sum()) for b in batches.batches)
    attention = sum(n * 4 * d * b["input_ids"].shape[0] * b["input_ids"].shape[1] ** 2 for b in batches.batches)
    return {"tokens_padded": padded, "tokens_real": real, "linear_gflop_padded": per_token * padded / 1e9,
            "linear_gflop_real": per_token * real / 1e9, "attention_gflop": attention / 1e9}


def aihwkit_pass(sigma: float, repeats: int) -> dict:
    """aihwkit-lightning: its ADD_NORMAL weight noise acts only in training mode, so the model runs in
    train mode with dropout off, under inference_mode, on the same checkpoint and batches."""
    from aihwkit_lightning.nn.conversion import convert_to_analog
    from aihwkit_lightning.simulator.configs import TorchInferenceRPUConfig, WeightNoiseInjectionType

    ckpt = checkpoints.read("sst2-stoch")
    backbone, batches = _backbone(ckpt, "sst2-dev", 128, 64)
    model = checkpoints.build(ckpt, backbone).model
    for adapter in adapters_of(model).values():  # W + μ in the linear layers, as the devices would hold it
        adapter.program(adapter.programmed_weight())
    out = {}
    for label, noise in (("clean", 0.0), ("noisy", sigma)):
        config = TorchInferenceRPUConfig()
        config.modifier.noise_type = WeightNoiseInjectionType.ADD_NORMAL if noise else WeightNoiseInjectionType.NONE
        config.modifier.std_dev = noise
        analog = convert_to_analog(model, config)
        for m in analog.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
        analog.train()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            with torch.inference_mode():
                correct = sum(int((analog(**b).logits.argmax(-1) == y).sum())
                              for b, y in zip(batches.batches, batches.labels, strict=True))
            times.append(time.perf_counter() - start)
        out[label] = {"median_s": statistics.median(times), "accuracy": correct / 872}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    ap.add_argument("--aihwkit", action="store_true",
                    help="also time aihwkit-lightning (pip install aihwkit-lightning)")
    args = ap.parse_args()

    ckpt = checkpoints.read("sst2-stoch")
    backbone, batches = _backbone(ckpt, "sst2-dev", 128, 64)
    model = checkpoints.build(ckpt, backbone)
    ideal, noisy = load_profile("ideal"), gaussian(0.02)
    accuracy(model.model, batches)  # warm-up
    clean_s, cell_s, draw_s, peaks = [], [], [], {"clean": [], "noisy": []}
    with ProgrammedWeights(adapters_of(model.model)) as weights:
        for rep in range(args.repeats):
            peak_rss_reset()
            start = time.perf_counter()
            weights.realize(ideal)
            accuracy(model.model, batches)
            clean_s.append(time.perf_counter() - start)
            peaks["clean"].append(peak_rss_mb())
            peak_rss_reset()
            start = time.perf_counter()
            weights.realize(noisy, program=rep)
            drawn = time.perf_counter()
            accuracy(model.model, batches)
            cell_s.append(time.perf_counter() - start)
            draw_s.append(drawn - start)
            peaks["noisy"].append(peak_rss_mb())
    clean, cell = statistics.median(clean_s), statistics.median(cell_s)

    start = time.perf_counter()
    grid = run(["sst2-stoch", "sst2-grasp"], "0.01,0.02,0.05", seeds=3, twin=False, progress=False)
    grid_s = time.perf_counter() - start

    report = {
        "threads": torch.get_num_threads(), "repeats": args.repeats,
        "clean_pass_s": clean, "noisy_cell_s": cell, "noise_draw_s": statistics.median(draw_s),
        "noisy_over_clean": cell / clean,
        "fig6_grid": {"cells": len(grid.frame), "wall_s": grid_s, "cells_per_min": 60 * len(grid.frame) / grid_s},
        "peak_rss_mb": {k: max(v) for k, v in peaks.items()},
        "peak_noisy_over_clean": max(peaks["noisy"]) / max(peaks["clean"]),
    }
    print(f"MiniLM, SST-2 dev, {report['threads']} threads, median of {args.repeats}:")
    print(f"  (a) clean pass {clean:.2f} s; noisy Gaussian cell {cell:.2f} s"
          f" (noise draw {report['noise_draw_s']:.2f} s) → ×{cell / clean:.3f}")
    g = report["fig6_grid"]
    print(f"  (b) Fig. 6 grid: {g['cells']} cells in {g['wall_s']:.1f} s ({g['cells_per_min']:.1f} cells/min)")
    print(f"  (c) peak RSS: clean pass {report['peak_rss_mb']['clean']:.0f} MB, noisy cell"
          f" {report['peak_rss_mb']['noisy']:.0f} MB → ×{report['peak_noisy_over_clean']:.3f}")
    flops, rate = pass_gflop(batches, backbone.model), matmul_gflops()
    passes = len(grid.frame)
    report["floor"] = {**flops, "matmul_gflops": rate,
                       "grid_floor_s_padded": passes * (flops["linear_gflop_padded"] + flops["attention_gflop"]) / rate,
                       "grid_floor_s_real_tokens": passes * flops["linear_gflop_real"] / rate}
    f = report["floor"]
    print(f"  (e) one pass: {f['linear_gflop_padded']:.0f} GFLOP in linear layers ({f['tokens_padded']} padded tokens;"
          f" {f['linear_gflop_real']:.0f} on the {f['tokens_real']} real ones)"
          f" + {f['attention_gflop']:.0f} in attention;"
          f" fp32 matmul here at best {rate:.0f} GFLOP/s → the {passes} passes of the grid need at least"
          f" {f['grid_floor_s_padded']:.0f} s ({f['grid_floor_s_real_tokens']:.0f} s on real tokens only, linear layers"
          f" only)")
    if args.aihwkit:
        ah = aihwkit_pass(0.02, args.repeats)
        report["aihwkit_lightning"] = {**ah, "noisy_over_noisesim_cell": ah["noisy"]["median_s"] / cell}
        print(f"  (d) aihwkit-lightning: clean {ah['clean']['median_s']:.2f} s, with ADD_NORMAL noise"
              f" {ah['noisy']['median_s']:.2f} s → ×{ah['noisy']['median_s'] / cell:.2f} a noisesim noisy cell")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
