"""StochGRASP's own question: does learning σ per group buy anything (issue 11, point 5)? Variants of the
methods table's ``stochgrasp`` recipe (1000 steps, σ_target 0.03, local noise path, Eq. 6 ``sum``, λ = 0.01),
one training seed each, swept under Gaussian noise; the learned σ per layer type as KDEs (the paper's Fig. 5).
Resumable. Run from the repository root after experiments/methods (its stochgrasp-s0 is the reference):

    python experiments/sigma/run.py all      # train → sweep → sigma.md, sigma.csv, sigma_kde.png
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
METHODS = HERE.parent / "methods"
STEPS = 1000
SIGMAS = "0.01,0.02,0.03,0.04,0.05"
PROGRAMS = 4
REFERENCE = "sum λ=0.01 (reference)"

# variant → training options on top of the stochgrasp recipe (None: the methods table's stochgrasp-s0).
# Eq. 6's "mean" is the "sum" divided by the number N of learned σ (MiniLM, all 36 layers, K = 64: N = 1,327,104),
# so mean with λ is the same objective, gradient for gradient, as sum with λ/N: the reference (sum λ = 0.01) is
# mean λ = 13,271, and no separate "mean" run is needed; the λ range covers both reductions.
VARIANTS: dict[str, dict | None] = {
    REFERENCE: None,
    "no σ-target (λ=0)": {"lam": 0.0},
    "sum λ=0.001": {"lam": 0.001},
    "weight path": {"noise_path": "weight"},
}
BASELINES = {"grasp-w-hwa": "grasp-w + HWA σ=0.03", "grasp-w": "grasp-w"}  # from experiments/methods, seed 0


def slug(variant: str) -> str:
    """An ASCII folder name: 'no σ-target (λ=0)' → 'no-sigma-target-lambda-0'."""
    text = variant.replace("σ", "sigma").replace("λ", "lambda")
    return "".join(c if c.isascii() and (c.isalnum() or c in ".-") else "-" for c in text).strip("-").replace("--", "-")


def folder_of(variant: str) -> Path:
    return METHODS / "ckpts" / "stochgrasp-s0" if VARIANTS.get(variant) is None else CKPTS / slug(variant)


def train_all(only: list[str] | None = None) -> None:
    import noisesim

    for variant, options in VARIANTS.items():
        folder = folder_of(variant)
        if options is None or (only and slug(variant) not in only) or (folder / "config.json").exists():
            continue
        start = time.time()
        print(f"== train {variant}", flush=True)
        method = {k: options[k] for k in ("noise_path",) if k in options}
        training = {k: v for k, v in options.items() if k not in method}
        method = {"noise_path": "local", **method}  # the methods table's stochgrasp recipe (not train's defaults)
        training = {"sigma_target": 0.03, **training}
        noisesim.train(str(folder), method="stochgrasp", recipe=slug(variant), steps=STEPS, eval_every=100,
                       **method, **training)
        print(f"   {time.time() - start:.0f} s", flush=True)
        sweep_one(variant)


def sweep_one(variant: str) -> None:
    if (folder_of(variant) / "config.json").exists():
        sweep_once(SWEEPS / slug(variant), folder_of(variant), sigma=SIGMAS, programs=PROGRAMS, twin=False)


def learned_sigma(folder: Path) -> dict[str, list[float]]:
    """Layer role → every learned group σ of that role (all blocks)."""
    from safetensors.torch import load_file

    roles = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
             "attention.output.dense": "o", "intermediate.dense": "ff1", "output.dense": "ff2"}
    out: dict[str, list[float]] = {}
    for key, tensor in load_file(folder / "adapter.safetensors").items():
        if not key.endswith(".sigma_raw"):
            continue
        layer = key.rsplit(".", 1)[0]
        role = next(r for suffix, r in sorted(roles.items(), key=lambda kv: -len(kv[0])) if layer.endswith(suffix))
        out.setdefault(role, []).extend(tensor.float().abs().flatten().tolist())
    return out


def accuracy_at(folder: Path) -> dict[str, float]:
    """σ → mean accuracy (%) over the programmings; 'clean' → the clean accuracy."""
    import noisesim

    frame = noisesim.load_results(folder).frame
    out = {"clean": 100 * float(frame[frame["clean"]]["accuracy"].mean())}
    noisy = frame[~frame["clean"]]
    for sigma, part in noisy.groupby("sigma"):
        out[f"σ={sigma:g}"] = 100 * float(part["accuracy"].mean())
    return out


def report() -> None:
    import pandas as pd

    rows = []
    for variant in VARIANTS:
        folder = folder_of(variant)
        sweep = SWEEPS / slug(variant) if VARIANTS[variant] is not None else METHODS / "sweeps" / "stochgrasp-s0" / \
            "gaussian"
        if not (folder / "config.json").exists() or not (sweep / "results.parquet").exists():
            continue
        sig = [s for values in learned_sigma(folder).values() for s in values]
        mean = sum(sig) / len(sig)
        sd = math.sqrt(sum((s - mean) ** 2 for s in sig) / (len(sig) - 1))
        meta = json.loads((folder / "config.json").read_text())
        rows.append({"variant": variant, "σ mean": round(mean, 4), "σ sd": round(sd, 4),
                     "σ 5 %": round(sorted(sig)[int(0.05 * len(sig))], 4),
                     "σ 95 %": round(sorted(sig)[int(0.95 * len(sig))], 4), **accuracy_at(sweep),
                     "train s": meta["train_seconds"]})
    for recipe, label in BASELINES.items():
        sweep = METHODS / "sweeps" / f"{recipe}-s0" / "gaussian"
        if (sweep / "results.parquet").exists():
            meta = json.loads((METHODS / "ckpts" / f"{recipe}-s0" / "config.json").read_text())
            rows.append({"variant": label, **accuracy_at(sweep), "train s": meta["train_seconds"]})
    if not rows:
        print("no results yet")
        return
    frame = pd.DataFrame(rows)
    frame.to_csv(HERE / "sigma.csv", index=False)
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in frame.iterrows():
        lines.append("| " + " | ".join("—" if isinstance(v, float) and math.isnan(v) else
                                       f"{v:.1f}" if isinstance(v, float) and c.startswith(("clean", "σ=")) else
                                       str(v) for c, v in r.items()) + " |")
    (HERE / "sigma.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    kde()


def kde() -> None:
    """Fig. 5 style: density of the learned σ per layer type, with and without the σ-target term."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from scipy.stats import gaussian_kde

    shown = [v for v in (REFERENCE, "no σ-target (λ=0)", "sum λ=0.001", "weight path")
             if (folder_of(v) / "config.json").exists()]
    if not shown:
        return
    fig, axes = plt.subplots(1, len(shown), figsize=(5.5 * len(shown), 3.8), squeeze=False)
    for ax, variant in zip(axes[0], shown, strict=True):
        for i, (role, values) in enumerate(sorted(learned_sigma(folder_of(variant)).items())):
            values = np.asarray(values)
            grid = np.linspace(0, max(0.06, float(np.quantile(values, 0.995))), 400)
            density = gaussian_kde(values)(grid) if values.std() > 0 else np.zeros_like(grid)
            ax.plot(grid, density, color=f"C{i}", label=f"{role} (n={len(values)})")
        ax.axvline(0.03, color="k", ls=":", lw=1, label="σ_target 0.03")
        ax.set_title(variant)
        ax.set_xlabel("learned group σ (weight units)")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("density (Gaussian KDE)")
    fig.tight_layout()
    fig.savefig(HERE / "sigma_kde.png", dpi=130)


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else "all"
    if stage not in ("all", "train", "report") or len(sys.argv) > 3:
        sys.exit(f"usage: {sys.argv[0]} [all|train|report] [VARIANT-FOLDER,...]")
    only = sys.argv[2].split(",") if len(sys.argv) > 2 else None  # a subset by folder name: two processes side by side
    if only and (unknown := [v for v in only if v not in map(slug, VARIANTS)]):
        sys.exit(f"unknown variants {unknown}; known: {', '.join(map(slug, VARIANTS))}")
    if stage in ("all", "train"):
        train_all(only)
        for variant in VARIANTS:
            if not only or slug(variant) in only:
                sweep_one(variant)
    if not only:
        report()
