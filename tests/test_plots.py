"""Plots: what the error bars are, offsets, colours and line styles, formats, file names, empty plots refused,
one drawing style for the sweep's own plot and `noisesim plot`. Built on synthetic tables (no model runs)."""

from __future__ import annotations

import struct

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, invoke
from matplotlib.colors import to_hex

from noisesim.errors import UserError
from noisesim.plots import FORMATS, check_formats, default_stem, figure, plot_axis, plot_grid

TIMES = {"1s": 1.0, "1h": 3600.0, "1d": 86400.0}


def table(kind: str = "sigma", ckpts=("stoch", "grasp"), comps=("none", "global"), chips: int = 2,
          programs: int = 3, reads: int = 1, clean_first: bool = True) -> pd.DataFrame:
    """A results table as a sweep writes it: one clean row per checkpoint, then chips × programs × reads
    realizations per setting (σ in 0.01, 0.02, 0.05; or pcm at 1s, 1h, 1d with drift.compensation)."""
    rng = np.random.default_rng(0)
    clean, noisy = [], []
    for i, ck in enumerate(ckpts):
        base = {"data": "sst2", "checkpoint": ck, "method": "m", "seed": 0}
        extra = {"drift.compensation": None} if kind == "time" else {}
        clean.append({**base, "profile": "gaussian" if kind == "sigma" else "ideal", "sigma": 0.0 if kind == "sigma"
                      else np.nan, "time": "0s", "time_s": 0.0, "chip": 0, "program": 0, "read": 0, "clean": True,
                      "accuracy": 0.9 - 0.02 * i, **extra})
        settings = ([{"profile": "gaussian", "sigma": s, "time": "0s", "time_s": 0.0} for s in (0.01, 0.02, 0.05)]
                    if kind == "sigma" else
                    [{"profile": "pcm", "sigma": np.nan, "time": t, "time_s": ts, "drift.compensation": c}
                     for c in comps for t, ts in TIMES.items()])
        for setting in settings:
            for chip in range(chips):
                for program in range(programs):
                    for read in range(reads):
                        noisy.append({**base, **setting, "chip": chip, "program": program, "read": read,
                                      "clean": False, "accuracy": float(np.clip(0.8 + rng.normal(0, 0.02), 0, 1))})
    frame = pd.DataFrame(clean + noisy if clean_first else noisy + clean)
    frame["key"] = [f"k{i}" for i in range(len(frame))]
    frame.attrs["axes"] = ["data", "checkpoint", "profile", "sigma", *(["drift.compensation"] if kind == "time"
                                                                        else []), "time"]
    return frame


def curves(ax) -> list:
    """The data line of each error-bar plot, in drawing order."""
    return [c.lines[0] for c in ax.containers]


def references(ax) -> list:
    """The horizontal dotted clean-reference lines."""
    return [line for line in ax.get_lines() if line.get_linestyle() == ":"]


def caption_of(fig) -> str:
    return " ".join(t.get_text() for t in fig.texts).replace("\n", " ")


def test_caption_says_what_the_error_bars_are():
    fig = figure(table(chips=2, programs=3), "sigma", chance=0.5)
    text = caption_of(fig)
    assert "error bars: ±1 SD over n = 6 realizations (2 chips × 3 programmings × 1 read)" in text
    assert "clean reference (dotted, no noise): one evaluation" in text
    uneven = table()
    uneven = uneven.drop(uneven.index[(uneven["sigma"] == 0.05) & (uneven["program"] == 2)])
    assert "±1 SD over n = 4–6 realizations per point" in caption_of(figure(uneven, "sigma"))
    single = table(chips=1, programs=1)
    assert "no error bars: one realization per point" in caption_of(figure(single, "sigma"))


def test_checkpoints_are_offset_on_x_and_ticks_stay_at_the_true_values():
    ax = figure(table(), "sigma").axes[0]
    lines = curves(ax)
    assert len(lines) == 2
    xs = [np.asarray(line.get_xdata(), dtype=float) for line in lines]
    assert not np.allclose(xs[0], xs[1])  # error bars side by side, not on top of each other
    assert np.allclose((xs[0] + xs[1]) / 2, [0.01, 0.02, 0.05])
    assert np.abs(xs[0] - [0.01, 0.02, 0.05]).max() < 0.003
    assert list(ax.get_xticks()) == [0.01, 0.02, 0.05]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0.01", "0.02", "0.05"]
    log = figure(table("time", comps=("none",)), "time").axes[0]
    assert log.get_xscale() == "log"
    a, b = (np.asarray(line.get_xdata(), dtype=float) for line in curves(log))
    ratio = a / b  # a factor on a log axis: the same on every point
    assert not np.allclose(ratio, 1) and np.allclose(ratio, ratio[0])
    assert np.allclose(np.sqrt(a * b), list(TIMES.values()))
    assert [t.get_text() for t in log.get_xticklabels()] == ["1s", "1h", "1d"]


def test_clean_reference_shares_its_checkpoints_colour():
    three = table(ckpts=("a", "b", "c"))
    swapped = pd.concat([three[three["clean"]].iloc[::-1], three[~three["clean"]]])  # clean rows c, b, a
    swapped.attrs = three.attrs
    for frame in (table(), swapped):
        ax = figure(frame, "sigma").axes[0]
        noisy = pd.unique(frame.loc[~frame["clean"], "checkpoint"])
        curve = {ck: to_hex(line.get_color()) for ck, line in zip(noisy, curves(ax), strict=True)}
        clean = frame[frame["clean"]].set_index("checkpoint")["accuracy"] * 100
        assert len(references(ax)) == len(clean)
        for line in references(ax):
            (ck,) = clean.index[np.isclose(clean.values, line.get_ydata()[0])]
            assert to_hex(line.get_color()) == curve[ck]


def test_other_axes_get_line_styles_not_colours():
    ax = figure(table("time"), "time", chance=0.5).axes[0]
    lines = curves(ax)
    assert len(lines) == 4  # 2 checkpoints × 2 compensations
    assert len({to_hex(line.get_color()) for line in lines}) == 2
    styles = {}
    for line in lines:
        styles.setdefault(to_hex(line.get_color()), set()).add(str(line.get_linestyle()))
    assert all(len(s) == 2 for s in styles.values())  # one checkpoint: solid and dashed
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["stoch", "grasp", "drift.compensation = none", "drift.compensation = global",
                      "clean (no noise)", "chance (50.0 %)"]


def test_formats_are_validated_and_written(tmp_path):
    assert check_formats("png, SVG,pdf") == ("png", "svg", "pdf") and check_formats(("png",)) == ("png",)
    for bad in ("jpg", "png,", ""):
        with pytest.raises(UserError, match="allowed: png, svg, pdf"):
            check_formats(bad)
    paths = plot_grid(table(), tmp_path / "fig", "sigma", formats=FORMATS)
    assert [p.name for p in paths] == ["fig.png", "fig.svg", "fig.pdf"]
    assert paths[1].read_text().lstrip().startswith("<?xml") and "<svg" in paths[1].read_text()
    assert paths[2].read_bytes().startswith(b"%PDF")
    with pytest.raises(UserError, match="'gif'"):
        plot_grid(table(), tmp_path / "other", "sigma", formats=("png", "gif"))
    assert not list(tmp_path.glob("other*"))


def test_png_is_sized_for_a_paper(tmp_path):
    png = plot_grid(table(), tmp_path / "fig", "sigma")[0].read_bytes()
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (960, 630)  # 6.4 × 4.2 in at 150 dpi


def test_empty_panels_are_left_out_and_said(tmp_path):
    sigma, time = table(), table("time")
    mixed = pd.concat([sigma, time[~time["clean"]]], ignore_index=True)
    mixed.attrs["axes"] = time.attrs["axes"]
    mixed["key"] = [f"k{i}" for i in range(len(mixed))]
    fig = figure(mixed, "sigma", col="profile")
    assert [ax.get_title() for ax in fig.axes] == ["profile = gaussian"]
    assert "profile = pcm: no points against sigma, panel left out" in caption_of(fig)
    assert "rows have no sigma and are not shown" in caption_of(figure(mixed, "sigma"))
    with pytest.raises(UserError, match="does not vary"):
        figure(sigma, "time")
    with pytest.raises(UserError, match="also --x"):
        figure(time, "time", col="time")


def test_sweep_with_nothing_varying_plots_bars_not_an_empty_figure():
    frame = table("time", comps=("none",))
    frame = frame[frame["time"].isin(["0s", "1h"])]
    assert plot_axis(frame) == "profile"
    ax = figure(frame, plot_axis(frame)).axes[0]
    assert len(ax.patches) == 4  # clean and pcm bars of two checkpoints


@pytest.fixture
def results(tmp_path):
    """A results folder as `noisesim sweep` writes it, with the sweep's own plot (write_outputs)."""
    from noisesim.api import write_outputs
    from noisesim.engine.results import SweepResult

    frame = table()
    out = tmp_path / "res"
    meta = {"noisesim_version": "test", "cells": len(frame), "axes": frame.attrs["axes"], "chance": 0.5}
    paths = write_outputs(SweepResult(frame, 0.5, meta), out)
    assert paths["plot"] == out / "accuracy_vs_sigma.png"
    return out


def test_plot_command_writes_its_own_file_in_the_sweeps_style(results, tmp_path):
    own = (results / "accuracy_vs_sigma.png").read_bytes()
    done = invoke("plot", results)
    assert done.exit_code == 0 and done.output.strip() == f"wrote {results / 'plot_sigma.png'}", done.output
    assert (results / "accuracy_vs_sigma.png").read_bytes() == own  # the sweep's file is left alone
    assert (results / "plot_sigma.png").read_bytes() == own  # drawn the same way
    done = invoke("plot", results, "--col", "checkpoint", "--format", "svg,pdf")
    assert done.exit_code == 0, done.output
    assert {p.name for p in results.glob("plot_sigma_by_checkpoint.*")} == {"plot_sigma_by_checkpoint.svg",
                                                                           "plot_sigma_by_checkpoint.pdf"}
    done = invoke("plot", results, "--out", tmp_path / "fig6")
    assert done.exit_code == 0 and (tmp_path / "fig6.png").is_file()
    assert default_stem(results, "drift.compensation", "noise[0].scale").name == (
        "plot_drift.compensation_by_noise_0_.scale")


def test_plot_command_refuses_an_empty_plot_or_an_unknown_format(results):
    before = sorted(p.name for p in results.iterdir())
    assert_user_error(invoke("plot", results, "--x", "time"), "--x 'time' does not vary")
    assert_user_error(invoke("plot", results, "--format", "png,jpg"), "'jpg'", "png, svg, pdf")
    assert sorted(p.name for p in results.iterdir()) == before


def test_api_plot_takes_formats_and_defaults_to_the_results_folder(results):
    import noisesim

    assert [p.name for p in noisesim.plot(results, formats=("png", "pdf"))] == ["plot_sigma.png", "plot_sigma.pdf"]
    with pytest.raises(UserError, match="'tiff'"):
        noisesim.plot(results, formats="tiff")
    assert noisesim.load_results(results).paths["results"].parent == results  # loaded: it knows its folder
    loose = noisesim.SweepResult(noisesim.load_results(results).frame, 0.5)  # made in memory: no folder
    with pytest.raises(UserError, match="give out="):
        noisesim.plot(loose)
