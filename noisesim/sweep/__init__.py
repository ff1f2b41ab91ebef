"""Sweep engine: checkpoints × device profiles × parameter values × times × chips × programmings × reads.

Each cell programs the analog layers (frozen W plus the learned mean μ for weight-space methods; the
frozen W for activation-space GRASP, whose modulation runs digitally), lets a device profile realize
them for one (chip, programming, read) at one time, evaluates, and the original weights are put back
bit-exactly when the checkpoint is done. StochGRASP's learned σ is not used: the devices' noise
replaces it (paper Sec. IV-D). With an output folder, every finished cell is stored at once and a
rerun skips the cells already there (``store.py``); cells run in this process, in ``workers`` local
processes or as Ray tasks (``execute.py``).
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from noisesim import __version__
from noisesim.data import load_table
from noisesim.devices import format_time
from noisesim.errors import UserError
from noisesim.sweep.config import SweepConfig, load_sweep_config, parse_sets, parse_sigmas, parse_times
from noisesim.sweep.execute import check_ray, evaluate_cells, git_commit, preflight, run_local, run_ray
from noisesim.sweep.grid import (
    AXES,
    Setting,
    axes_of,
    build_cells,
    build_settings,
    data_fingerprint,
    expand_checkpoints,
)
from noisesim.sweep.realize import ProgrammedWeights, ReadNoiseHook
from noisesim.sweep.store import ResultStore, atomic_write, check_results_folder

LEGACY = {"sigmas": "sigma", "profiles": "profile", "times": "time", "sets": "set"}  # API names of 0.1


@dataclass
class SweepResult:
    frame: pd.DataFrame
    chance: float
    meta: dict = field(default_factory=dict)

    @property
    def axes(self) -> list[str]:
        return axis_columns(self.frame)


def make_config(ckpts=None, sigmas=None, config: SweepConfig | None = None, **options) -> SweepConfig:
    """A SweepConfig from one, or from options named as the CLI's (``profiles=`` etc. are accepted too)."""
    if config is not None:
        if ckpts is not None or sigmas is not None or options:
            raise UserError("give either a SweepConfig or options, not both")
        if not isinstance(config, SweepConfig):
            raise TypeError(f"config must be a SweepConfig, got {type(config).__name__}")
        return config
    for old, new in {**LEGACY, "ckpts": "ckpt"}.items():
        if old in options:
            if new in options:
                raise UserError(f"both {old}= and {new}= given (use {new}=)")
            options[new] = options.pop(old)
    for name, value in (("ckpt", ckpts), ("sigma", sigmas)):
        if value is not None:
            if options.get(name) is not None:
                raise UserError(f"{name} is given twice: as an argument and as {name}= (give it once)")
            options[name] = value
    return SweepConfig.build(**options)


def run(ckpts: list[str] | str | None = None, sigmas=None, *, config: SweepConfig | None = None,
        progress: bool = True, **options) -> SweepResult:
    """Evaluate every checkpoint on every data set under every device setting and time, over chips ×
    programmings per chip × reads (noise-free settings once). Takes a ``SweepConfig`` or its options
    (``run(['sst2-stoch'], '0.01,0.02', seeds=3)``). With ``out``, finished cells are stored in that folder
    as they complete and cells already there are not run again."""
    config = make_config(ckpts, sigmas, config, **options)
    notices = config.notices
    if config.backend == "ray":
        check_ray(config.ray_address)
    out = None if config.out is None else Path(config.out)
    if out is not None:
        check_results_folder(out)
    settings = build_settings(config, notices)
    loaded = expand_checkpoints(config.ckpt, config.twin, notices)
    fingerprints, chances, where = {}, {}, {}
    for source in config.data:
        table = load_table(source)
        place = str(Path(source).resolve()) if Path(source).is_file() else source
        fingerprint = data_fingerprint(table)
        same = where.get(place) or next((s for s, f in fingerprints.items() if f == fingerprint), None)
        if same is not None:
            notices.append(f"--data {source!r} holds the same sentences and labels as {same!r}; evaluated once")
            continue
        where[place] = source
        labels = pd.Series(list(table["label"]))
        for ckpt in loaded:
            if labels.max() >= ckpt.meta.get("num_labels", 2):
                raise UserError(f"{source} has label {labels.max()} but checkpoint {ckpt.name!r} knows"
                                f" {ckpt.meta.get('num_labels', 2)} classes (labels must be 0 .. num_labels-1)")
        fingerprints[source] = fingerprint
        chances[source] = float(labels.value_counts(normalize=True).max())
    store = ResultStore(out) if out is not None else None
    done = store.rows() if store is not None else {}  # also rejects a foreign or broken results table
    cells = build_cells(loaded, settings, config, fingerprints, notices)
    axes = axes_of(config)
    todo = [c for c in cells if c.key not in done]
    rows = {k: done[k] for k in (c.key for c in cells) if k in done}
    if todo:
        needed = {c.ckpt_path for c in todo}
        preflight([c for c in loaded if str(c.path) in needed], list(dict.fromkeys(c.data for c in todo)),
                  config.max_length, config.batch_size)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="sweep", unit="cell", disable=not progress,
               dynamic_ncols=True)

    def finished(row: dict) -> None:
        if store is not None:
            store.add(row)
        rows[row["key"]] = row
        bar.update()

    kw = {"max_length": config.max_length, "batch_size": config.batch_size, "seed": config.seed}
    try:
        if config.backend == "ray":
            run_ray(todo, config.ray_address, finished, **kw)
        elif config.workers > 1 and len(todo) > 1:
            run_local(todo, config.workers, finished, **kw)
        else:
            for row in evaluate_cells(todo, **kw):
                finished(row)
    finally:
        bar.close()
        if store is not None:
            store.consolidate(order=[c.key for c in cells], axes=axes)
    # a reused row keeps its numbers but takes this sweep's axis values: the same device may have been reached
    # through other --set values before (programming.scale=1 is the profile's default)
    frame = pd.DataFrame([{**rows[c.key], **axis_values(c)} for c in cells])
    if "clean" not in frame:  # rows stored by noisesim 0.1
        frame["clean"] = [c.clean for c in cells]
    frame = frame[[c for c in frame.columns if c in ROW_COLUMNS or c in axes]]
    frame.attrs = {"axes": axes}
    sources = list(fingerprints)
    chance = chances[sources[0]]
    label_of = {c.ckpt_path: c.checkpoint for c in cells}
    sha_of = {c.ckpt_path: c.provenance["checkpoint_sha256"] for c in cells}
    meta = {"noisesim_version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "config": config.model_dump(mode="json"), "notices": notices,
            "axes": axes, "data": sources[0] if len(sources) == 1 else sources,
            "data_sha256": fingerprints, "chance_by_data": chances, "chance": chance, "seed": config.seed,
            "chips": config.chips, "programs_per_chip": config.seeds, "reads": config.reads,
            "times_s": config.time, "cells": len(cells), "cells_reused": len(cells) - len(todo),
            "backend": config.backend, "workers": config.workers,
            "settings": [{"profile": s.profile.name, "values": s.values, "source": s.profile.source,
                          "sha256": s.spec_hash, "clean": s.profile.noiseless} for s in settings],
            "checkpoints": {label_of[str(c.path)]: {"path": str(c.path), "method": c.method.method,
                                                    "sha256": sha_of[str(c.path)]} for c in loaded}}
    return SweepResult(frame, chance, meta)


def axis_values(cell) -> dict:
    """The axis columns of one cell's row."""
    return {"data": cell.data, "checkpoint": cell.checkpoint, "profile": cell.profile_name,
            "sigma": cell.values.get("gaussian.sigma", math.nan),
            **{k: v for k, v in cell.values.items() if k != "gaussian.sigma"}, "time": format_time(cell.t)}


ROW_COLUMNS = ["key", "checkpoint", "method", "profile", "sigma", "time", "time_s", "chip", "program", "read", "seed",
               "clean", "accuracy", "n", "data", "backbone", "seconds", "checkpoint_sha256", "profile_sha256",
               "backbone_sha256", "data_sha256", "noisesim_version", "git_commit", "torch", "device"]


def load(folder: str | Path) -> SweepResult:
    """A written sweep (results.parquet or results.csv, plus sweep.json) back as a SweepResult."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder} holds no results.parquet or results.csv (it is not a folder; give a folder"
                        " written by noisesim sweep)")
    meta = {}
    if (folder / "sweep.json").is_file():
        try:
            meta = json.loads((folder / "sweep.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise UserError(f"{folder / 'sweep.json'} is not readable JSON (move it away or rerun the sweep)") from None
        if not isinstance(meta, dict):
            raise UserError(f"{folder / 'sweep.json'} is not a noisesim sweep.json (rerun the sweep)")
    if (folder / "results.parquet").is_file():
        frame = ResultStore(folder).read_table()
    elif (folder / "results.csv").is_file():
        try:
            frame = pd.read_csv(folder / "results.csv")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise UserError(f"{folder / 'results.csv'} is not readable ({str(exc).splitlines()[0][:120]})") from None
    else:
        raise UserError(f"{folder} holds no results.parquet or results.csv (give a folder written by noisesim sweep)")
    if not {"checkpoint", "accuracy"} <= set(frame.columns) or not len(frame):
        raise UserError(f"{folder}: the results table lacks rows or checkpoint / accuracy columns (not a noisesim"
                        " sweep)")
    accuracy = pd.to_numeric(frame["accuracy"], errors="coerce")
    bad = ~accuracy.between(0, 1)  # NaN is not between
    if bad.any():
        raise UserError(f"{folder}: row {int(bad.idxmax())} of the results table has accuracy"
                        f" {frame['accuracy'][bad].iloc[0]!r}, not a number in [0, 1] (the table is damaged;"
                        " rerun the sweep into a new --out)")
    axes = meta.get("axes") or frame.attrs.get("axes")
    if isinstance(axes, list) and all(isinstance(a, str) for a in axes):
        frame.attrs = {"axes": [a for a in axes if a in frame.columns]}
    chance = meta.get("chance")
    if chance is None and "data" in frame:
        labels = pd.Series(list(load_table(frame["data"].iloc[0])["label"]))
        chance = float(labels.value_counts(normalize=True).max())
    return SweepResult(frame, chance, meta)


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


def save(result: SweepResult, out: Path, csv: bool = False) -> dict[str, Path]:
    """Write the sweep's files into ``out`` (each through an atomic rename): results.parquet (all cells of
    this sweep), results.csv when asked, summary.csv, the plot and sweep.json."""
    from noisesim.report import plot_accuracy, plot_axis

    out = Path(out)
    check_results_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    x = plot_axis(result.frame)
    paths = {"summary": out / "summary.csv", "plot": out / f"accuracy_vs_{x}.png", "meta": out / "sweep.json"}
    if not (out / "results.parquet").is_file():  # a sweep run without a store: write its table now
        table = ResultStore(out)
        for row in result.frame.to_dict("records"):
            table.add(row)
        table.consolidate(axes=result.axes)
    paths = {"results": out / "results.parquet", **paths}
    if csv:
        paths["csv"] = out / "results.csv"
        atomic_write(paths["csv"], lambda p: result.frame.to_csv(p, index=False))
    atomic_write(paths["summary"], lambda p: summarize(result.frame).to_csv(p, index=False))
    atomic_write(paths["plot"], lambda p: plot_accuracy(result.frame, p, chance=result.chance, x=x, fmt="png"))
    atomic_write(paths["meta"], lambda p: p.write_text(json.dumps(result.meta, indent=2, default=str)))
    return paths


__all__ = ["AXES", "ProgrammedWeights", "ReadNoiseHook", "Setting", "SweepConfig", "SweepResult", "axis_columns",
           "check_realizations", "clean_rows", "load", "load_sweep_config", "make_config", "parse_sets",
           "parse_sigmas", "parse_times", "run", "save", "summarize", "variance_components"]
