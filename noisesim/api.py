"""Python API behind the CLI: each function returns data; none prints."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import torch

from noisesim import checkpoints
from noisesim.data import load_table
from noisesim.errors import UserError
from noisesim.methods import MethodConfig, inject
from noisesim.models import DEFAULT_BACKBONE, load_backbone, resolve_backbone
from noisesim.sweep import SweepConfig, SweepResult, load_sweep_config, make_config, run, save, summarize
from noisesim.training import TrainConfig, TrainResult, sigma_values, train


def train_checkpoint(out: str, method: MethodConfig, config: TrainConfig, model: str = DEFAULT_BACKBONE,
                     twin: str | None = None, pooling: str = "mean",
                     progress: bool = True) -> tuple[Path, TrainResult, dict]:
    """Train a method on a backbone and write the best checkpoint; returns (folder, result, meta).

    Everything that can be checked is checked before training: the target (``out`` must be new, empty
    or a checkpoint, and not a shipped name), the twin (an existing checkpoint), the data."""
    if not isinstance(method, MethodConfig):
        raise TypeError(f"method must be a MethodConfig, got {type(method).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if pooling not in ("mean", "cls"):
        raise UserError(f"pooling={pooling!r} is not known (use mean or cls)")
    folder = checkpoints.out_folder(out)
    if twin is not None:
        if not isinstance(twin, str):
            raise TypeError(f"twin must be a checkpoint name or path (str), got {type(twin).__name__}")
        twin_path = checkpoints.read(twin).path  # must exist and be valid, before any training
        if twin_path.resolve() == folder.resolve():
            raise UserError(f"--twin {twin!r} is the checkpoint being written: a checkpoint cannot be its own twin")
        # a store name stays a name; a path is kept absolute, so it resolves from anywhere
        twin = twin if twin_path.parent in checkpoints.stores() else str(twin_path.resolve())
    load_table(config.eval_data)  # fail on bad data before the backbone is loaded
    num_labels = max(2, max(load_table(config.train_data)["label"]) + 1)
    with checkpoints.claim(folder):
        return _train_and_write(folder, method, config, model, twin, pooling, progress, num_labels)


def _train_and_write(folder: Path, method: MethodConfig, config: TrainConfig, model: str, twin: str | None,
                     pooling: str, progress: bool, num_labels: int) -> tuple[Path, TrainResult, dict]:
    backbone = load_backbone(model, num_labels=num_labels, seed=config.seed, pooling=pooling)
    inject(backbone, method)
    result = train(backbone, config, sigma_init=method.sigma_init, progress=progress)
    if result.best_step == 0:
        raise UserError("training stopped before its first selectable evaluation; nothing written"
                        " (let it run past --eval-every steps and the σ warm-up)")
    backbone.model.load_state_dict(result.state, strict=False)
    sig = sigma_values(backbone)
    meta = {
        # a local folder is stored by its absolute path: a relative one would name another model elsewhere
        "backbone": str(Path(model).resolve()) if resolve_backbone(model) == model and Path(model).exists() else model,
        "num_labels": backbone.model.num_labels,
        "pooling": backbone.model.head.pooling,
        "method": method.to_dict(),
        "training": config.to_dict(),
        "dev_accuracy": result.dev_accuracy,
        "best_step": result.best_step,
        "trainable_parameters": result.trainable,
        "total_parameters": result.total,
        "percent_trainable": round(result.percent_trainable, 4),
        "train_seconds": round(result.seconds, 1),
        "history": result.history,
        "twin": twin if twin else None,
        "interrupted": result.interrupted,
    }
    if len(sig):
        meta["sigma_learned"] = sigma_summary(sig)
    return checkpoints.write(folder, result.state, meta), result, meta


def sigma_summary(sig: torch.Tensor) -> dict[str, float]:
    """Mean, std and quantiles of the learned σ (all group parameters of all layers)."""
    probs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=sig.dtype)
    quantiles = torch.quantile(sig, probs) if len(sig) <= 2**24 else torch.sort(sig).values[
        (probs * (len(sig) - 1)).long()]
    return {"mean": float(sig.mean()), "std": float(sig.std()),
            **{f"q{round(100 * float(p)):02d}": float(v) for p, v in zip(probs, quantiles, strict=True)}}


def sweep(ckpts: list[str] | str | None = None, sigmas=None, *, config: SweepConfig | None = None,
          progress: bool = True, **options) -> tuple[SweepResult, dict[str, Path] | None]:
    """Run a sweep given as a ``SweepConfig`` or as its options (the CLI's names: ckpt, sigma, profile, time,
    set, chips, seeds, reads, seed, data, twin, out, csv, workers, backend, ray_address, max_length,
    batch_size). With ``out`` (a folder, or 'auto') every cell is stored there as it finishes, cells already
    stored are skipped, and the summary, plot and sweep.json are written. Returns (result, written paths)."""
    config = make_config(ckpts, sigmas, config, **options)
    if config.out == "auto":
        stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
        config = config.model_copy(update={"out": str(Path.cwd() / f"noisesim-sweep-{stamp}")})
    result = run(config=config, progress=progress)
    if config.out is None:
        return result, None
    return result, save(result, Path(config.out), csv=config.csv)


__all__ = ["load_sweep_config", "summarize", "sweep", "train_checkpoint"]
