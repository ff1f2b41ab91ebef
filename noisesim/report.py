"""Text reports of sweep results: the pivot table the CLI prints and the Markdown summary."""

from __future__ import annotations

import pandas as pd

from noisesim.stats import summarize, varying


def pivot_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The varying axes down, checkpoints across, cells 'mean ± std' in percent."""
    text = [f"{100 * m:.1f}" if pd.isna(s) else f"{100 * m:.1f} ± {100 * s:.1f}"
            for m, s in zip(summary["mean"], summary["std"], strict=True)]
    index = [c for c in varying(summary) if c != "time"] + (["time"] if "time" in varying(summary) else [])
    index = index or ["profile"]
    keys = [c if c != "time" else "time_s" for c in index]
    appearance = {c: {v: i for i, v in enumerate(dict.fromkeys(summary[c]))} for c in keys
                  if not pd.api.types.is_numeric_dtype(summary[c])}
    cell = summary.assign(text=text).sort_values(
        keys, kind="stable", key=lambda col: col.map(appearance[col.name]) if col.name in appearance else col)
    cell[index] = cell[index].astype(object).where(cell[index].notna(), "")
    table = cell.pivot_table(index=index, columns="checkpoint", values="text", aggfunc="first", sort=False)
    return table[list(dict.fromkeys(summary["checkpoint"]))]


def markdown_report(result) -> str:
    """The summary of a sweep as Markdown: one row per setting, checkpoints across, then the spread."""
    summary = summarize(result.frame)
    axes = summary.attrs["axes"]
    table = pivot_table(summary).reset_index()
    lines = [f"# Sweep on {result.meta.get('data', result.frame['data'].iloc[0])}: accuracy (%), mean ± std",
             "", "| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    if result.chance is not None:
        lines += ["", f"Chance (majority class): {100 * result.chance:.1f} %."]
    cols = ["checkpoint", *[c for c in varying(summary) if c != "time"],
            *(["time"] if "time" in varying(summary) else []), "count", "mean", "ci95_low", "ci95_high",
            "sd_chip", "sd_program", "sd_read"]
    detail = summary[summary["count"] > 1][[c for c in dict.fromkeys(cols) if c in summary]]
    if len(detail):
        lines += ["", "## 95 % intervals and spread by level (accuracy points)", "",
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


def _cell(name: str, value, axes: list[str]) -> str:
    """A detail-table cell: statistics in accuracy points, an empty statistic as —, axis values as they are."""
    if name in axes or name == "count":
        return str(value)
    if isinstance(value, float):
        return "—" if pd.isna(value) else f"{100 * value:.2f}"
    return str(value)
