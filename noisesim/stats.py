"""Statistics of a sweep's table: which columns are axes, the clean rows, and mean / std / 95 % interval /
spread by level per setting. Takes a pandas DataFrame (one row per cell); knows nothing of how it was made."""

from __future__ import annotations

import math

import numpy as np
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


def value_column(frame: pd.DataFrame) -> str:
    """The column summarised: ``score`` (the value of each row's ``metric``), or ``accuracy`` for a table written
    before metrics (or one without a score)."""
    return "score" if "score" in frame.columns else "accuracy"


def metric_of(frame: pd.DataFrame) -> str:
    """The metric a table's values measure: its ``metric`` column's one value ('mixed' for several), else
    accuracy."""
    if "metric" not in frame.columns or value_column(frame) == "accuracy":
        return "accuracy"
    names = frame["metric"].dropna().unique()
    return str(names[0]) if len(names) == 1 else "accuracy" if not len(names) else "mixed"


def _floor(part: pd.DataFrame) -> float:
    """The least value the rows' metric can take: -1 where a row is an MCC, else 0."""
    return -1.0 if value_column(part) == "score" and "metric" in part and part["metric"].eq("mcc").any() else 0.0


def check_realizations(frame: pd.DataFrame) -> None:
    """Refuse a table that cannot be summarised honestly: an accuracy that is not a number in [0, 1], two rows
    for one setting and one realization (from different inputs, e.g. a checkpoint or data set that changed
    between two sweeps into one folder, or a table concatenated with itself) that would count as two, or one
    checkpoint (the same files, ``checkpoint_sha256``, in the same folder, ``checkpoint_path``; where recorded)
    under two labels for one setting and realization (counted twice, e.g. by two sweeps into one folder that
    named it differently), or two checkpoints (other files) under one label (pooled as one). A copy in another
    folder is another checkpoint (its own column; never pooled with the original as a training seed: they share
    their ``train_seed``)."""
    acc = pd.to_numeric(frame["accuracy"], errors="coerce")
    if not acc.between(0, 1).all():
        bad = frame["accuracy"][~acc.between(0, 1)].iloc[0]
        raise UserError(f"the results hold accuracy {bad!r}, not a number in [0, 1]; rerun the sweep")
    if value_column(frame) == "score":
        score = pd.to_numeric(frame["score"], errors="coerce")
        if not score.between(-1, 1).all():
            bad = frame["score"][~score.between(-1, 1)].iloc[0]
            raise UserError(f"the results hold score {bad!r}, not a number in [-1, 1]; rerun the sweep")
    subset = [c for c in [*axis_columns(frame), *REALIZATION] if c in frame]
    twice = frame.duplicated(subset=subset, keep=False)
    if twice.any():
        row = frame[twice].iloc[0]
        shown = ", ".join(f"{c}={row[c]}" for c in subset)
        raise UserError(f"the results hold {int(twice.sum())} rows that repeat one setting and realization ({shown}):"
                        " they come from different inputs (checkpoint files, data, profile or evaluation settings"
                        " changed between sweeps into one folder) or were joined twice; sweep into a fresh --out")
    folder = ["checkpoint_sha256", "checkpoint_path"]
    if {"checkpoint", *folder} <= set(frame.columns) and frame[folder].notna().all(axis=1).any():
        same = [c for c in subset if c != "checkpoint"] + folder
        known = frame[frame[folder].notna().all(axis=1)]
        labels = known.groupby(same, sort=False, dropna=False)["checkpoint"].unique()
        several = labels[labels.map(len) > 1]
        idents = known.groupby("checkpoint", sort=False)["checkpoint_sha256"].nunique()
        if (pooled := idents[idents > 1]).any():
            raise UserError(f"the results hold {int(pooled.iloc[0])} different checkpoints (other files)"
                            f" under the one label {pooled.index[0]!r}: they would be pooled as one; sweep into a"
                            " fresh --out")
        if len(several):
            first, second = list(several.iloc[0])[:2]
            raise UserError(f"the results hold one checkpoint (one folder, the same files) under two labels,"
                            f" {first!r} and {second!r}, for one setting and realization: it would count twice"
                            " (sweeps into one results folder named it differently); sweep into a fresh --out")


def _nested(part: pd.DataFrame) -> dict[str, float]:
    """The chip, programming and read variances of one checkpoint's rows (unclipped; see ``variance_components``)."""
    if "seed" in part and part["seed"].nunique() > 1:  # chips of different base seeds are different chips
        part = part.assign(chip=part["seed"].astype(str) + ":" + part["chip"].astype(str))
    n_reads = part.groupby(["chip", "program"]).size().min()
    n_prog = part.groupby("chip")["program"].nunique().min()
    value = value_column(part)
    read = part.groupby(["chip", "program"])[value].var().mean() if n_reads > 1 else math.nan
    prog_means = part.groupby(["chip", "program"])[value].mean()
    prog_var = prog_means.groupby(level="chip").var().mean() if n_prog > 1 else math.nan
    program = prog_var - (0 if math.isnan(read) else read / n_reads) if not math.isnan(prog_var) else math.nan
    chip_means = part.groupby("chip")[value].mean()
    # with one programming per chip, chip and programming variation cannot be told apart
    chip_var = chip_means.var() if len(chip_means) > 1 and n_prog > 1 else math.nan
    lower = (0 if math.isnan(program) else max(program, 0) / n_prog) + (
        0 if math.isnan(read) else read / (n_prog * n_reads))
    chip = chip_var - lower if not math.isnan(chip_var) else math.nan
    return {"chip": chip, "program": program, "read": read}


def _sd(var: float) -> float:
    return math.nan if math.isnan(var) else math.sqrt(max(var, 0.0))


def variance_components(part: pd.DataFrame) -> dict[str, float]:
    """Nested (chip ⊃ programming ⊃ read) method-of-moments estimate of each level's accuracy std.

    Read: the mean within-programming variance; programming: the variance of programming means within
    a chip minus the read share; chip: the variance of chip means minus the lower levels' shares
    (clipped at 0; NaN where a level has a single value, and for chips when each chip was programmed
    once, since chip and programming variation are then confounded).
    """
    acc = part[value_column(part)]
    out = {"sd_total": float(acc.std()) if len(acc) > 1 else math.nan}
    out.update({f"sd_{level}": _sd(var) for level, var in _nested(part).items()})
    return out


def train_variance(part: pd.DataFrame, clean: bool = False) -> float:
    """Between-training-seed variance of accuracy in one setting (rows of several checkpoints of one recipe),
    estimated from paired realizations (unclipped; NaN when it cannot be estimated).

    Chip k, programming p, read r of every checkpoint is drawn from the same noise stream (common random
    numbers, ``noisesim/seeds.py``), so the realizations are paired across seeds, not independent. With S seeds
    and the realizations common to all of them, the variance of the seed means holds the seed variance plus
    what each seed's own share of the noise (its seed × chip, × programming, × read interaction) leaves in its
    mean; the noise shared by all seeds cancels between seed means. That share is estimated, nested like
    ``variance_components``, from the deviations d = Y − (mean of all seeds at that realization): the variance
    of d's unit means within a seed, pooled over the seeds and scaled by S / (S − 1) (d is centred over seeds),
    over the number of units, where the units are the top level with two or more values (chips; else the
    programmings of the one chip; else its reads):

        var_train = var(seed means) − S / (S − 1) · mean_s var_u(d̄_su) / n_units.

    With one chip of single reads this is the two-way layout's var(seed means) − MS_res / R. Subtracting the
    pooled within-seed variance instead (the plain nested formula) would also remove the shared noise and bias
    var_train down. NaN with one seed, with no realization common to all seeds, and with one realization of a
    noisy setting (noise and seed then confounded); with the clean reference (no noise) it is the variance of
    the seeds' accuracies. With one chip, a seed × chip interaction (a device whose noise is drawn per chip) is
    part of every seed's mean alike and is not removed: var_train then includes it (biased up)."""
    keys = [c for c in REALIZATION if c in part]
    if part["checkpoint"].nunique() < 2 or not keys:
        return math.nan
    table = part.pivot_table(index=keys, columns="checkpoint", values=value_column(part), aggfunc="mean").dropna()
    n_real, n_seeds = table.shape
    if n_real == 0 or n_seeds < 2 or (n_real == 1 and not clean):
        return math.nan
    means = table.mean(axis=0)
    if n_real == 1:
        return float(means.var())
    deviations = table.sub(table.mean(axis=1), axis=0)  # what is not shared by every seed
    levels = [keys[:i] for i in range(1, len(keys) + 1) if keys[i - 1] != "seed"]  # chips, programmings, reads
    for level in levels:
        units = deviations.groupby(level=level).mean()
        if len(units) > 1:
            break
    within = float(units.var(axis=0, ddof=1).mean()) * n_seeds / (n_seeds - 1)
    return float(means.var()) - within / len(units)


def seed_components(part: pd.DataFrame, clean: bool = False) -> dict[str, float]:
    """Nested (train ⊃ chip ⊃ programming ⊃ read) std of accuracy for one setting of one recipe, whose rows
    come from several training seeds (checkpoints).

    sd_train: ``train_variance`` (between seeds, from paired realizations; common random numbers). sd_chip,
    sd_program, sd_read: the method of moments of ``variance_components`` within each seed, the variances
    averaged over the seeds (pooled), then clipped at 0 (NaN as there). sd_seed_means: the std of the seeds'
    mean accuracies, the number to compare with a difference between methods (it still holds noise / R).
    sd_total: the std of all rows. A level that cannot be estimated is NaN (sd_train, sd_seed_means: one seed).
    """
    acc = part[value_column(part)]
    per_seed = pd.DataFrame([_nested(seed) for _, seed in part.groupby("checkpoint", sort=False)])
    means = part.groupby("checkpoint", sort=False)[value_column(part)].mean()
    out = {"sd_seed_means": float(means.std()) if len(means) > 1 else math.nan,
           "sd_total": float(acc.std()) if len(acc) > 1 else math.nan,
           "sd_train": _sd(train_variance(part, clean))}
    out.update({f"sd_{level}": _sd(float(per_seed[level].mean(skipna=False))) for level in ("chip", "program", "read")})
    return out


BY = ("auto", "checkpoint", "recipe")


def check_by(by) -> str:
    """``by`` of ``summarize``: one of BY, else a UserError naming them."""
    if not isinstance(by, str) or by not in BY:
        raise UserError(f"by={by!r} is not a grouping (allowed: {', '.join(BY)})")
    return by


SHORT_ID = 6  # hex digits of a recipe_id shown where one recipe name stands for several recipes


def recipe_labels(frame: pd.DataFrame) -> pd.Series:
    """Each row's recipe label: rows pool (as training seeds of one recipe) only when they share the recipe name
    and the ``recipe_id`` (the hash of everything but the training seed; a checkpoint without a recipe, or an
    external one, has its own files' hash, so it is a recipe of one seed). A name standing for several
    recipe_ids is split, each part labelled 'name [id]' (the shortest id prefix, 6 digits or more, that tells
    them apart; rows without a recipe_id, from older tables, keep the plain name). Two checkpoints of one recipe
    with the same ``train_seed`` are not two seeds (one training twice, or a copy): that recipe is not pooled,
    each of its rows is labelled by its checkpoint. Tables without a recipe column: the
    checkpoint label."""
    ckpt = frame["checkpoint"].astype(object)
    if "recipe" not in frame:
        return ckpt.rename("recipe")
    known = {c: _per_checkpoint(frame, c) for c in ("recipe", "recipe_id") if c in frame}
    name = known["recipe"].where(known["recipe"].notna(), ckpt).astype(object).to_numpy()
    ident = (known["recipe_id"].where(known["recipe_id"].notna(), "").astype(str).to_numpy() if "recipe_id" in known
             else np.full(len(frame), "", dtype=object))
    seeds = frame.groupby("checkpoint", sort=False)["train_seed"].first() if "train_seed" in frame else None
    label = name.copy()
    ids_of: dict = {}
    for recipe, rid in zip(name, ident, strict=True):
        ids_of.setdefault(recipe, {})[rid] = None
    groups = pd.DataFrame({"name": name, "id": ident}).groupby(["name", "id"], sort=False).indices
    for (recipe, rid), rows in groups.items():
        ckpts = list(dict.fromkeys(ckpt.to_numpy()[rows]))
        if len(ckpts) > 1 and seeds is not None:
            trained = [t for t in (seeds.get(c) for c in ckpts) if not pd.isna(t)]  # unrecorded: not compared
            if len(set(trained)) < len(trained):
                label[rows] = ckpt.to_numpy()[rows]  # not several training seeds: each checkpoint apart
                continue
        others = [i for i in ids_of[recipe] if i]
        if rid and len(ids_of[recipe]) > 1:
            width = next(w for w in range(SHORT_ID, 65)
                         if len({i[:w] for i in others}) == len(others) or w >= max(map(len, others)))
            label[rows] = f"{recipe} [{rid[:width]}]"
    # a label two groups would share (a checkpoint named like another recipe's label): keep them apart
    owners: dict = {}
    for i, key in enumerate(zip(name, ident, label, strict=True)):
        owners.setdefault(key[2], {}).setdefault(key[:2], []).append(i)
    for clash, parts in owners.items():
        for k, ((_, rid), rows) in enumerate(parts.items()):
            if k:
                label[rows] = f"{clash} [{rid[:SHORT_ID] or k + 1}]"
    return pd.Series(label, index=frame.index, name="recipe", dtype=object)


def _per_checkpoint(frame: pd.DataFrame, column: str) -> pd.Series:
    """A provenance column with each checkpoint's gaps filled from its other rows (rows a sweep reused from a
    table written before the column was recorded), so that one checkpoint is never in two recipes."""
    first = frame.groupby("checkpoint", sort=False, dropna=False)[column].transform("first")
    return frame[column].where(frame[column].notna(), first)


def recipes(frame: pd.DataFrame) -> pd.Series:
    """Each row's recipe (see ``recipe_labels``): the recorded ``recipe`` where that is one recipe of distinct
    training seeds, else (tables written before it was recorded, checkpoints without one) the checkpoint label,
    so each such checkpoint is a recipe of one seed."""
    return recipe_labels(frame)


def with_recipe(frame: pd.DataFrame) -> pd.DataFrame:
    """The table with a complete ``recipe`` column (see ``recipes``); the axes it records are kept."""
    out = frame.assign(recipe=recipes(frame))
    out.attrs = dict(frame.attrs)
    return out


def group_by(frame: pd.DataFrame, by: str = "auto") -> str:
    """'checkpoint' or 'recipe': what ``summarize(frame, by)`` groups by. 'auto' is 'recipe' when some recipe
    spans two or more checkpoints (training seeds; see ``recipe_labels``), else 'checkpoint'."""
    by = check_by(by)
    if by != "auto":
        return by
    if "recipe" not in frame or "checkpoint" not in frame:
        return "checkpoint"
    spans = frame.assign(recipe=recipes(frame)).groupby("recipe", dropna=False)["checkpoint"].nunique()
    return "recipe" if len(spans) and spans.max() >= 2 else "checkpoint"


def summarize(frame: pd.DataFrame, by: str = "auto") -> pd.DataFrame:
    """Mean, std, count and a 95 % interval of the score (each row's metric: ``value_column``; accuracy for older
    tables) per checkpoint (or recipe) × setting × time, and how the spread splits into training-seed, chip,
    programming and read parts.

    ``by``: 'checkpoint' (one group per checkpoint; sd_train is NaN), 'recipe' or 'auto' ('recipe' when some
    recipe spans two or more checkpoints, else 'checkpoint': see ``group_by``). By recipe the checkpoint column
    is replaced by ``recipe``; mean, std and the Student-t interval are over all training seeds × realizations
    (``count`` of them, as if independent), ``seeds`` is the number of checkpoints, ``sd_seed_means`` the std of
    the seeds' means and sd_train … sd_read come from ``seed_components`` (chip k of every seed uses the same
    noise stream, common random numbers, so sd_train is estimated from paired realizations)."""
    from scipy.stats import t as student_t

    check_realizations(frame)
    by = group_by(frame, by)
    keys = axis_columns(frame)
    if by == "recipe":
        frame = with_recipe(frame)
        keys = ["recipe" if c == "checkpoint" else c for c in keys] if "checkpoint" in keys else ["recipe", *keys]
    rows = []
    for values, part in frame.groupby(keys, sort=False, dropna=False):
        acc = part[value_column(part)]
        # Student's t: with n = 3 realizations the 95 % half-width is 4.30·s/√n, not 1.96·s/√n; an accuracy
        # lies in [0, 1], so is the interval; one realization has no spread to show (NaN, printed without ±)
        n, mean = len(acc), acc.mean()
        half = float(student_t.ppf(0.975, n - 1)) * acc.std() / math.sqrt(n) if n > 1 else math.nan
        clean = bool(clean_rows(part).iloc[0])
        row = {**dict(zip(keys, values, strict=True)), "time_s": part["time_s"].iloc[0],
               "clean": clean, "mean": mean, "std": acc.std() if n > 1 else math.nan, "count": n}
        if by == "recipe":
            row["seeds"] = int(part["checkpoint"].nunique())
        row.update({"ci95_low": max(_floor(part), mean - half) if n > 1 else math.nan,
                    "ci95_high": min(1.0, mean + half) if n > 1 else math.nan})
        if by == "recipe":
            parts = seed_components(part, clean)
            row.update({"sd_seed_means": parts.pop("sd_seed_means"), **parts})
        else:
            parts = variance_components(part)
            row.update({"sd_total": parts.pop("sd_total"), "sd_train": math.nan, **parts})
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary.attrs = {"axes": keys, "by": by}
    return summary


def varying(frame: pd.DataFrame) -> list[str]:
    """Axis columns other than checkpoint (or recipe) whose values differ between rows (σ, --set paths, time;
    ``layers`` only where one checkpoint was swept with several: else it is part of what each checkpoint is)."""
    out = []
    for c in axis_columns(frame):
        if c in ("checkpoint", "recipe") or frame[c].nunique(dropna=False) <= 1:
            continue
        who = next((w for w in ("checkpoint", "recipe") if w in frame), None)
        if c == "layers" and who is not None:
            if frame.groupby(who, sort=False, dropna=False)[c].nunique(dropna=False).max() <= 1:
                continue
        out.append(c)
    return out
