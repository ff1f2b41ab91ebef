"""Python API behind the CLI: each function returns data; none prints."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import torch

from noisesim import checkpoints
from noisesim.data import load_table
from noisesim.errors import UserError
from noisesim.methods import MethodConfig, check_method, inject
from noisesim.models import DEFAULT_BACKBONE, load_backbone
from noisesim.sweep import SweepResult, run, save, summarize
from noisesim.training import TrainConfig, TrainResult, sigma_values, train


def train_checkpoint(out: str, method: MethodConfig, config: TrainConfig, model: str = DEFAULT_BACKBONE,
                     twin: str | None = None, pooling: str = "mean",
                     progress: bool = True) -> tuple[Path, TrainResult, dict]:
    """Train a method on a backbone and write the best checkpoint; returns (folder, result, meta)."""
    check_method(method.method)
    folder = checkpoints.out_folder(out)
    load_table(config.eval_data)  # fail on bad data before the backbone is loaded
    num_labels = max(2, max(load_table(config.train_data)["label"]) + 1)
    backbone = load_backbone(model, num_labels=num_labels, seed=config.seed, pooling=pooling)
    inject(backbone, method)
    result = train(backbone, config, sigma_init=method.sigma_init, progress=progress)
    if result.best_step == 0:
        raise UserError("training stopped before its first selectable evaluation; nothing written"
                        " (let it run past --eval-every steps and the σ warm-up)")
    backbone.model.load_state_dict(result.state, strict=False)
    sig = sigma_values(backbone)
    meta = {
        "backbone": model,
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


def sweep(ckpts: list[str], sigmas=None, seeds: int = 3, data: str | list[str] = "sst2-dev", twin: bool = True,
          out: str | Path | None = None, progress: bool = True, profiles: list[str] | None = None,
          times: str | list | None = None, chips: int = 1, reads: int = 1, sets: list[str] | dict | None = None,
          seed: int = 0, csv: bool = False, workers: int = 1, backend: str = "local",
          ray_address: str | None = None) -> tuple[SweepResult, dict[str, Path] | None]:
    """Run a sweep; with ``out`` (a folder, or 'auto') store every cell there as it finishes, skip cells
    already stored, and write the summary, plot and sweep.json. Returns (result, written paths).

    ``sigmas`` sweeps the paper's Gaussian noise; ``profiles`` names device profiles (``pcm``, a YAML
    path); ``times`` ('1s,1h,1d,1y'), ``chips`` × ``seeds`` programmings per chip × ``reads`` are the
    realizations; ``sets`` ({'programming.scale': [0.5, 1, 2]} or ['programming.scale=0.5,1,2'])
    sweeps profile parameters; ``workers`` local processes or ``backend='ray'`` run the cells."""
    if out == "auto":
        out = Path.cwd() / f"noisesim-sweep-{datetime.now():%Y%m%d-%H%M%S}"
    result = run(ckpts, sigmas, seeds=seeds, data=data, twin=twin, progress=progress, profiles=profiles,
                 times=times, chips=chips, reads=reads, sets=sets, seed=seed, out=out, workers=workers,
                 backend=backend, ray_address=ray_address)
    if out is None:
        return result, None
    return result, save(result, Path(out), csv=csv)


SWEEP_KEYS = {"ckpt": (str, list), "sigma": (str, float, list), "profile": (str, list), "time": (str, list),
              "set": (list, dict), "chips": int, "seeds": int, "reads": int, "seed": int, "data": (str, list),
              "twin": bool, "out": str, "csv": bool, "workers": int, "backend": str, "ray_address": str}


def load_sweep_config(path: str | Path) -> dict:
    """A sweep described in YAML (keys as the CLI's options: ckpt, sigma, profile, time, set, chips, seeds,
    reads, seed, data, twin, out, csv, workers, backend, ray_address)."""
    import difflib

    import yaml

    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read it ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"--config {path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(config, dict):
        raise UserError(f"--config {path}: must be a YAML mapping of sweep options ({', '.join(SWEEP_KEYS)})")
    for key, value in config.items():
        if key not in SWEEP_KEYS:
            hint = difflib.get_close_matches(str(key), SWEEP_KEYS, n=1)
            raise UserError(f"--config {path}: unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f"; allowed: {', '.join(SWEEP_KEYS)}")
        kinds = SWEEP_KEYS[key] if isinstance(SWEEP_KEYS[key], tuple) else (SWEEP_KEYS[key],)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise UserError(f"--config {path}: {key} must be {' or '.join(k.__name__ for k in kinds)},"
                            f" got {value!r}")
    for key in ("ckpt", "profile"):
        if isinstance(config.get(key), str):
            config[key] = [config[key]]
    if isinstance(config.get("sigma"), list | float):
        items = config["sigma"] if isinstance(config["sigma"], list) else [config["sigma"]]
        config["sigma"] = ",".join(str(v) for v in items)
    if isinstance(config.get("time"), list):
        config["time"] = ",".join(str(v) for v in config["time"])
    return config


__all__ = ["load_sweep_config", "summarize", "sweep", "train_checkpoint"]
