"""noisesim: accuracy of fine-tuned transformers whose weights live on noisy analog devices.

Top level, for notebooks: ``run_sweep`` (a sweep's table as a pandas DataFrame), ``summarize`` and
``plot``. ``noisesim.sweep`` is the sweep engine's package, so the function is ``run_sweep``;
``noisesim.api.sweep`` is the same call returning the full result and the written paths.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"


def run_sweep(ckpts, sigmas=None, **options):
    """Run a sweep (the options of ``noisesim.api.sweep``) and return its table: one row per cell."""
    from noisesim.api import sweep

    return sweep(ckpts, sigmas, **options)[0].frame


def summarize(frame):
    """Mean, std, count, 95 % interval and chip / programming / read spread per setting."""
    from noisesim.sweep import summarize as _summarize

    return _summarize(frame)


def plot(frame, x: str | None = None, path: str = "accuracy", hue: str = "checkpoint", col: str | None = None,
         chance: float | None = None):
    """Accuracy vs ``x`` ('sigma', 'time' or a --set path; default: what varies) → PATH.png and PATH.svg."""
    from noisesim.report import plot_axis, plot_grid
    from noisesim.sweep.store import check_output_file

    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file path (str), not {type(path).__name__}")
    stem = check_output_file(path, "path")
    return plot_grid(frame, stem, x=x or plot_axis(frame), hue=hue, col=col, chance=chance)
