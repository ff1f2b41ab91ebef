"""Sweep engine: checkpoints × σ × seeds → one tidy row per cell.

Each cell programs the analog layers (frozen W plus the learned mean μ for weight-space
methods; the frozen W for activation-space GRASP, whose modulation runs digitally), adds one
noise realization held for the whole evaluation pass, evaluates, and the original weights are
put back bit-exactly when the checkpoint is done. StochGRASP's learned σ is not used: the
injected σ replaces it (paper Sec. IV-D).
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from noisesim import __version__, checkpoints
from noisesim.data import EvalBatches, encode, load_table
from noisesim.devices import GaussianNoise
from noisesim.errors import UserError
from noisesim.evaluate import accuracy
from noisesim.methods import AdapterLinear, adapters_of, remove
from noisesim.models import Backbone, load_backbone
from noisesim.seeds import generator


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


class ProgrammedWeights:
    """Holds each analog layer's programmed weight and swaps noisy copies in; restores exactly."""

    def __init__(self, adapters: dict[str, AdapterLinear]):
        self.adapters = adapters
        self.original = {n: a.base.weight.data for n, a in adapters.items()}
        self.programmed = {n: a.programmed_weight() for n, a in adapters.items()}
        self.work = {n: torch.empty_like(w) for n, w in self.programmed.items()}

    def realize(self, sigma: float, seed: int) -> None:
        """Program every analog layer with one noise realization (seed stream ``noise``, keyed by layer)."""
        noise = GaussianNoise(sigma)
        for name, adapter in self.adapters.items():
            buf = self.work[name].copy_(self.programmed[name])
            noise.apply_(buf, generator(seed, "noise", name))
            adapter.base.weight.data = buf
            adapter.programmed = True

    def restore(self) -> None:
        for name, adapter in self.adapters.items():
            adapter.base.weight.data = self.original[name]
            adapter.programmed = False


@dataclass
class SweepResult:
    frame: pd.DataFrame
    chance: float
    meta: dict = field(default_factory=dict)


def run(ckpts: list[str], sigmas: str | list[float], seeds: int = 3, data: str = "sst2-dev",
        twin: bool = True, batch_size: int = 64, max_length: int = 128, progress: bool = True) -> SweepResult:
    """Evaluate every checkpoint at every σ (σ=0 once, other σ over ``seeds`` realizations)."""
    sigma_list = parse_sigmas(sigmas)
    if seeds < 1:
        raise UserError(f"--seeds {seeds} must be >= 1")
    table = load_table(data)
    loaded = expand_checkpoints(list(ckpts), twin)
    labels = pd.Series(list(table["label"]))
    for ckpt in loaded:
        if labels.max() >= ckpt.meta.get("num_labels", 2):
            raise UserError(f"{data} has label {labels.max()} but checkpoint {ckpt.name!r} knows"
                            f" {ckpt.meta.get('num_labels', 2)} classes (labels must be 0 .. num_labels-1)")
    grid = [(s, seed) for s in sigma_list for seed in ([0] if s == 0 else range(seeds))]
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
            for sigma, seed in grid:
                start = time.perf_counter()
                weights.realize(sigma, seed)
                acc = accuracy(backbone.model, batches[kind])
                rows.append({"checkpoint": ckpt.name, "method": ckpt.method.method, "sigma": sigma, "seed": seed,
                             "accuracy": acc, "n": len(table), "data": str(data), "backbone": backbone_id,
                             "seconds": round(time.perf_counter() - start, 3)})
                bar.update()
        finally:
            weights.restore()
            remove(backbone)
    bar.close()
    meta = {"noisesim_version": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "data": str(data), "seeds": seeds, "sigmas": sigma_list,
            "checkpoints": {c.name: {"path": str(c.path), "sha256": file_hash(c.path / checkpoints.WEIGHTS),
                                     "method": c.method.method} for c in loaded}}
    return SweepResult(pd.DataFrame(rows), float(labels.value_counts(normalize=True).max()), meta)


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of accuracy per checkpoint × σ."""
    grouped = frame.groupby(["checkpoint", "sigma"], sort=False)["accuracy"]
    out = grouped.agg(["mean", "std", "count"]).reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def save(result: SweepResult, out: Path) -> dict[str, Path]:
    """Write results.csv, summary.csv, accuracy_vs_sigma.png and sweep.json into a new folder."""
    from noisesim.report import plot_accuracy

    out = Path(out)
    tmp = out.with_name(f".{out.name}.partial")
    tmp.mkdir(parents=True, exist_ok=True)
    result.frame.to_csv(tmp / "results.csv", index=False)
    summarize(result.frame).to_csv(tmp / "summary.csv", index=False)
    plot_accuracy(result.frame, tmp / "accuracy_vs_sigma.png", chance=result.chance)
    (tmp / "sweep.json").write_text(json.dumps(result.meta, indent=2))
    if out.exists():
        for f in tmp.iterdir():
            f.replace(out / f.name)
        tmp.rmdir()
    else:
        tmp.rename(out)
    return {n: out / n for n in ("results.csv", "summary.csv", "accuracy_vs_sigma.png", "sweep.json")}
