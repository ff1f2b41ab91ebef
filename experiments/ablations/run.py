"""The GRASP paper's ablations on MiniLM (issue 14, point 4): GRASP in activation space, clean dev accuracy.

- Fig. 3b: K ∈ {4, 8, 16, 32, 64, 128} on SST-2, accuracy against % parameters;
- Table III: 3 grouping seeds (--perm-seed 0, 1, 2) at K = 128;
- Table IV: layer presets all / kvf2 / ff2 at K = 128;
- Table V: scale-only / shift-only / both at K = 128;
- Figs. 2 / 3a: KDEs of the learned γ and β of the key projections, K = 8 against K = 128.

Every run: ``noisesim.train --method grasp`` for STEPS steps (the shipped recipes train 2000; this halves it to
fit the CPU budget, and says so in ablations.md), dev accuracy every EVAL_EVERY steps, the best dev step kept (the
paper also reports dev). Resumable: a run whose checkpoint exists is skipped. From the repository root:

    python experiments/ablations/run.py train [--shard 0/2]   # two shards side by side on 2 cores
    python experiments/ablations/run.py report                # ablations.md, ablations.csv, fig3b.png, kde.png
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
CKPTS = HERE / "ckpts"
STEPS = 1000
KS = (4, 8, 16, 32, 64, 128)
TABLE_K = 128
TASKS = {"sst2": ({}, STEPS),  # task → (training options, steps): RTE's pairs need 128 tokens; 2,490 examples
         "rte": ({"train_data": "rte-train", "eval_data": "rte-dev", "max_length": 128}, 600)}


def runs() -> dict[str, dict]:
    """Run name → noisesim.train options (besides steps and data)."""
    out: dict[str, dict] = {}
    for task in TASKS:
        for k in KS if task == "sst2" else (TABLE_K,):
            out[f"{task}-k{k}"] = {"k": k}
        for seed in (1, 2):
            out[f"{task}-k{TABLE_K}-perm{seed}"] = {"k": TABLE_K, "perm_seed": seed}
        for preset in ("kvf2", "ff2"):
            out[f"{task}-k{TABLE_K}-{preset}"] = {"k": TABLE_K, "layers": preset}
        out[f"{task}-k{TABLE_K}-scale-only"] = {"k": TABLE_K, "shift": False}
        out[f"{task}-k{TABLE_K}-shift-only"] = {"k": TABLE_K, "scale": False}
    return out


def train(shard: tuple[int, int]) -> None:
    import noisesim

    index, count = shard
    for i, (name, options) in enumerate(runs().items()):
        folder = CKPTS / name
        if i % count != index or (folder / "config.json").exists():
            continue
        data, steps = TASKS[name.split("-")[0]]
        print(f"== {name} {options}", flush=True)
        start = time.time()
        noisesim.train(str(folder), method="grasp", recipe=name, steps=steps, eval_every=max(steps // 4, 1),
                       progress=False, **options, **data)
        print(f"   {time.time() - start:.0f} s", flush=True)


def load(name: str) -> dict | None:
    path = CKPTS / name / "config.json"
    return json.loads(path.read_text()) if path.exists() else None


def adapter_tensors(name: str) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(CKPTS / name / "adapter.safetensors"))


def report() -> None:
    import pandas as pd

    rows = []
    for name, options in runs().items():
        meta = load(name)
        if meta is None:
            continue
        tensors = adapter_tensors(name)
        adapter = sum(t.numel() for n, t in tensors.items() if n.endswith((".gamma", ".beta")))
        rows.append({"run": name, "task": name.split("-")[0], "k": options["k"],
                     "layers": options.get("layers", "all"), "perm_seed": options.get("perm_seed", 0),
                     "scale": options.get("scale", True), "shift": options.get("shift", True),
                     "dev_accuracy": 100 * meta["dev_accuracy"], "best_step": meta["best_step"],
                     "adapter_parameters": adapter,
                     "adapter_percent": 100 * adapter / meta["total_parameters"],
                     "trainable_percent_with_head": meta["percent_trainable"],
                     "train_seconds": meta["train_seconds"]})
    frame = pd.DataFrame(rows)
    frame.to_csv(HERE / "ablations.csv", index=False)
    write_markdown(frame)
    plot_fig3b(frame)
    plot_kde()


def write_markdown(frame) -> None:
    cpu = frame["train_seconds"].sum()
    lines = ["# GRASP ablations on MiniLM (the paper's Fig. 3b, Tables III–V, Figs. 2 / 3a)", "",
             f"`python experiments/ablations/run.py train` then `report`; GRASP (activation space), {STEPS} steps on"
             f" SST-2 (half the shipped recipes' 2000, to fit the CPU budget) and {TASKS['rte'][1]} on RTE (about 8"
             " epochs, pairs cut at 128 tokens), batch 32, best dev accuracy of 4 evaluations; total training CPU"
             f" time {cpu / 3600:.2f} h"
             f" ({len(frame)} runs, one thread each, two side by side on 2 cores). % params: the GRASP γ and β"
             " over all parameters (the paper's count; the classifier head, 148 k parameters, trains too).", ""]
    sst2 = frame[frame.task == "sst2"]
    fig = sst2[(sst2.layers == "all") & (sst2.perm_seed == 0) & sst2.scale & sst2.shift].sort_values("k")
    lines += ["## Fig. 3b: accuracy against K (SST-2)", "", "| K | γ, β parameters | % params | dev accuracy |",
              "|---|---|---|---|"]
    lines += [f"| {r.k} | {r.adapter_parameters} | {r.adapter_percent:.4f} | {r.dev_accuracy:.1f} |"
              for r in fig.itertuples()]
    for task, part in frame[frame.k == TABLE_K].groupby("task"):
        seeds = part[(part.layers == "all") & part.scale & part.shift]
        lines += ["", f"## Table III: grouping seeds at K = {TABLE_K} ({task})", "",
                  "| --perm-seed | dev accuracy |", "|---|---|"]
        lines += [f"| {r.perm_seed} | {r.dev_accuracy:.1f} |" for r in seeds.sort_values("perm_seed").itertuples()]
        if len(seeds) > 1:
            lines.append(f"| mean ± std | {seeds.dev_accuracy.mean():.1f} ± {seeds.dev_accuracy.std():.1f} |")
        base = part[(part.perm_seed == 0)]
        lines += ["", f"## Table IV: layers at K = {TABLE_K} ({task})", "", "| layers | % params | dev accuracy |",
                  "|---|---|---|"]
        lines += [f"| {r.layers} | {r.adapter_percent:.4f} | {r.dev_accuracy:.1f} |"
                  for r in base[base.scale & base.shift].itertuples()]
        lines += ["", f"## Table V: scale and shift at K = {TABLE_K} ({task})", "", "| learned | dev accuracy |",
                  "|---|---|"]
        for r in base[base.layers == "all"].itertuples():
            what = "both" if r.scale and r.shift else "scale only (without shifting)" if r.scale else \
                "shift only (without scaling)"
            lines.append(f"| {what} | {r.dev_accuracy:.1f} |")
    (HERE / "ablations.md").write_text("\n".join(lines) + "\n")


def plot_fig3b(frame) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_rows = frame[(frame.task == "sst2") & (frame.layers == "all") & (frame.perm_seed == 0) & frame.scale
                     & frame.shift].sort_values("k")
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(fig_rows.adapter_percent, fig_rows.dev_accuracy, "o-")
    for r in fig_rows.itertuples():
        ax.annotate(f"K={r.k}", (r.adapter_percent, r.dev_accuracy), textcoords="offset points", xytext=(4, -10),
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (%, γ and β)")
    ax.set_ylabel("SST-2 dev accuracy (%)")
    ax.set_title(f"GRASP on MiniLM, {STEPS} steps (paper Fig. 3b)", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(HERE / "fig3b.png", dpi=120)


def plot_kde() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.stats import gaussian_kde

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for k in (8, TABLE_K):
        if load(f"sst2-k{k}") is None:
            continue
        tensors = adapter_tensors(f"sst2-k{k}")
        for ax, what in zip(axes, ("beta", "gamma"), strict=True):
            values = np.concatenate([t.float().numpy() for n, t in tensors.items()
                                     if n.endswith(f"attention.self.key.{what}")])
            grid = np.linspace(values.min() - 0.05, values.max() + 0.05, 400)
            ax.plot(grid, gaussian_kde(values)(grid), label=f"K = {k} ({len(values)} values)")
            ax.set_title(f"learned {'β (shift)' if what == 'beta' else 'γ (scale)'}, key projections", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=8)
        ax.set_ylabel("density")
    fig.suptitle("GRASP on MiniLM, SST-2 (paper Figs. 2b-c / 3a; all 6 blocks' key layers pooled)", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / "kde.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["train", "report"])
    ap.add_argument("--shard", default="0/1", help="I/N: train every N-th run starting at I")
    args = ap.parse_args()
    if args.step == "train":
        index, count = (int(x) for x in args.shard.split("/"))
        train((index, count))
    else:
        report()


if __name__ == "__main__":
    main()
