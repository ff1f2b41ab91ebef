"""Plots of sweep results (matplotlib): accuracy against σ, time (log axis) or a profile parameter.

One drawing style for the sweep's own plot and ``noisesim plot``: one colour per hue value (checkpoint, or recipe
when a recipe was trained with several seeds), one line style (bars: hatch) per other varying setting, lines offset
on x so error bars do not overlap (ticks stay at the true values), a checkpoint's clean reference dotted in its
colour, and a caption saying what the error bars are.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from noisesim.errors import UserError
from noisesim.metrics import chance_text, title, unit
from noisesim.stats import (
    axis_columns,
    check_realizations,
    clean_rows,
    group_by,
    metric_of,
    value_column,
    varying,
    with_recipe,
)
from noisesim.textio import atomic_write

FORMATS = ("png", "svg", "pdf")
PANEL_SIZE = (6.4, 4.2)  # inches per panel, before the legend column and the caption
PNG_DPI = 150
LINESTYLES = ["-", "--", "-.", (0, (5, 1.5, 1, 1.5, 1, 1.5)), (0, (8, 2)), (0, (3, 1, 3, 3))]  # ":" is the clean line
MARKERS = ["o", "s", "^", "D", "v", "P", "X"]  # 7 against 6 line styles: 42 distinct pairs
HATCHES = ["", "//", "..", "xx", "\\\\", "++", "--", "||", "oo", "**"]
LABELS = {"sigma": "injected weight noise σ", "time": "time since programming (log scale)"}


def plot_axis(frame: pd.DataFrame) -> str:
    """What to put on the x axis: time if it varies, else σ, else the first varying --set path (the
    clean reference rows do not count)."""
    noisy = frame[~clean_rows(frame)]
    axes = varying(noisy if len(noisy) else frame)
    if "time" in axes:
        return "time"
    if "sigma" in axes:
        return "sigma"
    return next((c for c in axes if c not in ("data", "metric", "profile")), "profile")


def default_hue(frame: pd.DataFrame) -> str:
    """The hue of the sweep's own plot and of ``noisesim plot``: 'recipe' when some recipe spans two or more
    checkpoints (training seeds; error bars over seeds × realizations), else 'checkpoint'."""
    return group_by(frame, "auto")


def check_formats(formats) -> tuple[str, ...]:
    """The output formats as a tuple (from 'png,svg' or a list); an unknown or missing one is a UserError."""
    if not isinstance(formats, str | list | tuple):
        raise TypeError(f"formats must be a list of format names or 'png,svg', not {type(formats).__name__}")
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [str(f).strip().lower().lstrip(".") for f in items]
    for name in names:
        if name not in FORMATS:
            raise UserError(f"--format {name!r} is not a plot format (allowed: {', '.join(FORMATS)})")
    if not names:
        raise UserError(f"--format gives no format (allowed: {', '.join(FORMATS)})")
    return tuple(dict.fromkeys(names))


def default_stem(folder: str | Path, x: str, col: str | None = None) -> Path:
    """FOLDER/plot_X[_by_COL]: the file stem of ``noisesim plot`` (never the sweep's own accuracy_vs_X)."""
    name = f"plot_{x}" + (f"_by_{col}" if col else "")
    return Path(folder) / re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def plot_grid(frame: pd.DataFrame, stem: str | Path, x: str, hue: str = "checkpoint", col: str | None = None,
              chance: float | None = None, formats=("png",)) -> list[Path]:
    """Accuracy against ``x`` (see ``figure``) written as STEM.FORMAT for each format (PNG at 150 dpi; SVG and
    PDF as vector graphics). Refuses (UserError) a plot that would be empty, before writing anything."""
    formats = check_formats(formats)
    fig = figure(frame, x, hue, col, chance)
    paths = [Path(f"{stem}.{fmt}") for fmt in formats]
    for path in paths:
        atomic_write(path, lambda p, fmt=path.suffix[1:]: fig.savefig(p, format=fmt, dpi=PNG_DPI))
    return paths


def figure(frame: pd.DataFrame, x: str, hue: str = "checkpoint", col: str | None = None,
           chance: float | None = None):
    """The matplotlib Figure: one panel per value of ``col`` (or one panel), one colour per ``hue`` value, a
    legend on the right and a caption below saying what the error bars are and what is not shown."""
    from matplotlib.figure import Figure

    panels, notes = layout(frame, x, hue, col)
    look = Look(pd.concat([data for _, data, _ in panels]), x, hue, col)
    width = PANEL_SIZE[0] + (PANEL_SIZE[0] - 1.6) * (len(panels) - 1)
    fig = Figure(figsize=(width, PANEL_SIZE[1]), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    for ax, (value, data, reference) in zip(axes, panels, strict=True):
        look.draw(ax, data, reference, chance)
        if col is not None:
            ax.set_title(f"{col} = {_text(value)}", fontsize=9)
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.suptitle(_title(frame), fontsize=10)
    references = pd.concat([r for _, _, r in panels]).drop_duplicates()
    axes[-1].legend(handles=look.handles(chance, len(references) > 0), loc="upper left", bbox_to_anchor=(1.02, 1),
                    borderaxespad=0, fontsize=8, frameon=False)
    text = caption(pd.concat([data for _, data, _ in panels]), references, notes, hue=hue)
    lines = textwrap.wrap(text, width=int(width * 17.5))
    band = 0.035 * len(lines) + 0.01  # room for the caption below the axes
    fig.get_layout_engine().set(rect=(0, band, 1, 1 - band))
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7.5, ha="left", va="bottom", color="0.25")
    return fig


def layout(frame: pd.DataFrame, x: str, hue: str = "checkpoint", col: str | None = None):
    """The panels to draw as (value, points, clean reference rows), and notes on what is not shown; a UserError
    when ``x``, ``hue`` or ``col`` is not an axis, ``x`` does not vary, or no panel has a point to draw."""
    check_realizations(frame)
    frame = with_recipe(frame)  # tables without a recipe column: each checkpoint is its own recipe
    clean = clean_rows(frame)
    known = list(axis_columns(frame)) + (["method"] if "method" in frame else []) + ["recipe"]
    for flag, name in (("--x", x), ("--hue", hue), ("--col", col)):
        if name is not None and name not in known:
            raise UserError(f"{flag} {name!r} is not an axis of these results (axes here: {', '.join(known)})")
    moving = varying(frame[~clean]) if (~clean).any() else []
    if x != "profile" and x not in moving:
        raise UserError(f"--x {x!r} does not vary in these results, so the plot would be empty (choose among:"
                        f" {', '.join(moving) or 'profile'})")
    if col is not None and col == x:
        raise UserError(f"--col {col!r} is also --x: each panel would hold one x value (choose another --col)")
    xcol = "time_s" if x == "time" else x
    split = x != "profile" and clean.any() and (~clean).any()  # the clean rows are reference lines
    points, reference = (frame[~clean], frame[clean]) if split else (frame, frame.iloc[:0])
    values = [None] if col is None else list(pd.unique(points[col]))
    panels, notes, empty = [], [], []
    for value in values:
        data, ref = points, reference
        if col is not None:
            data = data[_match(data[col], value)]
            ref = ref[_match(ref[col], value) | ~ref[col].isin(values)]  # a checkpoint's, or every panel's
        missing = data[xcol].isna()
        if missing.any() and not missing.all():
            where = f" in {col} = {_text(value)}" if col is not None else ""
            notes.append(f"{int(missing.sum())} rows{where} have no {x} and are not shown")
        data = data[~missing]
        if len(data):
            panels.append((value, data, ref))
        else:
            empty.append(_text(value))
    if not panels:
        raise UserError(f"nothing to plot against {x}: no row of these results has a value of {x}")
    if empty:
        notes.append(f"{col} = {', '.join(empty)}: no points against {x}, panel left out")
    if x == "time" and (pd.concat([d for _, d, _ in panels])["time_s"] <= 0).any():
        notes.append("time 0s is drawn at the left end of the log axis")
    return panels, notes


def caption(data: pd.DataFrame, reference: pd.DataFrame, notes: list[str] = (), hue: str = "checkpoint") -> str:
    """What the error bars are (±1 SD over n realizations, and chips × programmings × reads when every point has
    the same; with ``hue='recipe'``, over S training seeds × R realizations), what the clean reference is, and
    what is not shown."""
    by_recipe = hue == "recipe" and "checkpoint" in data
    if by_recipe:
        data, reference = with_recipe(data), with_recipe(reference)
    keys = _point_keys(data, by_recipe)
    groups = data.groupby(keys, sort=False, dropna=False) if keys else [((), data)]
    sizes = [len(part) for _, part in groups]
    low, high = min(sizes), max(sizes)
    parts = []
    if high == 1:
        parts.append("no error bars: one realization per point")
    elif by_recipe:
        parts.append(_seed_bars([part for _, part in groups], low, high))
    else:
        n = f"n = {low}" if low == high else f"n = {low}–{high}"
        text = f"error bars: ±1 SD over {n} realizations" + (" per point" if low != high else "")
        if low == high and {"chip", "program", "read"} <= set(data):
            levels = {_levels(part) for _, part in groups}
            if len(levels) == 1 and np.prod(next(iter(levels))) == low:
                chips, programs, reads = next(iter(levels))
                text += (f" ({_count(chips, 'chip')} × {_count(programs, 'programming')} ×"
                         f" {_count(reads, 'read')})")
        if low == 1:
            text += "; points with n = 1 have none"
        parts.append(text)
    if len(reference):
        keys = _point_keys(reference, by_recipe)
        counts = reference.groupby(keys, sort=False, dropna=False).size() if keys else pd.Series([len(reference)])
        seeds = (reference.groupby(keys, sort=False, dropna=False)["checkpoint"].nunique() if by_recipe and keys
                 else pd.Series([1]))
        if by_recipe and seeds.max() > 1 and (counts == seeds).all():  # one clean evaluation per seed
            low_s, high_s = seeds.min(), seeds.max()
            parts.append("clean reference (dotted, no noise): mean over " + (
                f"{high_s} training seeds" if low_s == high_s else f"each recipe's training seeds ({low_s}–{high_s})"))
        else:
            parts.append("clean reference (dotted, no noise): " + (
                "one evaluation" if counts.max() == 1 else f"mean of {counts.min()}–{counts.max()} evaluations"
                if counts.min() != counts.max() else f"mean of {counts.max()} evaluations"))
    return "; ".join([*parts, *notes]) + "."


def _point_keys(data: pd.DataFrame, by_recipe: bool) -> list[str]:
    """The columns that make one point: the axes, with recipe in place of checkpoint when seeds are pooled."""
    keys = [c for c in axis_columns(data) if c in data]
    if by_recipe:
        keys = ["recipe" if c == "checkpoint" else c for c in keys] if "checkpoint" in keys else ["recipe", *keys]
    return keys


def _seed_bars(parts: list[pd.DataFrame], low: int, high: int) -> str:
    """The error-bar sentence for points pooled over training seeds: ±1 SD over S training seeds × R realizations
    (each seed's chips × programmings × reads when every seed has the same; S per recipe in the legend when the
    recipes differ), or the ranges when the points differ otherwise."""
    seeds = [int(part["checkpoint"].nunique()) for part in parts]
    singles = [one for part in parts for _, one in part.groupby("checkpoint", sort=False)]
    per_seed = {len(one) for one in singles}
    if len(per_seed) == 1:
        reps = next(iter(per_seed))
        levels = {_levels(one) for one in singles} if {"chip", "program", "read"} <= set(parts[0]) else set()
        each = ""
        if len(levels) == 1 and np.prod(next(iter(levels))) == reps:
            chips, programs, reads = next(iter(levels))
            each = f"each seed: {_count(chips, 'chip')} × {_count(programs, 'programming')} × {_count(reads, 'read')}"
        if len(set(seeds)) == 1:
            inside = "; ".join(p for p in (f"n = {seeds[0] * reps}", each) if p)
            return (f"error bars: ±1 SD over {_count(seeds[0], 'training seed')} × {_count(reps, 'realization')}"
                    f" ({inside})")
        inside = "; ".join(p for p in (f"{min(seeds)}–{max(seeds)} seeds, as in the legend", each) if p)
        text = f"error bars: ±1 SD over each recipe's training seeds × {_count(reps, 'realization')} ({inside})"
        return text + ("; points with n = 1 have none" if low == 1 else "")
    shown = f"{min(seeds)}–{max(seeds)}" if min(seeds) != max(seeds) else str(seeds[0])
    n = f"n = {low}–{high}" if low != high else f"n = {low}"
    text = f"error bars: ±1 SD over {shown} training seeds × their realizations ({n} per point)"
    return text + ("; points with n = 1 have none" if low == 1 else "")


class Look:
    """Colours, line styles and x offsets shared by every panel of one figure."""

    def __init__(self, data: pd.DataFrame, x: str, hue: str, col: str | None):
        self.x, self.hue = x, hue
        self.xcol = "time_s" if x == "time" else x
        self.categorical = not pd.api.types.is_numeric_dtype(data[self.xcol])
        self.colours = {_key(v): f"C{i % 10}" for i, v in enumerate(pd.unique(data[hue]))}
        seeds = (data.groupby(hue, sort=False, dropna=False)["checkpoint"].nunique()
                 if hue == "recipe" and "checkpoint" in data else pd.Series(dtype=int))
        self.seeds = {_key(v): int(n) for v, n in seeds.items()}  # training seeds per recipe (the legend says)
        skip = {x, hue, col, "time" if x == "time" else None, "checkpoint" if hue == "recipe" else None}
        self.style_keys = [c for c in ["checkpoint", *varying(data)] if c not in skip and c in data
                           and data[c].nunique(dropna=False) > 1]
        self.style_keys = list(dict.fromkeys(self.style_keys))
        combos = data[self.style_keys].drop_duplicates() if self.style_keys else pd.DataFrame(index=[0])
        self.styles = {_key(tuple(row)): i for i, row in enumerate(combos.itertuples(index=False))}
        lines = data[[hue, *self.style_keys]].drop_duplicates()
        self.slots = {_key(tuple(row)): i for i, row in enumerate(lines.itertuples(index=False))}
        self.order = list(pd.unique(data[self.xcol]))  # categories in the order the sweep ran them
        self.ticks = sorted(pd.unique(data[self.xcol])) if not self.categorical else self.order
        self.low = 100.0  # lowest mean − SD drawn so far (the shared bottom of bar panels)
        self._offsets(data)

    def _offsets(self, data: pd.DataFrame) -> None:
        """Step between neighbouring lines: additive on a linear axis, a factor on the log time axis."""
        n = len(self.slots)
        self.zero = None
        if self.categorical:
            self.step = 0.8 / max(n, 1)
            return
        values = np.array(self.ticks, dtype=float)
        if self.x == "time":
            positive = values[values > 0]
            self.zero = positive.min() / 10 if len(positive) else 1.0  # where t = 0 sits on the log axis
            values = np.log10(np.where(values > 0, values, self.zero))
        span = values.max() - values.min() if len(values) > 1 else abs(values[0]) or 1.0
        gap = np.diff(values).min() if len(values) > 1 else span
        self.step = min(0.02 * span, 0.6 * gap / max(n, 1)) if n > 1 else 0.0

    def position(self, values: pd.Series, slot: int) -> np.ndarray:
        """Where a line's points sit on x: the true values shifted by the line's slot."""
        shift = (slot - (len(self.slots) - 1) / 2) * self.step
        if self.categorical:
            return np.array([self.order.index(v) for v in values]) + shift
        values = values.to_numpy(dtype=float)
        if self.x == "time":
            return np.where(values > 0, values, self.zero) * 10 ** shift
        return values + shift

    def draw(self, ax, data: pd.DataFrame, reference: pd.DataFrame, chance: float | None) -> None:
        """Mean ± 1 SD of the score (accuracy, or the rows' metric) against x on one axes, the clean reference and
        the chance level."""
        value = value_column(data)
        self.metric = metric_of(data)
        for name, part in data.groupby([self.hue, *self.style_keys], sort=False, dropna=False):
            name = name if isinstance(name, tuple) else (name,)
            colour = self.colours[_key(name[0])]
            style = self.styles[_key(tuple(name[1:]))]
            slot = self.slots[_key(name)]
            # one realization has no spread: no error bar (NaN), rather than a bar of zero length
            stats = part.groupby(self.xcol, sort=not self.categorical)[value].agg(["mean", "std"]).reset_index()
            pos = self.position(stats[self.xcol], slot)
            if self.categorical:
                ax.bar(pos, 100 * stats["mean"], self.step, yerr=100 * stats["std"], capsize=3, color=colour,
                       hatch=HATCHES[style % len(HATCHES)], edgecolor="black", linewidth=0.5,
                       error_kw={"elinewidth": 1})
            else:
                ax.errorbar(pos, 100 * stats["mean"], yerr=100 * stats["std"], color=colour,
                            linestyle=LINESTYLES[style % len(LINESTYLES)], marker=MARKERS[style % len(MARKERS)],
                            markersize=4.5, capsize=3, linewidth=1.4, elinewidth=1)
            self.low = min(self.low, 100 * (stats["mean"] - stats["std"].fillna(0)).min())
        by = self.hue if self.hue in reference and reference[self.hue].notna().all() else "checkpoint"
        for name, part in reference.groupby(by, sort=False):
            colour = self.colours.get(_key(name), "black")
            level = 100 * part[value_column(part)].mean()
            ax.axhline(level, color=colour, linestyle=":", linewidth=1.3)
            if colour == "black" and reference[by].nunique() > 1:  # not told apart by colour: name it
                ax.annotate(str(name), (1, level), xycoords=("axes fraction", "data"), fontsize=7, ha="right",
                            va="bottom")
        if chance is not None:
            ax.axhline(100 * chance, color="0.55", linewidth=1, zorder=0)
        if self.categorical:
            ax.set_xticks(range(len(self.order)), [_text(v) for v in self.order])
            floor = min(self.low, 100 * chance) if chance is not None else self.low
            ax.set_ylim(max(-100.0 if self.metric in ("mcc", "mixed") else 0.0, floor - 5), 100)
        else:
            if self.x == "time":
                ax.set_xscale("log")
                names = data.drop_duplicates("time_s").set_index("time_s")["time"]
                ax.set_xticks([t if t > 0 else self.zero for t in self.ticks], [names[t] for t in self.ticks])
            else:
                ax.set_xticks(self.ticks, [f"{v:g}" for v in self.ticks])
            ax.minorticks_off()
        ax.set_xlabel(LABELS.get(self.x, self.x))
        ax.set_ylabel(_ylabel(self.metric))
        ax.grid(alpha=0.3)

    def handles(self, chance: float | None, reference: bool) -> list:
        """Legend entries: a colour per hue value, a style per other setting, the clean line and chance."""
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        out = []
        for value, colour in self.colours.items():
            label = (_text(value) if self.hue == "checkpoint" else
                     f"{_text(value)} ({_count(self.seeds[value], 'seed')})" if self.hue == "recipe" else
                     f"{self.hue} = {_text(value)}")
            out.append(Patch(facecolor=colour, edgecolor="black", linewidth=0.5, label=label) if self.categorical
                       else Line2D([], [], color=colour, marker="o", markersize=4.5, label=label))
        if len(self.styles) > 1:
            for combo, i in self.styles.items():
                label = ", ".join(_text(v) if k == "checkpoint" else f"{k} = {_text(v)}"
                                  for k, v in zip(self.style_keys, combo, strict=True))
                out.append(Patch(facecolor="white", edgecolor="black", hatch=HATCHES[i % len(HATCHES)], label=label)
                           if self.categorical else
                           Line2D([], [], color="black", linestyle=LINESTYLES[i % len(LINESTYLES)],
                                  marker=MARKERS[i % len(MARKERS)], markersize=4.5, label=label))
        if reference:
            out.append(Line2D([], [], color="black", linestyle=":", label="clean (no noise)"))
        if chance is not None:
            metric = getattr(self, "metric", "accuracy")
            shown = f"{100 * chance:.1f} %" if metric in ("accuracy", "f1", "f1-macro") else f"{100 * chance:.1f}"
            why = "" if metric == "accuracy" else "; " + (
                chance_text(metric) if metric != "mixed" else "first data set")
            out.append(Line2D([], [], color="0.55", label=f"chance ({shown}{why})"))
        return out


def _ylabel(metric: str) -> str:
    """'accuracy (%)', 'MCC (× 100)', or 'score (× 100)' for several metrics."""
    return "score (× 100)" if metric == "mixed" else f"{title(metric)} ({unit(metric)})"


def _title(frame: pd.DataFrame) -> str:
    noisy = frame[~clean_rows(frame)]
    sources = [str(d) for d in pd.unique(frame["data"])] if "data" in frame else []
    sources = [Path(s).name if len(s) > 40 else s for s in sources]
    profiles = [str(p) for p in pd.unique(noisy["profile"])] if "profile" in noisy else []
    under = f" under {', '.join(profiles)} noise" if profiles else ""
    metric = metric_of(frame)
    what = "Score" if metric == "mixed" else "Accuracy" if metric == "accuracy" else title(metric)
    return f"{what} on {', '.join(sources) or 'the data'}{under}"


def _levels(part: pd.DataFrame) -> tuple[int, int, int]:
    """(chips, programmings per chip, reads) of one point; chips of different base seeds are different chips."""
    chips = part[["seed", "chip"]].drop_duplicates() if "seed" in part else part[["chip"]].drop_duplicates()
    return len(chips), int(part["program"].nunique()), int(part["read"].nunique())


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _match(column: pd.Series, value) -> pd.Series:
    return column.isna() if _missing(value) else column == value


def _missing(value) -> bool:
    return isinstance(value, float) and np.isnan(value) or value is None or value is pd.NA


def _key(value):
    """A dictionary key where every missing value (NaN, None) is one key."""
    if isinstance(value, tuple):
        return tuple(_key(v) for v in value)
    return None if _missing(value) else value


def _text(value) -> str:
    return "—" if _missing(value) else f"{value:g}" if isinstance(value, float) else str(value)


def sensitivity_heatmap(table: pd.DataFrame, path: Path, by: str, title: str, realizations: int) -> Path:
    """The accuracy drop (points) per unit as a heatmap, each cell annotated: blocks down × layer types across
    (``by='layer'``), blocks down (``'block'``) or layer types across (``'type'``); red is a drop, blue a gain
    (colour scale symmetric about 0). Written to ``path`` (PNG) through an atomic rename."""
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure

    drops = 100 * table["drop"].astype(float)
    if by == "layer":
        rows = sorted(table["block"].unique())
        cols = list(dict.fromkeys(table["type"]))
        grid = np.full((len(rows), len(cols)), np.nan)
        for (b, t), d in zip(zip(table["block"], table["type"], strict=True), drops, strict=True):
            grid[rows.index(b), cols.index(t)] = d
        row_labels, col_labels = [f"block {b}" for b in rows], cols
    elif by == "block":
        grid = drops.to_numpy()[:, None]
        row_labels, col_labels = [f"block {b}" for b in table["block"]], ["all types"]
    else:
        grid = drops.to_numpy()[None, :]
        row_labels, col_labels = ["all blocks"], list(table["type"])
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 0.0
    limit = limit or 1.0
    fig = Figure(figsize=(1.1 * len(col_labels) + 2.6, 0.55 * len(row_labels) + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(grid, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit), aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=9,
                        color="white" if abs(grid[i, j]) > 0.6 * limit else "black")
    ax.set_xticks(range(len(col_labels)), col_labels)
    ax.set_yticks(range(len(row_labels)), row_labels)
    fig.colorbar(image, ax=ax, label="accuracy drop (points)")
    ax.set_title("\n".join(textwrap.wrap(title, 60)), fontsize=10)
    fig.text(0.01, 0.01, f"one unit analog, the rest clean; mean over {realizations} realization(s)", fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path = Path(path)
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=PNG_DPI))
    return path
