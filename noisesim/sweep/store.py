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
import tempfile
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from noisesim.errors import UserError
from noisesim.textio import unwritable

TABLE = "results.parquet"
CELLS = "cells"
LOCK = ".noisesim.lock"
MARKERS = (TABLE, CELLS, LOCK)  # a folder holding one of these is a noisesim results folder
REQUIRED = {"key", "checkpoint", "accuracy"}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it into place (with the
    permissions a plain new file gets under the umask)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_results_folder(folder: Path, flag: str = "--out") -> None:
    """Refuse a path that is a file, or a non-empty folder that noisesim did not write."""
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder} is a file, not a results folder (choose a new or empty folder)")
    if folder.is_dir():
        try:
            entries = [p.name for p in folder.iterdir()]
        except OSError as exc:
            raise UserError(f"{flag} {folder}: cannot read it ({exc.strerror}); choose another folder") from None
        meta = folder / "sweep.json"
        if meta.exists() and not (meta.is_file() and _written_by_noisesim(meta)):
            raise UserError(f"{flag} {folder} holds a sweep.json noisesim did not write; choose a new or empty folder")
        if entries and not any(name in entries for name in MARKERS):
            shown = ", ".join(sorted(entries)[:3]) + (", …" if len(entries) > 3 else "")
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


def check_writable(path: Path, flag: str = "--out") -> None:
    """Refuse now, not after the work, a path that cannot be written: under a file, read-only, /proc."""
    problem = unwritable(path)
    if problem:
        raise UserError(f"{flag} {Path(path).absolute()}: {problem} (choose another path)")


def row_problem(row: dict) -> str | None:
    """What is wrong with a stored row (None if nothing): a key, a checkpoint, an accuracy in [0, 1]."""
    acc = row.get("accuracy")
    if not isinstance(row.get("key"), str) or not row["key"]:
        return f"has key {row.get('key')!r}, not a cell key"
    if not isinstance(row.get("checkpoint"), str):
        return f"has checkpoint {row.get('checkpoint')!r}, not a name"
    if isinstance(acc, bool) or not isinstance(acc, numbers.Real) or not 0 <= acc <= 1:  # NaN fails the range
        return f"has accuracy {acc!r}, not a number in [0, 1]"
    return None


class ResultStore:
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


def check_output_file(text: str | Path, flag: str = "--out") -> Path:
    """A file path the user gave for a plot or report: not empty, not a folder, in a writable folder."""
    raw = str(text)
    path = Path(raw)
    if not raw.strip() or raw.endswith(("/", os.sep)) or path.name in ("", ".", "..") or path.is_dir():
        raise UserError(f"{flag} {raw!r} is a folder or empty; give a file path such as results/fig6")
    if not path.parent.exists():
        raise UserError(f"{flag} {raw}: the folder {path.parent} does not exist (create it, or choose another path)")
    check_writable(path.parent if path.exists() else path, flag)
    return path
