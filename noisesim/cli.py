"""Command line: thin typer commands over ``noisesim.api``. Bad input → one line on stderr, exit 2."""

from __future__ import annotations

import functools
import sys
from datetime import datetime
from pathlib import Path

import typer

from noisesim.errors import UserError
from noisesim.methods import MethodConfig, check_method
from noisesim.models import DEFAULT_BACKBONE
from noisesim.training import TrainConfig

M, T = MethodConfig(), TrainConfig()  # the CLI's defaults are the API's defaults

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Accuracy of fine-tuned transformers under analog-device weight noise.")


def user_errors(fn):
    """Turn a UserError into 'error: …' on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@user_errors
def train(
    method: str = typer.Option(M.method, help="grasp | grasp-w | stochgrasp"),
    out: str = typer.Option(..., help="checkpoint name (user store) or folder path"),
    k: int = typer.Option(M.k, "--k", help="groups per layer"),
    layers: str = typer.Option(M.layers, help="all | kvf2 | ff2 | roles like k,v,ff2"),
    rows: str = typer.Option(M.rows, help="weight-space grouping: per-row (f(i)=i) | shared (f(i)=1)"),
    scale: bool = typer.Option(M.scale, help="GRASP: learn γ"),
    shift: bool = typer.Option(M.shift, help="GRASP: learn β"),
    model: str = typer.Option(DEFAULT_BACKBONE, help="backbone: the bundled MiniLM, a folder or a cached HF id"),
    pooling: str = typer.Option("mean", help="head pooling: mean (masked token mean) | cls"),
    steps: int = typer.Option(T.steps),
    batch_size: int = typer.Option(T.batch_size),
    max_length: int = typer.Option(T.max_length),
    lr: float = typer.Option(T.lr, help="adapter learning rate"),
    head_lr: float = typer.Option(T.head_lr),
    sigma_lr: float = typer.Option(T.sigma_lr, help="StochGRASP σ learning rate"),
    sigma_init: float = typer.Option(M.sigma_init),
    sigma_target: float = typer.Option(T.sigma_target),
    lam: float = typer.Option(T.lam, "--lambda", help="λ of the σ-target term (Eq. 6)"),
    sigma_reduction: str = typer.Option(T.sigma_reduction, help="sum (Eq. 6 as written) | mean (per group parameter)"),
    target_warmup: float = typer.Option(T.target_warmup, help="fraction of steps over which σ_target ramps up"),
    noise_path: str = typer.Option(M.noise_path, help="StochGRASP noise: weight (per step) | local (per token)"),
    length_group: int = typer.Option(T.length_group, help="group training batches by length within windows of"
                                     " this many batches (1: plain shuffle)"),
    eval_every: int = typer.Option(T.eval_every),
    dropout: float = typer.Option(T.dropout, help="dropout probability while training (negative: keep the model's)"),
    seed: int = typer.Option(T.seed, help="training stream (head init, batches, dropout, training noise)"),
    perm_seed: int = typer.Option(M.perm_seed, help="grouping stream (the random permutations)"),
    data: str = typer.Option(T.train_data, help="training data: sst2-train or a TSV/CSV"),
    eval_data: str = typer.Option(T.eval_data, help="dev data for model selection"),
    twin: str | None = typer.Option(None, help="name of this model's deterministic twin (swept alongside)"),
):
    """Fine-tune a backbone with a method and save the best dev checkpoint."""
    from noisesim.api import train_checkpoint

    mcfg = MethodConfig(method=check_method(method), k=k, layers=layers, rows=rows, scale=scale, shift=shift,
                        sigma_init=sigma_init, noise_path=noise_path, perm_seed=perm_seed)
    tcfg = TrainConfig(steps=steps, batch_size=batch_size, max_length=max_length, lr=lr, head_lr=head_lr,
                       sigma_lr=sigma_lr, lam=lam, sigma_target=sigma_target, sigma_reduction=sigma_reduction,
                       target_warmup=target_warmup, length_group=length_group, eval_every=eval_every,
                       dropout=None if dropout < 0 else dropout,
                       seed=seed, train_data=data, eval_data=eval_data)
    folder, result, meta = train_checkpoint(out, mcfg, tcfg, model=model, twin=twin, pooling=pooling)
    typer.echo(f"trainable parameters: {result.trainable:,} of {result.total:,} ({result.percent_trainable:.3f} %)")
    typer.echo(f"best dev accuracy {100 * result.dev_accuracy:.2f} % at step {result.best_step};"
               f" {result.seconds:.0f} s")
    if "sigma_learned" in meta:
        s = meta["sigma_learned"]
        typer.echo("learned σ: mean {mean:.4f}, std {std:.4f}, 5/50/95 % {q05:.4f} / {q50:.4f} / {q95:.4f}".format(**s))
    if result.interrupted:
        typer.echo(f"interrupted: kept the best checkpoint seen so far (step {result.best_step})", err=True)
    typer.echo(f"saved {folder}")


@app.command()
@user_errors
def sweep(
    ckpt: list[str] = typer.Option([], "--ckpt", help="checkpoint name or folder (repeatable)"),
    sigma: str | None = typer.Option(None, help="comma-separated σ of per-weight Gaussian noise (the paper's"
                                     " protocol; default 0.01,0.02,0.05 when no --profile is given)"),
    profile: list[str] = typer.Option([], "--profile", help="device profile name or YAML file (repeatable);"
                                      " see `noisesim profiles list`"),
    time: str | None = typer.Option(None, "--time", help="times since programming, e.g. 1s,1h,1d,1y (drift)"),
    set_: list[str] = typer.Option([], "--set", help="sweep a profile parameter: COMPONENT.FIELD=V1,V2"
                                   " (e.g. programming.scale=0.5,1,2; repeatable)"),
    chips: int | None = typer.Option(None, help="chips (device-to-device draws) per setting (default 1)"),
    seeds: int | None = typer.Option(None, help="programmings per chip (noise realizations) (default 3)"),
    reads: int | None = typer.Option(None, help="reads per programming (read-noise draws) (default 1)"),
    seed: int | None = typer.Option(None, help="base seed of the chip / program / read streams (default 0)"),
    data: list[str] = typer.Option([], "--data", help="sst2-dev (default), sst2-train, or a TSV/CSV with"
                                   " sentence,label (repeatable: one axis value each)"),
    twin: bool | None = typer.Option(None, "--twin/--no-twin", help="also sweep each StochGRASP checkpoint's"
                                     " deterministic twin (default twin)"),
    out: Path | None = typer.Option(None, help="results folder; rerunning into it skips finished cells"
                                    " (default: ./noisesim-sweep-<time>)"),
    csv: bool | None = typer.Option(None, "--csv/--no-csv", help="also write results.csv (default no-csv)"),
    workers: int | None = typer.Option(None, help="local worker processes (default 1, in this process)"),
    backend: str | None = typer.Option(None, help="local | ray (default local)"),
    ray_address: str | None = typer.Option(None, help="Ray cluster: auto or HOST:PORT (default: a local instance)"),
    config: Path | None = typer.Option(None, help="sweep described in YAML; options given here override it"),
):
    """Evaluate checkpoints under device noise: table, results store and plot."""
    from noisesim.api import load_sweep_config
    from noisesim.api import sweep as run_sweep
    from noisesim.report import pivot_table
    from noisesim.sweep import summarize

    given = {"ckpt": ckpt or None, "sigma": sigma, "profile": profile or None, "time": time, "set": set_ or None,
             "chips": chips, "seeds": seeds, "reads": reads, "seed": seed, "data": data or None, "twin": twin,
             "out": str(out) if out is not None else None, "csv": csv, "workers": workers, "backend": backend,
             "ray_address": ray_address}
    merged = {**(load_sweep_config(config) if config is not None else {}),
              **{k: v for k, v in given.items() if v is not None}}
    defaults = {"chips": 1, "seeds": 3, "reads": 1, "seed": 0, "data": "sst2-dev", "twin": True, "csv": False,
                "workers": 1, "backend": "local"}
    o = {**defaults, **merged}
    if not o.get("ckpt"):
        raise UserError("no checkpoint given (use --ckpt NAME, or ckpt: in --config)")
    if o.get("sigma") is None and not o.get("profile"):
        o["sigma"] = "0.01,0.02,0.05"
    if not o.get("out"):
        o["out"] = str(Path.cwd() / f"noisesim-sweep-{datetime.now():%Y%m%d-%H%M%S}")
    try:
        result, paths = run_sweep(o["ckpt"], o.get("sigma"), seeds=o["seeds"], data=o["data"], twin=o["twin"],
                                  out=o["out"], profiles=o.get("profile"), times=o.get("time"), chips=o["chips"],
                                  reads=o["reads"], sets=o.get("set"), seed=o["seed"], csv=o["csv"],
                                  workers=o["workers"], backend=o["backend"], ray_address=o.get("ray_address"))
    except KeyboardInterrupt:
        typer.echo(f"interrupted: the finished cells are stored in {o['out']}; run the same command with"
                   f" --out {o['out']} to finish the rest", err=True)
        raise typer.Exit(130) from None
    summary = summarize(result.frame)
    reused = result.meta.get("cells_reused", 0)
    on = o["data"] if isinstance(o["data"], str) else ", ".join(o["data"])
    typer.echo(f"accuracy (%) on {on}, mean ± std over {o['chips']} chip(s) × {o['seeds']} programming(s)"
               f" × {o['reads']} read(s){' (σ=0: clean)' if o.get('sigma') is not None else ' (ideal: clean)'}"
               + (f"; {reused} of {result.meta['cells']} cells were already stored" if reused else ""))
    typer.echo(pivot_table(summary).to_string())
    if o["chips"] > 1 or o["reads"] > 1:
        parts = summary[summary["count"] > 1]
        if len(parts):
            typer.echo("spread (std, points): " + ", ".join(
                f"{name} {100 * parts[col].mean():.2f}" for name, col in
                (("total", "sd_total"), ("chip", "sd_chip"), ("programming", "sd_program"), ("read", "sd_read"))
                if parts[col].notna().any()) + " (mean over settings; summary.csv has each)")
            if o["chips"] > 1 and o["seeds"] == 1:
                typer.echo("  (one programming per chip: chip and programming variation are not separable;"
                           " use --seeds 2 or more)")
    typer.echo(f"chance (majority class): {100 * result.chance:.1f} %")
    for path in paths.values():
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def plot(
    results: Path = typer.Argument(..., help="a sweep's output folder"),
    x: str | None = typer.Option(None, help="sigma | time | a --set path (default: what varies)"),
    hue: str = typer.Option("checkpoint", help="one line per value of this column"),
    col: str | None = typer.Option(None, help="one panel per value of this column (e.g. profile)"),
    out: Path | None = typer.Option(None, help="file stem (default: RESULTS/accuracy_vs_X); writes .png and .svg"),
):
    """Plot a stored sweep: accuracy vs σ or time (log axis), PNG and SVG."""
    from noisesim.report import plot_axis, plot_grid
    from noisesim.sweep import load

    result = load(results)
    x = x or plot_axis(result.frame)
    stem = out or Path(results) / f"accuracy_vs_{x}"
    for path in plot_grid(result.frame, stem, x=x, hue=hue, col=col, chance=result.chance):
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def report(results: Path = typer.Argument(..., help="a sweep's output folder"),
           out: Path | None = typer.Option(None, help="also write the Markdown to this file")):
    """A Markdown table of a stored sweep's summary (mean ± std, 95 % interval, spread by level)."""
    from noisesim.report import markdown_report
    from noisesim.sweep import load

    text = markdown_report(load(results))
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


profiles_app = typer.Typer(no_args_is_help=True, help="Device profiles: list, show, validate.")
app.add_typer(profiles_app, name="profiles")


@profiles_app.command("list")
@user_errors
def profiles_list():
    """The shipped and user profiles with their components."""
    from noisesim.devices import known_profiles, load_profile

    for name, path in known_profiles().items():
        prof = load_profile(name)
        typer.echo(f"{name:10s} {', '.join(c.key for c in prof.components) or '(no noise)':45s} {path}")


@profiles_app.command("show")
@user_errors
def profiles_show(name: str = typer.Argument(..., help="profile name or YAML file")):
    """Print a profile's YAML (with its source header)."""
    from noisesim.devices import load_profile

    typer.echo(Path(load_profile(name).source).read_text().rstrip())


@profiles_app.command("validate")
@user_errors
def profiles_validate(files: list[Path] = typer.Argument(..., help="YAML files to check")):
    """Check profile files against the schema; the first problem is reported as an error."""
    from noisesim.devices import load_profile

    for file in files:
        prof = load_profile(str(file))
        typer.echo(f"ok {file}: {', '.join(c.key for c in prof.components) or 'no noise'}")


@app.command()
@user_errors
def ckpts():
    """List the checkpoints in the bundled and user stores."""
    import pandas as pd

    from noisesim.checkpoints import listing

    rows = listing()
    if not rows:
        typer.echo("no checkpoints")
        return
    frame = pd.DataFrame(rows)
    frame["dev_accuracy"] = frame["dev_accuracy"].map(lambda v: f"{100 * v:.2f}" if v is not None else "")
    typer.echo(frame.fillna("").to_string(index=False))


def main():
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
