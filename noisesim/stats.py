"""Statistics of a sweep's table: which columns are axes, the clean rows, and mean / std / 95 % interval /
spread by level per setting. Takes a pandas DataFrame (one row per cell); knows nothing of how it was made."""

from __future__ import annotations

import math

import pandas as pd

from noisesim.errors import UserError

AXES = ["data", "checkpoint", "profile", "sigma", "time"]  # the fixed axes; each --set path adds one


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that define a group of realizations (checkpoint, profile, σ, each --set path, time...): the
    axes recorded with the results; for tables written by noisesim 0.1, the fixed axes plus dotted columns."""
    recorded = frame.attrs.get("axes")
    if recorded is not None:
        return [c for c in recorded if c in frame.columns]
    return [c for c in frame.columns if c in AXES or "." in c]


def clean_rows(frame: pd.DataFrame) -> pd.Series:
    """True for the noise-free reference rows (the ``clean`` column; 0.1 tables: the ``ideal`` profile)."""
    if "clean" in frame:
        return frame["clean"].astype(bool)
    return frame["profile"].eq("ideal") if "profile" in frame else pd.Series(False, index=frame.index)


REALIZATION = ["seed", "chip", "program", "read"]


def check_realizations(frame: pd.DataFrame) -> None:
    """Refuse a table that cannot be summarised honestly: an accuracy that is not a number in [0, 1], or two
    rows for one setting and one realization (from different inputs, e.g. a checkpoint or data set that changed
    between two sweeps into one folder, or a table concatenated with itself) that would count as two."""
    acc = pd.to_numeric(frame["accuracy"], errors="coerce")
    if not acc.between(0, 1).all():
        bad = frame["accuracy"][~acc.between(0, 1)].iloc[0]
        raise UserError(f"the results hold accuracy {bad!r}, not a number in [0, 1]; rerun the sweep")
    subset = [c for c in [*axis_columns(frame), *REALIZATION] if c in frame]
    twice = frame.duplicated(subset=subset, keep=False)
    if twice.any():
        row = frame[twice].iloc[0]
        shown = ", ".join(f"{c}={row[c]}" for c in subset)
        raise UserError(f"the results hold {int(twice.sum())} rows that repeat one setting and realization ({shown}):"
                        " they come from different inputs (checkpoint files, data, profile or evaluation settings"
                        " changed between sweeps into one folder) or were joined twice; sweep into a fresh --out")


def variance_components(part: pd.DataFrame) -> dict[str, float]:
    """Nested (chip ⊃ programming ⊃ read) method-of-moments estimate of each level's accuracy std.

    Read: the mean within-programming variance; programming: the variance of programming means within
    a chip minus the read share; chip: the variance of chip means minus the lower levels' shares
    (clipped at 0; NaN where a level has a single value, and for chips when each chip was programmed
    once, since chip and programming variation are then confounded).
    """
    acc = part["accuracy"]
    if "seed" in part and part["seed"].nunique() > 1:  # chips of different base seeds are different chips
        part = part.assign(chip=part["seed"].astype(str) + ":" + part["chip"].astype(str))
    n_reads = part.groupby(["chip", "program"]).size().min()
    n_prog = part.groupby("chip")["program"].nunique().min()
    read = part.groupby(["chip", "program"])["accuracy"].var().mean() if n_reads > 1 else math.nan
    prog_means = part.groupby(["chip", "program"])["accuracy"].mean()
    prog_var = prog_means.groupby(level="chip").var().mean() if n_prog > 1 else math.nan
    program = prog_var - (0 if math.isnan(read) else read / n_reads) if not math.isnan(prog_var) else math.nan
    chip_means = part.groupby("chip")["accuracy"].mean()
    # with one programming per chip, chip and programming variation cannot be told apart
    chip_var = chip_means.var() if len(chip_means) > 1 and n_prog > 1 else math.nan
    lower = (0 if math.isnan(program) else max(program, 0) / n_prog) + (
        0 if math.isnan(read) else read / (n_prog * n_reads))
    chip = chip_var - lower if not math.isnan(chip_var) else math.nan
    out = {"sd_total": float(acc.std()) if len(acc) > 1 else math.nan}
    for name, var in (("sd_chip", chip), ("sd_program", program), ("sd_read", read)):
        out[name] = math.nan if math.isnan(var) else math.sqrt(max(var, 0.0))
    return out


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, count and a 95 % interval of accuracy per checkpoint × setting × time, and how the
    spread splits into chip, programming and read parts."""
    from scipy.stats import t as student_t

    check_realizations(frame)
    keys = axis_columns(frame)
    rows = []
    for values, part in frame.groupby(keys, sort=False, dropna=False):
        acc = part["accuracy"]
        # Student's t: with n = 3 realizations the 95 % half-width is 4.30·s/√n, not 1.96·s/√n; an accuracy
        # lies in [0, 1], so is the interval; one realization has no spread to show (NaN, printed without ±)
        n, mean = len(acc), acc.mean()
        half = float(student_t.ppf(0.975, n - 1)) * acc.std() / math.sqrt(n) if n > 1 else math.nan
        rows.append({**dict(zip(keys, values, strict=True)), "time_s": part["time_s"].iloc[0],
                     "clean": bool(clean_rows(part).iloc[0]), "mean": mean, "std": acc.std() if n > 1 else math.nan,
                     "count": n, "ci95_low": max(0.0, mean - half) if n > 1 else math.nan,
                     "ci95_high": min(1.0, mean + half) if n > 1 else math.nan, **variance_components(part)})
    summary = pd.DataFrame(rows)
    summary.attrs = {"axes": keys}
    return summary


def varying(frame: pd.DataFrame) -> list[str]:
    """Axis columns other than checkpoint whose values differ between rows (σ, --set paths, time)."""
    return [c for c in axis_columns(frame) if c != "checkpoint" and frame[c].nunique(dropna=False) > 1]
