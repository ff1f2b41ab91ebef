from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import assert_user_error, invoke


def test_sweep_writes_table_csv_and_plot(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "run"
    result = invoke("sweep", "--ckpt", tiny_ckpts["stochgrasp"], "--sigma", "0.01,0.2", "--seeds", "2",
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
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.01", "--seeds", "1",
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
                    "--seeds", "1", "--reads", "2", "--set", "drift.compensation=none,global", "--data", tiny_tsv,
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
