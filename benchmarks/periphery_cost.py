"""Cost of the periphery (DAC, ADC, output noise, tiles, IR drop) against a clean evaluation pass.

    python benchmarks/periphery_cost.py [--ckpt sst2-grasp] [--repeats 5] [--json benchmarks/periphery_cost.json]

MiniLM with every one of its 36 linear layers analog (``sst2-grasp`` adapts all of them), SST-2 dev, the
threads torch uses (2 on the project's machines). The variants are timed interleaved per repeat (machine
drift hits every variant alike) and the median reported; all but ``clean`` share one profile with no
weight noise, so the ratios measure the periphery alone:

- clean: the programmed weights, no periphery;
- dac8 + adc8: 8-bit DAC and ADC (per column), both calibrated (max) on the first batch;
- dac8 + adc8 + tiles 256×256: the converters per tile (each 384- or 1536-input layer split into 2 or 6 row
  tiles with their own ADC), no noise;
- dac8 + adc8 + output noise: the issue's target, ≤ 1.3× clean;
- + tiles 256×256: output noise per tile as well; the issue's target is ≤ +10 % on top of the line above;
- + IR drop: the aihwkit first-order model on top (two extra matrix products per tile; informative).
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from common import sst2_bench  # noqa: E402  (benchmarks/common.py)

from noisesim.devices import Profile  # noqa: E402
from noisesim.engine.program import ProgrammedWeights  # noqa: E402
from noisesim.evaluate import accuracy  # noqa: E402
from noisesim.seeds import SplitNormal  # noqa: E402

CONVERTERS = {"dac": {"bits": 8}, "adc": {"bits": 8}}
VARIANTS = {
    "clean": None,
    "dac8 + adc8": CONVERTERS,
    "dac8 + adc8 + tiles 256x256": {**CONVERTERS, "tile": {"rows": 256, "cols": 256}},
    "dac8 + adc8 + output noise": {**CONVERTERS, "output_noise": {"sigma": 0.02}},
    "+ tiles 256x256": {**CONVERTERS, "output_noise": {"sigma": 0.02}, "tile": {"rows": 256, "cols": 256}},
    "+ IR drop": {**CONVERTERS, "output_noise": {"sigma": 0.02}, "tile": {"rows": 256, "cols": 256},
                  "ir_drop": {}},
}
ON_TOP_OF = {"dac8 + adc8 + tiles 256x256": "dac8 + adc8", "dac8 + adc8 + output noise": "dac8 + adc8",
             "+ tiles 256x256": "dac8 + adc8 + output noise", "+ IR drop": "+ tiles 256x256"}


def profile(name: str, periphery: dict | None) -> Profile:
    spec = {"name": "bench-" + "".join(c if c.isalnum() else "-" for c in name), "noise": [],
            "mapping": {"g_max": 25.0, "scale": "column"}}
    if periphery is not None:
        spec["periphery"] = periphery
    return Profile(spec, "<benchmark>")


def main() -> None:
    args, backbone, table, batches, adapters = sst2_bench(__doc__)
    profiles = {name: profile(name, p) for name, p in VARIANTS.items()}
    times: dict[str, list[float]] = {k: [] for k in profiles}
    acc: dict[str, float] = {}
    accuracy(backbone.model, batches)  # warm-up
    with ProgrammedWeights(adapters) as weights:
        for rep in range(args.repeats):
            for name, prof in profiles.items():
                weights.realize(prof, read=rep)
                start = time.perf_counter()
                acc[name] = accuracy(backbone.model, batches)
                times[name].append(time.perf_counter() - start)

    # the floor of exact output noise: one N(0, 1) draw per output per MVM (untiled), nothing else
    pass_tokens = sum(int(b["input_ids"].numel()) for b in batches.batches)
    draws = pass_tokens * sum(a.out_features for a in adapters.values())
    normal, chunk, rng_s = SplitNormal(torch.Generator().manual_seed(0)), 1 << 20, []
    buffer = torch.empty(chunk)  # as the hook draws: into a buffer kept between MVMs
    for _ in range(args.repeats):
        start = time.perf_counter()
        for left in range(draws, 0, -chunk):
            n = min(chunk, left)
            normal((n,), out=buffer[:n])
        rng_s.append(time.perf_counter() - start)

    base = statistics.median(times["clean"])
    report = {"checkpoint": args.ckpt, "analog_layers": len(adapters), "threads": torch.get_num_threads(),
              "repeats": args.repeats, "sentences": len(table), "batches": len(batches.batches),
              "torch": torch.__version__, "variants": {}}
    print(f"{args.ckpt} on SST-2 dev ({len(table)} sentences, {len(batches.batches)} batches), {len(adapters)} analog"
          f" layers, {torch.get_num_threads()} threads, median of {args.repeats}")
    for name, values in times.items():
        med = statistics.median(values)
        entry = {"periphery": VARIANTS[name], "median_s": med, "ratio_to_clean": med / base,
                 "accuracy": acc[name], "all_s": values}
        step = ""
        if name in ON_TOP_OF:
            below = statistics.median(times[ON_TOP_OF[name]])
            entry["on_top_of"], entry["ratio_to_that"] = ON_TOP_OF[name], med / below
            step = f"  (×{med / below:4.2f} {ON_TOP_OF[name]})"
        report["variants"][name] = entry
        print(f"  {name:28s} {med:6.2f} s   ×{med / base:5.2f} clean{step}   accuracy {100 * acc[name]:.1f} %")
    rng = statistics.median(rng_s)
    report["rng_floor"] = {"tokens_per_pass": pass_tokens, "normal_draws_per_pass": draws, "median_s": rng,
                           "ratio_to_clean": 1 + rng / base, "all_s": rng_s}
    print(f"  RNG floor: {draws / 1e6:.0f} M N(0, 1) draws per pass (one per output per MVM, untiled) take"
          f" {rng:.2f} s alone: exact output noise costs at least ×{1 + rng / base:.2f} clean here")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
