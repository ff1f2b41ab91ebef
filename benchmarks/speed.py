"""noisesim's speed on the device it runs on, against the arithmetic floor (issue 13).

    python benchmarks/speed.py [--device cpu|cuda] [--repeats 5] [--json speed.json] [--skip grid,train,scale]
                               [--scale-sentences 218] [--aihwkit]

Every ratio is measured side by side in one process, variants interleaved per repeat (so machine drift hits each
alike), medians reported. On MiniLM (sst2-stoch, SST-2 dev, 872 sentences):
- clean pass: the programmed weights, no noise; its ratio to the floor = the linear layers' FLOPs on the real
  (unpadded) tokens over the fp32 matmul rate, measured just before each pass (the machine's rate drifts);
- noisy cell: draw and program a Gaussian σ = 0.02 realization of all 36 layers, then evaluate, / clean;
- per-MVM read noise, σ per output (output-space path) and σ per weight (one extra matrix product), / clean;
- the Fig. 6 grid: the main command ``noisesim sweep --ckpt sst2-stoch --sigma 0.01,0.02,0.05`` (with its twin,
  3 programmings: 20 cells) in a fresh process, wall time from process start (imports and backbone load
  included), and its ratio to the floor of its 20 passes;
- training steps (batch 32 of SST-2 train, length-grouped): grasp-w, stochgrasp (weight and local noise path), full;
- with --aihwkit, aihwkit-lightning's noisy evaluation of the same model (``sweep_speed.aihwkit_pass``).
Scale (each size in its own process, so peak memory is its own): randomly initialised MiniLM (22 M), BERT-base
(110 M) and RoBERTa-large (355 M) configs built in code, a StochGRASP model each: a noisy cell on
``--scale-sentences`` sentences of SST-2 dev (every 4th, so the lengths keep their spread), a training step,
peak memory, and the achieved GFLOP/s (cost growing no faster than FLOPs = a rate that does not fall);
``benchmarks/scale.png`` plots it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from noisesim import checkpoints  # noqa: E402
from noisesim.configs import MethodConfig  # noqa: E402
from noisesim.data import EvalBatches, encode, load_table, train_batches  # noqa: E402
from noisesim.devices import Profile, gaussian  # noqa: E402
from noisesim.engine.program import ProgrammedWeights  # noqa: E402
from noisesim.evaluate import accuracy  # noqa: E402
from noisesim.methods import adapters_of, inject, set_training_noise  # noqa: E402
from noisesim.models import Backbone, _assemble, load_backbone  # noqa: E402
from noisesim.training import parameter_groups  # noqa: E402

HERE = Path(__file__).resolve().parent
IDEAL = Profile({"name": "ideal", "noise": []}, "<benchmark>")
SIZES = {  # name: (family, hidden, layers, heads, intermediate, vocabulary)
    "minilm-22m": ("bert", 384, 6, 12, 1536, 30522),
    "bert-base-110m": ("bert", 768, 12, 12, 3072, 30522),
    "roberta-large-355m": ("roberta", 1024, 24, 16, 4096, 50265),
}


def read_profile(relative_to: str) -> Profile:
    """Per-MVM read noise, 1 % of g_max: σ per output (``g_max``) or per weight (``value``)."""
    return Profile({"name": f"read-mvm-{relative_to}", "mapping": {"g_max": 25.0, "scale": "column"},
                    "noise": [{"read": {"sigma": 0.01, "relative_to": relative_to, "per": "mvm"}}]}, "<benchmark>")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def on(batches: EvalBatches, device: torch.device) -> EvalBatches:
    return EvalBatches([{k: v.to(device) for k, v in b.items()} for b in batches.batches],
                       [y.to(device) for y in batches.labels])


def matmul_gflops(device: torch.device, d: int = 384, f: int = 1536, tokens: int = 4096, repeats: int = 5) -> float:
    """Best fp32 rate (GFLOP/s) of MiniLM's FF matmuls right now: the ceiling the floor is computed from."""
    x, w1, w2 = (torch.randn(*s, device=device) for s in ((tokens, d), (d, f), (f, d)))
    best = float("inf")
    for _ in range(repeats + 1):
        sync(device)
        start = time.perf_counter()
        (x @ w1) @ w2
        sync(device)
        best = min(best, time.perf_counter() - start)
    return 4 * tokens * d * f / best / 1e9


def linear_gflop(backbone: Backbone, batches: EvalBatches) -> tuple[float, float, int, int]:
    """(GFLOP of the encoder's linear layers on the real tokens, on the padded ones, real tokens, padded tokens)."""
    cfg = backbone.model.encoder.config
    d, f, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    per_token = 2 * n * (4 * d * d + 2 * d * f)
    padded, real = batches.tokens
    return per_token * real / 1e9, per_token * padded / 1e9, real, padded


def timed(device: torch.device, fn) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def passes(device: torch.device, repeats: int) -> dict:
    """Clean pass vs floor, noisy cell, per-MVM read noise: MiniLM sst2-stoch on SST-2 dev."""
    backbone = checkpoints.build(checkpoints.read("sst2-stoch"))
    backbone.model.to(device)
    table = load_table("sst2-dev")
    batches = on(EvalBatches.build(encode(table, backbone.tokenizer, 128, "sst2-dev"),
                                   backbone.tokenizer.pad_token_id, 64), device)
    gflop_real, gflop_padded, real, padded = linear_gflop(backbone, batches)
    model = backbone.model
    variants = {"clean": IDEAL, "noisy cell (gaussian 0.02)": gaussian(0.02),
                "read noise per MVM, sigma per output": read_profile("g_max"),
                "read noise per MVM, sigma per weight": read_profile("value")}
    times: dict[str, list[float]] = {k: [] for k in variants}
    acc: dict[str, float] = {}
    floor_ratio: list[float] = []
    with ProgrammedWeights(adapters_of(model)) as weights:
        weights.realize(IDEAL)
        accuracy(model, batches)  # warm-up
        for rep in range(repeats):
            for name, profile in variants.items():
                rate = matmul_gflops(device) if name == "clean" else None
                seconds, acc[name] = timed(device, lambda p=profile, r=rep: (
                    weights.realize(p, program=r, read=r), accuracy(model, batches))[1])
                times[name].append(seconds)
                if rate is not None:
                    floor_ratio.append(seconds / (gflop_real / rate))
    clean = statistics.median(times["clean"])
    out = {"sentences": len(table), "batches": len(batches.batches), "tokens_real": real, "tokens_padded": padded,
           "padding": padded / real - 1, "linear_gflop_real": gflop_real, "linear_gflop_padded": gflop_padded,
           "clean_over_floor": statistics.median(floor_ratio), "variants": {}}
    for name, values in times.items():
        med = statistics.median(values)
        out["variants"][name] = {"median_s": med, "ratio_to_clean": med / clean, "accuracy": acc[name],
                                 "all_s": values}
    return out


def grid(device: torch.device) -> dict:
    """The main command in a fresh process (its 20 cells), timed from process start; its floor from the same run."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "noisesim", "sweep", "--ckpt", "sst2-stoch", "--sigma", "0.01,0.02,0.05",
                   "--out", str(Path(tmp) / "fig6"), "--device", str(device)]
        rate_before = matmul_gflops(device)
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        wall = time.perf_counter() - start
        rate_after = matmul_gflops(device)
        if proc.returncode != 0:
            raise SystemExit(f"the grid failed: {proc.stderr.strip().splitlines()[-1:]}")
        import pandas as pd

        frame = pd.read_parquet(Path(tmp) / "fig6" / "results.parquet")
    backbone = load_backbone()
    table = load_table("sst2-dev")
    batches = EvalBatches.build(encode(table, backbone.tokenizer, 128, "sst2-dev"), backbone.tokenizer.pad_token_id, 64)
    gflop_real = linear_gflop(backbone, batches)[0]
    rate = statistics.mean([rate_before, rate_after])
    floor = len(frame) * gflop_real / rate
    return {"command": " ".join(["noisesim", *command[3:-4]]), "cells": len(frame), "wall_s": wall,
            "matmul_gflops": rate, "floor_real_tokens_s": floor, "wall_over_floor": wall / floor,
            "accuracy": {f"{c} sigma={s}": round(float(a), 4)
                         for (c, s), a in frame.groupby(["checkpoint", "sigma"])["accuracy"].mean().items()}}


def train_step_times(backbone: Backbone, method: MethodConfig, device: torch.device, steps: int,
                     batch_size: int = 32) -> float:
    """Median seconds of a training step (forward, loss, backward, AdamW) of ``method`` on SST-2 train."""
    inject(backbone, method)
    model = backbone.model.to(device)
    set_training_noise(model, torch.Generator(device=device).manual_seed(0))
    adapters = adapters_of(model)
    groups = parameter_groups(backbone, adapters, trains_backbone=method.method == "full")
    opt = torch.optim.AdamW([p for g in groups.values() for p in g], lr=1e-4)
    data = encode(load_table("sst2-train"), backbone.tokenizer, 64, "sst2-train")
    batches = train_batches(data, backbone.tokenizer.pad_token_id, batch_size, torch.Generator().manual_seed(0))
    model.train()
    times = []
    for step in range(steps + 2):
        batch = {k: v.to(device) for k, v in next(batches).items()}
        labels = batch.pop("labels")
        seconds, _ = timed(device, lambda b=batch, y=labels: (
            torch.nn.functional.cross_entropy(model(**b).logits, y).backward(), opt.step(),
            opt.zero_grad(set_to_none=True)))
        if step >= 2:
            times.append(seconds)
    model.eval()
    return statistics.median(times)


def training(device: torch.device, steps: int) -> dict:
    out = {}
    for label, options in (("grasp-w", {"method": "grasp-w"}),
                           ("stochgrasp, weight path", {"method": "stochgrasp", "noise_path": "weight"}),
                           ("stochgrasp, local path", {"method": "stochgrasp", "noise_path": "local"}),
                           ("full", {"method": "full"})):
        out[label] = train_step_times(load_backbone(), MethodConfig(**options), device, steps)
    out["stochgrasp_over_grasp_w"] = out["stochgrasp, weight path"] / out["grasp-w"]
    return out


def sized_backbone(name: str) -> Backbone:
    """A randomly initialised encoder of ``SIZES[name]`` with MiniLM's tokenizer (its ids fit every vocabulary)."""
    from transformers import BertConfig, BertModel, RobertaConfig, RobertaModel

    family, d, n, heads, f, vocab = SIZES[name]
    common = dict(vocab_size=vocab, hidden_size=d, num_hidden_layers=n, num_attention_heads=heads,
                  intermediate_size=f, max_position_embeddings=514 if family == "roberta" else 512)
    torch.manual_seed(0)
    if family == "roberta":
        encoder = RobertaModel(RobertaConfig(**common, pad_token_id=0), add_pooling_layer=False)
    else:
        encoder = BertModel(BertConfig(**common), add_pooling_layer=False)
    encoder.eval()
    return _assemble(encoder, load_backbone().tokenizer, family, name, 2, 0, "mean")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM back to the current RSS


def scale_one(name: str, device: torch.device, sentences: int, steps: int) -> dict:
    """One model size: noisy cell, training step, peak memory (run in its own process)."""
    backbone = sized_backbone(name)
    params = sum(p.numel() for p in backbone.model.parameters())
    inject(backbone, MethodConfig(method="stochgrasp"))
    backbone.model.to(device)
    table = load_table("sst2-dev").select(range(0, 872, max(1, 872 // sentences)))
    batches = on(EvalBatches.build(encode(table, backbone.tokenizer, 128, "sst2-dev"),
                                   backbone.tokenizer.pad_token_id, 64), device)
    gflop_real = linear_gflop(backbone, batches)[0]
    cells = []
    with ProgrammedWeights(adapters_of(backbone.model)) as weights:
        for program in range(2):
            seconds, _ = timed(device, lambda p=program, w=weights: (w.realize(gaussian(0.02), program=p),
                                                          accuracy(backbone.model, batches)))
            cells.append(seconds)
    cell, cell_peak = min(cells), peak_memory_mb(device)
    del weights
    from noisesim.methods import remove

    remove(backbone)
    reset_peak_memory(device)
    step = train_step_times(backbone, MethodConfig(method="stochgrasp"), device, steps)
    return {"parameters": params, "sentences": len(table), "cell_s": cell, "cell_gflop": gflop_real,
            "cell_gflops_achieved": gflop_real / cell, "train_step_s": step, "peak_memory_cell_mb": cell_peak,
            "peak_memory_train_mb": peak_memory_mb(device)}


def scale(device: torch.device, sentences: int, steps: int) -> dict:
    out = {}
    for name in SIZES:
        proc = subprocess.run([sys.executable, __file__, "--scale-one", name, "--device", str(device),
                               "--scale-sentences", str(sentences), "--train-steps", str(steps)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"scale {name} failed: {proc.stderr.strip()[-2000:]}")
        out[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {name}: {out[name]}", flush=True)
    return out


def plot_scale(result: dict, device: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result)
    params = [result[n]["parameters"] / 1e6 for n in names]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.6))
    for key, label in (("cell_s", "noisy sweep cell"), ("train_step_s", "StochGRASP training step")):
        ax[0].loglog(params, [result[n][key] for n in names], "o-", label=label)
    first = result[names[0]]
    ax[0].loglog(params, [first["cell_s"] * result[n]["cell_gflop"] / first["cell_gflop"] for n in names], "k:",
                 label="∝ FLOPs (from the smallest)")
    ax[0].set_xlabel("parameters")
    ax[0].set_ylabel("seconds")
    ax[0].legend(fontsize=8)
    for key, label in (("peak_memory_cell_mb", "sweep cell"), ("peak_memory_train_mb", "training")):
        ax[1].semilogx(params, [result[n][key] / 1024 for n in names], "o-", label=label)
    ax[1].legend(fontsize=8)
    ax[1].set_xlabel("parameters")
    ax[1].set_ylabel("peak memory (GiB)")
    for a in ax:
        a.grid(alpha=0.3, which="both")
        a.set_xticks(params, [f"{n.rsplit('-', 1)[0]}\n{p:.0f} M" for n, p in zip(names, params, strict=True)])
        a.minorticks_off()
    fig.suptitle(f"Cost against model size ({device}; cell: {first['sentences']} SST-2 dev sentences)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--train-steps", type=int, default=5)
    ap.add_argument("--scale-sentences", type=int, default=218)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: passes,grid,train,scale")
    ap.add_argument("--aihwkit", action="store_true",
                    help="also time aihwkit-lightning (pip install aihwkit-lightning)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--scale-one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    if args.scale_one:
        print(json.dumps(scale_one(args.scale_one, device, args.scale_sentences, args.train_steps)))
        return
    skip = set(filter(None, args.skip.split(",")))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    report: dict = {"device": name, "torch": torch.__version__, "repeats": args.repeats}
    print(f"noisesim speed on {name}", flush=True)
    if "passes" not in skip:
        p = report["passes"] = passes(device, args.repeats)
        print(f"  SST-2 dev: {p['batches']} batches, {p['tokens_padded']} padded tokens for {p['tokens_real']} real"
              f" ({100 * p['padding']:.2f} % padding); clean pass ×{p['clean_over_floor']:.2f} the floor", flush=True)
        for label, v in p["variants"].items():
            print(f"    {label:40s} {v['median_s']:6.2f} s  ×{v['ratio_to_clean']:.3f}  accuracy"
                  f" {100 * v['accuracy']:.1f}", flush=True)
    if "grid" not in skip:
        g = report["grid"] = grid(device)
        print(f"  Fig. 6 grid ({g['cells']} cells, from process start): {g['wall_s']:.1f} s"
              f" = ×{g['wall_over_floor']:.2f}"
              f" its floor of {g['floor_real_tokens_s']:.1f} s at {g['matmul_gflops']:.0f} GFLOP/s", flush=True)
    if "train" not in skip:
        t = report["train_step_s"] = training(device, args.train_steps)
        print("  training step: " + ", ".join(f"{k} {v:.3f}" for k, v in t.items()), flush=True)
    if args.aihwkit:
        sys.path.insert(0, str(HERE))
        from sweep_speed import aihwkit_pass

        report["aihwkit_lightning"] = aihwkit_pass(0.02, args.repeats)
        print(f"  aihwkit-lightning: {report['aihwkit_lightning']}", flush=True)
    if "scale" not in skip:
        report["scale"] = scale(device, args.scale_sentences, args.train_steps)
        plot_scale(report["scale"], name, HERE / f"scale-{device.type}.png")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
