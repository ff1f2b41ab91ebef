"""Cost of read noise redrawn at run time, against a clean evaluation pass (MiniLM, SST-2 dev).

    python benchmarks/read_noise.py [--ckpt sst2-grasp] [--repeats 5] [--json out.json]

Timed, interleaved per repeat (so machine drift hits every variant alike), median reported:
- clean: the programmed weights, no noise;
- mvm, σ per output: read noise per token via the output-space path y_j += ε·σ_j·‖x‖
  (state-independent σ, e.g. a fraction of g_max: the rram profile's read noise);
- mvm, σ per weight: the same with state-dependent σ_ij (y_j += ε·sqrt(Σ_i x_i² σ_ij²), one extra
  matrix product per layer);
- pass: one weight-space draw per forward pass (the fefet profile's read noise);
- explicit per-token weight sampling on 4 sentences of median length, to show what the output-space
  path avoids.
"""

from __future__ import annotations

import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from common import sst2_bench  # noqa: E402  (benchmarks/common.py)

from noisesim.data import EvalBatches, encode  # noqa: E402
from noisesim.devices import Profile  # noqa: E402
from noisesim.engine.program import ProgrammedWeights  # noqa: E402
from noisesim.evaluate import accuracy  # noqa: E402


def read_profile(per: str, relative_to: str) -> Profile:
    return Profile({"name": f"read-{per}-{relative_to}", "mapping": {"g_max": 25.0, "scale": "column"},
                    "noise": [{"read": {"sigma": 0.01, "relative_to": relative_to, "per": per}}]}, "<benchmark>")


def explicit_per_token_seconds(model, adapters, weights, batch) -> float:
    """One batch with a full noisy weight matrix drawn for every token (what the output-space path avoids)."""
    hooks = []
    for name, adapter in adapters.items():
        std = 0.01 * 25.0 * 2 ** 0.5 * (weights.programmed[name].abs().amax(1, keepdim=True) / 25.0)

        def per_token(module, args, out, std=std):
            x = args[0].reshape(-1, args[0].shape[-1])
            noisy = module.weight + std * torch.randn(x.shape[0], *module.weight.shape)
            return (torch.einsum("ti,toi->to", x, noisy) + module.bias).reshape(out.shape)

        hooks.append(adapter.base.register_forward_hook(per_token))
    start = time.perf_counter()
    with torch.inference_mode():
        model.eval()
        model(**batch)
    for h in hooks:
        h.remove()
    return time.perf_counter() - start


def main() -> None:
    args, backbone, table, batches, adapters = sst2_bench(__doc__)
    variants = {"clean": Profile({"name": "ideal", "noise": []}, "<benchmark>"),
                "mvm, sigma per output": read_profile("mvm", "g_max"),
                "mvm, sigma per weight": read_profile("mvm", "value"),
                "pass": read_profile("pass", "g_max")}
    times: dict[str, list[float]] = {k: [] for k in variants}
    acc: dict[str, float] = {}
    small = EvalBatches.build(encode(table, backbone.tokenizer, 128, "sst2-dev"), backbone.tokenizer.pad_token_id, 4)
    batch = small.batches[len(small.batches) // 2]  # 4 sentences of median length
    accuracy(backbone.model, batches)  # warm-up
    with ProgrammedWeights(adapters) as weights:
        for rep in range(args.repeats):
            for name, prof in variants.items():
                weights.realize(prof, read=rep)
                start = time.perf_counter()
                acc[name] = accuracy(backbone.model, batches)
                times[name].append(time.perf_counter() - start)
        weights.realize(variants["clean"])
        start = time.perf_counter()
        with torch.inference_mode():
            backbone.model(**batch)
        slice_clean = time.perf_counter() - start
        explicit = explicit_per_token_seconds(backbone.model, adapters, weights, batch)

    # the floor of any exact per-token read noise: one N(0, 1) draw per output per token, per pass
    pass_tokens = sum(int(b["input_ids"].numel()) for b in batches.batches)
    real_tokens = sum(int(b["attention_mask"].sum()) for b in batches.batches)
    draws = pass_tokens * sum(a.out_features for a in adapters.values())
    gen = torch.Generator().manual_seed(0)
    chunk = 4_000_000
    start = time.perf_counter()
    for left in range(draws, 0, -chunk):
        torch.randn(min(chunk, left), generator=gen)
    rng_seconds = time.perf_counter() - start

    base = statistics.median(times["clean"])
    report = {"checkpoint": args.ckpt, "threads": torch.get_num_threads(), "repeats": args.repeats,
              "sentences": len(table), "batches": len(batches.batches), "variants": {}}
    print(f"{args.ckpt} on SST-2 dev ({len(table)} sentences, {len(batches.batches)} batches),"
          f" {torch.get_num_threads()} threads, median of {args.repeats}")
    for name, values in times.items():
        med = statistics.median(values)
        report["variants"][name] = {"median_s": med, "ratio_to_clean": med / base, "accuracy": acc[name],
                                    "all_s": values}
        print(f"  {name:24s} {med:6.2f} s   ×{med / base:5.2f}   accuracy {100 * acc[name]:.1f} %")
    tokens = int(batch["input_ids"].numel())
    report["explicit_per_token"] = {"sentences": 4, "tokens": tokens, "seconds": explicit,
                                    "clean_seconds": slice_clean, "ratio_to_clean": explicit / slice_clean}
    print(f"  explicit per-token weight sampling, 4 sentences ({tokens} tokens): {explicit:.2f} s"
          f" vs {slice_clean:.3f} s clean (×{explicit / slice_clean:.0f})")
    report["rng_floor"] = {"tokens_per_pass": pass_tokens, "unpadded_tokens": real_tokens,
                           "normal_draws_per_pass": draws, "seconds": rng_seconds,
                           "ratio_to_clean": 1 + rng_seconds / base}
    print(f"  RNG floor: {draws / 1e6:.0f} M normal draws per pass ({pass_tokens} tokens, {real_tokens} without"
          f" padding) take {rng_seconds:.2f} s alone:"
          f" no exact per-token path can beat ×{1 + rng_seconds / base:.2f} here")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
