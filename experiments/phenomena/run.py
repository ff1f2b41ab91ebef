"""The report of experiments/phenomena (issue 12, point 5): accuracy of the shipped pair against the strength of
each phenomenon alone, from the sweeps ``run.sh`` makes. Writes phenomena.md (the table), phenomena.csv (one
row per panel, strength, time and checkpoint) and phenomena.png (one panel per phenomenon). Run from the
repository root:

    python experiments/phenomena/run.py [SWEEPS]      # default: experiments/phenomena/sweeps
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
CKPTS = ["sst2-stoch", "sst2-grasp"]
# (sweep folder, panel title, strength column, a fixed axis value or None, what strength 1 is)
PANELS = [
    ("device-to-device", "device-to-device (per chip)", "device_to_device.scale", None,
     "gain 15 %, offset 5 % of g_max per device"),
    ("cycle-to-cycle-write", "cycle-to-cycle: write-to-write", "programming.scale", ("read.scale", 0.0),
     "programming σ 4 % of g_max per device"),
    ("cycle-to-cycle-read", "cycle-to-cycle: read-to-read (per MVM)", "read.scale", ("programming.scale", 0.0),
     "read σ 2 % of g_max per device"),
    ("drift", "drift, no compensation", "drift.scale", ("drift.compensation", "none"), "ν = |N(0.05, 0.02)|"),
    ("drift", "drift, global compensation", "drift.scale", ("drift.compensation", "global"), "ν = |N(0.05, 0.02)|"),
]


def rows(sweeps: Path) -> list[dict]:
    """One row per panel × strength × time × checkpoint (accuracy in %), plus each checkpoint's clean row."""
    import noisesim

    out = []
    for folder, title, column, fixed, unit in PANELS:
        if not (sweeps / folder / "results.parquet").exists():
            print(f"skipped {title}: no {sweeps / folder}/results.parquet yet", file=sys.stderr)
            continue
        summary = noisesim.summarize(noisesim.load_results(sweeps / folder).frame)
        for _, r in summary[summary["profile"] == "ideal"].iterrows():
            out.append({"panel": title, "strength": 0.0, "time": "—", "checkpoint": r["checkpoint"],
                        "mean": 100 * r["mean"], "std": 0.0, "count": int(r["count"]), "unit": unit})
        part = summary[(summary["profile"] != "ideal") & ~summary["clean"]]
        if fixed is not None:
            part = part[part[fixed[0]] == fixed[1]]
        for _, r in part.iterrows():
            out.append({"panel": title, "strength": float(r[column]),
                        "time": r["time"] if column.startswith("drift.") else "—",
                        "checkpoint": r["checkpoint"], "mean": 100 * r["mean"],
                        "std": 100 * r["std"] if r["std"] == r["std"] else 0.0, "count": int(r["count"]),
                        "unit": unit})
    return out


def table(frame) -> str:
    """Markdown: panel, strength, time down; the pair across, with stoch − grasp."""
    lines = ["| phenomenon | strength (× default) | time | " + " | ".join(CKPTS) + " | stoch − grasp | n |",
             "|---|---|---|" + "---|" * (len(CKPTS) + 2)]
    for (panel, strength, time), part in frame.groupby(["panel", "strength", "time"], sort=False):
        by = {r["checkpoint"]: r for _, r in part.iterrows()}
        cells = [f"{by[c]['mean']:.1f}" + (f" ± {by[c]['std']:.1f}" if by[c]["count"] > 1 else "") if c in by
                 else "—" for c in CKPTS]
        diff = f"{by[CKPTS[0]]['mean'] - by[CKPTS[1]]['mean']:+.1f}" if all(c in by for c in CKPTS) else "—"
        shown = "clean" if strength == 0 and time == "—" else f"{strength:g}"
        lines.append(f"| {panel} | {shown} | {time} | " + " | ".join(cells) + f" | {diff} |"
                     f" {max(r['count'] for r in by.values())} |")
    return "\n".join(lines)


def plot(frame, path: Path) -> None:
    """One panel per phenomenon: accuracy against strength, a line per checkpoint (and time), clean dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(frame["panel"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False, sharey=True)
    styles = {"—": "-", "1h": ":", "1d": "--", "1y": "-"}
    for ax, panel in zip(axes[0], panels, strict=True):
        part = frame[frame["panel"] == panel]
        for i, ckpt in enumerate(CKPTS):
            mine = part[part["checkpoint"] == ckpt]
            clean = mine[mine["time"].eq("—") & mine["strength"].eq(0)]
            if len(clean):
                ax.axhline(clean["mean"].iloc[0], color=f"C{i}", ls=":", lw=0.8)
            for time, line in mine[mine["strength"] > 0].groupby("time", sort=False):
                line = line.sort_values("strength")
                label = ckpt + (f", {time}" if time != "—" else "")
                ax.errorbar(line["strength"], line["mean"], yerr=line["std"], color=f"C{i}", marker="o", ms=3,
                            capsize=2, ls=styles.get(time, "-"), label=label)
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel(f"strength (× default: {part['unit'].iloc[0]})", fontsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    axes[0][0].set_ylabel("accuracy on SST-2 dev (%), clean dotted")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def main(sweeps: Path) -> None:
    import pandas as pd

    found = rows(sweeps)
    if not found:
        sys.exit(f"no results under {sweeps}; run experiments/phenomena/run.sh first")
    frame = pd.DataFrame(found)
    frame.round(3).to_csv(HERE / "phenomena.csv", index=False)
    text = table(frame)
    cells = seconds = 0
    import noisesim

    for folder in dict.fromkeys(p[0] for p in PANELS):
        if (sweeps / folder / "results.parquet").exists():
            stored = noisesim.load_results(sweeps / folder).frame
            cells, seconds = cells + len(stored), seconds + float(stored["seconds"].sum())
    (HERE / "phenomena.md").write_text(
        "# Each phenomenon alone, for the shipped pair: accuracy (%) on SST-2 dev, mean ± std over realizations\n\n"
        "Strength 1 is the shipped profile's default (devices/*.yaml); n: realizations per setting (chips for"
        " device-to-device, programmings for write-to-write and drift, reads for read-to-read).\n\n"
        + text + f"\n\n{cells} cells, {seconds / 60:.0f} min of evaluation (the sum of the cells' times).\n")
    plot(frame, HERE / "phenomena.png")
    print(text)


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit(f"usage: {sys.argv[0]} [SWEEPS-FOLDER]")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "sweeps")
