"""The second hostile pass over issue 11, each finding as a class: files the user names are never overwritten,
a folder is a results folder only when noisesim wrote it, one label never pools two checkpoints, an interrupted
run is neither a training seed of its recipe nor a replacement for a finished checkpoint, and spellings of one
setting are one recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_user_error, invoke

from noisesim.errors import UserError

TINY = dict(steps=4, batch_size=8, max_length=16, eval_every=2, lr=1e-2)


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny_ckpts, tiny_tsv):
    """A finished sweep folder of the tiny grasp-w checkpoint."""
    out = tmp_path_factory.mktemp("sw") / "sw"
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--sigma", "0.05", "--programs",
                    "2", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_report_and_plot_never_overwrite_a_named_file(swept, tmp_path):
    mine = tmp_path / "thesis.tex"
    mine.write_text("keep me")
    table = (swept / "results.parquet").read_bytes()
    assert_user_error(invoke("report", swept, "--out", mine), "exists", "never overwritten")
    assert_user_error(invoke("report", swept, "--out", swept / "results.parquet"), "keeps for its results")
    link = tmp_path / "link.md"
    link.symlink_to(tmp_path / "nowhere.md")
    assert_user_error(invoke("report", swept, "--out", link), "exists")
    (tmp_path / "fig.png").write_text("mine")
    assert_user_error(invoke("plot", swept, "--out", tmp_path / "fig"), "fig.png exists")
    assert invoke("plot", swept, "--out", tmp_path / "f2", "--format", "svg,png").exit_code == 0
    assert_user_error(invoke("plot", swept, "--out", tmp_path / "f2", "--format", "pdf,svg"), "f2.svg exists")
    assert not (tmp_path / "f2.pdf").exists()
    assert mine.read_text() == "keep me" and (tmp_path / "fig.png").read_text() == "mine"
    assert (swept / "results.parquet").read_bytes() == table and not link.exists()


def test_report_and_plot_write_new_files_and_replace_their_own_default_plot(swept, tmp_path):
    assert invoke("report", swept, "--out", tmp_path / "r.md").exit_code == 0
    assert "|" in (tmp_path / "r.md").read_text()
    for _ in range(2):  # RESULTS/plot_X.png is noisesim's own: a second plot replaces it
        result = invoke("plot", swept)
        assert result.exit_code == 0, result.output
    assert len(list(swept.glob("plot_*.png"))) == 1


def test_no_plot_or_report_inside_a_checkpoint_folder(swept, tiny_ckpts):
    folder = Path(tiny_ckpts["grasp-w"])
    before = sorted(p.name for p in folder.iterdir())
    assert_user_error(invoke("report", swept, "--out", folder / "notes.md"), "checkpoint folder")
    assert_user_error(invoke("plot", swept, "--out", folder / "fig"), "checkpoint folder")
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize("layout", [
    {"cells/img1.png": "img", "summary.csv": "mine", "results.csv": "mine"},
    {"cells/a.json": "{}", "thesis.tex": "mine"},
    {"results.parquet": "not a table", "notes.txt": "mine"},
    {".noisesim.lock": "", "draft.md": "mine"},
])
def test_a_folder_is_a_results_folder_only_if_noisesim_wrote_it(tmp_path, layout, tiny_ckpts, tiny_tsv):
    out = tmp_path / "proj"
    for name, text in layout.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--sigma", "0.05", "--csv",
                    "--out", out)
    assert_user_error(result, "noisesim did not write")
    assert {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()} == layout


def test_a_killed_first_sweep_still_resumes(tmp_path):
    from noisesim.engine.results import check_results_folder

    out = tmp_path / "killed"
    (out / "cells").mkdir(parents=True)
    (out / "cells" / "k1.json").write_text("{}")
    (out / "cells" / ".k2.json.abc.tmp").write_text("")
    (out / ".noisesim.lock").write_text("")
    check_results_folder(out)  # no sweep.json yet, only what a sweep writes: accepted
    (out / "accuracy_vs_sigma.png").write_text("")
    check_results_folder(out)


def test_one_label_never_pools_two_checkpoints(tmp_path, tiny_ckpts, tiny_tsv):
    out = tmp_path / "sw"
    a, b = tmp_path / "a" / "ck", tmp_path / "b" / "ck"
    import shutil

    shutil.copytree(tiny_ckpts["grasp-w"], a)
    shutil.copytree(tiny_ckpts["grasp"], b)
    common = ["--data", tiny_tsv, "--sigma", "0.05", "--out", out]
    assert invoke("sweep", "--ckpt", a, "--seed", "0", *common).exit_code == 0
    before = pd.read_parquet(out / "results.parquet")
    assert_user_error(invoke("sweep", "--ckpt", b, "--seed", "1", *common), "another checkpoint", "fresh --out")
    config = json.loads((a / "config.json").read_text())  # the same folder retrained: other files
    config["dev_accuracy"] = 0.5
    (a / "config.json").write_text(json.dumps(config))
    assert_user_error(invoke("sweep", "--ckpt", a, "--seed", "1", *common), "before they changed")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), before)


def test_summaries_refuse_one_label_over_two_checkpoints():
    from noisesim.stats import check_realizations

    rows = [{"checkpoint": "ck", "accuracy": acc, "sigma": 0.05, "seed": seed, "chip": 0, "program": 0, "read": 0,
             "checkpoint_sha256": sha, "checkpoint_path": f"/x/{sha}/ck"} for seed, sha, acc in
            ((0, "aaa", 0.9), (1, "bbb", 0.5))]
    with pytest.raises(UserError, match="different checkpoints .* under the one label 'ck'"):
        check_realizations(pd.DataFrame(rows))
    rows[1]["checkpoint_sha256"] = "aaa"  # the same files from another folder (a moved install): one checkpoint
    check_realizations(pd.DataFrame(rows))


def test_an_interrupted_run_is_no_training_seed_and_replaces_no_checkpoint(tmp_path, tiny_dirs, tiny_tsv,
                                                                           monkeypatch):
    import noisesim.training as training
    from noisesim.api import train, train_seeds

    common = dict(method="head", model=tiny_dirs["bert"], train_data=tiny_tsv, eval_data=tiny_tsv, progress=False,
                  **TINY)
    keep, _, _ = train(str(tmp_path / "keep"), **common)
    files = {p.name: p.read_bytes() for p in keep.iterdir()}
    real, calls = training.accuracy, {"n": 0}

    def stop_at_second_evaluation(model, batches):
        calls["n"] += 1
        if calls["n"] == 3:  # the initial evaluation, step 2, then Ctrl-C at step 4
            raise KeyboardInterrupt
        return real(model, batches)

    monkeypatch.setattr(training, "accuracy", stop_at_second_evaluation)
    _, result, _ = train(str(keep), **common)
    assert result.interrupted and not result.written
    assert {p.name: p.read_bytes() for p in keep.iterdir()} == files  # the finished checkpoint is kept

    monkeypatch.setattr(training, "accuracy", real)  # seed 0 runs whole; seed 1 is interrupted
    runs = train_seeds(str(tmp_path / "rec"), [0], **common)
    calls["n"] = 0
    monkeypatch.setattr(training, "accuracy", stop_at_second_evaluation)
    runs += train_seeds(str(tmp_path / "rec2"), [1], recipe="rec", **common)
    assert runs[1][1].interrupted and runs[1][1].written
    out = tmp_path / "sw"
    monkeypatch.setattr(training, "accuracy", real)
    result = invoke("sweep", "--ckpt", runs[0][0], "--ckpt", runs[1][0], "--data", tiny_tsv, "--sigma", "0.05",
                    "--out", out)
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out / "results.parquet")
    recipes = frame.groupby("checkpoint")["recipe"].first().to_dict()
    assert recipes == {"rec-s0": "rec", "rec2-s1": "rec2-s1 (interrupted)"}
    assert frame.groupby("checkpoint")["recipe_id"].nunique().eq(1).all() and frame["recipe_id"].nunique() == 2


def test_spellings_of_one_setting_are_one_recipe():
    from noisesim.configs import effective_settings, parse_layers

    with pytest.raises(UserError, match="names q twice"):
        parse_layers("q,q")

    def settings(targets, noise):
        return effective_settings({"method": "lora", "targets": targets},
                                  {"train_noise": noise, "seed": 0})

    assert settings("v,q", " gaussian:0.1 ") == settings("q,v", "gaussian:0.1")
    assert settings("all", None)["method"]["targets"] == "all"  # presets stay as named (older recipe ids hold)


def test_recipe_names_are_printable_and_not_shipped(tmp_path, tiny_dirs, tiny_tsv):
    from noisesim.api import train

    common = dict(method="head", model=tiny_dirs["bert"], train_data=tiny_tsv, eval_data=tiny_tsv, progress=False,
                  **TINY)
    with pytest.raises(UserError, match="shipped checkpoint"):
        train(str(tmp_path / "x"), recipe="sst2-stoch", **common)
    with pytest.raises(UserError, match="printable"):
        train(str(tmp_path / "x"), recipe="a\nb", **common)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("text", ['{"lora_alpha": NaN}', '{"r": Infinity}', '{"r": 1e999}'])
def test_configs_with_non_finite_numbers_are_refused(tmp_path, text):
    from noisesim.external import _json

    (tmp_path / "adapter_config.json").write_text(text)
    with pytest.raises(UserError, match="not valid JSON"):
        _json(tmp_path / "adapter_config.json", "PEFT adapter x")


def test_a_model_folder_whose_config_is_not_json_says_so(tmp_path, tiny_tsv):
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    (folder / "model.safetensors").write_bytes(b"")
    assert_user_error(invoke("sweep", "--ckpt", folder, "--data", tiny_tsv, "--sigma", "0.05"), "config.json",
                      "not valid JSON")
