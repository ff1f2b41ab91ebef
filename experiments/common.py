"""What the experiment runners share: a sweep that is done once, whole, and skipped when it is done."""

from __future__ import annotations

import shutil
from pathlib import Path


def sweep_once(out: Path, ckpt: Path, **options) -> bool:
    """Sweep ``ckpt`` into ``out`` unless ``out`` holds a finished sweep (its summary.csv); a folder left unfinished
    is removed first and redone whole, so every cell in it comes from one noisesim version (0.3.0 changed the cell
    keys). True if it swept."""
    import noisesim

    if (out / "summary.csv").exists():
        return False
    if out.is_dir():
        shutil.rmtree(out)
    noisesim.sweep(ckpt=[str(ckpt)], out=str(out), **options)
    return True
