"""Command line: thin typer commands over ``noisesim.api``. Bad input → one line on stderr, exit 2."""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as click
except ImportError:  # older typer: click itself
    from click import exceptions as click

from noisesim.configs import DEFAULT_BACKBONE, METHOD_NAMES, MethodConfig, TrainConfig
from noisesim.errors import UserError, one_line


def field_defaults(model) -> SimpleNamespace:
    """A config class's defaults, read from its fields: building one would run validators that import torch."""
    return SimpleNamespace(**{name: field.default for name, field in model.model_fields.items()})


M, T = field_defaults(MethodConfig), field_defaults(TrainConfig)  # the CLI's defaults are the API's defaults


def echo_error(message: object) -> None:
    """Print ``error: MESSAGE`` on stderr as exactly one line."""
    typer.echo(f"error: {one_line(message)}", err=True)


def usage_message(exc: click.UsageError, root, args: list[str]) -> str:
    """Click's usage error as one sentence, with a did-you-mean for unknown options and a --help hint."""
    message = exc.format_message()
    if isinstance(exc, click.NoSuchOption):
        message = f"no such option: {exc.option_name}"
        if exc.possibilities:
            message += f"; did you mean {' or '.join(sorted(exc.possibilities))}?"
    if exc.ctx is not None:
        path = exc.ctx.command_path
    else:  # the parser's errors carry no context: follow the command names in the arguments
        path, command = "noisesim", root
        for arg in args:
            if arg in getattr(command, "commands", {}):
                path, command = f"{path} {arg}", command.commands[arg]
            elif not arg.startswith("-"):
                break
    return f"{message.rstrip('.')} (see {path} --help)"


class OneLineGroup(TyperGroup):
    """The root command: usage errors, Ctrl-C and a closed pipe end without a traceback or a box."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # the caller handles errors itself
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click, "NoArgsIsHelpError", ()) as exc:  # bare `noisesim`: the help (rich prints it itself)
            if exc.format_message().strip():
                exc.show()
            code = exc.exit_code
        except click.UsageError as exc:
            echo_error(usage_message(exc, self, list(sys.argv[1:] if args is None else args)))
            code = exc.exit_code
        except click.ClickException as exc:
            echo_error(exc.format_message())
            code = exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            typer.echo("interrupted", err=True)
            code = 130
        except BrokenPipeError:  # `noisesim ckpts | head -1`: stop quietly, as click does
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):
                pass
            code = 1
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(cls=OneLineGroup, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Accuracy of fine-tuned transformers under analog-device weight noise.")


def print_version(value: bool) -> None:
    """``--version``: print ``noisesim X.Y.Z`` and exit 0."""
    if value:
        from noisesim import __version__

        typer.echo(f"noisesim {__version__}")
        raise typer.Exit()


@app.callback()
def root(version: bool = typer.Option(False, "--version", callback=print_version, is_eager=True,
                                      help="print the version and exit")):
    """Accuracy of fine-tuned transformers under analog-device weight noise."""


# OSErrors that mean "this path cannot be used here" (the user's folder or file), not a bug in noisesim
_NO_ROOM = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_PATH_ERRNOS = _NO_ROOM | {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR,
                           errno.EEXIST, errno.ENOTEMPTY, errno.ENAMETOOLONG, errno.ELOOP, errno.EBUSY,
                           errno.ETXTBSY, errno.EIO}
_MEMORY_HINT = {"train": "a smaller --batch-size or --max-length, or a smaller --model",
                "sweep": "fewer --programs, --chips, --reads or settings, smaller --data, or fewer --workers"}


def environment_error(exc: BaseException, command: str) -> str | None:
    """The one-line message for an environment failure caused by the user's input, or None for anything else."""
    if isinstance(exc, OSError) and exc.errno in _PATH_ERRNOS and (exc.filename or exc.errno in _NO_ROOM):
        name = f" {exc.filename}" if exc.filename is not None else ""
        if exc.errno in _NO_ROOM:
            return f"cannot write{name}: {exc.strerror} (free some space or choose another folder)"
        if exc.errno == errno.EROFS:
            return f"cannot write{name}: {exc.strerror} (choose another folder)"
        return f"cannot use{name}: {exc.strerror} (check the path and its permissions, or choose another folder)"
    torch = sys.modules.get("torch")
    if isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)):
        hint = _MEMORY_HINT.get(command, "smaller inputs")
        return f"out of memory in noisesim {command} (use {hint})"
    return None


def user_errors(fn):
    """Turn a UserError, an unusable path or exhausted memory into one line 'error: …' and exit code 2.

    Any other exception is a bug and keeps its traceback.
    """
    command = fn.__name__.split("_")[0]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            echo_error(exc)
        except (OSError, MemoryError, RuntimeError) as exc:
            message = environment_error(exc, command)
            if message is None:
                raise
            echo_error(message)
        raise typer.Exit(2)

    return wrapper


@app.command()
@user_errors
def train(
    method: str = typer.Option(M.method, help=" | ".join(METHOD_NAMES)),
    out: str = typer.Option(..., help="checkpoint name (user store) or folder path; with several --seed values,"
                            " the recipe: checkpoints OUT-s0, OUT-s1, ..."),
    k: int = typer.Option(M.k, "--k", help="groups per layer"),
    layers: str = typer.Option(M.layers, help="the analog layers (programmed on devices): all | kvf2 | ff2 |"
                               " roles like k,v,ff2"),
    targets: str | None = typer.Option(None, help="analog layers that get the method's adapter (default: LoRA q,v;"
                                       " IA3 k,v,ff2; otherwise all of --layers)", show_default=False),
    rank: int = typer.Option(M.rank, help="LoRA rank r"),
    lora_alpha: float = typer.Option(M.lora_alpha, help="LoRA α (the update is B·A·α/r)"),
    lora_digital: bool = typer.Option(M.lora_digital, "--lora-digital/--lora-merged",
                                      help="LoRA: keep B·A digital (default: merged into the programmed weight)"),
    train_noise: str | None = typer.Option(None, help="hardware-aware training: gaussian:SIGMA, or a device"
                                           " profile (name or YAML) with optional @TIME, realized on the"
                                           " programmed weights every step", show_default=False),
    train_noise_per: str = typer.Option(T.train_noise_per, help="step (one draw per step) | token (gaussian"
                                        " only: independent per token)"),
    rows: str = typer.Option(M.rows, help="weight-space grouping: per-row (f(i)=i) | shared (f(i)=1)"),
    scale: bool = typer.Option(M.scale, help="GRASP: learn γ"),
    shift: bool = typer.Option(M.shift, help="GRASP: learn β"),
    model: str = typer.Option(DEFAULT_BACKBONE, help="backbone: the bundled MiniLM, a folder or a cached HF id"),
    pooling: str = typer.Option("mean", help="head pooling: mean (masked token mean) | cls"),
    steps: int = typer.Option(T.steps, help="training steps (optimizer updates)"),
    batch_size: int = typer.Option(T.batch_size, help="training batch size (sentences per step)"),
    max_length: int = typer.Option(T.max_length, help="training sentences cut at this many tokens"),
    lr: float | None = typer.Option(None, help="learning rate of what trains but head and σ", show_default=
                                    "method's: full 5e-5, ia3 3e-3, others 1e-3"),
    head_lr: float = typer.Option(T.head_lr, help="classifier head learning rate"),
    sigma_lr: float = typer.Option(T.sigma_lr, help="StochGRASP σ learning rate"),
    sigma_init: float = typer.Option(M.sigma_init, help="StochGRASP initial σ (weight units)"),
    sigma_target: float = typer.Option(T.sigma_target, help="StochGRASP σ_target of the σ-target term (Eq. 6)"),
    lam: float = typer.Option(T.lam, "--lambda", help="λ of the σ-target term (Eq. 6)"),
    sigma_reduction: str = typer.Option(T.sigma_reduction, help="sum (Eq. 6 as written) | mean (per group parameter)"),
    target_warmup: float = typer.Option(T.target_warmup, help="fraction of steps over which σ_target ramps up"),
    noise_path: str = typer.Option(M.noise_path, help="StochGRASP noise: weight (per step) | local (per token)"),
    length_group: int = typer.Option(T.length_group, help="group training batches by length within windows of"
                                     " this many batches (1: plain shuffle)"),
    eval_every: int = typer.Option(T.eval_every, help="evaluate on the dev data every this many steps (the best"
                                   " evaluation is kept)"),
    dropout: float = typer.Option(T.dropout, help="dropout probability while training (negative: keep the model's)"),
    seed: str = typer.Option(str(T.seed), help="training stream (head init, batches, dropout, training noise);"
                             " several (0,1,2) train one checkpoint per seed"),
    perm_seed: int = typer.Option(M.perm_seed, help="grouping stream (the random permutations)"),
    data: str = typer.Option(T.train_data, help="training data: a bundled split (sst2-train, rte-train, cola-train)"
                             " or a TSV/CSV, .jsonl, .parquet file or datasets save_to_disk folder"),
    eval_data: str = typer.Option(T.eval_data, help="dev data for model selection"),
    text_column: str | None = typer.Option(None, help="the data's sentence column", show_default="the bundled"
                                           " task's, else sentence"),
    text_pair_column: str | None = typer.Option(None, help="the second sentence of a pair (tokenised as a pair)",
                                                show_default="the bundled task's (rte: sentence2), else none"),
    label_column: str | None = typer.Option(None, help="the data's label column", show_default="label"),
    labels: str | None = typer.Option(None, help="label names that string labels map to, comma-separated (class i"
                                      " is the i-th)", show_default="the bundled task's, else integer labels"),
    metric: str | None = typer.Option(None, help="dev metric that selects the best step: accuracy | f1 | f1-macro |"
                                      " mcc", show_default="the task's: cola mcc, else accuracy"),
    twin: str | None = typer.Option(None, help="name of this model's deterministic twin (swept alongside)"),
    device: str = typer.Option("auto", help="where training runs: auto (CUDA when torch sees a GPU, else cpu) |"
                               " cpu | cuda | cuda:N; GPU draws differ from CPU draws"),
    dtype: str = typer.Option("float32", help="float32 | bf16 (opt-in mixed precision: autocast)"),
):
    """Fine-tune a backbone with a method and save the best dev checkpoint."""
    import math

    from noisesim.api import train as train_checkpoint
    from noisesim.api import train_seeds

    seeds = parse_seeds(seed)
    mcfg = MethodConfig(method=method, k=k, layers=layers, rows=rows, scale=scale, shift=shift,
                        sigma_init=sigma_init, noise_path=noise_path, perm_seed=perm_seed, targets=targets, rank=rank,
                        lora_alpha=lora_alpha, lora_digital=lora_digital)
    tcfg = TrainConfig(steps=steps, batch_size=batch_size, max_length=max_length, lr=lr, head_lr=head_lr,
                       sigma_lr=sigma_lr, lam=lam, sigma_target=sigma_target, sigma_reduction=sigma_reduction,
                       target_warmup=target_warmup, length_group=length_group, eval_every=eval_every,
                       dropout=None if dropout < 0 and math.isfinite(dropout) else dropout, train_noise=train_noise,
                       train_noise_per=train_noise_per, seed=seeds[0], train_data=data, eval_data=eval_data,
                       text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
                       labels=labels, metric=metric)
    if len(seeds) == 1:
        runs = [train_checkpoint(out, mcfg, tcfg, model=model, twin=twin, pooling=pooling, device=device,
                                 dtype=dtype)]
    else:
        runs = train_seeds(out, seeds, mcfg, tcfg.model_copy(update={"seed": TrainConfig().seed}), model=model,
                           twin=twin, pooling=pooling, device=device, dtype=dtype)
    for note in runs[0][2].get("notes", []):
        typer.echo(f"note: {note}", err=True)
    for folder, result, meta in runs:
        typer.echo(f"trainable parameters: {result.trainable:,} of {result.total:,}"
                   f" ({result.percent_trainable:.3f} %)")
        if result.dev_metric == "accuracy":
            typer.echo(f"best dev accuracy {100 * result.dev_accuracy:.2f} % at step {result.best_step};"
                       f" {result.seconds:.0f} s")
        else:
            typer.echo(f"best dev {result.dev_metric} {100 * result.dev_score:.2f} (× 100; accuracy"
                       f" {100 * result.dev_accuracy:.2f} %) at step {result.best_step}; {result.seconds:.0f} s")
        if "sigma_learned" in meta:
            s = meta["sigma_learned"]
            typer.echo("learned σ: mean {mean:.4f}, std {std:.4f}, 5/50/95 % {q05:.4f} / {q50:.4f} / {q95:.4f}"
                       .format(**s))
        if not result.written:
            typer.echo(f"interrupted: {folder} keeps the checkpoint it held before; nothing written", err=True)
            continue
        if result.interrupted:
            typer.echo(f"interrupted: kept the best checkpoint seen so far (step {result.best_step})", err=True)
        typer.echo(f"saved {folder}")
    if runs[-1][1].interrupted:
        if len(seeds) > 1:
            typer.echo(f"stopped after seed {runs[-1][2]['training']['seed']}: {len(runs)} of {len(seeds)} seeds"
                       " written", err=True)
        raise typer.Exit(130)


def parse_seeds(text: str) -> list[int]:
    """'0' → [0]; '0,1,2' → [0, 1, 2]; UserError on anything else."""
    parts = text.split(",")
    if not all(re.fullmatch(r"[0-9]+", part.strip()) for part in parts):
        raise UserError(f"--seed {text!r} must be an integer or comma-separated integers (e.g. 0,1,2)")
    seeds = [int(part) for part in parts]
    if any(not 0 <= x < 2**63 for x in seeds):
        raise UserError(f"--seed {text!r}: seeds run from 0 to 2**63 - 1")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seed {text!r} repeats a seed: each seed is trained once")
    return seeds


class OnceCommand(TyperCommand):
    """sweep and sensitivity: an option that takes one value, given twice (``--sigma 0.01 --sigma 0.05``,
    ``--ckpt A --ckpt B`` on sensitivity, ``--twin --no-twin``), is a usage error; click would keep the last value
    and drop the others without a word."""

    def parse_args(self, ctx, args):
        if not ctx.resilient_parsing:
            _, _, order = self.make_parser(ctx).parse_args(args=list(args))
            seen: set[str] = set()
            for param in order:
                if (getattr(param, "param_type_name", "") != "option" or getattr(param, "multiple", False)
                        or getattr(param, "count", False) or getattr(param, "is_eager", False)):
                    continue
                if param.name in seen:
                    names = "/".join([*param.opts, *param.secondary_opts])
                    raise click.UsageError(f"{names} is given more than once; it takes one value (the last would"
                                           " silently win): give it once" + (
                                               ", with several values comma-separated (e.g. --sigma 0.01,0.05)"
                                               if param.name in ("sigma", "time") else ""), ctx)
                seen.add(param.name)
        return super().parse_args(ctx, args)


def sweep_option(name: str, *decls: str, default_text: str | None = None):
    """A sweep option whose help text and default come from ``SweepConfig``. Its value is None when not given
    here (a --config file may set it), so the default is shown as text: ``default_text`` or the field's."""
    from noisesim.engine.config import SweepConfig

    field = SweepConfig.model_fields[name]
    if field.is_required():
        return typer.Option(None, *decls, help=f"{field.description}; required, here or in --config",
                            show_default=False)
    default = field.default_factory() if field.default_factory else field.default
    shown = default_text or (",".join(map(str, default)) or "none" if isinstance(default, list | dict) else
                             str(default).lower() if isinstance(default, bool) else str(default))
    return typer.Option(None, *decls, help=field.description, show_default=shown)


@app.command(cls=OnceCommand)
@user_errors
def sweep(
    ckpt: list[str] = sweep_option("ckpt", "--ckpt"),
    sigma: str | None = sweep_option("sigma", default_text="0.01,0.02,0.05 without --profile"),
    profile: list[str] = sweep_option("profile", "--profile"),
    time: str | None = sweep_option("time", "--time", default_text="0s"),
    set_: list[str] = sweep_option("set", "--set"),
    chips: int | None = sweep_option("chips"),
    programs: int | None = sweep_option("programs", "--programs"),
    seeds: int | None = typer.Option(None, "--seeds", help="the old name of --programs (still accepted)",
                                     show_default=False),
    reads: int | None = sweep_option("reads"),
    seed: int | None = sweep_option("seed"),
    data: list[str] = sweep_option("data", "--data"),
    text_column: str | None = sweep_option("text_column", default_text="the bundled task's, else sentence"),
    text_pair_column: str | None = sweep_option("text_pair_column", default_text="the bundled task's, else none"),
    label_column: str | None = sweep_option("label_column", default_text="label"),
    labels: str | None = sweep_option("labels", default_text="the bundled task's, else integer labels"),
    metric: str | None = sweep_option("metric", default_text="the task's: cola mcc, else accuracy"),
    twin: bool | None = sweep_option("twin", "--twin/--no-twin"),
    layers: str | None = sweep_option("layers"),
    analog: list[str] = sweep_option("analog", "--analog"),
    analog_head: bool | None = sweep_option("analog_head", "--analog-head/--no-analog-head"),
    out: str | None = sweep_option("out", default_text="./noisesim-sweep-<time>-<pid>"),
    csv: bool | None = sweep_option("csv", "--csv/--no-csv"),
    workers: int | None = sweep_option("workers"),
    backend: str | None = sweep_option("backend"),
    ray_address: str | None = sweep_option("ray_address", default_text="a local instance"),
    max_length: int | None = sweep_option("max_length"),
    batch_size: int | None = sweep_option("batch_size"),
    device: str | None = sweep_option("device"),
    dtype: str | None = sweep_option("dtype"),
    config: Path | None = typer.Option(None, help="sweep described in YAML (keys: the options' names);"
                                       " options given here override it"),
):
    """Evaluate checkpoints under device noise: table, results store and plot."""
    from noisesim.api import sweep as run_sweep
    from noisesim.engine.config import SweepConfig, load_sweep_config
    from noisesim.metrics import chance_text, title
    from noisesim.report import pivot_table
    from noisesim.stats import summarize

    if programs is not None and seeds is not None:
        raise UserError("--programs and --seeds are one option (--seeds is its old name): give --programs only")
    programs = seeds if programs is None else programs
    given = {"ckpt": ckpt or None, "sigma": sigma, "profile": profile or None, "time": time, "set": set_ or None,
             "chips": chips, "programs": programs, "reads": reads, "seed": seed, "data": data or None, "twin": twin,
             "text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
             "labels": labels, "metric": metric,
             "layers": layers, "analog": analog or None, "analog_head": analog_head, "out": out,
 "csv": csv, "workers": workers, "backend": backend,
             "ray_address": ray_address, "max_length": max_length, "batch_size": batch_size, "device": device,
             "dtype": dtype}
    options = {**(load_sweep_config(config) if config is not None else {}),
               **{k: v for k, v in given.items() if v is not None}}
    if options.get("out") in (None, "auto"):
        options["out"] = str(Path.cwd() / f"noisesim-sweep-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}")
    cfg = SweepConfig.build(**options)
    for note in cfg.notices:
        typer.echo(f"note: {note}", err=True)
    try:
        result = run_sweep(config=cfg)
        paths = result.paths
    except KeyboardInterrupt:
        where = cfg.out
        typer.echo(f"interrupted: the finished cells are stored in {where}; run the same command with"
                   f" --out {where} to finish the rest", err=True)
        raise typer.Exit(130) from None
    for note in result.meta["notices"][len(cfg.notices):]:
        typer.echo(f"note: {note}", err=True)
    summary = summarize(result.frame)
    reused = result.meta.get("cells_reused", 0)
    references = result.frame[result.frame["clean"].astype(bool)]
    if not len(references):  # --sigma on a profile whose σ = 0 still has other noise or a periphery
        clean = ("no clean reference: σ=0 keeps the profile's other noise or periphery; for one, give --profile P"
                 " --set gaussian.sigma=… instead of --sigma")
    else:
        clean = "ideal: clean" if references["profile"].eq("ideal").all() else "σ=0: clean"
    noisy = result.frame[~result.frame["clean"]]
    chips, programs, reads = (int(noisy[c].nunique()) if len(noisy) else 1 for c in ("chip", "program", "read"))
    from noisesim.report import measured, shown

    typer.echo(f"{measured(result)} on {', '.join(result.frame['data'].unique())}, mean ± std over {chips} chip(s)"
               f" (device-to-device) × {programs} programming(s) (cycle-to-cycle: write) × {reads} read(s)"
               f" (cycle-to-cycle: read) ({clean})"
               + (f"; {reused} of {result.meta['cells']} cells were already stored" if reused else ""))
    typer.echo(pivot_table(summary).to_string())
    if chips > 1 or reads > 1:
        parts = summary[summary["count"] > 1]
        if len(parts):
            typer.echo("spread (std, points): " + ", ".join(
                f"{name} {100 * parts[col].mean():.2f}" for name, col in
                (("total", "sd_total"), ("chip (device-to-device)", "sd_chip"),
                 ("programming (cycle-to-cycle: write)", "sd_program"), ("read (cycle-to-cycle: read)", "sd_read"))
                if parts[col].notna().any()) + " (mean over settings; summary.csv has each)")
            if chips > 1 and programs == 1:
                typer.echo("  (one programming per chip: chip and programming variation are not separable;"
                           " use --programs 2 or more)")
    chances, metrics = result.meta.get("chance_by_data") or {}, result.meta.get("metric_by_data") or {}
    if len(chances) > 1 and set(chances) <= set(metrics):  # each data set: its metric's chance level
        typer.echo("chance: " + "; ".join(f"{d} {title(metrics[d])} {shown(c, metrics[d])}"
                                          f" ({chance_text(metrics[d])})" for d, c in chances.items()))
    else:
        named = "" if result.metric == "accuracy" else f"{title(result.metric)} "
        typer.echo(f"chance ({chance_text(result.metric)}): {named}{shown(result.chance, result.metric)}")
    for path in paths.values():
        typer.echo(f"wrote {path}")


@app.command(cls=OnceCommand)
@user_errors
def sensitivity(
    ckpt: str = typer.Option(..., "--ckpt", help="checkpoint name or folder (also a Hugging Face or PEFT folder)"),
    sigma: str | None = typer.Option(None, help="one σ of per-weight Gaussian noise (weight units)",
                                     show_default=False),
    profile: str | None = typer.Option(None, "--profile", help="device profile name or YAML file",
                                       show_default=False),
    by: str = typer.Option("layer", help="unit: layer (blocks × layer types) | block | type (q, k, v, o, ff1, ff2)"),
    time: str | None = sweep_option("time", "--time", default_text="0s"),
    set_: list[str] = sweep_option("set", "--set"),
    chips: int | None = sweep_option("chips"),
    programs: int | None = sweep_option("programs", "--programs"),
    reads: int | None = sweep_option("reads"),
    seed: int | None = sweep_option("seed"),
    data: str | None = typer.Option(None, "--data", help="a bundled split (sst2-dev, rte-dev, cola-dev, …) or a"
                                    " TSV/CSV, .jsonl, .parquet file or datasets save_to_disk folder",
                                    show_default="sst2-dev"),
    text_column: str | None = sweep_option("text_column", default_text="the bundled task's, else sentence"),
    text_pair_column: str | None = sweep_option("text_pair_column", default_text="the bundled task's, else none"),
    label_column: str | None = sweep_option("label_column", default_text="label"),
    labels: str | None = sweep_option("labels", default_text="the bundled task's, else integer labels"),
    metric: str | None = sweep_option("metric", default_text="the task's: cola mcc, else accuracy"),
    layers: str | None = sweep_option("layers"),
    analog_head: bool | None = sweep_option("analog_head", "--analog-head/--no-analog-head"),
    out: str | None = sweep_option("out", default_text="./noisesim-sensitivity-<time>-<pid>"),
    workers: int | None = sweep_option("workers"),
    max_length: int | None = sweep_option("max_length"),
    batch_size: int | None = sweep_option("batch_size"),
    device: str | None = sweep_option("device"),
    dtype: str | None = sweep_option("dtype"),
):
    """Accuracy drop per layer, block or layer type: each unit analog alone under one noise setting, the rest
    clean. Table (printed, sensitivity.csv), heatmap (sensitivity.png); a sweep's store, so a rerun resumes."""
    from noisesim.api import sensitivity as run_sensitivity
    from noisesim.engine.sensitivity import text_table

    given = {"time": time, "set": set_ or None, "chips": chips, "programs": programs, "reads": reads, "seed": seed,
             "data": data, "layers": layers, "analog_head": analog_head, "workers": workers,
             "text_column": text_column, "text_pair_column": text_pair_column, "label_column": label_column,
             "labels": labels, "metric": metric,
             "max_length": max_length, "batch_size": batch_size, "device": device, "dtype": dtype}
    where = out if out not in (None, "auto") else str(
        Path.cwd() / f"noisesim-sensitivity-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}")
    try:
        result = run_sensitivity(ckpt, profile, sigma, by=by, out=where,
                                 **{k: v for k, v in given.items() if v is not None})
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the finished cells are stored in {where}; run the same command with --out {where}"
                   " to finish the rest", err=True)
        raise typer.Exit(130) from None
    for note in result.sweep.meta["notices"]:
        typer.echo(f"note: {note}", err=True)
    meta = result.sweep.meta
    reused = meta.get("cells_reused", 0)
    measure = result.table.attrs.get("metric", "accuracy")
    what = "accuracy" if measure == "accuracy" else f"{measure} (× 100)"
    typer.echo(f"{what} drop per {by} of {result.sweep.frame['checkpoint'].iloc[0]} under {result.setting}"
               f" (clean − noisy, ± std over {int(result.table['count'].max())} realization(s);"
               + (" the head analog in every unit," if meta.get("analog_head") else "") + " the rest clean)"
               + (f"; {reused} of {meta['cells']} cells were already stored" if reused else ""))
    typer.echo(text_table(result.table))
    for path in result.paths.values():
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def plot(
    results: Path = typer.Argument(..., help="a sweep's output folder"),
    x: str | None = typer.Option(None, help="sigma | time | a --set path (default: what varies)"),
    hue: str | None = typer.Option(None, help="one line per value of this column: checkpoint, recipe (error bars"
                                   " over training seeds × realizations) or an axis",
                                   show_default="recipe when a recipe has several seeds, else checkpoint"),
    col: str | None = typer.Option(None, help="one panel per value of this column (e.g. profile)"),
    out: str | None = typer.Option(None, help="file stem (default: RESULTS/plot_X, or RESULTS/plot_X_by_COL)"),
    format_: str = typer.Option("png", "--format", help="png, svg and/or pdf, comma-separated (e.g. png,pdf)"),
):
    """Plot a stored sweep: accuracy vs σ, time (log axis) or a --set path, ±1 SD error bars."""
    from noisesim.engine.results import load_results as load
    from noisesim.plots import check_formats, default_hue, default_stem, layout, plot_axis, plot_grid
    from noisesim.textio import check_output_file

    formats = check_formats(format_)
    suffixes = tuple(f".{fmt}" for fmt in formats)
    stem = check_output_file(out, suffixes=suffixes) if out is not None else None
    result = load(results)
    x = x or plot_axis(result.frame)
    hue = hue or default_hue(result.frame)
    stem = stem or check_output_file(default_stem(results, x, col), "RESULTS", suffixes, replace=True)
    paths = plot_grid(result.frame, stem, x=x, hue=hue, col=col, chance=result.chance, formats=formats)
    for note in layout(result.frame, x, hue, col)[1]:
        typer.echo(f"note: {note}", err=True)
    for path in paths:
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def report(results: Path = typer.Argument(..., help="a sweep's output folder"),
           out: str | None = typer.Option(None, help="also write the Markdown to this file")):
    """A Markdown table of a stored sweep's summary (mean ± std, 95 % interval, spread by level)."""
    from noisesim.engine.results import load_results as load
    from noisesim.report import markdown_report
    from noisesim.textio import atomic_write, check_output_file

    path = check_output_file(out) if out is not None else None
    text = markdown_report(load(results))
    if path is not None:
        atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))
    typer.echo(text)


profiles_app = typer.Typer(no_args_is_help=True, help="Device profiles: list, show, validate.")
app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
@user_errors
def profiles_list():
    """The shipped and user profiles, one line each: name, description, [components; periphery parts], file; a
    broken or shadowing user file is listed with its problem (it does not stop the listing)."""
    from noisesim.devices import profile_listing
    from noisesim.errors import one_line

    rows = []
    for entry in profile_listing():
        if entry.problem is None:
            summary = entry.profile.summary()
            parts = ", ".join(summary["noise"]) or "no noise"
            if summary["periphery"]:
                parts += f"; periphery: {', '.join(summary['periphery'])}"
            what = f"{' '.join(entry.profile.spec.description.split()) or '(no description)'} [{parts}]"
        else:
            what = f"INVALID: {entry.problem}"
        rows.append((entry.name, what, entry.path))
    name_w = max([16, *(len(name) for name, *_ in rows)])
    for name, what, path in rows:
        typer.echo(one_line(f"{name:{name_w}s} {what} {path}"))


@profiles_app.command("show")
@user_errors
def profiles_show(name: str = typer.Argument(..., help="profile name or YAML file")):
    """Print a profile's YAML (with its source header)."""
    from noisesim.devices import load_profile

    prof = load_profile(name)
    try:  # already read once, bounded and checked as UTF-8
        typer.echo(prof.path.read_text(encoding="utf-8").rstrip())
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{prof.path}: cannot read profile ({exc})") from None


@profiles_app.command("validate")
@user_errors
def profiles_validate(files: list[Path] = typer.Argument(..., help="YAML files to check")):
    """Check profile files against the schema; the first problem is reported as an error. Each valid file's
    line names its noise components and its periphery's parts."""
    from noisesim.devices import load_profile

    for file in files:
        summary = load_profile(str(file)).summary()
        periphery = f"; periphery: {', '.join(summary['periphery'].values())}" if summary["periphery"] else ""
        typer.echo(f"ok {file}: {', '.join(summary['noise']) or 'no noise'}{periphery}")


@app.command()
@user_errors
def ckpts():
    """List the checkpoints in the bundled and user stores (an unusable one is listed with its problem)."""
    import pandas as pd

    from noisesim.checkpoints import listing

    rows = listing()
    if not rows:
        typer.echo("no checkpoints")
        return
    frame = pd.DataFrame(rows)
    frame["dev_accuracy"] = frame["dev_accuracy"].map(
        lambda v: f"{100 * v:.2f}" if isinstance(v, int | float) and v == v else "")
    for column in ("note", "problem"):
        if frame[column].isna().all():
            frame = frame.drop(columns=column)
    typer.echo(frame.astype(object).fillna("").to_string(index=False))


@app.command()
@user_errors
def methods():
    """List the fine-tuning methods: what each trains, what is programmed (analog), what stays digital."""
    from noisesim.api import method_listing

    for row in method_listing():
        typer.echo(f"{row['name']}\n  trains:  {row['trained']}\n  analog:  {row['analog']}"
                   f"\n  digital: {row['digital']}\n  targets: {row['targets']}")


def main():
    """The ``noisesim`` entry point: every user error ends as one line ``error: …``, exit 2."""
    app(prog_name="noisesim")


if __name__ == "__main__":
    main()
