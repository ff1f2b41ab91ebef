"""Sweep engine: checkpoints × device profiles × parameter values × times × chips × programmings × reads.

Each cell programs the analog layers (frozen W plus the learned mean μ for weight-space methods; the
frozen W for activation-space GRASP, whose modulation runs digitally), lets a device profile realize
them for one (chip, programming, read) at one time, evaluates, and the original weights are put back
bit-exactly when the checkpoint is done. StochGRASP's learned σ is not used: the devices' noise
replaces it (paper Sec. IV-D). Read noise redrawn per forward pass or per MVM runs as hooks on the
analog layers during the evaluation.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from tqdm.auto import tqdm

from noisesim import __version__, checkpoints
from noisesim.data import EvalBatches, encode, load_table
from noisesim.devices import Profile, RuntimeRead, format_time, load_profile, parse_time
from noisesim.errors import UserError
from noisesim.evaluate import accuracy
from noisesim.methods import AdapterLinear, adapters_of, remove
from noisesim.models import Backbone, load_backbone
from noisesim.seeds import generator

AXES = ["checkpoint", "profile", "sigma", "time"]  # plus one column per --set path (they contain a dot)
REALIZATION = ["chip", "program", "read"]


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


class ReadNoiseHook:
    """Read noise redrawn at run time on one analog layer.

    ``pass``: a fresh weight-space draw before every forward pass. ``mvm``: per token, the output-space
    equivalent y_j += ε_j·sqrt(Σ_i x_i² σ_ij²), which for σ that is constant per output is σ_j·‖x‖.
    """

    def __init__(self, adapter: AdapterLinear, realized: torch.Tensor, read: RuntimeRead, gen: torch.Generator):
        self.adapter, self.realized, self.read, self.gen = adapter, realized, read, gen
        self.std = read.var.sqrt()
        if read.per == "pass":
            self.scratch = torch.empty_like(realized)
            self.handle = adapter.base.register_forward_pre_hook(self._pass)
        else:
            self.var_t = None if read.per_output else read.var.t().contiguous()
            self.handle = adapter.base.register_forward_hook(self._mvm)

    def _pass(self, module, args):
        noise = torch.randn(self.realized.shape, generator=self.gen, dtype=self.realized.dtype)
        module.weight.data = torch.addcmul(self.realized, noise.to(self.realized.device), self.std, out=self.scratch)

    def _mvm(self, module, args, out):
        x = args[0]
        eps = torch.randn(out.shape, generator=self.gen, dtype=out.dtype).to(out.device)
        if self.var_t is None:  # σ_j·‖x‖: scale ε in place, no (tokens, out) temporary
            return out.addcmul_(eps.mul_(self.std[:, 0]), x.square().sum(-1, keepdim=True).sqrt_())
        return out.addcmul_(eps, (x.square() @ self.var_t).sqrt_())

    def remove(self):
        self.handle.remove()


class ProgrammedWeights:
    """Holds each analog layer's programmed weight and swaps device realizations in; restores exactly."""

    def __init__(self, adapters: dict[str, AdapterLinear]):
        self.adapters = adapters
        self.original = {n: a.base.weight.data for n, a in adapters.items()}
        self.programmed = {n: a.programmed_weight() for n, a in adapters.items()}
        self.work = {n: torch.empty_like(w) for n, w in self.programmed.items()}
        self.hooks: list[ReadNoiseHook] = []

    def realize(self, profile: Profile | float, t: float = 0.0, chip: int = 0, program: int = 0, read: int = 0,
                seed: int = 0) -> None:
        """Program every analog layer as one chip realizes it (a float is the paper's Gaussian σ)."""
        from noisesim.devices import gaussian

        profile = gaussian(profile) if isinstance(profile, int | float) else profile
        self.remove_hooks()
        for name, adapter in self.adapters.items():
            out = profile.realize(self.programmed[name], t, chip, program, read, seed, layer=name)
            buf = self.work[name].copy_(out.weight)
            adapter.base.weight.data = buf
            adapter.programmed = True
            if out.runtime_read is not None:
                gen = generator(seed, "read", chip, program, read, name, "runtime")
                self.hooks.append(ReadNoiseHook(adapter, buf, out.runtime_read, gen))

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def restore(self) -> None:
        self.remove_hooks()
        for name, adapter in self.adapters.items():
            adapter.base.weight.data = self.original[name]
            adapter.programmed = False


@dataclass
class SweepResult:
    frame: pd.DataFrame
    chance: float
    meta: dict = field(default_factory=dict)


def run(ckpts: list[str], sigmas=None, seeds: int = 3, data: str = "sst2-dev", twin: bool = True,
        batch_size: int = 64, max_length: int = 128, progress: bool = True, profiles: list[str] | None = None,
        times: str | list | None = None, chips: int = 1, reads: int = 1, sets: list[str] | dict | None = None,
        seed: int = 0) -> SweepResult:
    """Evaluate every checkpoint under every device setting and time, over chips × ``seeds``
    programmings per chip × reads. Noise-free settings (σ = 0, the ideal profile) are evaluated once."""
    for flag, value in (("--seeds", seeds), ("--chips", chips), ("--reads", reads)):
        if value < 1:
            raise UserError(f"{flag} {value} must be >= 1")
    time_list = parse_times(times)
    settings = build_settings(profiles, sigmas, parse_sets(sets), time_list)
    table = load_table(data)
    loaded = expand_checkpoints(list(ckpts), twin)
    labels = pd.Series(list(table["label"]))
    for ckpt in loaded:
        if labels.max() >= ckpt.meta.get("num_labels", 2):
            raise UserError(f"{data} has label {labels.max()} but checkpoint {ckpt.name!r} knows"
                            f" {ckpt.meta.get('num_labels', 2)} classes (labels must be 0 .. num_labels-1)")
    grid = []  # (setting, time, chip, program, read)
    for setting in settings:
        if setting.profile.noiseless:
            grid.append((setting, 0.0, 0, 0, 0))
            continue
        for chip, program in itertools.product(range(chips), range(seeds)):
            for t in time_list:
                grid.extend((setting, t, chip, program, r) for r in range(reads))
    backbones: dict[tuple, Backbone] = {}  # one loaded backbone (and tokenised data) per kind
    batches: dict[tuple, EvalBatches] = {}
    rows = []
    bar = tqdm(total=len(loaded) * len(grid), desc="sweep", unit="cell", disable=not progress, dynamic_ncols=True)
    for ckpt in loaded:
        backbone_id = ckpt.meta["backbone"]
        kind = (backbone_id, ckpt.meta.get("num_labels", 2), ckpt.meta.get("pooling", "mean"))
        if kind not in backbones:
            backbones[kind] = load_backbone(backbone_id, num_labels=kind[1], pooling=kind[2])
            tok = backbones[kind].tokenizer
            batches[kind] = EvalBatches.build(encode(table, tok, max_length, str(data)), tok.pad_token_id, batch_size)
        backbone = checkpoints.build(ckpt, backbones[kind])
        weights = ProgrammedWeights(adapters_of(backbone.model))
        try:
            for setting, t, chip, program, read in grid:
                start = time.perf_counter()
                weights.realize(setting.profile, t, chip, program, read, seed)
                acc = accuracy(backbone.model, batches[kind])
                rows.append({"checkpoint": ckpt.name, "method": ckpt.method.method, "profile": setting.profile.name,
                             "sigma": setting.values.get("gaussian.sigma", math.nan),
                             **{k: v for k, v in setting.values.items() if k != "gaussian.sigma"},
                             "time": format_time(t), "time_s": t, "chip": chip, "program": program, "read": read,
                             "seed": seed, "accuracy": acc, "n": len(table), "data": str(data),
                             "backbone": backbone_id, "seconds": round(time.perf_counter() - start, 3)})
                bar.update()
        finally:
            weights.restore()
            remove(backbone)
    bar.close()
    used = {s.profile.name: s.profile for s in settings}
    meta = {"noisesim_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "data": str(data), "seed": seed, "chips": chips, "programs_per_chip": seeds, "reads": reads,
            "times_s": time_list, "axes": {k: v for k, v in parse_sets(sets).items()},
            "sigmas": parse_sigmas(sigmas) if sigmas is not None else None,
            "profiles": {n: {"source": p.source, "sha256": p.sha256} for n, p in used.items()},
            "checkpoints": {c.name: {"path": str(c.path), "sha256": file_hash(c.path / checkpoints.WEIGHTS),
                                     "method": c.method.method} for c in loaded}}
    meta["chance"] = float(labels.value_counts(normalize=True).max())
    return SweepResult(pd.DataFrame(rows), meta["chance"], meta)


def load(folder: str | Path) -> SweepResult:
    """A written sweep (results.csv + sweep.json) back as a SweepResult."""
    folder = Path(folder)
    if not (folder / "results.csv").is_file():
        raise UserError(f"{folder} holds no results.csv (give a folder written by noisesim sweep)")
    meta = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").is_file() else {}
    frame = pd.read_csv(folder / "results.csv")
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


def save(result: SweepResult, out: Path) -> dict[str, Path]:
    """Write results.csv, summary.csv, the plot and sweep.json into a new folder (all or nothing)."""
    from noisesim.report import plot_accuracy, plot_axis

    out = Path(out)
    x = plot_axis(result.frame)
    names = {"results": "results.csv", "summary": "summary.csv", "plot": f"accuracy_vs_{x}.png",
             "meta": "sweep.json"}
    tmp = out.with_name(f".{out.name}.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    result.frame.to_csv(tmp / names["results"], index=False)
    summarize(result.frame).to_csv(tmp / names["summary"], index=False)
    plot_accuracy(result.frame, tmp / names["plot"], chance=result.chance, x=x)
    (tmp / names["meta"]).write_text(json.dumps(result.meta, indent=2))
    if out.exists():
        for f in tmp.iterdir():
            f.replace(out / f.name)
        tmp.rmdir()
    else:
        tmp.rename(out)
    return {k: out / n for k, n in names.items()}
