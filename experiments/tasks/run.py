"""Beyond SST-2 (issue 14, points 4–5): the paper's Table I in small, and Fig. 6 on a second task.

- Table I in small: GRASP (K = 128, all layers) against LoRA (rank 8) against full fine-tuning on SST-2, RTE
  (sentence pairs, accuracy) and CoLA (Matthews correlation), clean dev scores with % trainable parameters;
- Fig. 6 on CoLA: the shipped recipe's deterministic twin (grasp-w) and StochGRASP pair trained on cola-train and
  swept at σ ∈ {0.01 … 0.05} × 5 programmings on cola-dev (MCC): does the robustness ordering hold on an MCC task?

Resumable (a run whose checkpoint exists is skipped; a finished sweep is kept). From the repository root:

    python experiments/tasks/run.py train [--shard 0/2]    # two shards side by side on 2 cores
    python experiments/tasks/run.py sweep                  # the CoLA pair's Fig. 6 sweep
    python experiments/tasks/run.py report                 # tasks.md, tasks.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import sweep_once  # noqa: E402

CKPTS = HERE / "ckpts"
SWEEPS = HERE / "sweeps"
TASKS = {  # task → (training options, steps): RTE's pairs need 128 tokens; it has 2,490 examples (600 steps ≈ 8 epochs)
    "sst2": ({}, 1000),
    "rte": ({"train_data": "rte-train", "eval_data": "rte-dev", "max_length": 128}, 600),
    "cola": ({"train_data": "cola-train", "eval_data": "cola-dev"}, 1000),
}
METHODS = {"grasp": {"method": "grasp", "k": 128}, "lora": {"method": "lora", "rank": 8}, "full": {"method": "full"}}
SHIPPED = {"steps": 2000, "k": 64, "layers": "all", "rows": "per-row", "dropout": 0.0, "seed": 0, "perm_seed": 0}
STOCH = {"noise_path": "local", "sigma_init": 0.003, "sigma_target": 0.03, "target_warmup": 0.3, "lam": 0.01,
         "sigma_reduction": "sum", "sigma_lr": 5e-4}
SIGMAS = "0.01,0.02,0.03,0.04,0.05"


def runs() -> dict[str, tuple[dict, dict]]:
    """Run name → (method options, training options)."""
    out = {}
    for task, (data, steps) in TASKS.items():
        for name, method in METHODS.items():
            out[f"{task}-{name}"] = (method, {**data, "steps": steps, "eval_every": max(steps // 5, 1)})
    cola = TASKS["cola"][0]
    out["cola-grasp-w"] = ({"method": "grasp-w"}, {**cola, **SHIPPED, "eval_every": 200})
    out["cola-stoch"] = ({"method": "stochgrasp"}, {**cola, **SHIPPED, **STOCH, "eval_every": 200,
                                                    "twin": str(CKPTS / "cola-grasp-w")})
    return out


def train(shard: tuple[int, int]) -> None:
    import noisesim

    index, count = shard
    for i, (name, (method, options)) in enumerate(runs().items()):
        folder = CKPTS / name
        if i % count != index or (folder / "config.json").exists():
            continue
        if name == "cola-stoch":  # its twin first (the other shard may still be training it)
            while not (CKPTS / "cola-grasp-w" / "config.json").exists():
                time.sleep(30)
        print(f"== {name} {method} {options}", flush=True)
        start = time.time()
        options = dict(options)
        twin = options.pop("twin", None)
        noisesim.train(str(folder), **method, recipe=name, progress=False, **options,
                       **({"twin": twin} if twin else {}))
        print(f"   {time.time() - start:.0f} s", flush=True)


def sweep() -> None:
    sweep_once(SWEEPS / "cola-fig6", CKPTS / "cola-stoch", sigma=SIGMAS, programs=5, data=["cola-dev"], csv=True)


def report() -> None:
    import pandas as pd

    rows = []
    for name in runs():
        path = CKPTS / name / "config.json"
        if not path.exists():
            continue
        meta = json.loads(path.read_text())
        task, method = name.split("-", 1)
        rows.append({"task": task, "method": method, "metric": meta.get("dev_metric", "accuracy"),
                     "dev_score": meta.get("dev_score", meta["dev_accuracy"]), "dev_accuracy": meta["dev_accuracy"],
                     "percent_trainable": meta["percent_trainable"], "best_step": meta["best_step"],
                     "train_seconds": meta["train_seconds"]})
    frame = pd.DataFrame(rows)
    frame.to_csv(HERE / "tasks.csv", index=False)
    lines = ["# Beyond SST-2: Table I in small, Fig. 6 on CoLA", "",
             "`python experiments/tasks/run.py train`, `sweep`, `report`; total training CPU time"
             f" {frame.train_seconds.sum() / 3600:.2f} h. Dev scores (best of 5 evaluations; MCC × 100 for CoLA).", "",
             "| method | % params | " + " | ".join(TASKS) + " |", "|---|---|" + "---|" * len(TASKS)]
    for method in METHODS:
        part = frame[frame.method == method].set_index("task")
        cells = [f"{100 * part.loc[t, 'dev_score']:.1f}" if t in part.index else "—" for t in TASKS]
        percent = f"{part.percent_trainable.iloc[0]:.3f}" if len(part) else "—"
        lines.append(f"| {method} | {percent} | " + " | ".join(cells) + " |")
    summary = SWEEPS / "cola-fig6" / "summary.csv"
    if summary.exists():
        lines += ["", "## Fig. 6 on CoLA (MCC × 100 on cola-dev, mean ± std over 5 programmings)", "",
                  pd.read_csv(summary).to_markdown(index=False)]
    (HERE / "tasks.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("step", choices=["train", "sweep", "report"])
    ap.add_argument("--shard", default="0/1", help="I/N: train every N-th run starting at I")
    args = ap.parse_args()
    if args.step == "train":
        train(tuple(int(x) for x in args.shard.split("/")))
    elif args.step == "sweep":
        sweep()
    else:
        report()


if __name__ == "__main__":
    main()
