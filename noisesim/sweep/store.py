"""Results store of a sweep folder: one row per cell, keyed by what determines the cell.

A finished cell is written at once as ``cells/<key>.json`` (temporary file, then an atomic rename),
so a sweep killed at any moment (even ``kill -9``) loses only the cells in flight. ``consolidate``
folds the cell files into ``results.parquet`` (again through an atomic rename) and then removes
them; a rerun reads both and skips every key already there.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from noisesim.errors import UserError

TABLE = "results.parquet"
CELLS = "cells"
REQUIRED = {"key", "checkpoint", "accuracy"}


def atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` on a temporary file next to ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultStore:
    """The ``results.parquet`` + ``cells/`` pair of one sweep folder."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.table = self.folder / TABLE
        self.cells = self.folder / CELLS

    def _read_table(self) -> pd.DataFrame:
        try:
            frame = pd.read_parquet(self.table)
        except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
            raise UserError(f"{self.table} is not a readable results table ({type(exc).__name__});"
                            " move it away or choose another --out") from None
        if not REQUIRED <= set(frame.columns):
            raise UserError(f"{self.table} is not a noisesim results table (it lacks"
                            f" {', '.join(sorted(REQUIRED - set(frame.columns)))}); choose another --out")
        return frame

    def rows(self) -> dict[str, dict]:
        """Every finished cell, by key (cell files win over the table: they are newer). Fails (UserError)
        if the folder is a file or holds a results table noisesim cannot read as its own."""
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"--out {self.folder} is a file, not a results folder")
        out: dict[str, dict] = {}
        if self.table.exists():
            for row in self._read_table().to_dict("records"):
                out[row["key"]] = row
        if self.cells.is_dir():
            for path in sorted(self.cells.glob("*.json")):
                try:
                    row = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError):
                    continue  # cannot happen through ``add``; a stray file is ignored
                out[row["key"]] = row
        return out

    def add(self, row: dict) -> None:
        self.cells.mkdir(parents=True, exist_ok=True)
        atomic_write(self.cells / f"{row['key']}.json", lambda p: p.write_text(json.dumps(row, default=_plain)))

    def consolidate(self, order: list[str] | None = None) -> pd.DataFrame:
        """Fold the cell files into results.parquet, the keys in ``order`` first (a sweep's grid order),
        then any others the folder holds; returns every row of the store."""
        rows = self.rows()
        first = [k for k in (order or []) if k in rows]
        keys = first + [k for k in rows if k not in set(first)]
        frame = pd.DataFrame([rows[k] for k in keys])
        if len(frame):
            table = frame.copy()
            for col in [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]:
                # parquet wants one type per column: mixed values (e.g. a --set axis of 1 and 'x') become text
                values = table[col].where(table[col].notna(), None)
                kinds = {type(v) for v in values if v is not None}
                table[col] = values.map(str).where(values.notna(), None) if len(kinds) > 1 else values
            atomic_write(self.table, lambda p: table.to_parquet(p, index=False))
        if self.cells.is_dir():
            # cell files are in the table now; *.tmp files are writes a killed process never finished
            for path in [*self.cells.glob("*.json"), *self.cells.glob(".*.tmp")]:
                path.unlink(missing_ok=True)
            if not any(self.cells.iterdir()):
                self.cells.rmdir()
        for path in self.folder.glob(f".{TABLE}.*.tmp"):
            path.unlink(missing_ok=True)
        return frame


def _plain(value):
    """JSON for numpy scalars."""
    return value.item() if hasattr(value, "item") else str(value)
