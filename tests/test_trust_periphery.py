"""Hostile pass on --analog, sensitivity and the periphery: each test failed before its fix."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import assert_user_error, invoke

KW = dict(max_length=16, batch_size=8, progress=False)


@pytest.mark.parametrize("args, option", [
    (["sweep", "--ckpt", "x", "--sigma", "0.01", "--sigma", "0.05"], "--sigma"),
    (["sweep", "--ckpt", "x", "--programs", "1", "--programs", "2"], "--programs"),
    (["sweep", "--ckpt", "x", "--twin", "--no-twin"], "--twin/--no-twin"),
    (["sweep", "--ckpt", "x", "--out", "a", "--out", "b"], "--out"),
    (["sensitivity", "--ckpt", "a", "--ckpt", "b", "--sigma", "0.05"], "--ckpt"),
    (["sensitivity", "--ckpt", "a", "--profile", "pcm", "--profile", "rram"], "--profile"),
    (["sensitivity", "--ckpt", "a", "--sigma", "0.05", "--data", "x.tsv", "--data", "y.tsv"], "--data"),
    (["sensitivity", "--ckpt", "a", "--sigma", "0.05", "--by", "type", "--by", "block"], "--by"),
])
def test_a_single_value_option_given_twice_is_refused(args, option, tmp_path, monkeypatch):
    """click keeps the last of a repeated one-value option: `sensitivity --ckpt A --ckpt B` measured B alone and
    `sweep --sigma 0.01 --sigma 0.05` swept 0.05 alone, without a word."""
    monkeypatch.chdir(tmp_path)
    assert_user_error(invoke(*args), f"{option} is given more than once", "give it once")
    assert list(tmp_path.iterdir()) == []


def test_repeatable_options_stay_repeatable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("sweep", "--ckpt", tmp_path / "nothing-here", "--analog", "q", "--analog", "k", "--profile", "pcm",
                 "--profile", "rram", "--set", "programming.scale=1", "--set", "read.sigma=0.01",
                 "--out", tmp_path / "o")
    assert res.exit_code == 2 and "more than once" not in res.output, res.output


def test_a_folder_swept_with_another_analog_selection_stays_reportable(tiny_ckpts, tiny_tsv, tmp_path):
    """sweep.json recorded only the last sweep's axes, so after `--analog q` then a default sweep into one folder,
    report / plot grouped without `analog` and refused the folder (the q and adapted rows 'repeat one setting')."""
    import noisesim
    from noisesim.engine.results import load_results
    from noisesim.stats import summarize

    out = tmp_path / "mixed"
    ckpt = tiny_ckpts["grasp-w"]
    noisesim.sweep(ckpt=ckpt, sigma="0.05", programs=2, data=tiny_tsv, analog="q", out=str(out), **KW)
    noisesim.sweep(ckpt=ckpt, sigma="0.05", programs=2, data=tiny_tsv, out=str(out), **KW)
    loaded = load_results(out)
    assert "analog" in loaded.frame.attrs["axes"] and "analog" in loaded.meta["axes"]
    summary = summarize(loaded.frame)
    assert sorted(set(summary["analog"])) == ["adapted", "q"]
    assert set(summary[~summary["clean"]]["count"]) == {2}  # never pooled across selections
    res = invoke("report", out, "--out", tmp_path / "report.md")
    assert res.exit_code == 0, res.output
    assert "| adapted |" in (tmp_path / "report.md").read_text() and "| q |" in (tmp_path / "report.md").read_text()
    # the other order too, and a sensitivity into a folder that holds a sweep
    other = tmp_path / "other"
    noisesim.sweep(ckpt=ckpt, sigma="0.05", programs=2, data=tiny_tsv, out=str(other), **KW)
    noisesim.sweep(ckpt=ckpt, sigma="0.05", programs=2, data=tiny_tsv, analog="k", out=str(other), **KW)
    assert invoke("report", other, "--out", tmp_path / "r2.md").exit_code == 0
    noisesim.sensitivity(ckpt, sigma=0.05, by="type", programs=1, data=tiny_tsv, out=str(out), **KW)
    assert invoke("report", out, "--out", tmp_path / "r3.md").exit_code == 0


def test_sigma_whose_zero_is_not_clean(tiny_ckpts, tiny_tsv, tmp_path):
    """`--sigma S --set periphery.adc.bits=4`: σ = 0 keeps the ADC, so the sweep has no clean reference. The sweep
    printed '(σ=0: clean)' above it, and sensitivity said 'these options give 2' noise settings."""
    common = ["--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--max-length", 16, "--programs", 1]
    res = invoke("sensitivity", *common, "--sigma", "0.05", "--set", "periphery.adc.bits=4", "--by", "type",
                 "--out", tmp_path / "s")
    assert_user_error(res, "σ = 0 still has other noise or a periphery",
                      "--profile gaussian --set gaussian.sigma=0.05 --set periphery.adc.bits=4")
    assert not (tmp_path / "s").exists()
    ok = invoke("sensitivity", *common, "--profile", "gaussian", "--set", "gaussian.sigma=0.05", "--set",
                "periphery.adc.bits=4", "--by", "type", "--out", tmp_path / "s")
    assert ok.exit_code == 0, ok.output
    sweep = invoke("sweep", *common, "--sigma", "0.05", "--set", "periphery.adc.bits=4", "--out", tmp_path / "w")
    assert sweep.exit_code == 0, sweep.output
    assert "σ=0: clean" not in sweep.output and "(ideal: clean)" in sweep.output  # the ideal reference is added
    assert "the ideal profile is added as the clean reference" in sweep.output
    rows = pd.read_parquet(tmp_path / "w" / "results.parquet")
    assert sorted(rows[rows["clean"]]["profile"]) == ["ideal"] and (rows["sigma"] == 0).sum() == 1  # σ=0: the ADC
    plain = invoke("sweep", *common, "--sigma", "0.05", "--out", tmp_path / "w2")
    assert "(σ=0: clean)" in plain.output


@pytest.mark.parametrize("given, spelled, noted", [
    ("q,block0.q", "q", "block0.q"),
    ("block0,block0.k", "block0", "block0.k"),
    ("q,q", "q", "q"),
    ("block1.q,block0.ff1,block0.ff1", "block0.ff1,block1.q", "block0.ff1"),
    ("block0.q,block0.k,block0.v,block0.o,block0.ff1,block0.ff2", "block0", None),
    ("block0.q,k", "k,block0.q", None),
])
def test_one_layer_set_has_one_spelling(given, spelled, noted):
    """`q,block0.q` names block0.q twice and was its own selection (another cell key, another axis value) beside
    `q`; six blockN.ROLE items were not `blockN`."""
    from noisesim.engine.config import SweepConfig

    config = SweepConfig.build(ckpt=["x"], analog=given)
    assert config.analog == [spelled]
    if noted:
        assert any(noted in n and "taken once" in n for n in config.notices), config.notices
    else:
        assert not config.notices


def test_heatmap_caption_counts_the_realizations_each_unit_had(tiny_ckpts, tiny_tsv, tmp_path, monkeypatch):
    """The caption said 'mean over chips × programs × reads' even where levels collapse: Gaussian noise has no read
    stage, so --chips 3 --programs 2 --reads 2 gives 6 realizations per unit, and the caption said 12."""
    import noisesim
    from noisesim import plots

    seen = []
    real = plots.sensitivity_heatmap
    monkeypatch.setattr(plots, "sensitivity_heatmap", lambda *a: seen.append(a[-1]) or real(*a))
    result = noisesim.sensitivity(tiny_ckpts["grasp-w"], sigma=0.05, by="type", chips=3, programs=2, reads=2,
                                  data=tiny_tsv, out=str(tmp_path / "s"), **KW)
    assert set(result.table["count"]) == {6} and seen == [6]


def test_analog_head_of_a_peft_adapter_skips_the_replaced_classifier(tmp_path, tiny_tsv):
    """A PEFT IA3 adapter's classifier is a ModulesToSaveWrapper: the forward pass runs `modules_to_save.default`;
    `--analog-head` also programmed `classifier.original_module`, which computes nothing (a dead, counted layer)."""
    from peft import IA3Config, get_peft_model
    from test_external import tiny_classifier
    from transformers import AutoModelForSequenceClassification

    from noisesim.engine.analog import head_layers
    from noisesim.external import build_external, read_external, release

    base_dir, adapter_dir = tmp_path / "base", tmp_path / "ia3"
    model, tokenizer = tiny_classifier("bert")
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    model = AutoModelForSequenceClassification.from_pretrained(str(base_dir))  # the adapter names its base folder
    peft = get_peft_model(model, IA3Config(task_type="SEQ_CLS", target_modules=["key", "value", "output.dense"],
                                           feedforward_modules=["output.dense"]))
    peft.save_pretrained(adapter_dir)
    backbone = build_external(read_external(adapter_dir))
    try:
        heads = head_layers(backbone.model, backbone.family)
    finally:
        release(backbone)
    assert not [n for n in heads if "original_module" in n.split(".")], heads
    assert any(n.endswith("classifier.modules_to_save.default") for n in heads), heads


def test_sensitivity_with_the_head_analog_says_so(tiny_ckpts, tiny_tsv, tmp_path, monkeypatch):
    """With --analog-head every unit's cells also program the head, yet the table said 'the rest clean' (and so did
    the heatmap's title): each unit's drop includes the head's."""
    from noisesim import plots

    titles = []
    real = plots.sensitivity_heatmap
    monkeypatch.setattr(plots, "sensitivity_heatmap", lambda *a: titles.append(a[3]) or real(*a))
    common = ["--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--max-length", 16, "--programs", 1, "--by", "type",
              "--sigma", "0.05"]
    res = invoke("sensitivity", *common, "--analog-head", "--out", tmp_path / "h")
    assert res.exit_code == 0, res.output
    assert "the head analog in every unit, the rest clean" in res.output and "head analog" in titles[-1]
    plain = invoke("sensitivity", *common, "--out", tmp_path / "p")
    header = next(line for line in plain.output.splitlines() if "accuracy drop per" in line)
    header = header.split("accuracy drop per")[1]  # after the progress bar's carriage returns
    assert "head" not in header and "the rest clean" in header and "head" not in titles[-1]


@pytest.mark.parametrize("item, hint", [("query", "'*.query'"), ("Block0", "'block0'"), ("block", "'block0'"),
                                        ("Q", "'q'"), ("qq", "'q'")])
def test_an_unknown_analog_item_gets_a_hint(item, hint):
    """`--analog query` (a module's own name) and `--analog Block0` were refused with no did-you-mean."""
    from noisesim.engine.config import SweepConfig
    from noisesim.errors import UserError

    with pytest.raises(UserError, match="did you mean") as info:
        SweepConfig.build(ckpt=["x"], analog=item)
    assert hint in str(info.value)


def test_sensitivity_interval_stays_within_possible_drops():
    """Two realizations far apart give a Student-t half-width (12.7·s/√2) beyond ±100 points; a drop lies in
    [clean − 1, clean], and so does its interval."""
    from noisesim.engine.sensitivity import drop_table

    frame = pd.DataFrame({"analog": ["block0.q"] * 3, "clean": [True, False, False], "accuracy": [0.8, 0.1, 0.9]})
    row = drop_table(frame, [{"unit": "block0.q", "layers": 1}]).iloc[0]
    assert row["drop"] == pytest.approx(0.3) and row["std"] == pytest.approx(0.8 / 2 ** 0.5)
    assert row["drop_ci95_low"] == pytest.approx(-0.2) and row["drop_ci95_high"] == pytest.approx(0.8)
