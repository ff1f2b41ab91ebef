"""Sweep grid: parsing the axes, device settings, checkpoints (with twins), and the cells they span."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from noisesim import checkpoints
from noisesim.devices import Profile, load_profile, parse_time
from noisesim.errors import UserError

AXES = ["data", "checkpoint", "profile", "sigma", "time"]  # plus one column per --set path (they contain a dot)


def parse_sigmas(text: str | list[float]) -> list[float]:
    """'0.01,0.02' → [0.0, 0.01, 0.02]: finite, non-negative, sorted, with σ=0 (clean) added."""
    items = text if isinstance(text, list) else [x.strip() for x in str(text).split(",") if x.strip()]
    values = []
    for item in items:
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise UserError(f"σ value {item!r} is not a number (give e.g. --sigma 0.01,0.02,0.05)") from None
        if not math.isfinite(value) or value < 0:
            raise UserError(f"σ value {item!r} must be a finite number >= 0 (give e.g. --sigma 0.01,0.02,0.05)")
        values.append(value)
    return sorted(set(values) | {0.0})


def parse_times(text: str | list | None) -> list[float]:
    """'1s,1h,1d,1y' → seconds, sorted; None → [0.0] (read right after programming)."""
    if text is None:
        return [0.0]
    items = text if isinstance(text, list) else [x.strip() for x in str(text).split(",") if x.strip()]
    try:
        return sorted({parse_time(item) for item in items}) or [0.0]
    except ValueError as exc:
        raise UserError(f"--time: {exc}") from None


def parse_sets(items: list[str] | dict | None) -> dict[str, list[Any]]:
    """['programming.scale=0.5,1,2'] → {'programming.scale': [0.5, 1, 2]} (values read as YAML scalars)."""
    if not items:
        return {}
    if isinstance(items, dict):
        return {k: list(v) if isinstance(v, list | tuple) else [v] for k, v in items.items()}
    out: dict[str, list[Any]] = {}
    for item in items:
        path, sep, values = item.partition("=")
        if not sep or not path.strip() or "." not in path or not values.strip():
            raise UserError(f"--set {item!r}: give COMPONENT.FIELD=V1,V2,… (e.g. --set programming.scale=0.5,1,2)")
        out[path.strip()] = [yaml.safe_load(v.strip()) for v in values.split(",") if v.strip()]
    return out


@dataclass
class Setting:
    """One device configuration: a profile with some parameters set (the axis values of its rows)."""

    profile: Profile
    values: dict[str, Any]


def build_settings(profiles: list[str] | None, sigmas, sets: dict[str, list[Any]],
                   times: list[float]) -> list[Setting]:
    """Every profile × every combination of --sigma / --set values; a clean reference comes first."""
    if sigmas is not None and not profiles:
        profiles = ["gaussian"]
    if not profiles:
        raise UserError("nothing to sweep: give --sigma LIST (Gaussian weight noise) or --profile NAME")
    loaded = [load_profile(p) for p in profiles]
    axes = dict(sets)
    if sigmas is not None:
        axes["gaussian.sigma"] = parse_sigmas(sigmas)
    settings: list[Setting] = []
    if sigmas is None:  # the clean reference of a device sweep
        settings.append(Setting(load_profile("ideal"), {}))
    for profile in loaded:
        if sigmas is not None and "gaussian" not in [c.key for c in profile.components]:
            raise UserError(f"--sigma needs a profile with a gaussian component; {profile.name!r} has none"
                            " (sweep its own parameters with --set COMPONENT.FIELD=V1,V2)")
        if any(t > 0 for t in times) and not profile.has_drift:
            raise UserError(f"--time needs a profile with a drift component; {profile.name!r} has none"
                            " (its weights do not change with time)")
        for combo in itertools.product(*axes.values()):
            values = dict(zip(axes, combo, strict=True))
            settings.append(Setting(profile.with_values(values) if values else profile, values))
    return settings


def expand_checkpoints(names: list[str], twin: bool = True) -> list[checkpoints.Checkpoint]:
    """Read the checkpoints; add each one's deterministic twin unless listed or ``twin`` is off."""
    if not names:
        raise UserError(f"no checkpoint given (use --ckpt NAME; known: {', '.join(checkpoints.known_checkpoints())})")
    loaded = [checkpoints.read(n) for n in names]
    seen = {c.path.resolve() for c in loaded}
    for ckpt in list(loaded):
        if twin and ckpt.twin:
            try:
                other = checkpoints.read(ckpt.twin)
            except UserError:
                raise UserError(f"twin {ckpt.twin!r} of checkpoint {ckpt.name!r} is not available"
                                " (train it, or pass --no-twin)") from None
            if other.path.resolve() not in seen:
                loaded.append(other)
                seen.add(other.path.resolve())
    return loaded


def file_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@dataclass
class Cell:
    """One evaluation: a checkpoint under one device setting, at one time, for one (chip, programming, read).

    Plain data (the profile travels as its validated YAML mapping), so it can go to another process.
    """

    index: int
    checkpoint: str
    ckpt_path: str
    profile_name: str
    profile_data: dict
    values: dict
    t: float
    chip: int
    program: int
    read: int
    key: str = ""
    provenance: dict = field(default_factory=dict)
    data: str = "sst2-dev"

    def profile(self) -> Profile:
        return Profile(self.profile_data, f"<{self.profile_name}>", name=self.profile_name)


def build_cells(loaded: list[checkpoints.Checkpoint], settings: list[Setting], times: list[float], chips: int,
                programs: int, reads: int, seed: int, data: dict[str, str], eval_config: dict) -> list[Cell]:
    """Every data set × checkpoint × setting × chip × programming × time × read, in a fixed order, each keyed
    by a hash of what determines its number (checkpoint weights, profile content, time, seeds, data content,
    batching); noise-free settings get a single cell. ``data`` maps each data set to its fingerprint."""
    cells: list[Cell] = []
    hashes = {ckpt.name: file_hash(ckpt.path / checkpoints.WEIGHTS) for ckpt in loaded}
    for source, data_hash in data.items():
        for ckpt in loaded:
            for setting in settings:
                profile = setting.profile
                if profile.noiseless:
                    grid = [(0.0, 0, 0, 0)]
                else:
                    grid = [(t, c, p, r) for c, p in itertools.product(range(chips), range(programs))
                            for t in times for r in range(reads)]
                for t, chip, program, read in grid:
                    what = [hashes[ckpt.name], profile.sha256, t, chip, program, read, seed, data_hash, eval_config]
                    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:20]
                    cells.append(Cell(len(cells), ckpt.name, str(ckpt.path), profile.name, profile.data,
                                      setting.values, t, chip, program, read, key,
                                      {"checkpoint_sha256": hashes[ckpt.name], "profile_sha256": profile.sha256},
                                      source))
    return cells


def data_fingerprint(table) -> str:
    """Content hash of a labelled table (sentences and labels), so a changed file is a new sweep."""
    digest = hashlib.sha256()
    for sentence, label in zip(table["sentence"], table["label"], strict=True):
        digest.update(f"{sentence}\x1f{label}\n".encode())
    return digest.hexdigest()[:16]
