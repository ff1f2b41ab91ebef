"""The public Python API; the CLI is a thin layer over it. Every function returns data and prints nothing
(progress bars aside).

- ``train(out, method=..., steps=...)`` fine-tunes a backbone and writes a checkpoint; ``train_seeds`` does so
  for several training seeds of one recipe;
- ``sweep(config | **options)`` evaluates checkpoints under device noise (``SweepConfig`` lists the options);
- ``load_results(folder)`` reads a written sweep back; ``summarize(frame, by=...)`` gives its statistics (per
  checkpoint, or per recipe over its training seeds);
- ``plot(results, ...)`` draws accuracy against σ, time or a profile parameter.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch

from noisesim import checkpoints
from noisesim.configs import DEFAULT_BACKBONE, MethodConfig, TrainConfig, check_effective, parse_train_noise
from noisesim.data import load_table
from noisesim.devices import load_profile
from noisesim.engine.config import SweepConfig, load_sweep_config
from noisesim.engine.results import SweepResult, load_results, record_folder_axes, write_results
from noisesim.engine.run import make_config, run
from noisesim.errors import UserError
from noisesim.hardware import check_dtype, device_label, resolve_device
from noisesim.methods import inject
from noisesim.models import load_backbone, resolve_backbone
from noisesim.plots import check_formats, default_hue, default_stem, plot_axis, plot_grid
from noisesim.stats import check_by
from noisesim.stats import summarize as summarize_frame
from noisesim.textio import atomic_write, expand_user
from noisesim.training import TrainResult, data_columns, sigma_values
from noisesim.training import train as train_loop


def train(out: str, method: MethodConfig | str | None = None, config: TrainConfig | None = None, *,
          model: str = DEFAULT_BACKBONE, twin: str | None = None, pooling: str = "mean", progress: bool = True,
          recipe: str | None = None, device: str = "auto", dtype: str = "float32",
          **options) -> tuple[Path, TrainResult, dict]:
    """Fine-tune a backbone with a method and write the best dev checkpoint to ``out`` (a name in the user
    store or a folder); returns (folder, result, meta).

    Give the settings as configs (``MethodConfig``, ``TrainConfig``) or as options named like the CLI's
    (``train("mine", method="stochgrasp", k=64, steps=2000)``; ``lam`` is ``--lambda``, ``train_data``
    is ``--data``); an unknown option, or one that cannot take effect for the method (``k`` for LoRA), is a
    UserError. The defaults are the recipe of the shipped ``sst2-stoch``. Everything that can be checked is
    checked before training: the target (new, empty or a checkpoint, not a shipped name), the twin (an existing
    checkpoint), the data, the training noise. ``recipe`` names the recipe this run is one training seed of
    (default: the checkpoint's name); sweeps group checkpoints of one recipe. ``device`` (auto, cpu, cuda, cuda:N)
    is where it trains, ``dtype`` bf16 opts into mixed precision; both are recorded in the checkpoint's config, not
    in its recipe. ``train_seeds`` trains a recipe with several seeds."""
    plan = _plan(out, method, config, options, model=model, twin=twin, pooling=pooling, recipe=recipe,
                 device=device, dtype=dtype)
    with checkpoints.claim(plan.folder):
        return _train_and_write(plan, progress)


@dataclass
class _Plan:
    """A checked training run: where it writes and everything it needs."""

    folder: Path
    method: MethodConfig
    config: TrainConfig
    model: str
    twin: str | None
    pooling: str
    num_labels: int
    recipe: str
    device: str = "cpu"
    dtype: str = "float32"
    notes: list[str] = field(default_factory=list)


def _plan(out, method, config, options: dict, *, model: str, twin: str | None, pooling: str,
          recipe: str | None, device: str = "auto", dtype: str = "float32") -> _Plan:
    """Every check ``train`` makes before it loads anything."""
    device = str(resolve_device(device))
    check_dtype(dtype)
    method, config = _configs(method, config, options)
    check_effective(method, config)
    if recipe is not None and (not isinstance(recipe, str) or not recipe.strip() or len(recipe) > 200
                               or not recipe.isprintable()):
        raise UserError(f"recipe={recipe!r} must be a non-empty printable name of at most 200 characters")
    if recipe is not None and recipe in checkpoints.shipped_names():
        raise UserError(f"recipe {recipe!r} is the name of a shipped checkpoint, which a sweep would pool with it:"
                        " choose another recipe name")
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
    columns = data_columns(config)
    dev = load_table(config.eval_data, columns(config.eval_data))  # fail on bad data before the backbone is loaded
    table = load_table(config.train_data, columns(config.train_data))
    named = columns(config.train_data).labels
    num_labels = max(2, len(named) if named is not None else 0, max(table["label"]) + 1)
    if max(dev["label"]) >= num_labels:
        raise UserError(f"--eval-data {config.eval_data} has label {max(dev['label'])}, but the training data"
                        f" {config.train_data} give {num_labels} classes (labels 0 .. {num_labels - 1})")
    if config.metric == "f1" and num_labels > 2:
        raise UserError(f"metric f1 is binary F1, but the data have {num_labels} classes: give --metric f1-macro")
    notes = []
    if config.train_noise is not None and (noise := parse_train_noise(config.train_noise))[0] == "profile":
        profile = load_profile(noise[1])  # a missing or invalid profile fails now, not at the first step
        if profile.periphery is not None:
            notes.append(f"--train-noise {config.train_noise}: training realizes the profile's weights only; its"
                         f" periphery ({', '.join(profile.periphery.parts)}) acts at evaluation, not in training")
    return _Plan(folder, method, config, model, twin, pooling, num_labels, recipe or folder.name, device, dtype,
                 notes)


def seed_names(out: str | os.PathLike, seeds: list[int]) -> list[str]:
    """``OUT-s0``, ``OUT-s1``, …: store names for a store name, paths (kept paths) for a path."""
    if not isinstance(out, str | os.PathLike):
        raise TypeError(f"out must be a recipe name or folder path (str), got {type(out).__name__}")
    text = os.fspath(out)
    if not text.strip():
        raise UserError("--out is empty: give a recipe name (e.g. my-run) or a folder path (e.g. ./runs/my-run)")
    if not checkpoints.is_path(out):
        return [f"{text}-s{seed}" for seed in seeds]
    base = expand_user(text)
    if base.name in ("", ".", ".."):
        raise UserError(f"--out {text!r} names a folder, not a recipe: give a name (e.g. ./runs/my-run)")
    return [str(p) if p.is_absolute() else f"./{p}" for p in (base.parent / f"{base.name}-s{seed}" for seed in seeds)]


def train_seeds(out: str | os.PathLike, seeds, method: MethodConfig | str | None = None,
                config: TrainConfig | None = None, *, recipe: str | None = None, progress: bool = True,
                **options) -> list[tuple[Path, TrainResult, dict]]:
    """Train one recipe with each training seed in ``seeds``: checkpoints ``OUT-s0``, ``OUT-s1``, … (names in the
    user store, or paths, as ``out`` is), each recording the recipe (``recipe``, default OUT's name) so that a
    sweep summarises them together (mean ± std over seeds × realizations, ``sd_train``). Options as for
    ``train``; the seeds replace ``seed``. Every target, the twin and the data are checked, and every target
    claimed, before the first run; Ctrl-C stops after the seed it interrupts (its best checkpoint is kept)."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list | tuple) or not seeds or any(
            isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < 2**63 for x in seeds):
        raise UserError(f"seeds={seeds!r} must be a list of training seeds (integers from 0 to 2**63 - 1)")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds={list(seeds)} repeats a seed: each seed is trained once")
    if "seed" in options or (config is not None and config.seed != TrainConfig().seed):
        raise UserError("give the training seeds as seeds=, not seed= (train_seeds sets each run's seed)")
    names = seed_names(out, list(seeds))
    recipe = recipe if recipe is not None else expand_user(os.fspath(out)).name  # checked by _plan
    keys = {k: options.pop(k) for k in ("model", "twin", "pooling", "device", "dtype") if k in options}
    plans = []
    for seed, name in zip(seeds, names, strict=True):
        run_config = config.model_copy(update={"seed": seed}) if config is not None else None
        run_options = options if run_config is not None else {**options, "seed": seed}
        plans.append(_plan(name, method, run_config, dict(run_options), model=keys.get("model", DEFAULT_BACKBONE),
                           twin=keys.get("twin"), pooling=keys.get("pooling", "mean"), recipe=recipe,
                           device=keys.get("device", "auto"), dtype=keys.get("dtype", "float32")))
    targets = {p.folder.resolve() for p in plans}
    if (twin := plans[0].twin) is not None and checkpoints.resolve(twin).resolve() in targets:
        raise UserError(f"--twin {twin!r} is one of the checkpoints being written: a checkpoint cannot be its own"
                        " twin")
    results = []
    with contextlib.ExitStack() as stack:
        for plan in plans:
            stack.enter_context(checkpoints.claim(plan.folder))
        for plan in plans:
            results.append(_train_and_write(plan, progress))
            if results[-1][1].interrupted:
                break
    return results


def _configs(method, config, options: dict) -> tuple[MethodConfig, TrainConfig]:
    """The two configs from configs and/or CLI-named options (an option may not repeat a given config)."""
    if isinstance(method, str):
        options = {"method": method, **options}
        method = None
    if method is not None and not isinstance(method, MethodConfig):
        raise TypeError(f"method must be a MethodConfig or a method name, got {type(method).__name__}")
    if config is not None and not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    renamed = {"lambda": "lam", "data": "train_data"}
    for alias, name in renamed.items():
        if alias in options and name in options:
            raise UserError(f"{name}= is given twice, also as {alias}= (give it once)")
    options = {renamed.get(k, k): v for k, v in options.items()}
    method_keys, train_keys = set(MethodConfig.model_fields), set(TrainConfig.model_fields)
    for key in options:
        if key not in method_keys | train_keys:
            hint = difflib.get_close_matches(key, sorted(method_keys | train_keys), n=1)
            raise UserError(f"unknown training option {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f"; allowed: {', '.join(sorted(method_keys | train_keys))}")
        if (key in method_keys and method is not None) or (key in train_keys and config is not None):
            raise UserError(f"{key}= is given both as an option and inside a config (give it once)")
    if method is None:
        method = MethodConfig(**{k: v for k, v in options.items() if k in method_keys})
    if config is None:
        config = TrainConfig(**{k: v for k, v in options.items() if k in train_keys})
    return method, config


def _train_and_write(plan: _Plan, progress: bool) -> tuple[Path, TrainResult, dict]:
    folder, method, config, model, twin = plan.folder, plan.method, plan.config, plan.model, plan.twin
    pooling, num_labels, recipe = plan.pooling, plan.num_labels, plan.recipe
    backbone = load_backbone(model, num_labels=num_labels, seed=config.seed, pooling=pooling)
    inject(backbone, method, init_seed=config.seed)
    result = train_loop(backbone, config, progress=progress, method=method, device=plan.device, dtype=plan.dtype)
    if result.best_step == 0:
        raise UserError("training stopped before its first selectable evaluation; nothing written"
                        " (let it run past --eval-every steps and the σ warm-up)")
    backbone.model.load_state_dict(result.state, strict=False)
    sig = sigma_values(backbone).cpu()
    meta = {
        # a local folder is stored by its absolute path: a relative one would name another model elsewhere
        "backbone": str(Path(model).resolve()) if resolve_backbone(model) == model and Path(model).exists() else model,
        "num_labels": backbone.model.num_labels,
        "pooling": backbone.model.head.pooling,
        "method": method.to_dict(),
        "training": config.to_dict(),
        "device": device_label(plan.device),  # where it trained: provenance, not part of the recipe
        "dtype": plan.dtype,
        "dev_accuracy": result.dev_accuracy,
        **({"dev_metric": result.dev_metric, "dev_score": result.dev_score} if result.dev_metric != "accuracy"
           else {}),
        "best_step": result.best_step,
        "trainable_parameters": result.trainable,
        "total_parameters": result.total,
        "percent_trainable": round(result.percent_trainable, 4),
        "train_seconds": round(result.seconds, 1),
        "history": result.history,
        "twin": twin if twin else None,
        "recipe": recipe,
        "interrupted": result.interrupted,
    }
    if plan.notes:
        meta["notes"] = plan.notes
    if len(sig):
        meta["sigma_learned"] = sigma_summary(sig)
    if result.interrupted and (folder / checkpoints.CONFIG).exists():
        result.written = False  # an interrupted run never replaces a finished checkpoint
        return folder, result, meta
    return checkpoints.write(folder, result.state, meta), result, meta


def sigma_summary(sig: torch.Tensor) -> dict[str, float]:
    """Mean, std and quantiles of the learned σ (all group parameters of all layers)."""
    probs = torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=sig.dtype)
    quantiles = torch.quantile(sig, probs) if len(sig) <= 2**24 else torch.sort(sig).values[
        (probs * (len(sig) - 1)).long()]
    return {"mean": float(sig.mean()), "std": float(sig.std()),
            **{f"q{round(100 * float(p)):02d}": float(v) for p, v in zip(probs, quantiles, strict=True)}}


def method_listing() -> list[dict]:
    """One row per registered method: name, what it trains, what is analog (programmed), what is digital, and the
    analog roles its adapter goes on by default."""
    from noisesim.configs import DEFAULT_TARGETS
    from noisesim.methods import METHODS, FrozenLinear

    every = ("every analog layer",)
    return [{"name": m.name, "trained": m.trained, "analog": m.analog, "digital": m.digital,
             "targets": "—" if m.layer is FrozenLinear else ",".join(DEFAULT_TARGETS.get(m.name, every))}
            for m in METHODS.values()]


def sweep(ckpts: list[str] | str | None = None, sigmas=None, *, config: SweepConfig | None = None,
          progress: bool = True, **options) -> SweepResult:
    """Run a sweep given as a ``SweepConfig`` or as its options (the CLI's names: ckpt, sigma, profile, time,
    set, chips, programs (or seeds), reads, seed, data, text_column, text_pair_column, label_column, labels, metric,
    twin, layers, analog, analog_head, out, csv, workers, backend, ray_address, max_length, batch_size, device,
    dtype); ``analog`` picks which layers are on the devices
    (adapted, all, or a list such as 'q,k'; a list of selections is an axis).
    ``ckpt`` also takes Hugging Face sequence classifier folders and PEFT (LoRA, IA3)
    adapter folders, whose analog layers ``layers`` selects. With ``out`` (a folder, or 'auto') every cell is stored
    there as it finishes, cells already stored are skipped, and the summary, plot and sweep.json are written
    (``result.paths``)."""
    config = make_config(ckpts, sigmas, config, **options)
    if config.out == "auto":
        stamp = f"{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
        config = config.model_copy(update={"out": str(Path.cwd() / f"noisesim-sweep-{stamp}")})
    result = run(config=config, progress=progress)
    if config.out is not None:
        record_folder_axes(result, Path(config.out))
        result.paths = write_outputs(result, Path(config.out), csv=config.csv)
    return result


def sensitivity(ckpt: str, profile: str | None = None, sigma=None, *, by: str = "layer", out: str | None = None,
                progress: bool = True, **options):
    """Accuracy drop per layer / block / layer type of one checkpoint under one noise setting, each unit analog
    alone (``noisesim.engine.sensitivity``); returns a ``SensitivityResult`` (``.table``, ``.sweep``,
    ``.paths``: with ``out``, the stored results, sensitivity.csv and the heatmap sensitivity.png)."""
    from noisesim.engine.sensitivity import HEATMAP
    from noisesim.engine.sensitivity import sensitivity as run_sensitivity
    from noisesim.plots import sensitivity_heatmap

    outcome = run_sensitivity(ckpt, profile, sigma, by=by, out=out, progress=progress, **options)
    if "table" in outcome.paths:  # written: the heatmap beside the table
        # the realizations each unit had: levels the profile draws nothing from collapse (gaussian: no chips, reads)
        outcome.paths["heatmap"] = sensitivity_heatmap(
            outcome.table, outcome.paths["table"].parent / HEATMAP, outcome.by, outcome.title,
            int(outcome.table["count"].max()))
    return outcome


def write_outputs(result: SweepResult, out: Path, csv: bool = False) -> dict[str, Path]:
    """A sweep's files in ``out``: results.parquet (and results.csv), summary.csv (``summarize(by="auto")``: per
    recipe when a recipe has several training seeds), the plot accuracy_vs_<x>.png (drawn as ``noisesim plot``
    draws, against what ``plot_axis`` picks, coloured by ``default_hue``) and sweep.json."""
    written = write_results(result, out, csv=csv)
    x = plot_axis(result.frame)
    paths = {k: written[k] for k in ("results", "csv") if k in written}
    paths["summary"] = out / "summary.csv"
    atomic_write(paths["summary"], lambda p: summarize_frame(result.frame, by="auto").to_csv(p, index=False))
    paths["plot"] = plot_grid(result.frame, out / f"accuracy_vs_{x}", x=x, hue=default_hue(result.frame),
                              chance=result.chance)[0]
    paths["meta"] = written["meta"]
    return paths


def summarize(results, by: str = "auto") -> pd.DataFrame:
    """Mean, std, count, 95 % interval and training-seed / chip / programming / read spread per setting, of a
    sweep's table (a DataFrame, one row per cell) or of a ``SweepResult``.

    ``by``: 'checkpoint' (a row per checkpoint × setting), 'recipe' (a row per recipe × setting, pooled over its
    training seeds: ``seeds``, ``sd_seed_means``, ``sd_train``) or 'auto' (recipe when some recipe spans two or
    more checkpoints, else checkpoint). Tables written before recipes were recorded: each checkpoint is its own
    recipe."""
    check_by(by)
    frame = results.frame if isinstance(results, SweepResult) else results
    if not isinstance(frame, pd.DataFrame):
        raise TypeError("summarize takes a sweep's table (result.frame) or a SweepResult, not"
                        f" {type(results).__name__}")
    if not {"checkpoint", "accuracy"} <= set(frame.columns) or not len(frame):
        raise UserError("summarize needs a sweep's table: rows with checkpoint and accuracy columns (result.frame)")
    return summarize_frame(frame, by=by)


def plot(results: SweepResult | str | os.PathLike, out: str | os.PathLike | None = None, *, x: str | None = None,
         hue: str | None = None, col: str | None = None, formats=("png",)) -> list[Path]:
    """Plot a sweep (a ``SweepResult`` or a results folder): accuracy vs ``x`` ('sigma', 'time' or a --set
    path; default: what varies), one colour per ``hue`` value (default: 'recipe', error bars over training
    seeds × realizations, when a recipe has several seeds; else 'checkpoint'), one panel per ``col`` value.
    Writes OUT.FORMAT
    for each of ``formats`` (png, svg, pdf); without ``out``, RESULTS/plot_<x>[_by_<col>] in the results
    folder (never the sweep's own accuracy_vs_<x>.png). Returns the paths."""
    from noisesim.textio import check_output_file

    formats = check_formats(formats)
    if out is not None and not isinstance(out, str | os.PathLike):
        raise TypeError(f"out must be a file path (str), not {type(out).__name__}")
    suffixes = tuple(f".{fmt}" for fmt in formats)
    stem = check_output_file(out, "out", suffixes) if out is not None else None
    folder = Path(results.paths["results"]).parent if isinstance(results, SweepResult) and results.paths.get(
        "results") else None
    if not isinstance(results, SweepResult):
        if not isinstance(results, str | os.PathLike):
            raise TypeError(f"results must be a SweepResult or a results folder, not {type(results).__name__}")
        folder = Path(results)
        results = load_results(results)
    x = x or plot_axis(results.frame)
    hue = hue or default_hue(results.frame)
    if stem is None:
        if folder is None:
            raise UserError("give out= (a file stem such as results/fig6): these results have no folder")
        stem = check_output_file(default_stem(folder, x, col), "out", suffixes, replace=True)
    return plot_grid(results.frame, stem, x=x, hue=hue, col=col, chance=results.chance, formats=formats)


__all__ = ["MethodConfig", "SweepConfig", "SweepResult", "TrainConfig", "load_results", "load_sweep_config", "plot",
           "sensitivity", "summarize", "sweep", "train", "train_seeds", "method_listing"]
