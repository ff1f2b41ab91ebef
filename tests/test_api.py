"""The public Python API (``import noisesim``): train, sweep, load_results, summarize, plot, sweep config files."""

from pathlib import Path

import pandas as pd
import pytest
from conftest import numbers


@pytest.mark.parametrize("name", ["fig6.yaml", "pcm-year.yaml"])
def test_shipped_sweep_configs_load(name):
    from noisesim.api import load_sweep_config

    config = load_sweep_config(Path(__file__).parents[1] / "experiments" / name)
    assert config["ckpt"] == ["sst2-stoch", "sst2-grasp"] and config["out"].startswith("results/")


def test_top_level_api(tiny_ckpts, tiny_tsv, tmp_path):
    import noisesim

    result = noisesim.sweep(ckpt=tiny_ckpts["grasp-w"], sigma="0.1", programs=2, data=tiny_tsv, out=tmp_path / "s",
                            progress=False)
    assert isinstance(result, noisesim.SweepResult) and len(result.frame) == 3
    assert set(result.paths) == {"results", "summary", "plot", "meta"}
    assert all(p.exists() for p in result.paths.values())
    again = noisesim.load_results(tmp_path / "s")
    pd.testing.assert_frame_equal(numbers(again.frame), numbers(result.frame), check_dtype=False)
    summary = noisesim.summarize(again.frame)
    assert list(summary["count"]) == [1, 2]
    paths = noisesim.plot(again, tmp_path / "fig", formats=("png", "svg"))
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 3000 for p in paths)


def test_api_misuse_is_named(tiny_ckpts, tiny_tsv, tmp_path):
    import noisesim
    from noisesim.errors import UserError

    result = noisesim.sweep(ckpt=tiny_ckpts["grasp-w"], sigma="0.1", programs=2, data=tiny_tsv, out=tmp_path / "s",
                            progress=False)
    pd.testing.assert_frame_equal(noisesim.summarize(result), noisesim.summarize(result.frame))
    for bad in (None, 5, "folder"):
        with pytest.raises(TypeError, match="result.frame"):
            noisesim.summarize(bad)
    with pytest.raises(UserError, match="checkpoint and accuracy"):
        noisesim.summarize(pd.DataFrame())
    again = noisesim.load_results(tmp_path / "s")
    assert again.paths == {"results": tmp_path / "s" / "results.parquet", "meta": tmp_path / "s" / "sweep.json"}
    assert [p.name for p in noisesim.plot(again, hue=None)] == ["plot_profile.png"]  # its own folder; one σ: bars
    for bad in (None, "", 3):
        with pytest.raises(TypeError, match="results folder"):
            noisesim.load_results(bad)
    for twice in ({"lam": 0.1, "lambda": 0.2}, {"data": tiny_tsv, "train_data": tiny_tsv}):
        with pytest.raises(UserError, match="given twice"):
            noisesim.train(str(tmp_path / "t"), **twice)
    assert not (tmp_path / "t").exists()
