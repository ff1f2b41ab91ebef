"""Command line: thin typer commands over ``noisesim.api``. Bad input → one line on stderr, exit 2."""

from __future__ import annotations

import functools
import sys
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
                       target_warmup=target_warmup, eval_every=eval_every, dropout=None if dropout < 0 else dropout,
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
    ckpt: list[str] = typer.Option(..., "--ckpt", help="checkpoint name or folder (repeatable)"),
    sigma: str = typer.Option("0.01,0.02,0.05", help="comma-separated σ of per-weight Gaussian noise"),
    seeds: int = typer.Option(3, help="noise realizations per σ"),
    data: str = typer.Option("sst2-dev", help="sst2-dev, sst2-train, or a TSV/CSV with sentence,label"),
    twin: bool = typer.Option(True, help="also sweep each StochGRASP checkpoint's deterministic twin"),
    out: Path | None = typer.Option(None, help="results folder (default: ./noisesim-sweep-<time>)"),
):
    """Evaluate checkpoints under injected weight noise: table, CSV and plot."""
    from noisesim.api import sweep as run_sweep
    from noisesim.report import pivot_table
    from noisesim.sweep import summarize

    result, paths = run_sweep(ckpt, sigma, seeds=seeds, data=data, twin=twin, out=out or "auto")
    typer.echo(f"accuracy (%) on {data}, mean ± std over {seeds} noise seeds (σ=0: clean)")
    typer.echo(pivot_table(summarize(result.frame)).to_string())
    typer.echo(f"chance (majority class): {100 * result.chance:.1f} %")
    for path in paths.values():
        typer.echo(f"wrote {path}")


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
