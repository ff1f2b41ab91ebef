"""Plots of sweep results (matplotlib): accuracy against σ, time (log axis) or a profile parameter."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from noisesim.errors import UserError
from noisesim.stats import axis_columns, check_realizations, clean_rows, varying
from noisesim.textio import atomic_write


def plot_axis(frame: pd.DataFrame) -> str:
    """What to put on the x axis: time if it varies, else σ, else the first varying --set path (the
    clean reference rows do not count)."""
    noisy = frame[~clean_rows(frame)]
    axes = varying(noisy if len(noisy) else frame)
    if "time" in axes:
        return "time"
    if "sigma" in axes:
        return "sigma"
    return next((c for c in axes if c not in ("data", "profile")), "profile")


def plot_accuracy(frame: pd.DataFrame, path: Path, chance: float | None = None, x: str = "sigma",
                  fmt: str | None = None) -> Path:
    """Accuracy vs σ (paper Fig. 6), vs time (log axis) or vs a profile parameter: mean ± std over
    realizations, one line per checkpoint × other varying setting; clean accuracy as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    draw(ax, frame, x, chance)
    source = frame["data"].iloc[0] if "data" in frame and len(frame) else ""
    noisy = frame[~clean_rows(frame)]
    profiles = ", ".join(dict.fromkeys(noisy["profile"])) if "profile" in frame else ""
    ax.set_title(f"Accuracy on {source} under device noise ({profiles})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format=fmt)
    plt.close(fig)
    return Path(path)


def plot_results(result, stem: Path, x: str, hue: str = "checkpoint", col: str | None = None,
                 formats=("png",)) -> list[Path]:
    """A sweep's plot as STEM.FORMAT for each format (png, svg, pdf)."""
    return plot_grid(result.frame, stem, x=x, hue=hue, col=col, chance=result.chance, formats=formats)


def plot_grid(frame: pd.DataFrame, stem: Path, x: str, hue: str = "checkpoint", col: str | None = None,
              chance: float | None = None, formats=("png", "svg")) -> list[Path]:
    """One panel per value of ``col`` (or one panel), lines per ``hue``; written as STEM.png and STEM.svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_realizations(frame)
    clean = clean_rows(frame)
    known = [c for c in axis_columns(frame)] + (["method"] if "method" in frame else [])
    for flag, name in (("--x", x), ("--hue", hue), ("--col", col)):
        if name is not None and name not in known:
            raise UserError(f"{flag} {name!r} is not an axis of these results (axes here: {', '.join(known)})")
    moving = varying(frame[~clean]) if (~clean).any() else []
    if x != "profile" and x not in moving:
        raise UserError(f"--x {x!r} does not vary in these results, so the plot would be empty (choose among:"
                        f" {', '.join(moving) or 'profile'})")
    panels = [(None, frame)] if col is None else [
        (v, frame[(frame[col] == v) | clean] if col == "profile" else frame[frame[col] == v])
        for v in dict.fromkeys(frame.loc[~clean, col] if col == "profile" else frame[col])]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.0 * len(panels), 4.2), dpi=120, squeeze=False)
    for ax, (value, part) in zip(axes[0], panels, strict=True):
        draw(ax, part, x, chance, hue=hue)
        ax.set_title(f"{col} = {value}" if col else f"accuracy on {part['data'].iloc[0]}", fontsize=10)
    fig.tight_layout()
    paths = [Path(f"{stem}.{fmt}") for fmt in formats]
    try:
        for path in paths:
            atomic_write(path, lambda p, fmt=path.suffix[1:]: fig.savefig(p, format=fmt))
    finally:
        plt.close(fig)
    return paths


def draw(ax, frame: pd.DataFrame, x: str, chance: float | None, hue: str = "checkpoint") -> None:
    """Mean ± std of accuracy against ``x`` on one axes: lines for numbers (log axis for time), grouped
    bars for categories; the clean reference of a device sweep as dotted lines."""
    xcol = "time_s" if x == "time" else x
    data = frame
    reference = clean_rows(frame)
    if x != "profile" and reference.any() and (~reference).any():
        clean = frame[reference]
        data = frame[~reference]
        for i, (name, part) in enumerate(clean.groupby(hue if hue in clean else "checkpoint", sort=False)):
            ax.axhline(100 * part["accuracy"].mean(), color=f"C{i}", linestyle=":", linewidth=1,
                       label=f"{name} (clean)")
    if x == "time":
        data = data[data["time_s"] > 0]
    rest = [c for c in varying(data) if c not in (x, "time", hue)]
    keys = [hue, *[c for c in ["checkpoint", *rest] if c != hue]] if hue != "checkpoint" else ["checkpoint", *rest]
    keys = [k for k in dict.fromkeys(keys) if k in data and (k in (hue, "checkpoint") or k in rest)]
    categorical = not pd.api.types.is_numeric_dtype(data[xcol])
    order = list(dict.fromkeys(data[xcol]))  # categories in the order the sweep ran them
    lines = list(data.groupby(keys, sort=False, dropna=False))
    width = 0.8 / max(len(lines), 1)
    for i, (name, part) in enumerate(lines):
        label = " · ".join(str(v) if "." not in k else f"{k}={v}"
                           for k, v in zip(keys, (name if isinstance(name, tuple) else (name,)), strict=True)
                           if not (isinstance(v, float) and pd.isna(v)))
        # one realization has no spread: no error bar (NaN), rather than a bar of zero length
        stats = part.groupby(xcol, sort=not categorical)["accuracy"].agg(["mean", "std"]).reset_index()
        if categorical:  # grouped bars, one group per category
            pos = [order.index(v) + (i - (len(lines) - 1) / 2) * width for v in stats[xcol]]
            ax.bar(pos, 100 * stats["mean"], width, yerr=100 * stats["std"], capsize=3, label=label)
        else:
            ax.errorbar(stats[xcol], 100 * stats["mean"], yerr=100 * stats["std"], marker="o", capsize=3, label=label)
    if categorical:
        ax.set_xticks(range(len(order)), [str(v) for v in order])
        low = 100 * data.groupby([xcol, "checkpoint"])["accuracy"].mean().min()
        ax.set_ylim(max(0.0, min(low, 100 * (chance or 1)) - 5), 100)
    if chance is not None:
        ax.axhline(100 * chance, color="grey", linestyle="--", linewidth=1, label=f"chance ({100 * chance:.1f} %)")
    if x == "time":
        ax.set_xscale("log")
        ticks = sorted(data["time_s"].unique())
        ax.set_xticks(ticks, [str(v) for v in data.drop_duplicates("time_s").sort_values("time_s")["time"]])
        ax.minorticks_off()
    ax.set_xlabel({"sigma": "injected weight noise σ", "time": "time since programming"}.get(x, x))
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
