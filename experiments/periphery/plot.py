"""Tables (periphery.md) and plots (bits.png, pcm_compensation.png) from the sweeps run.sh stores here.

    python experiments/periphery/plot.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).parent
CKPTS = ("sst2-grasp", "sst2-stoch")


def summary(folder: str) -> pd.DataFrame | None:
    path = HERE / folder / "summary.csv"
    return pd.read_csv(path) if path.exists() else None


def bits_table(frame: pd.DataFrame, column: str, what: str) -> tuple[list[str], dict]:
    noisy = frame[~frame["clean"]]
    bits = sorted(noisy[column].unique())
    lines = [f"| {what} bits | " + " | ".join(CKPTS) + " |", "|---|" + "---|" * len(CKPTS)]
    clean = {c: frame[frame["clean"] & (frame["checkpoint"] == c)]["mean"].iloc[0] for c in CKPTS}
    curves = {}
    for b in bits:
        row = []
        for c in CKPTS:
            v = noisy[(noisy[column] == b) & (noisy["checkpoint"] == c)]["mean"].iloc[0]
            curves.setdefault(c, []).append(v)
            row.append(f"{100 * v:.1f}")
        lines.append(f"| {int(b)} | " + " | ".join(row) + " |")
    lines.append("| clean (no converter) | " + " | ".join(f"{100 * clean[c]:.1f}" for c in CKPTS) + " |")
    return lines, {"bits": bits, "curves": curves, "clean": clean}


def main() -> None:
    md = ["# Periphery experiments (issue 12)", "",
          "Shipped pair on SST-2 dev (872 sentences). Commands: `bash experiments/periphery/run.sh` (all;"
          " resumable), tables and plots: `python experiments/periphery/plot.py`.", ""]
    adc, dac = summary("adc-bits"), summary("dac-bits")
    if adc is not None and dac is not None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for ax, frame, column, what in ((axes[0], adc, "periphery.adc.bits", "ADC"),
                                        (axes[1], dac, "periphery.dac.bits", "DAC")):
            lines, data = bits_table(frame, column, what)
            md += [f"## Accuracy (%) against {what} bits (ideal devices, the converter alone)", "", *lines, ""]
            for c, marker in zip(CKPTS, "os", strict=True):
                ax.plot(data["bits"], [100 * v for v in data["curves"][c]], marker=marker, label=c)
                ax.axhline(100 * data["clean"][c], ls=":", lw=1, color=ax.lines[-1].get_color())
            ax.set_xlabel(f"{what} bits ({'per column' if what == 'ADC' else 'per layer'}, calibrated max)")
            ax.set_xticks(data["bits"])
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("SST-2 dev accuracy (%)")
        axes[0].legend()
        fig.suptitle("Converters alone (dotted: no converter)")
        fig.tight_layout()
        fig.savefig(HERE / "bits.png", dpi=120)
        md += ["![ADC and DAC bits](bits.png)", ""]
    pcm = summary("pcm-compensation")
    if pcm is not None:
        noisy = pcm[~pcm["clean"]]
        comps = [c for c in ("none", "global", "column") if c in set(noisy["drift.compensation"])]
        times = sorted(noisy["time_s"].unique())
        labels = [noisy[noisy["time_s"] == t]["time"].iloc[0] for t in times]
        fig, axes = plt.subplots(1, len(CKPTS), figsize=(10, 3.8), sharey=True)
        md += ["## PCM over time: drift compensation none / global / per column", "",
               "Shipped `pcm` profile (its periphery on), mean ± std over programmings.", "",
               "| checkpoint | compensation | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(times)]
        for ax, ck in zip(axes, CKPTS, strict=True):
            for comp in comps:
                part = noisy[(noisy["checkpoint"] == ck) & (noisy["drift.compensation"] == comp)].set_index("time_s")
                means = [100 * part.loc[t, "mean"] for t in times]
                stds = [100 * part.loc[t, "std"] for t in times]
                ax.errorbar(range(len(times)), means, yerr=stds, marker="o", capsize=3, label=comp)
                md.append(f"| {ck} | {comp} | " + " | ".join(f"{m:.1f} ± {s:.1f}" for m, s in
                                                             zip(means, stds, strict=True)) + " |")
            clean = pcm[pcm["clean"] & (pcm["checkpoint"] == ck)]["mean"].iloc[0]
            ax.axhline(100 * clean, ls=":", color="grey", label="clean")
            ax.set_xticks(range(len(times)), labels)
            ax.set_title(ck)
            ax.set_xlabel("time since programming")
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("SST-2 dev accuracy (%)")
        axes[0].legend(title="compensation")
        fig.tight_layout()
        fig.savefig(HERE / "pcm_compensation.png", dpi=120)
        md += ["", "![PCM over time](pcm_compensation.png)", ""]
    for folder, title in (("sensitivity-sigma0.04", "Gaussian σ = 0.04"), ("sensitivity-pcm-1y", "pcm at 1 y")):
        path = HERE / folder / "sensitivity.csv"
        if not path.exists():
            continue
        table = pd.read_csv(path).sort_values("drop", ascending=False)
        md += [f"## Sensitivity of sst2-grasp, {title}: each layer alone analog", "",
               f"Heatmap: [{folder}/sensitivity.png]({folder}/sensitivity.png); all 36 rows:"
               f" [{folder}/sensitivity.csv]({folder}/sensitivity.csv). The five that hurt most:", "",
               "| layer | drop (points) | 95 % interval | n |", "|---|---|---|---|"]
        for _, r in table.head(5).iterrows():
            md.append(f"| {r['unit']} | {100 * r['drop']:.2f} ± {100 * r['std']:.2f} |"
                      f" [{100 * r['drop_ci95_low']:.2f}, {100 * r['drop_ci95_high']:.2f}] | {r['count']} |")
        md += ["", f"![sensitivity {title}]({folder}/sensitivity.png)", ""]
    timings = HERE / "timings.json"
    if timings.exists():
        t = {k: v for k, v in json.loads(timings.read_text()).items() if k != "note"}
        md += [f"CPU time (user, single-threaded): {', '.join(f'{k} {v} s' for k, v in t.items())}; in all"
               f" {sum(t.values())} s = {sum(t.values()) / 3600:.1f} CPU-hours.", ""]
    (HERE / "periphery.md").write_text("\n".join(md) + "\n")
    print(f"wrote {HERE / 'periphery.md'}")


if __name__ == "__main__":
    main()
