"""Which fine-tuning survives the device? Every method trained on SST-2 / MiniLM with one step budget, then swept
under one device model (issue 11). Resumable: a checkpoint that exists is not retrained, a sweep folder keeps its
finished cells. Run from the repository root after the README's install:

    python experiments/methods/run.py all        # train → sweep → table and figure (hours on 2 CPU cores)
    python experiments/methods/run.py table      # only the table and the figure, from the stored sweeps

The committed results came from two processes side by side, one thread each (experiments/methods/run.sh).

Checkpoints go to experiments/methods/ckpts/ (not committed: full fine-tuning's is 90 MB); sweeps, the table
(methods.md, methods.csv), the Pareto figure (pareto.png) and timings.json to experiments/methods/.
"""

from __future__ import annotations

import json
import math
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
STEPS = 1000  # one budget for every method (the shipped checkpoints used 2000; see README)
EVAL_EVERY = 100
HWA = "gaussian:0.03"  # the stochgrasp recipe's σ_target: grasp-w + HWA is its fair twin

# recipe → (method options, training options, training seeds); the order is the training order
RECIPES: dict[str, tuple[dict, dict, list[int]]] = {
    "stochgrasp": ({"method": "stochgrasp", "noise_path": "local"}, {"sigma_target": 0.03}, [0, 1, 2]),
    "grasp-w": ({"method": "grasp-w"}, {}, [0, 1, 2]),
    "grasp-w-hwa": ({"method": "grasp-w"}, {"train_noise": HWA}, [0, 1, 2]),
    "lora": ({"method": "lora"}, {}, [0]),
    "full": ({"method": "full"}, {}, [0]),
    "bitfit": ({"method": "bitfit"}, {}, [0]),
    "ia3": ({"method": "ia3"}, {}, [0]),
    "head": ({"method": "head"}, {}, [0]),
    "grasp": ({"method": "grasp"}, {}, [0]),
    "full-hwa": ({"method": "full"}, {"train_noise": HWA}, [0]),
}
SIGMAS = "0.01,0.02,0.03,0.04,0.05"
PROGRAMS = 4
# sweep folder → sweep options (besides ckpt, programs)
SETTINGS = {
    "gaussian": {"sigma": SIGMAS},
    # the committed PCM columns predate pcm's periphery: "pcm-ideal-periphery" reproduces them (in fresh sweep folders)
    "pcm": {"profile": ["pcm"], "time": "1d,1y", "set": ["drift.compensation=none"]},
    "rram": {"profile": ["rram"]},
}
COLUMNS = [  # table column → (sweep folder, row filter)
    ("σ=0.02", "gaussian", {"sigma": 0.02}),
    ("σ=0.03", "gaussian", {"sigma": 0.03}),
    ("σ=0.04", "gaussian", {"sigma": 0.04}),
    ("PCM 1 d", "pcm", {"time": "1d"}),
    ("PCM 1 y", "pcm", {"time": "1y"}),
    ("RRAM", "rram", {}),
]


def checkpoint_names(recipe: str) -> list[Path]:
    return [CKPTS / f"{recipe}-s{seed}" for seed in RECIPES[recipe][2]]


def log_time(stage: str, seconds: float) -> None:
    path = HERE / "timings.json"
    times = json.loads(path.read_text()) if path.exists() else {}
    times[stage] = round(seconds, 1)
    path.write_text(json.dumps(times, indent=2) + "\n")


def train_all(steps: int = STEPS) -> None:
    import noisesim

    for recipe, (method, options, seeds) in RECIPES.items():
        for seed, folder in zip(seeds, checkpoint_names(recipe), strict=True):
            if (folder / "config.json").exists():
                continue
            start = time.time()
            print(f"== train {folder.name}", flush=True)
            noisesim.train(str(folder), recipe=recipe, steps=steps, eval_every=EVAL_EVERY, seed=seed,
                           **method, **options)
            log_time(f"train {folder.name}", time.time() - start)
            sweep_one(folder)


def sweep_one(folder: Path) -> None:
    for setting, options in SETTINGS.items():
        start = time.time()
        if sweep_once(SWEEPS / folder.name / setting, folder, programs=PROGRAMS, twin=False, **options):
            log_time(f"sweep {folder.name} {setting}", time.time() - start)


def sweep_all() -> None:
    for recipe in RECIPES:
        for folder in checkpoint_names(recipe):
            if (folder / "config.json").exists():
                sweep_one(folder)


def frames():
    """All sweep rows, with recipe, training seed, %params and training time of their checkpoint."""
    import pandas as pd

    import noisesim

    parts = []
    for recipe in RECIPES:
        for folder in checkpoint_names(recipe):
            if not (folder / "config.json").exists():
                continue
            meta = json.loads((folder / "config.json").read_text())
            for setting in SETTINGS:
                out = SWEEPS / folder.name / setting
                if not (out / "results.parquet").exists():
                    continue
                # the runner knows each checkpoint's recipe: one recipe_id for all its seeds (the first sweeps ran
                # on noisesim 0.3.0-dev, whose rows carry no recipe_id)
                frame = noisesim.load_results(out).frame.assign(
                    recipe=recipe, recipe_id=recipe, setting=setting, seed_train=meta["training"]["seed"],
                    percent=meta["percent_trainable"], train_seconds=meta["train_seconds"])
                parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def seed_means(frame, setting: str, where: dict):
    """Per recipe and training seed: the mean accuracy over the realizations of one setting."""
    part = frame[(frame["setting"] == setting) & ~frame["clean"]]
    for key, value in where.items():
        part = part[part[key] == value]
    return part.groupby(["recipe", "seed_train"])["accuracy"].mean()


def interval(values) -> tuple[float, float, int]:
    """Mean, SD over training seeds (NaN for one seed), number of seeds — in accuracy points."""
    values = [100 * v for v in values]
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, sd, n


def fmt(mean: float, sd: float) -> str:
    return f"{mean:.1f}" if math.isnan(sd) else f"{mean:.1f} ± {sd:.1f}"


def table() -> None:
    """methods.md / methods.csv: per recipe, clean accuracy, %params, accuracy under each noise setting, training
    time; each a mean ± SD over training seeds of the per-seed mean over realizations."""
    import pandas as pd

    frame = frames()
    if frame.empty:
        print("no sweeps yet")
        return
    clean_rows = frame[frame["clean"] & (frame["setting"] == "gaussian")]
    clean = clean_rows.groupby(["recipe", "seed_train"])["accuracy"].mean()
    rows = []
    for recipe in RECIPES:
        if recipe not in clean.index.get_level_values(0):
            continue
        part = frame[frame["recipe"] == recipe]
        row = {"recipe": recipe, "method": part["method"].iloc[0], "seeds": int(part["seed_train"].nunique()),
               "% params": round(float(part["percent"].iloc[0]), 3),
               "train s": round(float(part.groupby("seed_train")["train_seconds"].first().mean()))}
        row["clean"] = interval(clean[recipe].tolist())
        for label, setting, where in COLUMNS:
            means = seed_means(frame, setting, where)
            row[label] = interval(means[recipe].tolist()) if recipe in means.index.get_level_values(0) else None
        rows.append(row)
    stats = ["clean", *[c for c, _, _ in COLUMNS]]
    flat = pd.DataFrame([{**{k: v for k, v in r.items() if k not in stats},
                          **{f"{c} mean": r[c][0] if r[c] else math.nan for c in stats},
                          **{f"{c} sd": r[c][1] if r[c] else math.nan for c in stats}} for r in rows])
    flat.to_csv(HERE / "methods.csv", index=False)
    head = ["recipe", "% params", "seeds", *stats, "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["recipe"], f"{r['% params']:.3g}", str(r["seeds"]),
                 *[fmt(*r[c][:2]) if r[c] else "—" for c in stats], str(r["train s"])]
        lines.append("| " + " | ".join(cells) + " |")
    (HERE / "methods.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    pareto(rows)
    gaps()


PAIRS = [("stochgrasp", "grasp-w-hwa"), ("stochgrasp", "grasp-w"), ("grasp-w-hwa", "grasp-w")]


def gaps() -> None:
    """gaps.md: for the recipes trained with several seeds, the difference of mean accuracies per setting with a
    Welch 95 % interval over training seeds (each seed's mean over its realizations is one observation), and
    the spread between training seeds (sd_train) next to the spread between programmings (sd_program), from
    ``noisesim.summarize`` by recipe."""
    import pandas as pd
    from scipy.stats import t as student_t

    import noisesim

    frame = frames()
    if frame.empty:
        return
    lines = ["| A − B | " + " | ".join(["clean", *[c for c, _, _ in COLUMNS]]) + " |",
             "|---|" + "---|" * (1 + len(COLUMNS))]
    clean = frame[frame["clean"] & (frame["setting"] == "gaussian")].groupby(["recipe", "seed_train"])["accuracy"]
    columns = [("clean", clean.mean())] + [(c, seed_means(frame, s, w)) for c, s, w in COLUMNS]
    for a, b in PAIRS:
        cells = []
        for _, means in columns:
            if a not in means.index.get_level_values(0) or b not in means.index.get_level_values(0):
                cells.append("—")
                continue
            xa, xb = 100 * means[a].to_numpy(), 100 * means[b].to_numpy()
            diff = xa.mean() - xb.mean()
            if len(xa) < 2 or len(xb) < 2:
                cells.append(f"{diff:+.1f}")
                continue
            va, vb = xa.var(ddof=1) / len(xa), xb.var(ddof=1) / len(xb)
            se = math.sqrt(va + vb)
            dof = (va + vb) ** 2 / (va ** 2 / (len(xa) - 1) + vb ** 2 / (len(xb) - 1)) if se > 0 else 1
            half = float(student_t.ppf(0.975, dof)) * se
            cells.append(f"{diff:+.1f} [{diff - half:+.1f}, {diff + half:+.1f}]")
        lines.append(f"| {a} − {b} | " + " | ".join(cells) + " |")
    parts = []
    for setting in SETTINGS:
        part = frame[(frame["setting"] == setting) & frame["recipe"].isin([r for r, (_, _, seeds) in RECIPES.items()
                                                                           if len(seeds) > 1])]
        if part.empty:
            continue
        part = part.drop(columns=["setting", "seed_train", "percent", "train_seconds"])
        parts.append(noisesim.summarize(part, by="recipe"))
    spread = ["", "| recipe | setting | seeds | sd_train | sd_program | sd_seed_means |", "|---|---|---|---|---|---|"]
    if parts:
        summary = pd.concat(parts, ignore_index=True)
        summary = summary[~(summary["clean"] & summary.duplicated(subset=["recipe", "clean"]))]
        for _, row in summary.iterrows():
            setting = "clean" if row["clean"] else ", ".join(
                f"{k}={row[k]}" for k in ("profile", "sigma", "time") if k in row and row[k] == row[k]
                and row[k] not in ("gaussian", "0s"))
            spread.append(f"| {row['recipe']} | {setting} | {row['seeds']} | {100 * row['sd_train']:.2f} |"
                          f" {100 * row['sd_program']:.2f} | {100 * row['sd_seed_means']:.2f} |")
    (HERE / "gaps.md").write_text("Differences in accuracy points, Welch 95 % interval over training seeds:\n\n"
                                  + "\n".join(lines) + "\n" + "\n".join(spread) + "\n")
    print("\n".join(lines + spread))


def pareto(rows: list[dict]) -> None:
    """Clean accuracy (x) against robust accuracy (y), one panel per noise setting; marker area ∝ log %params;
    error bars: ±1 SD over training seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["σ=0.03", "σ=0.04", "PCM 1 y", "RRAM"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharex=True)
    for ax, label in zip(axes, panels, strict=True):
        for i, r in enumerate(rows):
            if not r.get(label):
                continue
            (x, xs, _), (y, ys, _) = r["clean"], r[label]
            size = 30 + 60 * math.log10(1 + 100 * r["% params"])
            ax.errorbar(x, y, xerr=None if math.isnan(xs) else xs, yerr=None if math.isnan(ys) else ys, fmt="none",
                        ecolor=f"C{i % 10}", alpha=0.7)
            ax.scatter([x], [y], s=size, color=f"C{i % 10}", label=r["recipe"], alpha=0.85, edgecolor="k", lw=0.5)
        ax.set_title(label)
        ax.set_xlabel("clean dev accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy under noise (%)")
    seen: dict = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), fontsize=8, loc="center right", markerscale=0.6)
    fig.suptitle("SST-2 dev, MiniLM-L6: clean vs robust accuracy; marker area ∝ log %params; bars ±1 SD over training"
                 " seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    fig.savefig(HERE / "pareto.png", dpi=130)


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else "all"
    if stage not in ("all", "train", "sweep", "table") or len(sys.argv) > 3:
        sys.exit(f"usage: {sys.argv[0]} [all|train|sweep|table] [RECIPE,RECIPE,...]")
    if len(sys.argv) == 3:  # a subset, e.g. to run two processes side by side (OMP_NUM_THREADS=1 each)
        keep = sys.argv[2].split(",")
        if unknown := [r for r in keep if r not in RECIPES]:
            sys.exit(f"unknown recipes {unknown}; known: {', '.join(RECIPES)}")
        RECIPES = {r: RECIPES[r] for r in keep}
    if stage in ("all", "train"):
        train_all()
    if stage in ("all", "sweep"):
        sweep_all()
    if stage in ("all", "table") and len(sys.argv) < 3:
        table()
