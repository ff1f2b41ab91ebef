"""Trust in a sweep's numbers: one identity per cell, no duplicate realizations, safe folders, honest statistics."""

import json
import math
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pytest
from conftest import assert_user_error, invoke
from hypothesis import given, settings
from hypothesis import strategies as st

from noisesim import checkpoints
from noisesim.engine.config import SweepConfig, parse_sets, parse_sigmas, parse_times
from noisesim.engine.grid import build_cells, build_settings, data_fingerprint, expand_checkpoints
from noisesim.engine.results import ResultsFolder
from noisesim.engine.results import load_results as load
from noisesim.engine.run import run
from noisesim.errors import UserError
from noisesim.stats import summarize


def keys(ckpt_paths, data, **options):
    """The cell keys of a sweep, without running it."""
    from noisesim.data import load_table

    config = SweepConfig.build(ckpt=ckpt_paths, data=[data], twin=False, **options)
    notes: list[str] = []
    loaded = expand_checkpoints(config.ckpt, False, notes)
    settings_ = build_settings(config, notes)
    return [c.key for c in build_cells(loaded, settings_, config, {data: data_fingerprint(load_table(data))}, notes)]


def test_every_input_of_a_cell_changes_its_key(tiny_ckpts, tiny_tsv, tmp_path):
    base = keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.1", seeds=1)
    assert len(base) == 2 and len(set(base)) == 2

    def copy(name):
        target = tmp_path / name
        shutil.copytree(tiny_ckpts["grasp-w"], target)
        return target

    renamed = copy("other-name")  # same files, another name: another checkpoint in the results
    assert set(keys([str(renamed)], tiny_tsv, sigma="0.1", seeds=1)).isdisjoint(base)
    same_name = copy("grasp-w")  # same name and files in another folder: the same cells
    assert keys([str(same_name)], tiny_tsv, sigma="0.1", seeds=1) == base
    cls = copy("grasp-w-cls")  # only config.json differs (pooling) → new keys, even under the same name
    meta = json.loads((cls / "config.json").read_text())
    meta["pooling"] = "cls"
    (cls / "config.json").write_text(json.dumps(meta))
    moved = tmp_path / "cls-copy" / "grasp-w"
    moved.parent.mkdir()
    cls.rename(moved)
    assert set(keys([str(moved)], tiny_tsv, sigma="0.1", seeds=1)).isdisjoint(base)
    data = tmp_path / "data.tsv"
    data.write_text(Path(tiny_tsv).read_text().replace("good", "fine", 1))
    changes = [
        keys([tiny_ckpts["grasp-w"]], str(data), sigma="0.1", seeds=1),  # data content
        keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.1", seeds=1, max_length=16),  # evaluation settings
        keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.1", seeds=1, batch_size=8),
        keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.1", seeds=1, seed=1),  # base seed
    ]
    for other in changes:
        assert set(other).isdisjoint(base)
    noisy = keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.2", seeds=1)  # the profile content (σ)
    assert noisy[0] == base[0] and noisy[1] != base[1]  # the clean cell is shared, the noisy one is not
    pcm = keys([tiny_ckpts["grasp-w"]], tiny_tsv, profile=["pcm"], seeds=1)
    scaled = keys([tiny_ckpts["grasp-w"]], tiny_tsv, profile=["pcm"], seeds=1, set=["programming.scale=2"])
    assert pcm[0] == scaled[0] and pcm[1] != scaled[1]
    bare = keys([tiny_ckpts["grasp-w"]], tiny_tsv, profile=["pcm-ideal-periphery"], seeds=1)  # pcm's periphery
    assert bare[0] == pcm[0] and bare[1] not in (pcm[1], scaled[1])


def test_two_checkpoints_with_equal_files_both_get_their_rows(tiny_ckpts, tiny_tsv, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_ckpts["grasp-w"], copy)
    df = run([tiny_ckpts["grasp-w"], str(copy)], "0.1", seeds=1, data=tiny_tsv, progress=False).frame
    assert list(dict.fromkeys(df["checkpoint"])) == ["grasp-w", "copy"]
    assert len(df) == 4 and df["key"].is_unique
    twin = tmp_path / "elsewhere" / "grasp-w"  # two folders with one name: told apart by their paths
    shutil.copytree(tiny_ckpts["grasp-w"], twin)
    df = run([tiny_ckpts["grasp-w"], str(twin)], "0.1", seeds=1, data=tiny_tsv, progress=False).frame
    assert set(df["checkpoint"]) == {tiny_ckpts["grasp-w"], str(twin)} and len(df) == 4


def test_duplicate_axis_values_are_evaluated_once(tiny_ckpts, tiny_tsv):
    ck = tiny_ckpts["grasp-w"]
    once = run([ck], "0.1", seeds=2, data=tiny_tsv, progress=False)
    twice = run([ck, ck], "0.1,0.1", seeds=2, data=[tiny_tsv, tiny_tsv], progress=False)
    pd.testing.assert_frame_equal(once.frame.drop(columns="seconds"), twice.frame.drop(columns="seconds"))
    assert any("--ckpt" in n for n in twice.meta["notices"]) and any("--data" in n for n in twice.meta["notices"])
    rram = run([ck], profiles=["rram", "rram"], sets=["programming.scale=1,1.0,2"], seeds=2, data=tiny_tsv,
               progress=False)
    noisy = rram.frame[~rram.frame["clean"]]
    assert sorted(set(noisy["programming.scale"])) == [1, 2] and len(noisy) == 2 * 2
    summary = summarize(rram.frame)
    assert list(summary["count"]) == [1, 2, 2]


def test_levels_without_randomness_collapse_with_a_notice(tiny_ckpts, tiny_tsv):
    # the paper's Gaussian has no read noise: --reads 3 would evaluate the same weights three times
    res = run([tiny_ckpts["grasp-w"]], "0.1", seeds=2, reads=3, chips=2, data=tiny_tsv, progress=False)
    noisy = res.frame[~res.frame["clean"]]
    assert len(noisy) == 2 * 2 and set(noisy["read"]) == {0}
    assert any("no read noise" in n for n in res.meta["notices"])
    summary = summarize(res.frame)
    assert summary.loc[~summary["clean"], "count"].tolist() == [4]
    assert math.isnan(summary.loc[~summary["clean"], "sd_read"].iloc[0])


def test_student_t_interval():
    frame = pd.DataFrame({"checkpoint": "a", "profile": "g", "sigma": 0.1, "time": "0s", "time_s": 0.0,
                          "chip": 0, "program": [0, 1, 2], "read": 0, "accuracy": [0.80, 0.82, 0.87]})
    row = summarize(frame).iloc[0]
    half = 4.302652729911275 * frame["accuracy"].std() / math.sqrt(3)  # t(0.975, 2)
    assert row["ci95_high"] - row["mean"] == pytest.approx(half, rel=1e-9)
    assert row["count"] == 3


def test_sweep_json_records_every_setting_and_the_whole_config(tiny_ckpts, tiny_tsv, tmp_path):
    import noisesim

    result = noisesim.sweep([tiny_ckpts["grasp-w"]], "0.05,0.1", programs=1, data=tiny_tsv, out=tmp_path / "s",
                            progress=False)
    meta = json.loads(result.paths["meta"].read_text())
    assert [s["values"].get("gaussian.sigma") for s in meta["settings"]] == [0.0, 0.05, 0.1]
    assert meta["config"]["sigma"] == [0.0, 0.05, 0.1] and meta["config"]["programs"] == 1
    assert "seeds" not in meta["config"] and meta["programs_per_chip"] == 1 and meta["seed"] == 0
    assert meta["axes"] == ["data", "checkpoint", "profile", "sigma", "time"]
    frame = load(tmp_path / "s").frame
    assert frame.attrs["axes"] == meta["axes"] and frame["clean"].tolist() == [True, False, False]
    stored = pd.read_parquet(tmp_path / "s" / "results.parquet")
    assert stored.attrs["axes"] == meta["axes"]
    mask = os.umask(0o022)
    os.umask(mask)
    for path in result.paths.values():
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


def test_out_refuses_a_folder_noisesim_did_not_write(tiny_ckpts, tiny_tsv, tmp_path):
    thesis = tmp_path / "results"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("\\chapter{Results}")
    with pytest.raises(UserError, match="holds files noisesim did not write"):
        run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=tiny_tsv, out=thesis, progress=False)
    assert [p.name for p in thesis.iterdir()] == ["thesis.tex"]


def test_second_sweep_cells_survive_the_first_ones_consolidation(tmp_path):
    """Sweep B stores a cell while sweep A consolidates: B waits for the lock, and its cell is kept."""
    import threading
    import time

    a, b = ResultsFolder(tmp_path), ResultsFolder(tmp_path)
    a.add({"key": "a1", "checkpoint": "c", "accuracy": 0.5})
    original = a._cell_files
    started = threading.Event()

    def slow_read():
        files = original()
        started.set()
        time.sleep(0.5)  # B tries to store its cell now
        return files

    a._cell_files = slow_read
    writer = threading.Thread(target=lambda: (started.wait(), b.add({"key": "b1", "checkpoint": "c",
                                                                       "accuracy": 0.6})))
    writer.start()
    assert list(a.consolidate()["key"]) == ["a1"]
    writer.join()
    assert (tmp_path / "cells" / "b1.json").is_file()
    assert sorted(b.consolidate()["key"]) == ["a1", "b1"]
    assert not (tmp_path / "cells").exists()


@pytest.mark.parametrize("options,fragment", [
    ({"sigma": "0.1", "set": ["gaussian.sigma=0.2"]}, "σ is given twice"),
    ({"ray_address": "auto"}, "only with --backend ray"),
    ({"sigma": ""}, "gives no σ value"),
    ({"sigma": ","}, "gives no σ value"),
    ({"sigma": "1e300"}, "finite number in [0, 100]"),
    ({"time": ""}, "gives no time"),
    ({"set": ["programming.scale="]}, "COMPONENT.FIELD"),
    ({"set": ["programming.scale=1", "programming.scale=2"]}, "given twice"),
    ({"set": ["programming.scale=.nan"]}, "finite"),
    ({"chips": 10**12}, "--chips 1000000000000: must be <= 100000"),
    ({"programs": True}, "--programs True"),
    ({"seeds": 0}, "--programs 0: must be >= 1"),  # the old name of programs
    ({"seeds": 2, "programs": 2}, "programs and seeds are both given"),
    ({"programz": 2}, "did you mean 'programs'"),
    ({"ckpt": [5]}, "--ckpt[0] 5: must be a valid string"),
    ({"backend": "ray", "workers": 2}, "drop --workers"),
    ({"out": ""}, "empty path"),
    ({"sigmaa": "0.1"}, "did you mean 'sigma'"),
])
def test_config_refuses_flags_that_cannot_take_effect(options, fragment):
    with pytest.raises(UserError) as info:
        SweepConfig.build(**{"ckpt": ["x"], **options})
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_huge_grid_is_refused_before_anything_runs(tiny_ckpts, tiny_tsv, tmp_path):
    with pytest.raises(UserError, match="cells"):
        run([tiny_ckpts["grasp-w"]], "0.1", seeds=100_000, chips=100, data=tiny_tsv, out=tmp_path / "o",
            progress=False)
    assert not (tmp_path / "o").exists()


def test_api_and_cli_share_defaults():
    config = SweepConfig.build(ckpt="sst2-stoch")
    assert config.sigma == [0.0, 0.01, 0.02, 0.05] and config.programs == 3 and config.ckpt == ["sst2-stoch"]
    assert SweepConfig.build(ckpt="x", seeds=5).programs == 5 and "seeds" not in SweepConfig.model_fields
    assert SweepConfig.build(ckpt="x", profile="pcm").sigma is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_parsers_never_raise_anything_but_user_errors(text):
    for parse in (parse_sigmas, parse_times, lambda t: parse_sets([t]), lambda t: parse_sets({"a.b": t})):
        try:
            parse(text)
        except UserError as exc:
            assert "\n" not in str(exc)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=5), st.booleans()),
                max_size=5))
def test_config_from_random_lists_is_valid_or_a_user_error(values):
    for key in ("sigma", "time", "ckpt", "profile", "data"):
        try:
            config = SweepConfig.build(**{"ckpt": ["x"], key: values})
        except UserError:
            continue
        if key == "sigma":
            assert all(math.isfinite(v) and v >= 0 for v in config.sigma)


def test_ckpt_copy_hidden_in_config_changes_numbers_not_cache(tiny_ckpts, tiny_tsv, tmp_path):
    """A copy whose config.json differs is never served the original's cached cells: into the original's folder,
    where it would share the label 'grasp-w' with the original and be pooled with it, it is refused; into a
    folder of its own it is evaluated."""
    out = tmp_path / "s"
    run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=tiny_tsv, out=out, progress=False)
    copy = tmp_path / "v2" / "grasp-w"
    shutil.copytree(tiny_ckpts["grasp-w"], copy)
    meta = json.loads((copy / "config.json").read_text())
    meta["pooling"] = "cls"
    (copy / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="as another checkpoint"):
        run([str(copy)], "0.1", seeds=1, data=tiny_tsv, out=out, progress=False)
    res = run([str(copy)], "0.1", seeds=1, data=tiny_tsv, out=tmp_path / "s2", progress=False)
    assert res.meta["cells_reused"] == 0
    assert checkpoints.read(str(copy)).meta["pooling"] == "cls"


def test_damaged_stored_rows_are_refused_not_reused(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "s"
    kw = dict(seeds=2, data=tiny_tsv, out=out, progress=False)
    run([tiny_ckpts["grasp-w"]], "0.1", **kw)
    table = pd.read_parquet(out / "results.parquet")
    table.loc[1, "accuracy"] = float("nan")
    table.to_parquet(out / "results.parquet")
    with pytest.raises(UserError, match="row 1 has accuracy nan"):
        run([tiny_ckpts["grasp-w"]], "0.1", **kw)
    (out / "results.parquet").unlink()
    run([tiny_ckpts["grasp-w"]], "0.1", **kw)
    key = pd.read_parquet(out / "results.parquet")["key"].iloc[0]
    (out / "cells").mkdir()
    cell = out / "cells" / f"{key}.json"
    cell.write_text(json.dumps({"key": key, "checkpoint": "grasp-w", "accuracy": "0.9"}))
    before = (out / "results.parquet").read_bytes()
    with pytest.raises(UserError, match="accuracy '0.9'"):
        run([tiny_ckpts["grasp-w"]], "0.1", **kw)
    assert (out / "results.parquet").read_bytes() == before  # the table was not rewritten


def test_same_data_spelled_differently_is_evaluated_once(tiny_ckpts, tiny_tsv, tmp_path, monkeypatch):
    monkeypatch.chdir(Path(tiny_tsv).parent)
    link = tmp_path / "link.tsv"
    link.symlink_to(tiny_tsv)
    copy = tmp_path / "copy.tsv"
    copy.write_bytes(Path(tiny_tsv).read_bytes())
    res = run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=[Path(tiny_tsv).name, f"./{Path(tiny_tsv).name}",
                                                           str(link), str(copy)], progress=False)
    assert set(res.frame["data"]) == {Path(tiny_tsv).name} and len(res.frame) == 2
    assert sum("same sentences and labels" in n for n in res.meta["notices"]) == 3


def test_one_field_set_twice_or_an_ambiguous_component_is_refused(tiny_ckpts, tiny_tsv, tmp_path):
    ck = tiny_ckpts["grasp-w"]
    with pytest.raises(UserError, match="set the same field"):
        run([ck], profiles=["pcm"], sets=["noise[0].scale=2", "programming.scale=3"], data=tiny_tsv, progress=False)
    twice = tmp_path / "twice.yaml"
    twice.write_text("noise:\n  - gaussian: {sigma: 0.1}\n  - gaussian: {sigma: 0.2}\n")
    with pytest.raises(UserError, match=r"has 2 gaussian components \(noise\[0\], noise\[1\]\)"):
        run([ck], profiles=[str(twice)], sets=["gaussian.sigma=0.5"], data=tiny_tsv, progress=False)
    with pytest.raises(UserError, match="--sigma: profile 'twice' has 2 gaussian"):
        run([ck], "0.5", profiles=[str(twice)], data=tiny_tsv, progress=False)
    with pytest.raises(UserError, match="list or mapping cannot be swept"):
        SweepConfig.build(ckpt="x", profile="pcm", set=["programming.coefficients=[1,2]"])


def test_one_realization_has_no_spread_and_intervals_stay_in_range():
    frame = pd.DataFrame({"checkpoint": "a", "profile": "g", "sigma": [0.1, 0.2, 0.2], "time": "0s", "time_s": 0.0,
                          "chip": 0, "program": [0, 0, 1], "read": 0, "accuracy": [0.8, 0.99, 0.5]})
    summary = summarize(frame)
    assert math.isnan(summary["std"].iloc[0]) and math.isnan(summary["ci95_low"].iloc[0])
    assert summary["ci95_low"].iloc[1] == 0.0 and summary["ci95_high"].iloc[1] == 1.0
    from noisesim.report import pivot_table

    assert pivot_table(summary).iloc[0, 0] == "80.0"


def test_python_api_takes_the_cli_names(tiny_ckpts, tiny_tsv):
    import noisesim

    result = noisesim.sweep(ckpt=[tiny_ckpts["grasp-w"]], sigma=[0.1], programs=2, data=tiny_tsv, progress=False)
    assert len(result.frame) == 3 and result.paths == {} and result.meta["programs_per_chip"] == 2
    old = noisesim.sweep(ckpt=tiny_ckpts["grasp-w"], sigma="0.1", seeds=2, data=tiny_tsv, progress=False)
    assert old.meta["config"] == result.meta["config"]  # seeds= is the old name of programs=
    timing = ["seconds", "device"]
    pd.testing.assert_frame_equal(old.frame.drop(columns=timing), result.frame.drop(columns=timing))
    for options, fragment in (({"seeds": 2, "programs": 2}, "programs and seeds are both given"),
                              ({"programz": 2}, "did you mean 'programs'"), ({"sigmaa": "0.1"}, "did you mean 'sigma'"),
                              ({"ckpt": [tiny_ckpts["grasp"]]}, "given twice")):
        with pytest.raises(UserError, match=fragment):
            noisesim.sweep([tiny_ckpts["grasp-w"]], progress=False, **options)
    with pytest.raises(TypeError, match="SweepConfig"):
        noisesim.sweep(config={"ckpt": ["x"]}, progress=False)


def test_python_train_takes_the_cli_names(tiny_dirs, tiny_tsv, tmp_path):
    import noisesim

    common = dict(model=tiny_dirs["bert"], progress=False, data=tiny_tsv, eval_data=tiny_tsv, batch_size=8,
                  max_length=16, eval_every=1, steps=2)
    for options, fragment in (({"stepz": 3}, "did you mean 'steps'"), ({"lamda": 0.1}, "did you mean 'lam'"),
                              ({"k": 0}, "k=0 is invalid")):
        with pytest.raises(UserError, match=fragment):
            noisesim.train(str(tmp_path / "t"), "grasp", **options, **common)
    assert not (tmp_path / "t").exists()
    with pytest.raises(UserError, match="--lambda has no effect with --method grasp"):
        noisesim.train(str(tmp_path / "t"), "grasp", k=4, **{"lambda": 0.5}, **common)
    folder, result, meta = noisesim.train(str(tmp_path / "t"), "stochgrasp", k=4, **{"lambda": 0.5}, **common)
    assert folder == tmp_path / "t" and result.best_step >= 1
    assert meta["method"]["k"] == 4 and meta["training"]["lam"] == 0.5 and meta["training"]["train_data"] == tiny_tsv
    assert noisesim.devices.load_profile("pcm").name == "pcm" and noisesim.__version__ == "0.4.0"
    with pytest.raises(AttributeError):
        noisesim.run_sweep  # noqa: B018 (the name of 0.1 is gone)


def test_store_name_and_local_folder_with_dot_slash(tiny_ckpts, tiny_tsv, tmp_path, monkeypatch):
    store = checkpoints.user_store()
    store.mkdir(parents=True)
    shutil.copytree(tiny_ckpts["grasp-w"], store / "mine")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(tiny_ckpts["grasp"], tmp_path / "mine")
    with pytest.raises(UserError, match="both a checkpoint name"):
        run(["mine"], "0.1", seeds=1, data=tiny_tsv, progress=False)
    df = run(["./mine"], "0.1", seeds=1, data=tiny_tsv, progress=False).frame
    assert set(df["method"]) == {"grasp"}


def test_relative_backbone_path_in_a_checkpoint_is_refused(tiny_ckpts, tiny_dirs, tmp_path, monkeypatch):
    copy = tmp_path / "rel"
    shutil.copytree(tiny_ckpts["grasp-w"], copy)
    meta = json.loads((copy / "config.json").read_text())
    assert Path(meta["backbone"]).is_absolute()  # train stores a local backbone folder by its absolute path
    monkeypatch.chdir(Path(tiny_dirs["bert"]).parent)
    meta["backbone"] = Path(tiny_dirs["bert"]).name
    (copy / "config.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="relative path"):
        checkpoints.read(str(copy))


def test_second_training_into_the_same_checkpoint_is_refused(tmp_path):
    target = tmp_path / "ck"
    with checkpoints.claim(target):
        with pytest.raises(UserError, match="another noisesim train is writing"):
            with checkpoints.claim(target):
                pass
    with checkpoints.claim(target):  # released: free again
        pass
    assert not target.exists()


def test_changed_data_file_is_evaluated_anew_in_one_process(tiny_ckpts, tiny_tsv, tmp_path):
    data = tmp_path / "d.tsv"
    data.write_text(Path(tiny_tsv).read_text())
    first = run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=str(data), progress=False).frame
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0]] + [line[:-1] + str(1 - int(line[-1])) for line in lines[1:]]) + "\n")
    flipped = run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=str(data), progress=False).frame
    assert list(flipped["accuracy"]) == pytest.approx([1 - a for a in first["accuracy"]])


def test_checkpoint_changed_during_a_sweep_is_refused(tiny_ckpts, tiny_tsv, tmp_path):
    from noisesim.engine.execute import evaluate_cells

    copy = tmp_path / "ck"
    shutil.copytree(tiny_ckpts["grasp-w"], copy)
    config = SweepConfig.build(ckpt=[str(copy)], sigma="0.1", seeds=1, data=[tiny_tsv])
    notes: list[str] = []
    from noisesim.data import load_table

    cells = build_cells(expand_checkpoints(config.ckpt, False, notes), build_settings(config, notes), config,
                        {tiny_tsv: data_fingerprint(load_table(tiny_tsv))}, notes)
    shutil.rmtree(copy)
    shutil.copytree(tiny_ckpts["grasp"], copy)  # replaced between planning and evaluation
    with pytest.raises(UserError, match="changed on disk while this sweep ran"):
        list(evaluate_cells(cells, 128, 64, 0))


def test_a_foreign_sweep_json_does_not_make_a_results_folder(tiny_ckpts, tiny_tsv, tmp_path):
    wandb = tmp_path / "wandb"
    wandb.mkdir()
    (wandb / "sweep.json").write_text('{"method": "bayes"}')
    (wandb / "summary.csv").write_text("my notes\n")
    with pytest.raises(UserError, match="did not write"):
        run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=tiny_tsv, out=wandb, progress=False)
    assert (wandb / "summary.csv").read_text() == "my notes\n"


def test_report_refuses_a_folder_whose_inputs_changed_between_sweeps(tiny_ckpts, tiny_tsv, tmp_path):
    from noisesim.report import markdown_report

    out = tmp_path / "r"
    run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=tiny_tsv, out=out, progress=False)
    run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=tiny_tsv, out=out, max_length=8, progress=False)
    with pytest.raises(UserError, match="repeat one setting and realization"):
        markdown_report(load(out))
    df = run([tiny_ckpts["grasp-w"]], "0.1", seeds=1, data=tiny_tsv, progress=False).frame
    with pytest.raises(UserError, match="repeat one setting"):
        summarize(pd.concat([df, df]))


def test_reused_rows_take_this_sweeps_axis_values(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "s"
    run([tiny_ckpts["grasp-w"]], profiles=["rram"], seeds=1, data=tiny_tsv, out=out, progress=False)
    res = run([tiny_ckpts["grasp-w"]], profiles=["rram"], sets=["programming.scale=0.5,1"], seeds=1, data=tiny_tsv,
              out=out, progress=False)
    assert res.meta["cells_reused"] == 2  # the clean cell and scale = 1 (the profile's default)
    noisy = res.frame[~res.frame["clean"]]
    assert sorted(noisy["programming.scale"]) == [0.5, 1]


def test_report_keeps_names_and_footer(tiny_ckpts, tiny_tsv, tmp_path):
    from noisesim.report import markdown_report

    banana = tmp_path / "banana"
    shutil.copytree(tiny_ckpts["grasp-w"], banana)
    from noisesim.api import sweep

    sweep([str(banana)], "0.1", seeds=2, data=tiny_tsv, out=tmp_path / "r", progress=False)
    text = markdown_report(load(tmp_path / "r"))
    assert "| banana |" in text and "{" not in text and "had 3)" in text


def test_plot_options_that_cannot_take_effect(tiny_ckpts, tiny_tsv, tmp_path):
    import noisesim
    from noisesim.plots import plot_grid

    result = noisesim.sweep([tiny_ckpts["grasp-w"]], "0.1,0.2", programs=2, data=tiny_tsv, progress=False)
    df = result.frame
    for kw, fragment in (({"x": "time"}, "does not vary"), ({"x": "accuracy"}, "not an axis"),
                         ({"x": "sigma", "hue": "accuracy"}, "--hue 'accuracy'")):
        with pytest.raises(UserError, match=fragment):
            plot_grid(df, tmp_path / "p", **kw)
    for out in ("", str(tmp_path), "/proc/x"):
        with pytest.raises(UserError):
            noisesim.plot(result, out)
    with pytest.raises(TypeError, match="out"):
        noisesim.plot(result, 5)
    assert not list(tmp_path.iterdir())
    assert [p.name for p in noisesim.plot(result, str(tmp_path / "fig"), formats=("png", "svg"))] == ["fig.png",
                                                                                                    "fig.svg"]


def test_more_flags_that_cannot_take_effect():
    with pytest.raises(UserError, match="give out= too"):
        SweepConfig.build(ckpt="x", csv=True)
    with pytest.raises(UserError, match="gives only σ = 0"):
        SweepConfig.build(ckpt="x", sigma="0")
    assert SweepConfig.build(ckpt="x", sigma="-0,0.1").sigma == [0.0, 0.1]


def test_fifo_profile_does_not_hang(tmp_path):
    from noisesim.devices import known_profiles, load_profile

    folder = Path(os.environ["NOISESIM_HOME"]) / "devices"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "fifo.yaml")
    os.mkfifo(tmp_path / "c.yaml")
    assert "fifo" not in known_profiles()
    with pytest.raises(UserError, match="not a regular file|not found"):
        load_profile(str(tmp_path / "c.yaml"))


def test_train_claim_sees_through_path_spellings(tmp_path):
    (tmp_path / "lnk").symlink_to(tmp_path)
    with checkpoints.claim(tmp_path / "tc"):
        for other in (tmp_path / "lnk" / "tc", tmp_path / "sub" / ".." / "tc"):
            with pytest.raises(UserError, match="another noisesim train"):
                with checkpoints.claim(other):
                    pass


def namesakes(tiny_ckpts, root: Path) -> tuple[Path, Path]:
    """./r1/x (grasp-w) and ./r2/x (another checkpoint): two folders with one name."""
    r1, r2 = root / "r1" / "x", root / "r2" / "x"
    shutil.copytree(tiny_ckpts["grasp-w"], r1)
    shutil.copytree(tiny_ckpts["grasp"], r2)
    return r1, r2


def test_a_checkpoint_keeps_its_label_in_a_results_folder(tiny_ckpts, tiny_tsv, tmp_path):
    """`sweep --ckpt ./r1/x --out sw`, then `sweep --ckpt ./r1/x --ckpt ./r2/x --out sw`: the second sweep would
    label r1/x by its path (two folders named x); it keeps 'x', its cells are reused, not counted twice."""
    r1, r2 = namesakes(tiny_ckpts, tmp_path)
    out = tmp_path / "sw"
    first = invoke("sweep", "--ckpt", r1, "--sigma", "0.1", "--programs", "2", "--data", tiny_tsv, "--out", out)
    assert first.exit_code == 0, first.output
    second = invoke("sweep", "--ckpt", r1, "--ckpt", r2, "--sigma", "0.1", "--programs", "2", "--data", tiny_tsv,
                    "--out", out)
    assert second.exit_code == 0, second.output
    result = load(out)
    assert set(result.frame["checkpoint"]) == {"x", str(r2.absolute())} and len(result.frame) == 6
    assert result.meta["cells_reused"] == 3 and any("keeps that label" in n for n in result.meta["notices"])
    assert set(result.meta["checkpoints"]) == {"x", str(r2.absolute())}
    assert invoke("report", out).exit_code == 0
    # the other way round: a label given by path first is kept when the checkpoint is swept alone
    out2 = tmp_path / "sw2"
    assert invoke("sweep", "--ckpt", r1, "--ckpt", r2, "--sigma", "0.1", "--programs", "2", "--data", tiny_tsv,
                  "--out", out2).exit_code == 0
    again = run([str(r1)], "0.1", programs=2, data=tiny_tsv, out=out2, progress=False)
    assert set(again.frame["checkpoint"]) == {str(r1.absolute())} and again.meta["cells_reused"] == 3


def test_a_copy_keeps_its_own_label_and_an_ambiguous_folder_is_refused_up_front(tiny_ckpts, tiny_tsv, tmp_path):
    from noisesim.engine.grid import cached_folder_hash, checkpoint_labels, stored_labels

    r1, r2 = namesakes(tiny_ckpts, tmp_path)
    out = tmp_path / "sw"
    run([str(r1)], "0.1", programs=1, data=tiny_tsv, out=out, progress=False)  # r1/x stored as x
    copy = tmp_path / "copy"
    shutil.copytree(r1, copy)  # another folder with the same files: another checkpoint, its own column
    again = run([str(copy)], "0.1", programs=1, data=tiny_tsv, out=out, progress=False)
    assert set(again.frame["checkpoint"]) == {"copy"} and again.meta["cells_reused"] == 0
    assert set(load(out).frame["checkpoint"]) == {"x", "copy"}
    # the guards, on stored rows an older noisesim could leave: one folder under two labels, a label now taken
    notes: list[str] = []
    loaded = expand_checkpoints([str(r1), str(r2)], False, notes)
    labels = checkpoint_labels(loaded)
    here = {"checkpoint_sha256": cached_folder_hash(r1), "checkpoint_path": str(r1.resolve())}
    with pytest.raises(UserError, match="under several labels .*fresh --out"):
        stored_labels(loaded, labels, {"a": {**here, "checkpoint": "x"}, "b": {**here, "checkpoint": "y"}}, out,
                      notes)
    with pytest.raises(UserError, match=f"as '{r2.absolute()}', but .* names another checkpoint"):
        stored_labels(loaded, labels, {"a": {**here, "checkpoint": str(r2.absolute())}}, out, notes)


def test_backbone_fingerprint_is_the_content_not_the_file_times(tiny_dirs, tmp_path):
    from noisesim.engine.grid import backbone_fingerprint

    folder = tmp_path / "bb"
    shutil.copytree(tiny_dirs["bert"], folder)
    before = backbone_fingerprint(str(folder))
    for path in folder.iterdir():  # `touch`: new times, same content
        os.utime(path, ns=(path.stat().st_atime_ns + 10**9, path.stat().st_mtime_ns + 10**9))
    assert backbone_fingerprint(str(folder)) == before
    config = folder / "config.json"
    mtime = config.stat().st_mtime_ns
    config.write_text(config.read_text().replace("32", "31", 1))  # same size, new content
    os.utime(config, ns=(mtime, mtime + 1))
    assert backbone_fingerprint(str(folder)) != before
    copy = tmp_path / "elsewhere"
    shutil.copytree(tiny_dirs["bert"], copy)
    assert backbone_fingerprint(str(copy)) != before  # another id (its path); the cells' backbone column says so


def long_tsv(tmp_path: Path, words: int = 100) -> Path:
    path = tmp_path / "long.tsv"
    path.write_text(f"sentence\tlabel\n{' '.join(['good'] * words)}\t1\na bad film\t0\n")
    return path


@pytest.mark.parametrize("workers", [1, 2])
def test_sentences_longer_than_the_backbone_takes_are_refused_before_any_cell(tiny_ckpts, tmp_path, workers):
    data = long_tsv(tmp_path)  # 102 tokens with [CLS] and [SEP]; the tiny backbones take 64
    out = tmp_path / "o"
    result = invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--sigma", "0.1", "--programs", "1", "--data", data,
                    "--max-length", "200", "--workers", workers, "--out", out)
    assert_user_error(result, f"--data {data}", "102 tokens", "at most 64", "--max-length 64 or less")
    assert not (out / "results.parquet").exists()
    fine = invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--sigma", "0.1", "--programs", "1", "--data", data,
                  "--max-length", "64", "--out", tmp_path / "fine")
    assert fine.exit_code == 0, fine.output


def test_a_set_path_with_a_control_character_is_one_line():
    for text in ("0\n0=\x1b", "a.\nb=1", "a.b\rc=1"):
        with pytest.raises(UserError, match="give COMPONENT.FIELD") as info:
            parse_sets([text])
        assert "\n" not in str(info.value) and "\r" not in str(info.value)
