"""Tables and plots of sweep results (pandas and matplotlib only)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def pivot_table(summary: pd.DataFrame) -> pd.DataFrame:
    """σ down, checkpoints across, cells 'mean ± std' in percent."""
    text = [f"{100 * m:.1f} ± {100 * s:.1f}" for m, s in zip(summary["mean"], summary["std"], strict=True)]
    cell = summary.assign(text=text)
    table = cell.pivot(index="sigma", columns="checkpoint", values="text")
    return table[list(dict.fromkeys(summary["checkpoint"]))]


def plot_accuracy(frame: pd.DataFrame, path: Path, chance: float | None = None, x: str = "sigma") -> Path:
    """Accuracy vs σ, mean ± std over seeds, one line per checkpoint (paper Fig. 6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for name, part in frame.groupby("checkpoint", sort=False):
        stats = part.groupby(x)["accuracy"].agg(["mean", "std"]).fillna(0.0).reset_index()
        ax.errorbar(stats[x], 100 * stats["mean"], yerr=100 * stats["std"], marker="o", capsize=3, label=name)
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({100 * chance:.1f} %)")
    ax.set_xlabel("injected weight noise σ" if x == "sigma" else x)
    ax.set_ylabel("accuracy (%)")
    data = frame["data"].iloc[0] if "data" in frame and len(frame) else ""
    ax.set_title(f"Robustness under per-weight Gaussian noise ({data})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
