"""``noisesim sensitivity``: which layer, block or layer type costs most accuracy under a device setting.

A sensitivity run is a sweep (``engine.run``) of one checkpoint under one noise setting whose cells differ by their
``--analog`` selection: one selection per unit (``blockN.ROLE`` by layer, ``blockN`` by block, ``q`` … ``ff2`` by
type), the rest of the model clean. It uses the sweep's engine, cell keys, results store and resuming, so a killed
run continues where it stopped, and ``noisesim sweep --analog UNIT`` reuses (or cross-checks) its cells.

Per unit: the clean accuracy (the unit's σ = 0 / ideal cell), the mean noisy accuracy over the realizations
(chips × programmings × reads), the drop = clean − mean, the std over realizations and a Student-t 95 % interval of
the drop (the clean accuracy is one deterministic number).
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from noisesim.errors import UserError

BY = ("layer", "block", "type")
TABLE = "sensitivity.csv"
HEATMAP = "sensitivity.png"
SET_BY_SENSITIVITY = ("analog", "twin", "csv")  # options a sensitivity run sets itself


@dataclass
class SensitivityResult:
    """``table``: one row per unit (unit, block, type, layers, clean, mean, drop, std, count, drop_ci95_low,
    drop_ci95_high); ``sweep``: the underlying ``SweepResult``; ``paths``: the files written (with ``out``)."""

    table: pd.DataFrame
    sweep: object
    by: str
    setting: str
    title: str = ""
    paths: dict[str, Path] = field(default_factory=dict)


def check_by(by: object) -> str:
    if by not in BY:
        hint = difflib.get_close_matches(str(by), BY, n=1)
        raise UserError(f"--by {by!r} is not known" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        + f"; give one of {', '.join(BY)}")
    return by


def plan(ckpt, profile=None, sigma=None, *, by: str = "layer", out=None, **options):
    """The checked sweep config of a sensitivity run, its units and a text naming its noise setting."""
    from noisesim.engine.analog import units
    from noisesim.engine.config import SweepConfig, normalize_analog
    from noisesim.engine.execute import _backbone, build
    from noisesim.engine.grid import build_settings, read_checkpoint
    from noisesim.external import release
    from noisesim.hardware import resolve_device

    by = check_by(by)
    for name in SET_BY_SENSITIVITY:
        if name in options:
            raise UserError(f"sensitivity sets {name} itself (drop it" + (
                "; to evaluate one selection use noisesim sweep --analog)" if name == "analog" else
                ": it takes one checkpoint, never its twin)" if name == "twin" else
                ": it always writes sensitivity.csv with results.parquet)"))
    if profile is None and sigma is None:
        raise UserError("sensitivity needs a noise setting: give --sigma S (one value) or --profile P")
    base = SweepConfig.build(ckpt=ckpt, sigma=sigma, profile=profile, twin=False, out=out, **options)
    resolve_device(base.device)  # a missing GPU is refused before the backbone is loaded
    if len(base.ckpt) != 1:
        raise UserError(f"sensitivity takes one checkpoint (got {len(base.ckpt)}); run it once per checkpoint")
    if len(base.data) != 1:
        raise UserError(f"sensitivity takes one data set (got {len(base.data)}); run it once per data set")
    if len(base.time) != 1:
        raise UserError(f"sensitivity takes one time (got {len(base.time)}: give one --time value)")
    notices: list[str] = []
    settings = build_settings(base, notices)
    if base.sigma is not None:
        for s in settings:
            if s.values.get("gaussian.sigma") == 0 and not s.profile.noiseless:
                value = next(v for v in base.sigma if v > 0)
                where = [f"--set {k}={v}" for k, v in s.values.items() if k != "gaussian.sigma"]
                raise UserError(f"with --sigma, σ = 0 is the clean reference, but {s.profile.name!r} at σ = 0 still"
                                " has other noise or a periphery, so no unit would have a clean accuracy: give"
                                f" --profile {base.profile[0] if base.profile else 'gaussian'}"
                                f" --set gaussian.sigma={value:g}" + "".join(f" {w}" for w in where)
                                + " instead (the ideal profile is then the clean reference)")
    noisy = [s for s in settings if not s.profile.noiseless]
    if len(noisy) != 1:
        raise UserError(f"sensitivity takes one noise setting; these options give {len(noisy)} (give one --sigma"
                        " value, one --profile and one value per --set)")
    setting = noisy[0]
    shown = ", ".join(f"{k.removeprefix('gaussian.')}={v}" for k, v in setting.values.items())
    text = setting.profile.name + (f" ({shown})" if shown else "")
    if base.time[0] > 0:
        from noisesim.devices import format_time

        text += f" at {format_time(base.time[0])}"
    checkpoint = read_checkpoint(base.ckpt[0], base.layers)
    from noisesim.engine.grid import sweep_columns

    backbone, _ = _backbone(checkpoint, base.data[0], base.max_length, base.batch_size,
                            columns=sweep_columns(base, base.data[0]))
    model = build(checkpoint, backbone)
    try:
        rows = units(model.model, model.family, by)
    finally:
        release(model)
    selections = [u["unit"] for u in rows]
    if [normalize_analog(u) for u in selections] != selections:  # unit names are --analog's own spellings
        raise UserError(f"internal: sensitivity units {selections} are not --analog selections")
    return base.model_copy(update={"analog": selections}), rows, text


def sensitivity(ckpt, profile=None, sigma=None, *, by: str = "layer", out=None, progress: bool = True,
                **options) -> SensitivityResult:
    """Accuracy drop per layer (``by='layer'``), block (``'block'``) or layer type (``'type'``: q, k, v, o, ff1,
    ff2) of one checkpoint under one noise setting (one σ, or one profile with one value per ``set`` and one
    ``time``), each unit analog alone and the rest clean, over ``programs`` (× ``chips`` × ``reads``) realizations.
    Other options are the sweep's (``data``, ``layers``, ``analog_head``, ``seed``, ``workers``, ``max_length``,
    ``batch_size``, ``device``, ``dtype``, …). With ``out`` (a folder, or 'auto'), cells are stored and resumed as
    a sweep's, and sensitivity.csv is written there with results.parquet and sweep.json
    (``noisesim.api.sensitivity`` adds the heatmap sensitivity.png)."""
    from noisesim.engine.results import write_results
    from noisesim.engine.run import run
    from noisesim.textio import atomic_write

    if out == "auto":
        out = str(Path.cwd() / f"noisesim-sensitivity-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}")
    config, units, setting = plan(ckpt, profile, sigma, by=by, out=out, **options)
    result = run(config=config, progress=progress)
    table = drop_table(result.frame, units)
    title = f"{result.frame['checkpoint'].iloc[0]} under {setting}" + (
        "; the head analog in every unit" if config.analog_head else "")
    outcome = SensitivityResult(table, result, by, setting, title)
    if config.out is not None:
        from noisesim.engine.results import record_folder_axes

        folder = Path(config.out)
        record_folder_axes(result, folder)
        written = write_results(result, folder)
        paths = {"results": written["results"], "meta": written["meta"], "table": folder / TABLE}
        atomic_write(paths["table"], lambda p: table.to_csv(p, index=False))
        outcome.paths = paths  # the heatmap (HEATMAP) is drawn by noisesim.api.sensitivity, which adds its path
        result.paths = paths
    return outcome


def drop_table(frame: pd.DataFrame, units: list[dict]) -> pd.DataFrame:
    """One row per unit: its clean and mean noisy score (accuracy, or the data's metric: ``table.attrs['metric']``),
    the drop and its spread over the realizations."""
    from scipy.stats import t as student_t

    from noisesim.metrics import lower_bound
    from noisesim.stats import metric_of, value_column

    value, metric = value_column(frame), metric_of(frame)
    floor = lower_bound(metric) if metric != "mixed" else -1.0
    rows = []
    for unit in units:
        part = frame[frame["analog"].str.removesuffix("+head") == unit["unit"]]
        clean = part[part["clean"].astype(bool)][value]
        noisy = part[~part["clean"].astype(bool)][value]
        if len(clean) != 1 or not len(noisy):
            raise UserError(f"internal: unit {unit['unit']} has {len(clean)} clean and {len(noisy)} noisy rows")
        n, mean, ref = len(noisy), float(noisy.mean()), float(clean.iloc[0])
        sd = float(noisy.std()) if n > 1 else math.nan
        half = float(student_t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
        drop = ref - mean
        rows.append({**unit, "clean": ref, "mean": mean, "drop": drop, "std": sd, "count": n,
                     # an accuracy lies in [0, 1] (MCC in [-1, 1]), so a drop lies in [clean − 1, clean − floor]:
                     # so does its interval
                     "drop_ci95_low": max(drop - half, ref - 1), "drop_ci95_high": min(drop + half, ref - floor)})
    table = pd.DataFrame(rows)
    table.attrs = {"metric": metric}
    return table


def text_table(table: pd.DataFrame) -> str:
    """The table as printed: accuracies (or the metric's values, × 100) and drops in points."""
    metric = table.attrs.get("metric", "accuracy")
    suffix = " %" if metric == "accuracy" else f" {metric} ×100"
    shown = pd.DataFrame({
        "unit": table["unit"], "layers": table["layers"],
        f"clean{suffix}": [f"{100 * v:.2f}" for v in table["clean"]],
        f"noisy{suffix}": [f"{100 * v:.2f}" for v in table["mean"]],
        "drop (points)": [f"{100 * d:.2f}" if pd.isna(s) else f"{100 * d:.2f} ± {100 * s:.2f}"
                          for d, s in zip(table["drop"], table["std"], strict=True)],
        "95 % interval": ["" if pd.isna(lo) else f"[{100 * lo:.2f}, {100 * hi:.2f}]"
                          for lo, hi in zip(table["drop_ci95_low"], table["drop_ci95_high"], strict=True)],
        "n": table["count"]})
    return shown.to_string(index=False)
