"""The results folder: resume, kill -9 safety, backends that agree, several sweeps and data sets in one folder,
folders noisesim did not write."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_user_error, invoke, numbers

from noisesim.engine.results import ResultsFolder
from noisesim.engine.results import load_results as load
from noisesim.engine.run import run


def test_rerun_skips_done_cells_and_new_axis_values_run_alone(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "s"
    kw = dict(data=tiny_tsv, progress=False, seeds=2, out=out)
    first = run([tiny_ckpts["grasp-w"]], "0.05", **kw)
    assert first.meta["cells_reused"] == 0 and len(first.frame) == 3
    again = run([tiny_ckpts["grasp-w"]], "0.05", **kw)
    assert again.meta["cells_reused"] == 3
    pd.testing.assert_frame_equal(numbers(again.frame), numbers(first.frame))
    wider = run([tiny_ckpts["grasp-w"]], "0.05,0.2", **kw)
    assert wider.meta["cells_reused"] == 3 and len(wider.frame) == 5
    fresh = run([tiny_ckpts["grasp-w"]], "0.05,0.2", data=tiny_tsv, progress=False, seeds=2)
    pd.testing.assert_frame_equal(numbers(wider.frame), numbers(fresh.frame))
    stored = pd.read_parquet(out / "results.parquet")
    assert len(stored) == 5 and stored["key"].is_unique
    assert {"checkpoint_sha256", "profile_sha256", "noisesim_version", "torch", "device", "git_commit"} <= set(stored)


@pytest.mark.slow
def test_kill_minus_9_then_rerun_completes_to_the_same_table(tiny_ckpts, tiny_tsv, tmp_path):
    args = ["--ckpt", tiny_ckpts["stochgrasp"], "--sigma", "0.01,0.02,0.05,0.1,0.2,0.3", "--programs", "4",
            "--data", tiny_tsv]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "noisesim.cli", "sweep", *args, "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(list((out / "cells").glob("*.json"))) < 7:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    cells_before = len(list((out / "cells").glob("*.json")))
    total = 2 * (1 + 6 * 4)
    assert 7 <= cells_before < total, "the sweep should have been killed part-way"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{cells_before} of {total} cells were already stored" in done.stdout
    resumed = load(out).frame
    clean = run([tiny_ckpts["stochgrasp"]], "0.01,0.02,0.05,0.1,0.2,0.3", seeds=4, data=tiny_tsv, progress=False)
    pd.testing.assert_frame_equal(numbers(resumed), numbers(clean.frame), check_dtype=False)
    assert not (out / "cells").exists()  # folded into results.parquet


@pytest.mark.slow
def test_workers_give_the_same_table(tiny_ckpts, tiny_tsv, tmp_path):
    kw = dict(profiles=["pcm"], times="1h,1y", chips=2, seeds=1, data=tiny_tsv, progress=False)
    local = run([tiny_ckpts["stochgrasp"]], **kw)
    pooled = run([tiny_ckpts["stochgrasp"]], workers=2, out=tmp_path / "w", **kw)
    pd.testing.assert_frame_equal(numbers(pooled.frame), numbers(local.frame))


@pytest.mark.slow
def test_ray_local_instance_gives_the_same_table(tiny_ckpts, tiny_tsv, tmp_path):
    pytest.importorskip("ray")
    kw = dict(sigmas="0.05,0.2", seeds=2, data=tiny_tsv, progress=False)
    local = run([tiny_ckpts["stochgrasp"]], **kw)
    remote = run([tiny_ckpts["stochgrasp"]], backend="ray", out=tmp_path / "r", **kw)
    pd.testing.assert_frame_equal(numbers(remote.frame), numbers(local.frame))


def test_bad_store_config_workers_and_ray_address(tiny_ckpts, tiny_tsv, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(foreign / "results.parquet")
    before = sorted(p.name for p in foreign.iterdir())
    base = ["sweep", "--ckpt", tiny_ckpts["grasp"], "--data", tiny_tsv]
    assert_user_error(invoke(*base, "--out", foreign), "not a noisesim results table")
    assert sorted(p.name for p in foreign.iterdir()) == before
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.parquet").write_text("not parquet")
    assert_user_error(invoke(*base, "--out", broken), "not a readable results table")
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("ckpt: [x]\nsigmaa: 0.1\n")
    assert_user_error(invoke("sweep", "--config", bad_cfg), "unknown key 'sigmaa'", "did you mean 'sigma'")
    out = tmp_path / "none"
    assert_user_error(invoke(*base, "--workers", "0", "--out", out), "--workers 0: must be >= 1")
    assert_user_error(invoke(*base, "--backend", "dask", "--out", out), "--backend 'dask'")
    assert_user_error(invoke("plot", tmp_path / "nowhere"), "holds no results")
    assert not out.exists()
    pytest.importorskip("ray")
    assert_user_error(invoke(*base, "--backend", "ray", "--ray-address", "127.0.0.1:1", "--out", out),
                      "cannot reach the Ray cluster")
    assert not out.exists()


def test_store_ignores_duplicates_and_half_written_files_after_a_crash(tmp_path):
    store = ResultsFolder(tmp_path)
    store.add({"key": "a", "checkpoint": "c", "accuracy": 0.5})
    store.consolidate()
    store.add({"key": "a", "checkpoint": "c", "accuracy": 0.5})  # as if cleanup had not finished
    store.add({"key": "b", "checkpoint": "c", "accuracy": 0.7})
    (store.cells / ".c.json.x1.tmp").write_text('{"key": "half')  # a write cut short by kill -9
    assert sorted(store.rows()) == ["a", "b"]
    assert len(store.consolidate()) == 2
    assert Path(tmp_path / "results.parquet").is_file() and not store.cells.exists()


def test_one_folder_holds_several_sweeps(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "shared"
    kw = dict(data=tiny_tsv, progress=False, seeds=1, out=out)
    run([tiny_ckpts["grasp-w"]], profiles=["pcm"], sets=["programming.scale=2"], **kw)
    sigma = run([tiny_ckpts["grasp-w"]], "0.1", **kw).frame
    assert "programming.scale" not in sigma.columns and len(sigma) == 2
    assert len(pd.read_parquet(out / "results.parquet")) == 4  # 2 cells of each sweep


def test_data_sets_are_an_axis(tiny_ckpts, tiny_tsv, tmp_path):
    other = tmp_path / "other.tsv"
    rows = pd.read_csv(tiny_tsv, sep="\t")
    rows.iloc[:10].to_csv(other, sep="\t", index=False)
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.1", "--programs", "2", "--data", tiny_tsv,
                    "--data", other, "--out", tmp_path / "two")
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "two" / "results.parquet")
    assert list(frame.groupby("data", sort=False)["n"].first()) == [40, 10]
    assert len(frame) == 2 * 3
    summary = pd.read_csv(tmp_path / "two" / "summary.csv")
    assert set(summary["data"]) == {tiny_tsv, str(other)} and len(summary) == 4


@pytest.mark.parametrize("version,reasons", [("0.2.0", ["backbone's contents", "pad at most 2 %"]),
                                              ("0.3.0", ["pad at most 2 %"])])
def test_a_folder_of_cells_with_older_keys_is_not_resumed(tiny_ckpts, tiny_tsv, tmp_path, version, reasons):
    import json as _json

    from noisesim.api import load_results, sweep

    out = tmp_path / "old"
    sweep(ckpt=tiny_ckpts["grasp"], sigma="0.1", programs=1, data=tiny_tsv, out=str(out), progress=False)
    cells = out / "cells"
    cells.mkdir(exist_ok=True)
    row = load_results(out).frame.iloc[0].to_dict()
    row |= {"key": "0" * 16, "noisesim_version": version}
    (cells / f"{row['key']}.json").write_text(_json.dumps(row, default=str))
    from noisesim.errors import UserError

    with pytest.raises(UserError, match=f"cells of noisesim {version}, whose cell keys 0.4.0 no longer makes") as err:
        sweep(ckpt=tiny_ckpts["grasp"], sigma="0.1", programs=1, data=tiny_tsv, out=str(out), progress=False)
    assert all(reason in str(err.value) for reason in reasons)
    assert ("backbone's contents" in str(err.value)) == (version == "0.2.0")
