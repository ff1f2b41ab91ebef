"""Training seeds of one recipe in sweep results: the recipe / train_seed columns of a row, the between-seed
variance component sd_train (hand-computed golden values, paired realizations), grouping by recipe or checkpoint
(and 'auto'), old tables without the columns, the duplicate check, the pivot table, the report and the plot by
recipe. Built on synthetic tables (no model runs)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, invoke
from scipy.stats import t as student_t

import noisesim
from noisesim.engine.execute import row_of
from noisesim.engine.grid import Cell
from noisesim.engine.results import SweepResult, load_results, write_results
from noisesim.errors import UserError
from noisesim.plots import default_hue, figure, plot_grid
from noisesim.report import markdown_report, pivot_table
from noisesim.stats import group_by, summarize, train_variance, variance_components

AXES = ["data", "checkpoint", "profile", "sigma", "time"]

# the two-level golden example: 3 seeds × 4 programmings of one chip, one read, at one σ
SEED_MEANS = [0.80, 0.82, 0.84]  # var = 0.0004: sd_seed_means = 0.02
SHARED = [0.04, -0.02, 0.0, -0.02]  # what programming p does to every seed alike (common random numbers)
D = 0.03
OWN = [[D, -D, 0, 0], [-D, D, 0, 0], [0, 0, 0, 0]]  # seed × programming interaction: rows and columns sum to 0


def row(ckpt, recipe, accuracy, *, sigma=0.02, chip=0, program=0, read=0, clean=False, train_seed=None, **extra):
    return {"data": "sst2", "checkpoint": ckpt, "recipe": recipe, "train_seed": train_seed, "method": "grasp-w",
            "profile": "gaussian", "sigma": sigma, "time": "0s", "time_s": 0.0, "chip": chip, "program": program,
            "read": read, "seed": 0, "clean": clean, "accuracy": accuracy, **extra}


def frame_of(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["key"] = [f"k{i}" for i in range(len(frame))]
    frame.attrs["axes"] = list(AXES)
    return frame


def golden(shared=SHARED, own=OWN, means=SEED_MEANS) -> pd.DataFrame:
    """Y[s, p] = seed mean + shared[p] + own[s][p] for the checkpoints gw-s0, gw-s1, gw-s2 of recipe gw."""
    return frame_of([row(f"gw-s{s}", "gw", means[s] + shared[p] + own[s][p], program=p, train_seed=s)
                     for s in range(3) for p in range(4)])


def seeded(seeds=(3, 1), sigmas=(0.01, 0.02), chips=2, programs=3, reads=1, clean=True) -> pd.DataFrame:
    """Recipe gw with seeds[0] checkpoints and recipe base with seeds[1]; a clean row per checkpoint, then chips ×
    programs × reads realizations per σ; seed s of a recipe sits 0.01·s above seed 0."""
    rng = np.random.default_rng(1)
    rows = []
    for name, count, level in (("gw", seeds[0], 0.80), ("base", seeds[1], 0.70)):
        for s in range(count):
            ckpt = f"{name}-s{s}"
            if clean:
                rows.append(row(ckpt, name, level + 0.05 + 0.01 * s, sigma=0.0, clean=True, train_seed=s))
            for sigma in sigmas:
                for c in range(chips):
                    for p in range(programs):
                        for r in range(reads):
                            acc = level + 0.01 * s - sigma + rng.normal(0, 0.01)
                            rows.append(row(ckpt, name, acc, sigma=sigma, chip=c, program=p, read=r, train_seed=s))
    return frame_of(rows)


def old(frame: pd.DataFrame) -> pd.DataFrame:
    """The table as a sweep before recipes wrote it: no recipe, no train_seed."""
    out = frame.drop(columns=["recipe", "train_seed"])
    out.attrs = dict(frame.attrs)
    return out


# --- sd_train: golden values --------------------------------------------------------------------------------------


def test_sd_train_golden_two_level_example():
    got = summarize(golden(), by="recipe")
    assert len(got) == 1
    one = got.iloc[0]
    assert one["recipe"] == "gw" and "checkpoint" not in got
    assert one["seeds"] == 3 and one["count"] == 12
    assert one["mean"] == pytest.approx(0.82, abs=1e-12)
    assert one["sd_seed_means"] == pytest.approx(0.02, rel=1e-9)
    # var(seed means) = 0.0004; interaction SS = 4·D² = 0.0036 over (3 − 1)(4 − 1) = 6 df: MS_res = 0.0006;
    # var_train = 0.0004 − 0.0006 / 4 = 0.00025
    assert one["sd_train"] == pytest.approx(math.sqrt(0.00025), rel=1e-9)
    # within each seed, the variance of its 4 programmings: 0.0026, 0.0002, 0.0008, pooled 0.0012
    assert one["sd_program"] == pytest.approx(math.sqrt(0.0012), rel=1e-9)
    assert math.isnan(one["sd_chip"]) and math.isnan(one["sd_read"])  # one chip, one read
    values = golden()["accuracy"]
    assert one["std"] == pytest.approx(values.std(), rel=1e-12)
    half = student_t.ppf(0.975, 11) * values.std() / math.sqrt(12)
    assert one["ci95_low"] == pytest.approx(0.82 - half) and one["ci95_high"] == pytest.approx(0.82 + half)


def test_sd_train_pairs_realizations_across_seeds():
    """Noise that hits every seed alike (chip k is the same draw for every seed) cancels between seed means and
    is not subtracted: the nested formula, var(seed means) − pooled within-seed variance / R, would give
    0.0004 − 0.0012 / 4 = 0.0001 (sd 0.01) here; the paired one gives 0.00025 whatever the shared part is."""
    assert train_variance(golden()) == pytest.approx(0.00025, rel=1e-9)
    assert train_variance(golden(shared=[0.0, 0.0, 0.0, 0.0])) == pytest.approx(0.00025, rel=1e-9)
    assert train_variance(golden(shared=[0.10, -0.05, 0.0, -0.05])) == pytest.approx(0.00025, rel=1e-9)
    # without an interaction the seed means differ by the seeds alone: sd_train = sd_seed_means
    plain = summarize(golden(own=[[0] * 4] * 3), by="recipe").iloc[0]
    assert plain["sd_train"] == pytest.approx(0.02, rel=1e-9) and plain["sd_seed_means"] == pytest.approx(0.02)


def test_sd_train_counts_a_seeds_own_chip_effect_once_per_chip():
    """2 seeds × 2 chips × 2 programmings: seed means 0.80 and 0.86 (var 0.0018), noise shared by both seeds, and a
    chip effect of ±0.02 of each seed's own (+, − for seed 0 on chips 0, 1; −, + for seed 1). Deviations from
    the realization means: seed 0 chip means −0.01, −0.05 (var 0.0008), seed 1 +0.01, +0.05 (var 0.0008); pooled
    0.0008 × S / (S − 1) = 0.0016 over 2 chips = 0.0008: var_train = 0.0018 − 0.0008 = 0.0010. (Treating the
    4 realizations as independent, var(seed means) − MS_res / 4 = 0.0018 − 0.0032 / 3 / 4, would give 0.00153.)"""
    shared = {(0, 0): 0.01, (0, 1): -0.01, (1, 0): 0.03, (1, 1): -0.03}
    own = [[0.02, -0.02], [-0.02, 0.02]]
    frame = frame_of([row(f"c-s{s}", "c", [0.80, 0.86][s] + shared[c, p] + own[s][c], chip=c, program=p)
                      for s in range(2) for c in range(2) for p in range(2)])
    assert train_variance(frame) == pytest.approx(0.0010, rel=1e-9)
    got = summarize(frame).iloc[0]
    assert got["sd_train"] == pytest.approx(math.sqrt(0.0010), rel=1e-9)
    assert got["sd_seed_means"] == pytest.approx(math.sqrt(0.0018), rel=1e-9)


def test_sd_train_is_clipped_at_zero_and_nan_with_one_seed():
    equal = summarize(golden(means=[0.8, 0.8, 0.8]), by="recipe").iloc[0]  # seeds equal, interaction not
    assert train_variance(golden(means=[0.8, 0.8, 0.8])) == pytest.approx(-0.00015, rel=1e-9)
    assert equal["sd_train"] == 0.0 and equal["sd_seed_means"] == pytest.approx(0.0, abs=1e-12)
    one = golden().query("checkpoint == 'gw-s1'")
    got = summarize(one, by="recipe").iloc[0]
    assert got["seeds"] == 1 and got["count"] == 4
    assert math.isnan(got["sd_train"]) and math.isnan(got["sd_seed_means"])
    assert got["sd_program"] == pytest.approx(math.sqrt(0.0002), rel=1e-9)


def test_sd_train_of_the_clean_reference_and_of_one_noisy_realization():
    frame = seeded(sigmas=(0.02,), chips=1, programs=1)
    got = summarize(frame, by="recipe").set_index(["recipe", "sigma"])
    # clean: no noise to separate, the seeds' accuracies 0.85, 0.86, 0.87: sd 0.01
    assert got.loc[("gw", 0.0), "sd_train"] == pytest.approx(0.01, rel=1e-9)
    assert got.loc[("gw", 0.0), "mean"] == pytest.approx(0.86) and got.loc[("gw", 0.0), "seeds"] == 3
    # noisy, one realization per seed: seed and noise confounded
    assert math.isnan(got.loc[("gw", 0.02), "sd_train"])
    assert got.loc[("gw", 0.02), "sd_seed_means"] > 0
    assert math.isnan(got.loc[("base", 0.0), "sd_train"])  # one seed


def test_sd_train_uses_only_realizations_common_to_all_seeds():
    frame = golden()
    drop = frame.index[(frame["checkpoint"] == "gw-s2") & (frame["program"] == 3)]
    # left: programmings 0-2 of every seed paired; seed 2 lost its programming 3
    rows = frame.drop(drop)
    table = np.array([[SEED_MEANS[s] + SHARED[p] + OWN[s][p] for p in range(3)] for s in range(3)])
    resid = table - table.mean(1, keepdims=True) - table.mean(0, keepdims=True) + table.mean()
    expect = table.mean(1).var(ddof=1) - (resid ** 2).sum() / (2 * 2) / 3
    assert train_variance(rows) == pytest.approx(expect, rel=1e-9)
    assert math.isnan(train_variance(frame.query("checkpoint == 'gw-s0' and program < 2 or "
                                                 "checkpoint == 'gw-s1' and program >= 2")))  # nothing paired


def test_sd_train_recovers_a_known_spread_with_shared_chips():
    """200 seeds × 4 chips × 2 programmings × 2 reads, every seed on the same chips: chip effects shared by all
    seeds (sd 0.03) plus a seed × chip part (sd 0.01); seed effects sd 0.02."""
    gen = np.random.default_rng(7)
    seeds, chips, programs, reads = 200, 4, 2, 2
    seed_fx = gen.normal(0, 0.02, seeds)
    chip_fx = gen.normal(0, 0.03, chips)
    prog_fx = gen.normal(0, 0.01, (chips, programs))
    rows = []
    for s in range(seeds):
        own = gen.normal(0, 0.01, chips)
        for c in range(chips):
            for p in range(programs):
                for r in range(reads):
                    acc = 0.7 + seed_fx[s] + chip_fx[c] + own[c] + prog_fx[c, p] + gen.normal(0, 0.005)
                    rows.append(row(f"r-s{s}", "r", acc, chip=c, program=p, read=r))
    got = summarize(frame_of(rows), by="auto").iloc[0]
    assert got["seeds"] == seeds and got["count"] == seeds * chips * programs * reads
    drawn = np.std(seed_fx, ddof=1)  # 0.0175: the seed effects this draw holds
    assert abs(got["sd_train"] / drawn - 1) < 0.05
    assert abs(got["sd_seed_means"] / drawn - 1) < 0.1
    assert abs(got["sd_read"] / 0.005 - 1) < 0.05
    # the shared chip effects (sd 0.03) would bias the plain nested formula: it subtracts them from var(seed means)
    means = frame_of(rows).groupby("checkpoint")["accuracy"].mean()
    within = frame_of(rows).groupby(["checkpoint", "chip"])["accuracy"].mean().groupby(level=0).var().mean()
    assert means.var() - within / chips < 0.7 * drawn ** 2


# --- grouping: auto, checkpoint, recipe ------------------------------------------------------------------------


def test_auto_groups_by_recipe_only_when_a_recipe_has_several_checkpoints():
    frame = seeded()
    assert group_by(frame) == "recipe" and default_hue(frame) == "recipe"
    single = frame[frame["checkpoint"].isin(["gw-s0", "base-s0"])]
    assert group_by(single) == "checkpoint" and default_hue(single) == "checkpoint"
    assert group_by(old(frame)) == "checkpoint"
    nameless = frame.assign(recipe=None)  # checkpoints without a recipe: each is its own
    assert group_by(nameless) == "checkpoint"
    assert group_by(single, "recipe") == "recipe" and group_by(frame, "checkpoint") == "checkpoint"
    auto = summarize(frame)
    assert list(auto["recipe"].unique()) == ["gw", "base"] and auto.attrs["by"] == "recipe"
    pd.testing.assert_frame_equal(auto, summarize(frame, by="recipe"))
    assert list(summarize(single)["checkpoint"].unique()) == ["gw-s0", "base-s0"]


def test_summary_by_recipe_pools_seeds_and_realizations():
    frame = seeded()
    got = summarize(frame, by="recipe")
    assert got.attrs["axes"] == ["data", "recipe", "profile", "sigma", "time"]
    assert list(got.columns) == ["data", "recipe", "profile", "sigma", "time", "time_s", "clean", "mean", "std",
                                 "count", "seeds", "ci95_low", "ci95_high", "sd_seed_means", "sd_total", "sd_train",
                                 "sd_chip", "sd_program", "sd_read"]
    assert len(got) == 2 * 3  # 2 recipes × (clean + 2 σ)
    part = frame[(frame["recipe"] == "gw") & (frame["sigma"] == 0.02)]
    one = got[(got["recipe"] == "gw") & (got["sigma"] == 0.02)].iloc[0]
    assert one["count"] == 18 and one["seeds"] == 3
    assert one["mean"] == pytest.approx(part["accuracy"].mean()) and one["std"] == pytest.approx(part["accuracy"].std())
    assert one["sd_seed_means"] == pytest.approx(part.groupby("checkpoint")["accuracy"].mean().std())
    pooled = np.mean([variance_components(p)["sd_program"] ** 2 for _, p in part.groupby("checkpoint")])
    assert one["sd_program"] == pytest.approx(math.sqrt(pooled))
    base = got[(got["recipe"] == "base") & (got["sigma"] == 0.02)].iloc[0]
    assert base["seeds"] == 1 and math.isnan(base["sd_train"])


def test_old_tables_summarize_as_before_with_sd_train_nan():
    frame = old(seeded(seeds=(1, 1)))
    by_ckpt = summarize(frame)
    assert by_ckpt.attrs["by"] == "checkpoint"
    assert list(by_ckpt.columns) == ["data", "checkpoint", "profile", "sigma", "time", "time_s", "clean", "mean",
                                     "std", "count", "ci95_low", "ci95_high", "sd_total", "sd_train", "sd_chip",
                                     "sd_program", "sd_read"]
    assert by_ckpt["sd_train"].isna().all()
    for (ckpt, sigma), part in frame.groupby(["checkpoint", "sigma"]):
        one = by_ckpt[(by_ckpt["checkpoint"] == ckpt) & (by_ckpt["sigma"] == sigma)].iloc[0]
        for name, value in variance_components(part).items():
            assert one[name] == pytest.approx(value, nan_ok=True)
    # by recipe, an old table's checkpoints are recipes of one seed
    by_recipe = summarize(frame, by="recipe")
    assert list(by_recipe["recipe"].unique()) == ["gw-s0", "base-s0"] and (by_recipe["seeds"] == 1).all()
    assert by_recipe["mean"].tolist() == pytest.approx(by_ckpt["mean"].tolist())
    # a table mixing old rows (no recipe) and new rows: the old rows fall back to their checkpoint
    mixed = seeded()
    mixed.loc[mixed["checkpoint"] == "base-s0", "recipe"] = None
    assert set(summarize(mixed, by="recipe")["recipe"]) == {"gw", "base-s0"}


def test_an_old_results_folder_loads_summarizes_and_plots(tmp_path):
    frame = old(seeded(seeds=(1, 1)))
    folder = tmp_path / "old"
    write_results(SweepResult(frame, 0.5, {"chance": 0.5, "noisesim_version": "0.2", "cells": len(frame)}), folder)
    loaded = load_results(folder)
    assert "recipe" not in loaded.frame
    assert noisesim.summarize(loaded)["sd_train"].isna().all()
    assert set(noisesim.summarize(loaded, by="recipe")["recipe"]) == {"gw-s0", "base-s0"}
    paths = noisesim.plot(loaded, tmp_path / "fig", hue="recipe")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = invoke("plot", folder, "--hue", "recipe")
    assert done.exit_code == 0, done.output
    assert (folder / "plot_sigma.png").is_file()


def test_by_is_validated():
    with pytest.raises(UserError, match=r"by='seed' is not a grouping \(allowed: auto, checkpoint, recipe\)"):
        noisesim.summarize(seeded(), by="seed")
    with pytest.raises(UserError, match="allowed: auto, checkpoint, recipe"):
        summarize(seeded(), by=None)
    with pytest.raises(UserError) as info:
        noisesim.summarize(golden(), by="Recipe")
    assert "\n" not in str(info.value)


# --- the duplicate check --------------------------------------------------------------------------------------


def test_seeds_are_not_duplicates_but_real_duplicates_are_refused():
    frame = seeded()
    # every seed has chip 0 / programming 0 at σ = 0.02: rows that differ only in their checkpoint are fine
    assert len(summarize(frame, by="checkpoint")) == 4 * 3
    twice = pd.concat([frame, frame], ignore_index=True)
    twice.attrs = dict(frame.attrs)
    for by in ("auto", "checkpoint", "recipe"):
        with pytest.raises(UserError, match="repeat one setting and realization"):
            summarize(twice, by=by)
    # one seed's row again, under another recipe name: still the same checkpoint and realization
    again = pd.concat([frame, frame.iloc[[5]].assign(recipe="other")], ignore_index=True)
    again.attrs = dict(frame.attrs)
    with pytest.raises(UserError, match="2 rows that repeat one setting and realization"):
        summarize(again, by="recipe")


# --- rows of a sweep ------------------------------------------------------------------------------------------


def test_row_of_records_recipe_and_training_seed():
    cell = Cell(0, "gw-hwa-s1", "/ckpts/gw-hwa-s1", "gaussian", {}, {"gaussian.sigma": 0.02}, 0.0, 1, 0, 0, "abc",
                {"checkpoint_sha256": "f", "profile_sha256": "p", "backbone_sha256": "b", "data_sha256": "d"})

    def ckpt(**meta):
        return SimpleNamespace(meta={"backbone": "tiny", "method": {"method": "grasp-w"}, **meta},
                               method=SimpleNamespace(method="grasp-w"))

    got = row_of(cell, ckpt(recipe="gw-hwa", training={"seed": 1}), 0.8, 10, 0, 1.0)
    assert (got["key"], got["checkpoint"], got["recipe"], got["train_seed"]) == ("abc", "gw-hwa-s1", "gw-hwa", 1)
    got = row_of(cell, ckpt(training=None), 0.8, 10, 0, 1.0)  # an old or external checkpoint
    assert got["recipe"] == "gw-hwa-s1" and got["train_seed"] is None
    got = row_of(cell, ckpt(recipe=None, training={"seed": 7}), 0.8, 10, 0, 1.0)
    assert got["recipe"] == "gw-hwa-s1" and got["train_seed"] == 7
    assert "recipe" not in json.dumps(sorted(cell.provenance))  # provenance of the checkpoint, not of the cell


# --- report and plot --------------------------------------------------------------------------------------------


def test_pivot_table_by_recipe_has_recipes_down_and_seeds_in_each_cell():
    frame = seeded()
    summary = summarize(frame)
    table = pivot_table(summary)
    assert list(table.index) == ["gw", "base"] and table.index.name == "recipe"
    assert list(table.columns) == ["sigma=0", "sigma=0.01", "sigma=0.02"]
    part = frame[(frame["recipe"] == "gw") & (frame["sigma"] == 0.01)]["accuracy"]
    assert table.loc["gw", "sigma=0.01"] == f"{100 * part.mean():.1f} ± {100 * part.std():.1f} (3 seeds)"
    clean = frame[(frame["recipe"] == "gw") & frame["clean"]]["accuracy"]  # 0.85, 0.86, 0.87
    assert table.loc["gw", "sigma=0"] == "86.0 ± 1.0 (3 seeds)"
    assert clean.tolist() == pytest.approx([0.85, 0.86, 0.87])
    assert table.loc["base", "sigma=0"] == "75.0 (1 seed)"
    # per checkpoint: the table as before, settings down and checkpoints across
    per = pivot_table(summarize(frame, by="checkpoint"))
    assert list(per.columns) == ["gw-s0", "gw-s1", "gw-s2", "base-s0"] and per.index.name == "sigma"


def test_markdown_report_by_recipe():
    frame = seeded()
    text = markdown_report(SweepResult(frame, 0.5, {}))
    lines = text.splitlines()
    assert lines[0] == "# Sweep on sst2: accuracy (%), mean ± std over training seeds × realizations"
    assert lines[2] == "| recipe | sigma=0 | sigma=0.01 | sigma=0.02 |"
    assert lines[4].startswith("| gw | 86.0 ± 1.0 (3 seeds) | ")
    header = next(line for line in lines if line.startswith("| recipe | sigma | seeds"))
    assert header == ("| recipe | sigma | seeds | count | mean | ci95_low | ci95_high | sd_seed_means | sd_train |"
                      " sd_chip | sd_program | sd_read |")
    summary = summarize(frame)
    one = summary[(summary["recipe"] == "gw") & (summary["sigma"] == 0.02)].iloc[0]
    assert (f"| gw | 0.02 | 3 | 18 | {100 * one['mean']:.2f} | {100 * one['ci95_low']:.2f} |"
            f" {100 * one['ci95_high']:.2f} | {100 * one['sd_seed_means']:.2f} | {100 * one['sd_train']:.2f} |") in text
    plain = markdown_report(SweepResult(old(seeded(seeds=(1, 1))), 0.5, {}))
    assert plain.splitlines()[0] == "# Sweep on sst2: accuracy (%), mean ± std" and "sd_train" not in plain


def caption_of(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def test_plot_by_recipe_pools_seeds_and_says_so(tmp_path):
    frame = seeded()
    fig = figure(frame, "sigma", hue="recipe", chance=0.5)
    text = caption_of(fig)
    assert ("error bars: ±1 SD over each recipe's training seeds × 6 realizations (1–3 seeds, as in the legend;"
            " each seed: 2 chips × 3 programmings × 1 read)") in text
    assert "clean reference (dotted, no noise): mean over each recipe's training seeds (1–3)" in text
    ax = fig.axes[0]
    assert len(ax.containers) == 2  # one line per recipe, not per checkpoint
    labels = [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else [
        t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels[:2] == ["gw (3 seeds)", "base (1 seed)"]
    line = ax.containers[0].lines[0]
    part = frame[(frame["recipe"] == "gw") & ~frame["clean"]].groupby("sigma")["accuracy"]
    assert np.asarray(line.get_ydata(), dtype=float) == pytest.approx(100 * part.mean().to_numpy())
    bars = ax.containers[0].lines[2][0].get_segments()
    assert [s[1][1] - s[0][1] for s in bars] == pytest.approx(list(2 * 100 * part.std().to_numpy()))
    clean = [ln for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert sorted(ln.get_ydata()[0] for ln in clean) == pytest.approx([75.0, 86.0])  # mean of gw's 3 seeds
    paths = plot_grid(frame, tmp_path / "fig", x="sigma", hue="recipe", formats="png,svg")
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "<svg" in paths[1].read_text()
    gw = caption_of(figure(frame[frame["recipe"] == "gw"], "sigma", hue="recipe"))
    assert ("error bars: ±1 SD over 3 training seeds × 6 realizations (n = 18; each seed: 2 chips × 3"
            " programmings × 1 read)") in gw
    assert "clean reference (dotted, no noise): mean over 3 training seeds." in gw
    # hue checkpoint (explicit): one line per checkpoint, the caption as before
    per = figure(frame, "sigma", hue="checkpoint")
    assert len(per.axes[0].containers) == 4
    assert "error bars: ±1 SD over n = 6 realizations (2 chips × 3 programmings × 1 read)" in caption_of(per)


def test_plot_caption_with_uneven_seeds_gives_ranges():
    frame = seeded(seeds=(3, 2))
    frame = frame.drop(frame.index[(frame["checkpoint"] == "gw-s2") & (frame["program"] == 2)])
    text = caption_of(figure(frame, "sigma", hue="recipe"))
    assert "error bars: ±1 SD over 2–3 training seeds × their realizations (n = 12–16 per point)" in text


def test_sweep_plot_and_plot_command_default_to_recipe(tmp_path, monkeypatch):
    import noisesim.api
    import noisesim.plots as plots

    frame = seeded()
    folder = tmp_path / "sweep"
    write_results(SweepResult(frame, 0.5, {"chance": 0.5, "noisesim_version": "0.2", "cells": len(frame)}), folder)
    hues = []
    real = plots.plot_grid
    monkeypatch.setattr(plots, "plot_grid", lambda *a, **kw: hues.append(kw["hue"]) or real(*a, **kw))
    monkeypatch.setattr(noisesim.api, "plot_grid", plots.plot_grid)  # the sweep's own plot
    done = invoke("plot", folder)
    assert done.exit_code == 0, done.output
    done = invoke("plot", folder, "--hue", "checkpoint", "--out", tmp_path / "per")
    assert done.exit_code == 0, done.output
    assert hues == ["recipe", "checkpoint"]
    assert_user_error(invoke("plot", folder, "--hue", "flavour"), "--hue 'flavour' is not an axis", "recipe")
    hues.clear()
    paths = noisesim.api.write_outputs(load_results(folder), tmp_path / "again")
    assert hues == ["recipe"] and paths["plot"].name == "accuracy_vs_sigma.png"
    summary = pd.read_csv(paths["summary"])
    assert list(summary["recipe"].unique()) == ["gw", "base"] and summary["seeds"].tolist()[:3] == [3, 3, 3]
    assert "checkpoint" not in summary


def test_a_sweep_records_recipes_and_summarizes_its_seeds(tiny_ckpts, tiny_tsv, tmp_path):
    """Two checkpoints of recipe gw (training seeds 0 and 1; the same tensors, so the same numbers) and one
    without a recipe: the rows carry recipe / train_seed, summary.csv is by recipe, the plot is coloured by it."""
    import shutil

    folders = []
    for name, recipe, seed in (("gw-s0", "gw", 0), ("gw-s1", "gw", 1), ("solo", None, None)):
        folder = tmp_path / name
        shutil.copytree(tiny_ckpts["grasp-w"], folder)
        meta = json.loads((folder / "config.json").read_text())
        meta["recipe"] = recipe
        if seed is None:
            meta["training"] = None
        else:
            meta["training"]["seed"] = seed
        (folder / "config.json").write_text(json.dumps(meta))
        folders.append(str(folder))
    result = noisesim.sweep(ckpt=folders, sigma="0.1", chips=2, programs=2, reads=1, data=tiny_tsv, out=tmp_path / "s",
                            progress=False)
    noisy = result.frame[~result.frame["clean"]]
    assert noisy.groupby("checkpoint")["recipe"].first().to_dict() == {"gw-s0": "gw", "gw-s1": "gw", "solo": "solo"}
    seeds = noisy.groupby("checkpoint")["train_seed"].first()
    assert seeds["gw-s0"] == 0 and seeds["gw-s1"] == 1 and pd.isna(seeds["solo"])
    summary = pd.read_csv(result.paths["summary"])
    gw = summary[(summary["recipe"] == "gw") & (summary["sigma"] == 0.1)].iloc[0]
    assert gw["seeds"] == 2 and gw["count"] == 2 * 2 * 2
    assert gw["sd_seed_means"] == 0.0 and gw["sd_train"] == 0.0  # equal tensors, common random numbers
    assert summary.loc[summary["recipe"] == "solo", "seeds"].tolist() == [1, 1]
    again = load_results(tmp_path / "s")
    pd.testing.assert_frame_equal(noisesim.summarize(again), noisesim.summarize(result, by="recipe"))
    assert group_by(again.frame) == "recipe"


# --- which checkpoints are seeds of one recipe: recipe_id, repeated training seeds, one checkpoint twice ----------


def ids(frame: pd.DataFrame, by_ckpt: dict[str, str]) -> pd.DataFrame:
    out = frame.assign(recipe_id=frame["checkpoint"].map(by_ckpt))
    out.attrs = dict(frame.attrs)
    return out


def test_one_recipe_name_of_two_recipes_is_split_with_distinct_labels():
    """`train --method grasp --out ./r1/x` and `train --method lora --out ./r2/x`: two recipes named x."""
    frame = seeded(seeds=(2, 2))
    frame["recipe"] = "x"  # gw-s0, gw-s1 (one recipe) and base-s0, base-s1 (another) all named x
    frame = ids(frame, {"gw-s0": "3fa2c1aa", "gw-s1": "3fa2c1aa", "base-s0": "77ab02bb", "base-s1": "77ab02bb"})
    got = summarize(frame)
    assert got.attrs["by"] == "recipe"
    assert list(got["recipe"].unique()) == ["x [3fa2c1]", "x [77ab02]"] and (got["seeds"] == 2).all()
    # the same labels whatever the row order, and the same as before with ids that need more digits apart
    again = summarize(frame.iloc[::-1].reset_index(drop=True))
    assert set(again["recipe"]) == {"x [3fa2c1]", "x [77ab02]"}
    close = ids(frame, {"gw-s0": "3fa2c1aa", "gw-s1": "3fa2c1aa", "base-s0": "3fa2c1bb", "base-s1": "3fa2c1bb"})
    assert list(summarize(close)["recipe"].unique()) == ["x [3fa2c1a]", "x [3fa2c1b]"]
    # one recipe_id for the name: the plain name, as before
    one = ids(seeded(), {c: "aaaaaaaaaaaa" if c.startswith("gw") else "bbbbbbbbbbbb" for c in seeded()["checkpoint"]})
    assert list(summarize(one)["recipe"].unique()) == ["gw", "base"]


def test_a_checkpoint_without_a_recipe_is_not_pooled_with_a_recipe_of_its_name():
    """The shipped sst2-grasp (no recipe: its label; its own files' hash as recipe_id) and a user's sst2-grasp-s0,
    -s1 whose recipe is sst2-grasp."""
    frame = seeded(seeds=(2, 1))
    frame["checkpoint"] = frame["checkpoint"].replace({"gw-s0": "sst2-grasp-s0", "gw-s1": "sst2-grasp-s1",
                                                       "base-s0": "sst2-grasp"})
    frame["recipe"] = "sst2-grasp"
    frame.loc[frame["checkpoint"] == "sst2-grasp", "train_seed"] = 0
    frame = ids(frame, {"sst2-grasp-s0": "5eed5eed5eed", "sst2-grasp-s1": "5eed5eed5eed",
                        "sst2-grasp": "c0ffee00c0ffee00"})
    got = summarize(frame)
    seeds = got.groupby("recipe", sort=False)["seeds"].first().to_dict()
    assert seeds == {"sst2-grasp [5eed5e]": 2, "sst2-grasp [c0ffee]": 1}


def test_two_checkpoints_with_one_training_seed_are_not_two_seeds():
    """foo (seed 0), foo-s0 (seed 0) and foo-s1 (seed 1), all recipe foo: not '3 seeds'."""
    frame = seeded(seeds=(3, 1))
    frame["checkpoint"] = frame["checkpoint"].replace({"gw-s0": "foo", "gw-s1": "foo-s0", "gw-s2": "foo-s1"})
    frame.loc[frame["checkpoint"].str.startswith("foo"), "recipe"] = "foo"
    frame["train_seed"] = frame["checkpoint"].map({"foo": 0, "foo-s0": 0, "foo-s1": 1, "base-s0": 0})
    for table in (old(frame).assign(recipe=frame["recipe"], train_seed=frame["train_seed"]),  # no recipe_id column
                  ids(frame, {"foo": "1d1d1d1d", "foo-s0": "1d1d1d1d", "foo-s1": "1d1d1d1d", "base-s0": "2e2e"})):
        table.attrs = dict(frame.attrs)
        assert group_by(table) == "checkpoint" and default_hue(table) == "checkpoint"
        got = summarize(table, by="recipe")
        assert list(got["recipe"].unique()) == ["foo", "foo-s0", "foo-s1", "base"] and (got["seeds"] == 1).all()
    # seeds that differ still pool; an unrecorded seed is not compared
    fine = frame[frame["checkpoint"] != "foo"]
    assert summarize(fine)["seeds"].max() == 2
    assert summarize(fine.assign(train_seed=None))["seeds"].max() == 2


def test_one_checkpoint_under_two_labels_is_refused():
    """`sweep --ckpt ./r1/x --out sw`, then `sweep --ckpt ./r1/x --ckpt ./r2/x --out sw` by an older noisesim: r1/x
    is in the table as x and as /abs/r1/x."""
    frame = seeded(seeds=(1, 1))
    frame = frame.assign(checkpoint_sha256=frame["checkpoint"].map({"gw-s0": "aa", "base-s0": "bb"}),
                         checkpoint_path=frame["checkpoint"].map({"gw-s0": "/abs/r1/gw-s0", "base-s0": "/abs/b"}))
    again = frame[frame["checkpoint"] == "gw-s0"].assign(checkpoint="/abs/r1/gw-s0")
    both = pd.concat([frame, again], ignore_index=True)
    both.attrs = dict(frame.attrs)
    for call in (summarize, lambda f: figure(f, "sigma"), lambda f: markdown_report(SweepResult(f, 0.5, {}))):
        with pytest.raises(UserError, match=r"under two labels, 'gw-s0' and '/abs/r1/gw-s0'.*fresh --out") as info:
            call(both)
        assert "\n" not in str(info.value)
    assert len(summarize(frame)) == 6  # one label per checkpoint: fine
    # a copy (the same files in another folder) is another checkpoint: its own column, not a second seed
    copy = again.assign(checkpoint="copy", checkpoint_path="/abs/copy")
    copies = pd.concat([frame, copy], ignore_index=True)
    copies.attrs = dict(frame.attrs)
    assert set(summarize(copies)["checkpoint"]) == {"gw-s0", "base-s0", "copy"}
    assert set(summarize(copies, by="recipe")["recipe"]) == {"gw-s0", "copy", "base"}  # train_seed 0 twice
    older = both.drop(columns="checkpoint_path")  # a table that does not record folders: cannot tell
    older.attrs = dict(frame.attrs)
    assert len(summarize(older)) == 9


def test_row_of_records_the_recipe_id(tiny_ckpts):
    from noisesim import checkpoints
    from noisesim.engine.execute import recipe_id_of

    cell = Cell(0, "gw-s1", "/ckpts/gw-s1", "gaussian", {}, {"gaussian.sigma": 0.02}, 0.0, 0, 0, 0, "abc",
                {"checkpoint_sha256": "f00d", "profile_sha256": "p", "backbone_sha256": "b", "data_sha256": "d"})
    real = checkpoints.read(tiny_ckpts["grasp-w"])

    def like(**changes):
        meta = json.loads(json.dumps(real.meta))
        for key, value in changes.items():
            if key == "seed":
                meta["training"]["seed"] = value
            elif key == "steps":
                meta["training"]["steps"] = value
            else:
                meta[key] = value
        return SimpleNamespace(meta=meta, method=SimpleNamespace(method=meta["method"]["method"]))

    base = recipe_id_of(cell, like(recipe="gw", seed=0))
    assert recipe_id_of(cell, like(recipe="gw", seed=5)) == base  # another training seed of the recipe
    for other in (like(recipe="gw2", seed=0), like(recipe="gw", steps=7), like(recipe="gw", pooling="cls"),
                  like(recipe="gw", method={**real.meta["method"], "k": 3}), like(recipe="gw", num_labels=3),
                  like(recipe="gw", backbone="/elsewhere")):
        assert recipe_id_of(cell, other) != base
    assert recipe_id_of(cell, like(recipe=None)) == "f00d"  # no recipe: its files
    row = row_of(cell, like(recipe="gw", seed=1), 0.8, 10, 0, 1.0)
    assert row["recipe_id"] == base and row["layers"] is None


def test_a_sweep_splits_recipes_and_does_not_pool_repeated_seeds(tiny_ckpts, tiny_tsv, tmp_path):
    """Real checkpoints: x by grasp and x by grasp-w (two recipes of one name); foo, foo-s0 (both seed 0) and foo-s1."""
    import shutil

    def make(name, source, recipe, seed, note):
        folder = tmp_path / name
        shutil.copytree(tiny_ckpts[source], folder)
        meta = json.loads((folder / "config.json").read_text())
        meta["training"]["seed"] = seed
        (folder / "config.json").write_text(json.dumps({**meta, "recipe": recipe, "dev_accuracy": 0.5 + note / 100}))
        return str(folder)

    r1 = tmp_path / "r1"
    r1.mkdir()
    x1 = make("r1/x", "grasp", "x", 0, 1)
    x2 = make("x2", "grasp-w", "x", 1, 2)
    foo = [make(n, "grasp-w", "foo", s, i) for i, (n, s) in enumerate((("foo", 0), ("foo-s0", 0), ("foo-s1", 1)))]
    result = noisesim.sweep(ckpt=[x1, x2, *foo], sigma="0.1", chips=1, programs=2, data=tiny_tsv,
                            out=tmp_path / "s", progress=False)
    frame = result.frame
    assert frame["recipe_id"].notna().all()
    per = frame.groupby("checkpoint", sort=False)["recipe_id"].first()
    assert per["x"] != per["x2"] and per["foo"] == per["foo-s0"] == per["foo-s1"]
    summary = noisesim.summarize(result)
    assert summary.attrs["by"] == "checkpoint"  # nothing pools: x is two recipes, foo repeats seed 0
    by_recipe = noisesim.summarize(result, by="recipe")
    labels = list(by_recipe["recipe"].unique())
    assert labels == [f"x [{per['x'][:6]}]", f"x [{per['x2'][:6]}]", "foo", "foo-s0", "foo-s1"]
    assert (by_recipe["seeds"] == 1).all()
    assert pd.read_csv(result.paths["summary"])["checkpoint"].nunique() == 5


def test_rows_reused_from_an_older_table_stay_in_their_checkpoints_recipe():
    """A folder written before recipe_id (or recipe) was recorded, extended by a new sweep: one checkpoint's rows
    with and without the columns are one recipe, not two."""
    frame = ids(seeded(seeds=(2, 1)), {"gw-s0": "aaaaaaaa", "gw-s1": "aaaaaaaa", "base-s0": "bbbbbbbb"})
    older = frame["sigma"] == 0.01
    frame.loc[older, "recipe_id"] = None
    frame.loc[older & (frame["checkpoint"] == "gw-s1"), "recipe"] = None
    got = summarize(frame)
    assert list(got["recipe"].unique()) == ["gw", "base"] and got.groupby("recipe")["seeds"].max().to_dict() == \
        {"gw": 2, "base": 1}


def test_recipe_id_ignores_settings_that_do_not_act_and_the_seed():
    from noisesim.engine.execute import recipe_id_of

    cell = Cell(0, "gw-s1", "/ckpts/gw-s1", "gaussian", {}, {"gaussian.sigma": 0.02}, 0.0, 1, 0, 0, "abc",
                {"checkpoint_sha256": "f", "profile_sha256": "p", "backbone_sha256": "b", "data_sha256": "d"})

    def rid(method, training):
        meta = {"backbone": "tiny", "pooling": "mean", "num_labels": 2, "recipe": "gw", "method": method,
                "training": training}
        return recipe_id_of(cell, SimpleNamespace(meta=meta, method=SimpleNamespace(method=method["method"])))

    base = rid({"method": "grasp-w", "noise_path": "weight"}, {"seed": 0, "lr": 0.001})
    assert base == rid({"method": "grasp-w"}, {"seed": 3, "lr": None})  # noise_path is StochGRASP's; lr as used
    assert base != rid({"method": "grasp-w", "k": 32}, {"seed": 0})
    assert base != rid({"method": "grasp-w"}, {"seed": 0, "train_noise": "gaussian:0.03"})
    assert rid({"method": "stochgrasp", "noise_path": "weight"}, {}) != rid({"method": "stochgrasp"}, {})
