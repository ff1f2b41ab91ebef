import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer.main
from conftest import assert_user_error, invoke

import noisesim
from noisesim.cli import app


def test_sweep_writes_table_csv_and_plot(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "run"
    result = invoke("sweep", "--ckpt", tiny_ckpts["stochgrasp"], "--sigma", "0.01,0.2", "--programs", "2",
                    "--data", tiny_tsv, "--out", out)
    assert result.exit_code == 0, result.output
    assert "± " in result.output and "chance" in result.output
    df = pd.read_parquet(out / "results.parquet")
    assert set(df.columns) >= {"checkpoint", "sigma", "seed", "accuracy"}
    assert len(df) == 2 * (1 + 2 * 2)
    png = (out / "accuracy_vs_sigma.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_sweep_on_csv_data(tiny_ckpts, tiny_tsv, tmp_path):
    csv = tmp_path / "mine.csv"
    pd.read_csv(tiny_tsv, sep="\t").to_csv(csv, index=False)
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.01", "--programs", "1",
                    "--data", csv, "--out", tmp_path / "o")
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(tmp_path / "o" / "results.parquet")["n"].iloc[0] == 40


@pytest.mark.parametrize("sigma,fragment", [("0.01,-0.02", "'-0.02'"), ("nan", "'nan'"), ("0.01,abc", "'abc'")])
def test_bad_sigma(tiny_ckpts, tmp_path, sigma, fragment):
    out = tmp_path / "o"
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", sigma, "--out", out), fragment)
    assert not out.exists()


def test_unknown_checkpoint_suggests_and_lists(tiny_ckpts, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke("sweep", "--ckpt", "sst2-stok", "--sigma", "0.01"), "unknown checkpoint", "known:")
    assert list(tmp_path.iterdir()) == []


def test_missing_data_file_and_columns(tiny_ckpts, tmp_path):
    out = tmp_path / "o"
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--data", tmp_path / "nope.tsv", "--out", out),
                      "not found")
    bad = tmp_path / "bad.tsv"
    bad.write_text("text\ty\nhello\t1\n")
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--data", bad, "--out", out),
                      "lacks column(s) sentence, label")
    three = tmp_path / "three.tsv"
    three.write_text("sentence\tlabel\ngood\t2\n")
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--data", three, "--out", out),
                      "has label 2", "knows 2 classes")
    assert not out.exists()


def test_train_k_too_large_and_bad_method(tiny_dirs, tiny_tsv, tmp_path):
    out = tmp_path / "ck"
    assert_user_error(invoke("train", "--method", "grasp", "--k", "999", "--model", tiny_dirs["bert"],
                             "--data", tiny_tsv, "--eval-data", tiny_tsv, "--out", out), "K=999")
    assert_user_error(invoke("train", "--method", "lora2", "--out", out), "unknown method")
    assert not out.exists()


def test_train_then_list(tiny_dirs, tiny_tsv):
    result = invoke("train", "--method", "grasp-w", "--k", "4", "--model", tiny_dirs["roberta"], "--steps", "4",
                    "--eval-every", "2", "--batch-size", "8", "--data", tiny_tsv, "--eval-data", tiny_tsv,
                    "--out", "mine")
    assert result.exit_code == 0, result.output
    assert "trainable parameters" in result.output and "%" in result.output
    listed = invoke("ckpts")
    assert listed.exit_code == 0 and "mine" in listed.output and "grasp-w" in listed.output
    assert Path(result.output.strip().splitlines()[-1].split("saved ", 1)[1], "adapter.safetensors").is_file()


def test_profile_sweep_over_time_writes_time_plot(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "pcm"
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--profile", "pcm", "--time", "1h,1y", "--chips", "2",
                    "--programs", "1", "--reads", "2", "--set", "drift.compensation=none,global", "--data", tiny_tsv,
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert "1y" in result.output and "spread (std, points)" in result.output
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == 1 + 2 * 2 * 2 * 2  # clean + compensation × times × chips × reads
    summary = pd.read_csv(out / "summary.csv")
    assert {"sd_chip", "sd_program", "sd_read", "ci95_low", "ci95_high"} <= set(summary.columns)
    png = (out / "accuracy_vs_time.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    meta = (out / "sweep.json").read_text()
    assert '"pcm"' in meta and "sha256" in meta


@pytest.mark.parametrize("args,fragments", [
    (["--profile", "pcn"], ["unknown device profile 'pcn'", "did you mean 'pcm'"]),
    (["--profile", "pcm", "--time", "1h,soon"], ["--time", "'soon'"]),
    (["--profile", "rram", "--time", "1d"], ["drift component"]),
    (["--profile", "pcm", "--set", "programming.scale=-1"], ["programming.scale", "greater than or equal to 0"]),
    (["--profile", "pcm", "--set", "programming.scale"], ["COMPONENT.FIELD=V1,V2"]),
    (["--profile", "pcm", "--set", "levels.n=4"], ["no 'levels' component"]),
    (["--profile", "pcm", "--chips", "0"], ["--chips 0"]),
    (["--profile", "pcm", "--sigma", "0.01"], ["--sigma needs a profile with a gaussian component"]),
    (["--profile", "pcm", "--reads", "0"], ["--reads 0"]),
])
def test_bad_profile_sweep_input(tiny_ckpts, tmp_path, args, fragments):
    out = tmp_path / "o"
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], *args, "--out", out), *fragments)
    assert not out.exists()


def test_programs_and_its_old_name_seeds(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "o"
    base = ["sweep", "--ckpt", tiny_ckpts["grasp-w"], "--sigma", "0.1", "--data", tiny_tsv, "--out", out]
    first = invoke(*base, "--seeds", "2")
    assert first.exit_code == 0 and "× 2 programming(s)" in first.output, first.output
    again = invoke(*base, "--programs", "2")  # the same cells: the option's name is not part of a cell's key
    assert again.exit_code == 0 and "3 of 3 cells were already stored" in again.output, again.output
    config = tmp_path / "c.yaml"
    config.write_text("seeds: 2\n")
    wider = invoke(*base, "--config", config, "--programs", "3")  # the command line overrides the file
    assert wider.exit_code == 0 and "3 of 4 cells were already stored" in wider.output, wider.output
    config.write_text("seeds: 2\nprograms: 3\n")
    assert_user_error(invoke(*base, "--config", config), "programs and seeds are both given")


def commands(command, path="noisesim"):
    """(path, click command) of the root and every command below it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help():
    found = list(commands(typer.main.get_command(app)))
    assert {"noisesim train", "noisesim sweep", "noisesim plot", "noisesim profiles show"} <= {p for p, _ in found}
    missing = [f"{path} {param.name}" for path, command in found for param in command.params
               if not (getattr(param, "help", None) or "").strip()]
    assert missing == []
    sweep = typer.main.get_command(app).commands["sweep"]
    for param in sweep.params:  # defaults shown by typer, not written into the help text
        assert "(default" not in param.help, param.name
        assert param.show_default or param.name in ("ckpt", "config", "seeds"), param.name
    assert "--seeds" in next(p for p in sweep.params if p.name == "seeds").opts  # the old name, still accepted


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output == "noisesim 0.4.0\n"


def test_train_defaults_are_the_shipped_recipe():
    from noisesim import checkpoints
    from noisesim.configs import MethodConfig, TrainConfig

    shipped = checkpoints.read("sst2-stoch").meta
    assert MethodConfig().to_dict() == MethodConfig.from_dict(shipped["method"]).to_dict()
    data = ("train_data", "eval_data")
    stored = TrainConfig.from_dict(shipped["training"])
    assert TrainConfig().lr_for("stochgrasp") == stored.lr_for("stochgrasp")
    assert ({k: v for k, v in TrainConfig().to_dict().items() if k not in (*data, "lr")}
            == {k: v for k, v in stored.to_dict().items() if k not in (*data, "lr")})
    train = typer.main.get_command(app).commands["train"]
    cli = {param.name: param.default for param in train.params}
    cli["train_data"] = cli.pop("data")
    cli["seed"] = int(cli["seed"])  # --seed takes a list: 0,1,2
    for name, value in {**MethodConfig().to_dict(), **TrainConfig().to_dict()}.items():
        assert cli[name] == value, name


def test_every_method_name_has_a_layer_factory():
    from noisesim import configs, methods

    assert list(configs.METHOD_NAMES) == list(methods.METHODS)


def test_help_and_version_do_not_import_torch(tmp_path):
    code = """if True:
        import sys
        import noisesim
        from noisesim.cli import app
        from noisesim.configs import MethodConfig, TrainConfig
        MethodConfig(method="grasp", layers="k,v"), TrainConfig()  # validated without torch too
        for args in (["--help"], ["sweep", "--help"], ["train", "--help"], ["--version"]):
            assert app(args, prog_name="noisesim", standalone_mode=False) == 0, args
        print("LOADED", *sorted(m for m in ("torch", "transformers") if m in sys.modules))
    """
    env = {**os.environ, "NOISESIM_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "LOADED" and "noisesim 0.4.0" in proc.stdout
    assert "--programs" in proc.stdout and "--eval-every" in proc.stdout


@pytest.mark.slow
def test_readme_python_snippet_runs_as_a_script(tiny_ckpts, tmp_path):
    """The README's Python example, pasted into a script (its worker processes import that script)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    snippet = next(block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "__main__" in block)
    assert "workers=2" in snippet and snippet.count('"sst2-stoch"') == 1
    script = tmp_path / "fig6.py"
    script.write_text(snippet.replace('"sst2-stoch"', repr(tiny_ckpts["grasp-w"])), encoding="utf-8")
    env = {**os.environ, "NOISESIM_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sd_program" in proc.stdout and "sweep.json" in proc.stdout
    assert {p.name for p in (tmp_path / "fig6").iterdir()} >= {"results.parquet", "accuracy.png", "accuracy.svg"}


def test_plot_report_and_config(tiny_ckpts, tiny_tsv, tmp_path):
    config = tmp_path / "grid.yaml"
    out = tmp_path / "cfg"
    config.write_text(f"ckpt: [{tiny_ckpts['grasp-w']}]\nprofile: pcm\ntime: [1h, 1y]\nchips: 2\nseeds: 1\n"
                      f"data: {tiny_tsv}\nset: ['drift.compensation=none,global']\nout: {out}\n")
    result = invoke("sweep", "--config", config, "--chips", "1", "--csv")  # the flag overrides the file
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["chip"]) == {0} and set(frame["time"]) == {"0s", "1h", "1y"}
    assert (out / "results.csv").is_file()
    plotted = invoke("plot", out, "--x", "time", "--col", "drift.compensation", "--format", "png,svg")
    assert plotted.exit_code == 0, plotted.output
    for ext in ("png", "svg"):
        assert (out / f"plot_time_by_drift.compensation.{ext}").stat().st_size > 5000
    report = invoke("report", out, "--out", tmp_path / "r.md")
    assert report.exit_code == 0 and report.output.startswith("# Sweep on")
    assert "| profile | drift.compensation | time |" in report.output.replace("checkpoint | ", "")
    assert (tmp_path / "r.md").read_text().strip() == report.output.strip()


def test_programs_and_seeds_together_are_refused_and_h_is_help(tiny_ckpts, tiny_tsv, tmp_path):
    for order in (["--programs", "2", "--seeds", "3"], ["--seeds", "3", "--programs", "2"]):
        assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--data", tiny_tsv, *order, "--out",
                                 tmp_path / "x"), "give --programs only")
    assert not (tmp_path / "x").exists()
    for args in (["-h"], ["sweep", "-h"], ["plot", "-h"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage" in result.output, result.output


def test_python_dash_m_runs_the_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "noisesim", "--version"], capture_output=True, text=True,
                          env={**os.environ, "NOISESIM_HOME": str(tmp_path)}, timeout=120)
    assert proc.returncode == 0 and proc.stdout == f"noisesim {noisesim.__version__}\n", proc.stderr
    bad = subprocess.run([sys.executable, "-m", "noisesim", "sweep", "--device", "gpu"], capture_output=True,
                         text=True, env={**os.environ, "NOISESIM_HOME": str(tmp_path)}, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
