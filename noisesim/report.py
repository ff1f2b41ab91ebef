"""Text reports of sweep results: the pivot table the CLI prints and the Markdown summary."""

from __future__ import annotations

import pandas as pd

from noisesim.metrics import chance_text, title, unit
from noisesim.stats import metric_of, summarize, varying


def by_recipe(summary: pd.DataFrame) -> bool:
    """Whether a summary was grouped by recipe (``summarize(by='recipe')``): it has a recipe column, no checkpoint."""
    return "recipe" in summary.columns and "checkpoint" not in summary.columns


def pivot_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The varying axes down, checkpoints across, cells 'mean ± std' in percent. A summary by recipe: recipes
    down, the varying settings across, cells 'mean ± std (n seeds)' (std over seeds × realizations)."""
    if by_recipe(summary):
        return _recipe_table(summary)
    index, cell = _by_setting(summary, _mean_text(summary))
    cell[index] = cell[index].astype(object).where(cell[index].notna(), "")
    table = cell.pivot_table(index=index, columns="checkpoint", values="text", aggfunc="first", sort=False)
    return table[list(dict.fromkeys(summary["checkpoint"]))]


def _mean_text(summary: pd.DataFrame) -> list[str]:
    """'mean ± std' in percent per summary row ('mean' alone where there is no spread)."""
    return [f"{100 * m:.1f}" if pd.isna(s) else f"{100 * m:.1f} ± {100 * s:.1f}"
            for m, s in zip(summary["mean"], summary["std"], strict=True)]


def _by_setting(summary: pd.DataFrame, text: list[str]) -> tuple[list[str], pd.DataFrame]:
    """The varying setting columns (time last; 'profile' when none varies) and the summary with a ``text``
    column, sorted by them: numbers by value, anything else in order of first appearance."""
    settings = [c for c in varying(summary) if c != "time"] + (["time"] if "time" in varying(summary) else [])
    settings = settings or ["profile"]
    keys = [c if c != "time" else "time_s" for c in settings]
    appearance = {c: {v: i for i, v in enumerate(dict.fromkeys(summary[c]))} for c in keys
                  if not pd.api.types.is_numeric_dtype(summary[c])}
    cell = summary.assign(text=text).sort_values(
        keys, kind="stable", key=lambda col: col.map(appearance[col.name]) if col.name in appearance else col)
    return settings, cell


def _recipe_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Recipes down, one column per setting (σ, --set values, time, as 'sigma=0.02, time=1h'), cells
    'mean ± std (n seeds)' in percent."""
    text = [f"{t} ({n} seed{'' if n == 1 else 's'})" for t, n in zip(_mean_text(summary), summary["seeds"],
                                                                      strict=True)]
    settings, cell = _by_setting(summary, text)
    cell["setting"] = [", ".join(f"{c}={_value(v)}" for c, v in zip(settings, row, strict=True))
                       for row in cell[settings].itertuples(index=False)]
    table = cell.pivot_table(index="recipe", columns="setting", values="text", aggfunc="first", sort=False)
    table.columns.name = None
    return table.loc[list(dict.fromkeys(summary["recipe"])), list(dict.fromkeys(cell["setting"]))]


def _value(value) -> str:
    if pd.isna(value):
        return "—"
    return f"{value:g}" if isinstance(value, float) else str(value)


STAGE_TERMS = ("sd_chip: between chips (device-to-device variation); sd_program: between programmings of one chip"
               " (cycle-to-cycle, write-to-write); sd_read: between reads of one programming (cycle-to-cycle,"
               " read-to-read).")


def markdown_report(result) -> str:
    """The summary of a sweep as Markdown: one row per setting, checkpoints across, then the spread. When a
    recipe was trained with several seeds (``summarize(by='auto')``): one row per recipe, settings across."""
    summary = summarize(result.frame)
    axes = summary.attrs["axes"]
    recipes = by_recipe(summary)
    table = pivot_table(summary).reset_index()
    over = " over training seeds × realizations" if recipes else ""
    metric = metric_of(result.frame)
    lines = [f"# Sweep on {result.meta.get('data', result.frame['data'].iloc[0])}: {measured(result)}, mean ± std"
             f"{over}{chance_note(result) if metric != 'accuracy' else ''}",
             "", "| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    if result.chance is not None and metric != "mixed":
        lines += ["", f"Chance ({chance_text(metric)}): {shown(result.chance, metric)}."]
    elif metric == "mixed":
        by = result.meta.get("chance_by_data") or {}
        metrics = result.meta.get("metric_by_data") or {}
        lines += ["", "Chance: " + "; ".join(
            f"{d}: {title(metrics[d])} {shown(c, metrics[d])} ({chance_text(metrics[d])})"
            for d, c in by.items() if d in metrics) + "."]
    cols = ["checkpoint", *[c for c in varying(summary) if c != "time"],
            *(["time"] if "time" in varying(summary) else []), "count", "mean", "ci95_low", "ci95_high",
            "sd_chip", "sd_program", "sd_read"]
    if recipes:
        cols = ["recipe", *cols[1:cols.index("count")], "seeds", "count", "mean", "ci95_low", "ci95_high",
                "sd_seed_means", "sd_train", "sd_chip", "sd_program", "sd_read"]
    detail = summary[summary["count"] > 1][[c for c in dict.fromkeys(cols) if c in summary]]
    if len(detail):
        points = "accuracy points" if metric == "accuracy" else f"{title(metric)} points (× 100)" if metric != "mixed" \
            else "points (× 100)"
        lines += ["", f"## 95 % intervals and spread by level ({points})", "",
                  *(["sd_seed_means: std of the seeds' mean accuracies; sd_train: the seed-to-seed part, from"
                     " realizations paired across seeds (each seed sees the same chips); the interval treats"
                     " seeds × realizations as independent.", ""] if recipes else []),
                  *([STAGE_TERMS, ""] if {"sd_chip", "sd_program", "sd_read"} & set(detail.columns) else []),
                  "| " + " | ".join(detail.columns) + " |", "|" + "---|" * len(detail.columns)]
        for row in detail.itertuples(index=False):
            cells = [_cell(name, v, axes) for name, v in zip(detail.columns, row, strict=True)]
            lines.append("| " + " | ".join(cells) + " |")
    meta = result.meta
    if meta:
        lines += ["", f"noisesim {meta.get('noisesim_version')} (commit {meta.get('git_commit')}),"
                  f" torch {meta.get('torch')}; {len(result.frame)} cells in"
                  f" results.parquet (the last sweep into this folder had {meta.get('cells', '?')})."]
    return "\n".join(lines)


def measured(result) -> str:
    """What the table's numbers are: 'accuracy (%)', 'MCC (× 100)', or, for data sets scored by different
    metrics, 'score (× 100; accuracy for sst2-dev, MCC for cola-dev)'."""
    metric = metric_of(result.frame)
    if metric != "mixed":
        return f"{title(metric)} ({unit(metric)})"
    by = result.meta.get("metric_by_data") or dict(result.frame.groupby("data", sort=False)["metric"].first())
    return "score (× 100; " + ", ".join(f"{title(m)} for {d}" for d, m in by.items()) + ")"


def shown(value: float, metric: str) -> str:
    """A value as tables show it: '54.1 %' (accuracy, F1), '0.0 (× 100)' (MCC)."""
    return f"{100 * value:.1f} %" if unit(metric) == "%" else f"{100 * value:.1f} (× 100)"


def chance_note(result) -> str:
    """'; chance 0.0 (× 100; any constant prediction)' for the header of a table of another metric than accuracy."""
    metric = metric_of(result.frame)
    if result.chance is None or metric == "mixed":
        return ""
    return f"; chance {shown(result.chance, metric)} ({chance_text(metric)})"


def _cell(name: str, value, axes: list[str]) -> str:
    """A detail-table cell: statistics in accuracy points, an empty statistic as —, axis values as they are."""
    if name in axes or name in ("count", "seeds"):
        return str(value)
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{100 * value:.2f}"
    return str(value)
