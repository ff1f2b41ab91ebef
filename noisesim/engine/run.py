"""Sweep engine: checkpoints × device profiles × parameter values × times × chips × programmings × reads.

Each cell programs the analog layers (frozen W plus the learned mean μ for weight-space methods; the
frozen W for activation-space GRASP, whose modulation runs digitally), lets a device profile realize
them for one (chip, programming, read) at one time, evaluates, and the original weights are put back
bit-exactly when the checkpoint is done. StochGRASP's learned σ is not used: the devices' noise
replaces it (paper Sec. IV-D). With an output folder, every finished cell is stored at once and a
rerun skips the cells already there (``results.py``); cells run in this process, in ``workers`` local
processes or as Ray tasks (``execute.py``).
"""

from __future__ import annotations

import math
import platform
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from noisesim import __version__
from noisesim.data import load_table
from noisesim.devices import format_time
from noisesim.engine.config import SweepConfig
from noisesim.engine.execute import check_ray, evaluate_cells, git_commit, preflight, run_local, run_ray
from noisesim.engine.grid import (
    axes_of,
    build_cells,
    build_settings,
    checkpoint_labels,
    data_fingerprint,
    expand_checkpoints,
    stored_labels,
    sweep_columns,
    sweep_metric,
)
from noisesim.engine.results import ResultsFolder, SweepResult, check_results_folder
from noisesim.errors import UserError
from noisesim.external import ExternalCheckpoint
from noisesim.hardware import device_label, resolve_device
from noisesim.metrics import chance_level

LEGACY = {"sigmas": "sigma", "profiles": "profile", "times": "time", "sets": "set"}  # API names of 0.1


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
    (``run(['sst2-stoch'], '0.01,0.02', programs=3)``). With ``out``, finished cells are stored in that folder
    as they complete and cells already there are not run again."""
    config = make_config(ckpts, sigmas, config, **options)
    device = resolve_device(config.device)  # a missing GPU is refused before anything is loaded or written
    notices = config.notices
    if config.backend == "ray":
        check_ray(config.ray_address)
    out = None if config.out is None else Path(config.out)
    if out is not None:
        check_results_folder(out)
    settings = build_settings(config, notices)
    loaded = expand_checkpoints(config.ckpt, config.twin, notices, config.layers)
    fingerprints, chances, where, metrics, columns = {}, {}, {}, {}, {}
    for source in config.data:
        columns[source], metrics[source] = sweep_columns(config, source), sweep_metric(config, source)
        table = load_table(source, columns[source])
        place = str(Path(source).resolve()) if Path(source).is_file() else source
        fingerprint = data_fingerprint(table)
        same = where.get(place) or next((s for s, f in fingerprints.items() if f == fingerprint
                                         and metrics[s] == metrics[source] and columns[s] == columns[source]), None)
        if same is not None:
            notices.append(f"--data {source!r} holds the same sentences and labels as {same!r}; evaluated once")
            continue
        where[place] = source
        labels = pd.Series(list(table["label"]))
        for ckpt in loaded:
            if labels.max() >= ckpt.meta.get("num_labels", 2):
                raise UserError(f"{source} has label {labels.max()} but checkpoint {ckpt.name!r} knows"
                                f" {ckpt.meta.get('num_labels', 2)} classes (labels must be 0 .. num_labels-1)")
            if metrics[source] == "f1" and ckpt.meta.get("num_labels", 2) > 2:
                raise UserError(f"metric f1 is binary F1, but checkpoint {ckpt.name!r} has"
                                f" {ckpt.meta.get('num_labels')} classes: give --metric f1-macro")
        fingerprints[source] = fingerprint
        chances[source] = chance_level(metrics[source], labels.to_numpy())
    store = ResultsFolder(out) if out is not None else None
    done = store.rows() if store is not None else {}  # also rejects a foreign or broken results table
    labels = checkpoint_labels(loaded)
    if done:
        labels = stored_labels(loaded, labels, done, out, notices)
    cells = build_cells(loaded, settings, config, fingerprints, notices, labels, device_type=device.type)
    axes = axes_of(config)
    if any(isinstance(c, ExternalCheckpoint) for c in loaded):  # another --layers is another setting of those
        axes.insert(axes.index("checkpoint") + 1, "layers")
    todo = [c for c in cells if c.key not in done]
    rows = {k: done[k] for k in (c.key for c in cells) if k in done}
    if todo:
        needed = {c.ckpt_path for c in todo}
        preflight([c for c in loaded if str(c.path) in needed], list(dict.fromkeys(c.data for c in todo)),
                  config.max_length, config.batch_size, (config.analog, config.analog_head), columns)
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), desc="sweep", unit="cell", disable=not progress,
               dynamic_ncols=True)

    def finished(row: dict) -> None:
        if store is not None:
            store.add(row)
        rows[row["key"]] = row
        bar.update()

    kw = {"max_length": config.max_length, "batch_size": config.batch_size, "seed": config.seed,
          "device": str(device), "dtype": config.dtype}
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
    frame["score"] = frame["score"].fillna(frame["accuracy"]) if "score" in frame else frame["accuracy"]
    # (rows stored before metrics: their accuracy; a cell of another metric has another key)
    frame = frame[[c for c in frame.columns if c in ROW_COLUMNS or c in axes]]
    frame.attrs = {"axes": axes}
    sources = list(fingerprints)
    chance = chances[sources[0]]
    label_of = {c.ckpt_path: c.checkpoint for c in cells}
    sha_of = {c.ckpt_path: c.provenance["checkpoint_sha256"] for c in cells}
    meta = {"noisesim_version": __version__, "git_commit": git_commit(), "torch": torch.__version__,
            "python": platform.python_version(), "config": config.model_dump(mode="json"), "notices": notices,
            "axes": axes, "data": sources[0] if len(sources) == 1 else sources,
            "data_sha256": fingerprints, "chance_by_data": chances, "chance": chance,
            "metric": metrics[sources[0]], "metric_by_data": {s: metrics[s] for s in sources},
            "columns_by_data": {s: columns[s].key() for s in sources if columns[s].key() is not None},
            "seed": config.seed,
            "chips": config.chips, "programs_per_chip": config.programs, "reads": config.reads,
            "times_s": config.time, "analog": config.analog, "analog_head": config.analog_head,
            "cells": len(cells), "cells_reused": len(cells) - len(todo),
            "backend": config.backend, "workers": config.workers, "device": device_label(device),
            "dtype": config.dtype,
            "settings": [{"profile": s.profile.name, "values": s.values, "source": s.profile.source,
                          "sha256": s.spec_hash, "clean": s.profile.noiseless} for s in settings],
            "checkpoints": {label_of[str(c.path)]: {"path": str(c.path), "method": c.method.method,
                                                    "sha256": sha_of[str(c.path)]} for c in loaded}}
    return SweepResult(frame, chance, meta, metric=metrics[sources[0]])


def axis_values(cell) -> dict:
    """The axis columns of one cell's row."""
    return {"data": cell.data, "metric": cell.metric, "checkpoint": cell.checkpoint, "layers": cell.layers,
            "analog": cell.analog_label,
            "profile": cell.profile_name,
            "sigma": cell.values.get("gaussian.sigma", math.nan),
            **{k: v for k, v in cell.values.items() if k != "gaussian.sigma"}, "time": format_time(cell.t)}


ROW_COLUMNS = ["key", "checkpoint", "method", "recipe", "recipe_id", "train_seed", "layers", "analog", "profile",
               "sigma",
               "time", "time_s", "chip", "program", "read", "seed", "clean", "accuracy", "metric", "score", "n", "data",
               "backbone",
               "checkpoint_path", "seconds", "checkpoint_sha256", "profile_sha256", "backbone_sha256", "data_sha256",
               "noisesim_version", "git_commit", "torch", "device", "dtype"]
