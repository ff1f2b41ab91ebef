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
from noisesim.errors import UserError
from noisesim.sweep.execute import check_ray, evaluate_cells, git_commit, run_local, run_ray
from noisesim.sweep.grid import (
    AXES,
    Cell,
    Setting,
    build_cells,
    build_settings,
    data_fingerprint,
    expand_checkpoints,
    parse_sets,
    parse_sigmas,
    parse_times,
)
from noisesim.sweep.realize import ProgrammedWeights, ReadNoiseHook
from noisesim.sweep.store import ResultStore, atomic_write

BACKENDS = ("local", "ray")


@dataclass
class SweepResult:
    frame: pd.DataFrame
    chance: float
    meta: dict = field(default_factory=dict)


def run(ckpts: list[str], sigmas=None, seeds: int = 3, data: str | list[str] = "sst2-dev", twin: bool = True,
        batch_size: int = 64, max_length: int = 128, progress: bool = True, profiles: list[str] | None = None,
        times: str | list | None = None, chips: int = 1, reads: int = 1, sets: list[str] | dict | None = None,
        seed: int = 0, out: str | Path | None = None, workers: int = 1, backend: str = "local",
        ray_address: str | None = None) -> SweepResult:
    """Evaluate every checkpoint on every data set under every device setting and time, over chips ×
    ``seeds`` programmings per chip × reads (noise-free settings once). With ``out``, finished cells are stored
    in that folder as they complete and cells already there are not run again."""
    for flag, value in (("--seeds", seeds), ("--chips", chips), ("--reads", reads), ("--workers", workers)):
        if value < 1:
            raise UserError(f"{flag} {value} must be >= 1")
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "ray":
        check_ray(ray_address)
    time_list = parse_times(times)
    axes = parse_sets(sets)
    settings = build_settings(profiles, sigmas, axes, time_list)
    sources = [str(d) for d in (data if isinstance(data, list | tuple) else [data])]
    if not sources:
        raise UserError("no data given (use --data sst2-dev or a TSV/CSV file)")
    loaded = expand_checkpoints(list(ckpts), twin)
    fingerprints, chances = {}, {}
    for source in dict.fromkeys(sources):
        table = load_table(source)
        labels = pd.Series(list(table["label"]))
        for ckpt in loaded:
            if labels.max() >= ckpt.meta.get("num_labels", 2):
                raise UserError(f"{source} has label {labels.max()} but checkpoint {ckpt.name!r} knows"
                                f" {ckpt.meta.get('num_labels', 2)} classes (labels must be 0 .. num_labels-1)")
        fingerprints[source] = data_fingerprint(table)
        chances[source] = float(labels.value_counts(normalize=True).max())
    store = ResultStore(out) if out is not None else None
    done = store.rows() if store is not None else {}  # also rejects a foreign or broken results table
    cells = build_cells(loaded, settings, time_list, chips, seeds, reads, seed, fingerprints,
                        {"max_length": max_length, "batch_size": batch_size})
    todo = [c for c in cells if c.key not in done]
    rows = {k: done[k] for k in (c.key for c in cells) if k in done}
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="sweep", unit="cell", disable=not progress,
               dynamic_ncols=True)

    def finished(row: dict) -> None:
        if store is not None:
            store.add(row)
        rows[row["key"]] = row
        bar.update()

    kw = {"max_length": max_length, "batch_size": batch_size, "seed": seed}
    try:
        if backend == "ray":
            run_ray(todo, ray_address, finished, **kw)
        elif workers > 1 and len(todo) > 1:
            run_local(todo, workers, finished, **kw)
        else:
            for row in evaluate_cells(todo, **kw):
                finished(row)
    finally:
        bar.close()
        if store is not None:
            store.consolidate(order=[c.key for c in cells])
    frame = pd.DataFrame([rows[c.key] for c in cells])
    # rows read back from a shared store carry other sweeps' --set columns: keep only this sweep's axes
    frame = frame.drop(columns=[c for c in frame.columns if "." in c and c not in axes])
    used = {s.profile.name: s.profile for s in settings}
    chance = chances[sources[0]]
    meta = {"noisesim_version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "data": sources[0] if len(sources) == 1 else sources,
            "data_sha256": fingerprints, "chance_by_data": chances, "seed": seed, "chips": chips,
            "programs_per_chip": seeds, "reads": reads, "times_s": time_list, "axes": axes,
            "sigmas": parse_sigmas(sigmas) if sigmas is not None else None, "chance": chance,
            "cells": len(cells), "cells_reused": len(cells) - len(todo), "backend": backend,
            "workers": workers, "profiles": {n: {"source": p.source, "sha256": p.sha256} for n, p in used.items()},
            "checkpoints": {c.name: {"path": str(c.path), "sha256": cells_hash(cells, c.name),
                                     "method": c.method.method} for c in loaded}}
    return SweepResult(frame, chance, meta)


def cells_hash(cells: list[Cell], name: str) -> str:
    return next(c.provenance["checkpoint_sha256"] for c in cells if c.checkpoint == name)


def load(folder: str | Path) -> SweepResult:
    """A written sweep (results.parquet or results.csv, plus sweep.json) back as a SweepResult."""
    folder = Path(folder)
    if (folder / "results.parquet").is_file():
        frame = ResultStore(folder)._read_table()
    elif (folder / "results.csv").is_file():
        frame = pd.read_csv(folder / "results.csv")
    else:
        raise UserError(f"{folder} holds no results.parquet or results.csv (give a folder written by noisesim sweep)")
    if not {"checkpoint", "accuracy"} <= set(frame.columns):
        raise UserError(f"{folder}: the results table lacks checkpoint / accuracy columns (not a noisesim sweep)")
    meta = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else {}
    chance = meta.get("chance")
    if chance is None and "data" in frame:
        labels = pd.Series(list(load_table(frame["data"].iloc[0])["label"]))
        chance = float(labels.value_counts(normalize=True).max())
    return SweepResult(frame, chance, meta)


def axis_columns(frame: pd.DataFrame) -> list[str]:
    """The columns that define a group of realizations: checkpoint, profile, σ, each --set path, time."""
    return [c for c in frame.columns if c in AXES or "." in c]


def variance_components(part: pd.DataFrame) -> dict[str, float]:
    """Nested (chip ⊃ programming ⊃ read) method-of-moments estimate of each level's accuracy std.

    Read: the mean within-programming variance; programming: the variance of programming means within
    a chip minus the read share; chip: the variance of chip means minus the lower levels' shares
    (clipped at 0; NaN where a level has a single value, and for chips when each chip was programmed
    once, since chip and programming variation are then confounded).
    """
    acc = part["accuracy"]
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
    out = {"sd_total": float(acc.std()) if len(acc) > 1 else 0.0}
    for name, var in (("sd_chip", chip), ("sd_program", program), ("sd_read", read)):
        out[name] = math.nan if math.isnan(var) else math.sqrt(max(var, 0.0))
    return out


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, count and a 95 % interval of accuracy per checkpoint × setting × time, and how the
    spread splits into chip, programming and read parts."""
    keys = axis_columns(frame)
    rows = []
    for values, part in frame.groupby(keys, sort=False, dropna=False):
        acc = part["accuracy"]
        half = 1.96 * acc.std() / math.sqrt(len(acc)) if len(acc) > 1 else 0.0
        rows.append({**dict(zip(keys, values, strict=True)), "time_s": part["time_s"].iloc[0],
                     "mean": acc.mean(), "std": acc.std() if len(acc) > 1 else 0.0, "count": len(acc),
                     "ci95_low": acc.mean() - half, "ci95_high": acc.mean() + half, **variance_components(part)})
    return pd.DataFrame(rows)


def save(result: SweepResult, out: Path, csv: bool = False) -> dict[str, Path]:
    """Write the sweep's files into ``out`` (each through an atomic rename): results.parquet (all cells of
    this sweep), results.csv when asked, summary.csv, the plot and sweep.json."""
    from noisesim.report import plot_accuracy, plot_axis

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    x = plot_axis(result.frame)
    paths = {"summary": out / "summary.csv", "plot": out / f"accuracy_vs_{x}.png", "meta": out / "sweep.json"}
    if not (out / "results.parquet").is_file():  # a sweep run without a store: write its table now
        table = ResultStore(out)
        for row in result.frame.to_dict("records"):
            table.add(row)
        table.consolidate()
    paths = {"results": out / "results.parquet", **paths}
    if csv:
        paths["csv"] = out / "results.csv"
        atomic_write(paths["csv"], lambda p: result.frame.to_csv(p, index=False))
    atomic_write(paths["summary"], lambda p: summarize(result.frame).to_csv(p, index=False))
    atomic_write(paths["plot"], lambda p: plot_accuracy(result.frame, p, chance=result.chance, x=x, fmt="png"))
    atomic_write(paths["meta"], lambda p: p.write_text(json.dumps(result.meta, indent=2, default=str)))
    return paths


__all__ = ["AXES", "ProgrammedWeights", "ReadNoiseHook", "Setting", "SweepResult", "load", "parse_sets",
           "parse_sigmas", "parse_times", "run", "save", "summarize", "variance_components"]
