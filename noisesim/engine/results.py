"""Results store of a sweep folder: one row per cell, keyed by what determines the cell.

A finished cell is written at once as ``cells/<key>.json`` (temporary file, then an atomic rename),
so a sweep killed at any moment (even ``kill -9``) loses only the cells in flight. ``consolidate``
folds the cell files into ``results.parquet`` (again through an atomic rename) under a file lock and
then removes exactly the cell files it folded in, so two sweeps into one folder both keep every cell.
The table's axis columns are recorded in the parquet metadata (``axes``).
"""

from __future__ import annotations

import json
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from noisesim.configs import METRIC_NAMES
from noisesim.data import load_table
from noisesim.errors import UserError
from noisesim.metrics import chance_level
from noisesim.stats import axis_columns
from noisesim.textio import atomic_write, check_writable

TABLE = "results.parquet"
CELLS = "cells"
LOCK = ".noisesim.lock"
MARKERS = (TABLE, CELLS, LOCK)  # a folder holding one of these is a noisesim results folder
REQUIRED = {"key", "checkpoint", "accuracy"}


OWN_FILES = re.compile(r"^(results\.parquet|results\.csv|summary\.csv|sweep\.json|cells|\.noisesim\.lock"
                       r"|sensitivity\.csv|sensitivity\.png|accuracy_vs_[A-Za-z0-9._-]+\.png"
                       r"|plot_[A-Za-z0-9._-]+\.(png|svg|pdf)|\..+\.tmp)$")


def check_results_folder(folder: Path, flag: str = "--out") -> None:
    """Refuse a path that is a file, or a non-empty folder that noisesim did not write: a results folder holds
    noisesim's own sweep.json, or (a sweep killed before its first write of sweep.json) only the files a sweep
    writes, with nothing but cell files under cells/."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder} is a file, not a results folder (choose a new or empty folder)")
    if folder.is_dir():
        try:
            entries = [p.name for p in folder.iterdir()]
            cells = [p.name for p in (folder / CELLS).iterdir()] if (folder / CELLS).is_dir() else []
        except OSError as exc:
            raise UserError(f"{flag} {folder}: cannot read it ({exc.strerror}); choose another folder") from None
        meta = folder / "sweep.json"
        if meta.exists() and not (meta.is_file() and _written_by_noisesim(meta)):
            raise UserError(f"{flag} {folder} holds a sweep.json noisesim did not write; choose a new or empty folder")
        foreign = [] if meta.exists() else [n for n in entries if not OWN_FILES.match(n)]
        foreign += [f"{CELLS}/{n}" for n in cells if not re.match(r"^([^.].*\.json|\..+\.tmp)$", n)]
        if (folder / CELLS).exists() and not (folder / CELLS).is_dir():
            foreign.append(CELLS)
        if entries and (foreign or not any(name in entries for name in MARKERS)):
            listed = foreign or entries
            shown = ", ".join(sorted(listed)[:3]) + (", …" if len(listed) > 3 else "")
            raise UserError(f"{flag} {folder} holds files noisesim did not write ({shown}); choose a new or empty"
                            " folder (results are never mixed into a folder of other files)")
    check_writable(folder, flag)


def _written_by_noisesim(path: Path) -> bool:
    try:
        if path.stat().st_size > 64 << 20:
            return False
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and "noisesim_version" in meta and "cells" in meta


def row_problem(row: dict) -> str | None:
    """What is wrong with a stored row (None if nothing): a key, a checkpoint, an accuracy in [0, 1], a score (where
    there is one) in [-1, 1]."""
    acc = row.get("accuracy")
    if not isinstance(row.get("key"), str) or not row["key"]:
        return f"has key {row.get('key')!r}, not a cell key"
    if not isinstance(row.get("checkpoint"), str):
        return f"has checkpoint {row.get('checkpoint')!r}, not a name"
    if isinstance(acc, bool) or not isinstance(acc, numbers.Real) or not 0 <= acc <= 1:  # NaN fails the range
        return f"has accuracy {acc!r}, not a number in [0, 1]"
    score = row.get("score", 0.0)  # the metric's value (MCC lies in [-1, 1]); absent in tables before metrics
    if score is not None and (isinstance(score, bool) or not isinstance(score, numbers.Real)
                              or not -1 <= score <= 1):
        return f"has score {score!r}, not a number in [-1, 1]"
    return None


KEYS_SINCE = (0, 4, 0)  # the cell keys of this version on
KEY_CHANGES = {(0, 3, 0): "they hash the backbone's contents, not its file dates",
               (0, 4, 0): "evaluation batches are cut to pad at most 2 % (per-MVM noise draws follow the batches)"}


def _older(version, than: tuple[int, int, int]) -> bool:
    """True for a noisesim version (a stored row's ``noisesim_version``) older than ``than``."""
    if not isinstance(version, str):
        return False
    try:
        return tuple(int(p) for p in version.split(".")[:3]) < than
    except ValueError:
        return False


def _before_keys(version) -> bool:
    """True for a noisesim version older than ``KEYS_SINCE``."""
    return _older(version, KEYS_SINCE)


class ResultsFolder:
    """The ``results.parquet`` + ``cells/`` pair of one sweep folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.table = self.folder / TABLE
        self.cells = self.folder / CELLS

    def read_table(self) -> pd.DataFrame:
        """The consolidated table (empty when there is none); its axes are in ``frame.attrs['axes']``."""
        if not self.table.exists():
            return pd.DataFrame()
        try:
            frame = pd.read_parquet(self.table)
        except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
            raise UserError(f"{self.table} is not a readable results table ({type(exc).__name__});"
                            " move it away or choose another --out") from None
        if not REQUIRED <= set(frame.columns):
            raise UserError(f"{self.table} is not a noisesim results table (it lacks"
                            f" {', '.join(sorted(REQUIRED - set(frame.columns)))}); choose another --out")
        for i, row in enumerate(frame[list(REQUIRED)].to_dict("records")):
            problem = row_problem(row)
            if problem:
                raise UserError(f"{self.table}: row {i} {problem}; the table is damaged (move it away and rerun"
                                " the sweep)")
        return frame

    def _cell_files(self) -> dict[Path, dict]:
        found: dict[Path, dict] = {}
        if not self.cells.is_dir():
            return found
        for path in sorted(self.cells.glob("*.json")):
            try:
                row = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                row = None
            if not isinstance(row, dict) or row.get("key") != path.stem or not REQUIRED <= set(row):
                raise UserError(f"{path} is not a cell file written by noisesim; move it out of {self.cells}")
            problem = row_problem(row)
            if problem:
                raise UserError(f"{path}: {problem}; the cell file is damaged (delete it and rerun to redo the cell)")
            found[path] = row
        return found

    def rows(self) -> dict[str, dict]:
        """Every finished cell, by key (cell files win over the table: they are newer). Fails (UserError)
        if the folder is a file or holds a results table noisesim cannot read as its own."""
        check_results_folder(self.folder)
        out = {row["key"]: row for row in self.read_table().to_dict("records")}
        out.update({row["key"]: row for row in self._cell_files().values()})
        old = sorted({str(v) for row in out.values() if _before_keys(v := row.get("noisesim_version"))})
        if old:
            why = "; ".join(reason for since, reason in KEY_CHANGES.items() if _older(old[0], since))
            raise UserError(f"{self.folder} holds cells of noisesim {old[0]}, whose cell keys"
                            f" {'.'.join(map(str, KEYS_SINCE))} no longer makes ({why}): resuming would evaluate"
                            " every cell again beside the old ones; sweep into a fresh --out (old results still load)")
        return out

    def add(self, row: dict) -> None:
        """Store one finished cell (under the folder's lock, so a consolidation never sees it half-written)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self.lock():  # a consolidation may remove the empty cells folder until we hold the lock
            self.cells.mkdir(exist_ok=True)
            atomic_write(self.cells / f"{row['key']}.json", lambda p: p.write_text(json.dumps(row, default=_plain)))

    def lock(self) -> FileLock:
        return FileLock(self.folder / LOCK, timeout=600)

    def consolidate(self, order: list[str] | None = None, axes: list[str] | None = None) -> pd.DataFrame:
        """Fold the cell files into results.parquet, the keys in ``order`` first (a sweep's grid order), then
        any others the folder holds; ``axes`` joins the recorded axis columns. Returns every row."""
        if not self.folder.is_dir():
            return pd.DataFrame()
        try:
            with self.lock():
                return self._consolidate(order or [], axes or [])
        except Timeout:
            raise UserError(f"{self.folder} stayed locked by another sweep for 10 minutes; rerun this command"
                            " to fold in its cells") from None

    def _consolidate(self, order: list[str], axes: list[str]) -> pd.DataFrame:
        stored = self.read_table()
        files = self._cell_files()
        rows = {row["key"]: row for row in stored.to_dict("records")}
        rows.update({row["key"]: row for row in files.values()})
        first = [k for k in order if k in rows]
        keys = first + [k for k in rows if k not in set(first)]
        frame = pd.DataFrame([rows[k] for k in keys])
        recorded = list(dict.fromkeys([*stored.attrs.get("axes", []), *axes]))
        if len(frame) and files:
            table = frame.copy()
            for col in [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]:
                # parquet wants one type per column: mixed values (e.g. a --set axis of 1 and 'x') become text
                values = table[col].where(table[col].notna(), None)
                kinds = {type(v) for v in values if v is not None}
                table[col] = values.map(str).where(values.notna(), None) if len(kinds) > 1 else values
            table.attrs = {"axes": recorded}
            atomic_write(self.table, lambda p: table.to_parquet(p, index=False))
        for path in files:  # only what is in the table now: another sweep's newer cells stay
            path.unlink(missing_ok=True)
        if self.cells.is_dir():
            for path in self.cells.glob(".*.tmp"):  # writes a killed process never finished (we hold the lock)
                path.unlink(missing_ok=True)
            try:
                self.cells.rmdir()
            except OSError:
                pass  # not empty: cells another sweep is still writing
        for path in self.folder.glob(f".{TABLE}.*.tmp"):
            path.unlink(missing_ok=True)
        frame.attrs = {"axes": recorded}
        return frame


def _plain(value):
    """JSON for numpy scalars."""
    return value.item() if hasattr(value, "item") else str(value)


@dataclass
class SweepResult:
    frame: pd.DataFrame
    chance: float
    meta: dict = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)  # the files a sweep with ``out`` wrote
    metric: str = "accuracy"  # what ``chance`` and the rows' ``score`` measure (of the first data set)

    @property
    def axes(self) -> list[str]:
        return axis_columns(self.frame)


def load_results(folder: str | Path) -> SweepResult:
    """A written sweep (results.parquet or results.csv, plus sweep.json) back as a SweepResult."""
    if not isinstance(folder, str | os.PathLike) or not str(folder).strip():
        raise TypeError(f"folder must be a results folder path (str or Path), not {folder!r}")
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
        frame = ResultsFolder(folder).read_table()
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
    if "score" not in frame:  # a table written before metrics: every value is an accuracy
        frame["metric"], frame["score"] = "accuracy", frame["accuracy"]
    else:
        frame["metric"] = frame["metric"].fillna("accuracy")
        frame["score"] = pd.to_numeric(frame["score"], errors="coerce").fillna(frame["accuracy"])
    metric = meta.get("metric") if meta.get("metric") in METRIC_NAMES else str(frame["metric"].iloc[0])
    chance = meta.get("chance")
    if chance is None and "data" in frame:
        labels = pd.Series(list(load_table(frame["data"].iloc[0])["label"]))
        chance = chance_level(metric, labels.to_numpy())
    paths = {"results": folder / TABLE if (folder / TABLE).is_file() else folder / "results.csv"}
    if (folder / "sweep.json").is_file():
        paths["meta"] = folder / "sweep.json"
    return SweepResult(frame, chance, meta, paths, metric)


def write_results(result: SweepResult, out: Path, csv: bool = False) -> dict[str, Path]:
    """Write a sweep's table and provenance into ``out`` (each through an atomic rename): results.parquet (all
    cells of this sweep, unless the sweep already stored them there), results.csv when asked, sweep.json."""
    out = Path(out)
    check_results_folder(out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / TABLE).is_file():  # a sweep run without a store: write its table now
        table = ResultsFolder(out)
        for row in result.frame.to_dict("records"):
            table.add(row)
        table.consolidate(axes=result.axes)
    paths = {"results": out / TABLE}
    if csv:
        paths["csv"] = out / "results.csv"
        atomic_write(paths["csv"], lambda p: result.frame.to_csv(p, index=False))
    paths["meta"] = out / "sweep.json"
    atomic_write(paths["meta"], lambda p: p.write_text(json.dumps(result.meta, indent=2, default=str)))
    return paths


def record_folder_axes(result, out: Path) -> None:
    """``result.meta['axes']`` (what sweep.json records, and what ``report`` / ``plot`` group by) joined with the axes
    the folder's table already records: an earlier sweep into the folder may have had another axis (an ``--analog``
    selection, a ``--set`` path) whose rows are still there, and grouping without it would pool them (or refuse the
    folder as holding repeated cells)."""
    stored = ResultsFolder(out).read_table().attrs.get("axes") or []
    axes = list(result.meta.get("axes") or [])
    for i, axis in enumerate(stored):
        if axis not in axes:
            after = next((a for a in reversed(stored[:i]) if a in axes), None)
            axes.insert(axes.index(after) + 1 if after is not None else 0, axis)
    result.meta["axes"] = axes
