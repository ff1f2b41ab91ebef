"""More than one task: sentence pairs, column and label options, string labels, data formats (TSV, JSON lines,
parquet, a save_to_disk folder), the metrics against hand-computed values, their chance levels, the bundled RTE and
CoLA, and a tiny train + sweep + report on a pair file with string labels scored by MCC."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import assert_user_error, invoke

from noisesim.data import Columns, columns_for, encode, load_table, metric_for
from noisesim.errors import UserError
from noisesim.metrics import chance_level, score

LABELS = "entailment,not_entailment"
PAIR_ARGS = ["--text-column", "premise", "--text-pair-column", "hypothesis", "--label-column", "gold",
             "--labels", LABELS]
PAIR_COLUMNS = Columns("premise", "hypothesis", "gold", ("entailment", "not_entailment"))


def pair_rows() -> list[dict]:
    """24 sentence pairs with string labels: the pair entails when both halves agree in sentiment."""
    good, bad = ["a good movie", "great film", "the good film is great"], ["a bad movie", "awful film", "not good"]
    rows = []
    for i in range(12):
        rows.append({"premise": good[i % 3], "hypothesis": good[(i + 1) % 3] + " a" * (i % 2), "gold": "entailment",
                     "idx": 2 * i})
        rows.append({"premise": good[i % 3], "hypothesis": bad[i % 3] + " the" * (i % 3), "gold": "not_entailment",
                     "idx": 2 * i + 1})
    return rows


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory) -> dict[str, str]:
    """The same pairs as TSV, CSV, JSON lines, parquet and a save_to_disk folder."""
    import datasets

    root = tmp_path_factory.mktemp("pairs")
    frame = pd.DataFrame(pair_rows())
    files = {"tsv": root / "pairs.tsv", "csv": root / "pairs.csv", "jsonl": root / "pairs.jsonl",
             "parquet": root / "pairs.parquet", "disk": root / "pairs-disk"}
    frame.to_csv(files["tsv"], sep="\t", index=False)
    frame.to_csv(files["csv"], index=False)
    files["jsonl"].write_text("".join(json.dumps(r) + "\n" for r in pair_rows()))
    frame.to_parquet(files["parquet"], index=False)
    datasets.Dataset.from_pandas(frame).save_to_disk(str(files["disk"]))
    return {k: str(v) for k, v in files.items()}


# --- metrics -------------------------------------------------------------------------------------------------------

# 7 examples: TP = 3, FN = 1, TN = 2, FP = 1 (class 1 positive)
Y = [1, 1, 1, 1, 0, 0, 0]
P = [1, 1, 1, 0, 0, 0, 1]


def test_metrics_match_hand_computed_values():
    assert score("accuracy", Y, P) == pytest.approx(5 / 7)
    # F1 = 2TP / (2TP + FP + FN) = 6 / 8; class 0: 2·2 / (2·2 + 1 + 1) = 4 / 6
    assert score("f1", Y, P) == pytest.approx(3 / 4)
    assert score("f1-macro", Y, P) == pytest.approx((3 / 4 + 2 / 3) / 2)
    # MCC = (TP·TN − FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (6 − 1) / sqrt(4·4·3·3) = 5 / 12
    assert score("mcc", Y, P) == pytest.approx(5 / 12)
    assert score("mcc", Y, [1 - p for p in Y]) == pytest.approx(-1.0)
    assert score("mcc", Y, Y) == pytest.approx(1.0) and score("f1", Y, Y) == pytest.approx(1.0)
    # three classes: macro F1 is the mean over classes; binary F1 is refused
    y3, p3 = [0, 1, 2, 2], [0, 2, 2, 2]  # F1: class 0 1, class 1 0, class 2 2·2 / (2·2 + 1) = 4 / 5
    assert score("f1-macro", y3, p3) == pytest.approx((1 + 0 + 4 / 5) / 3)
    with pytest.raises(UserError, match="f1-macro"):
        score("f1", y3, p3)
    with pytest.raises(UserError, match="did you mean 'mcc'"):
        score("mc", Y, P)


def test_chance_levels():
    assert chance_level("accuracy", Y) == pytest.approx(4 / 7)  # the majority class
    assert chance_level("mcc", Y) == 0.0  # any constant prediction
    assert chance_level("f1", Y) == pytest.approx(2 * (4 / 7) / (1 + 4 / 7))  # always class 1: 8 / 11
    assert chance_level("f1-macro", Y) == pytest.approx(8 / 11 / 2)  # always the majority class (1)
    assert chance_level("f1", [0, 0, 0, 1]) == pytest.approx(2 * 0.25 / 1.25)  # class 1 even as the minority


def test_evaluate_scores_the_predictions_of_the_batches(tiny_dirs, pair_files):
    """The score of ``evaluate`` is sklearn's on the argmax predictions, in the batches' (length-sorted) order."""
    import torch
    from sklearn.metrics import matthews_corrcoef

    from noisesim.data import EvalBatches
    from noisesim.evaluate import evaluate
    from noisesim.models import tiny_backbone

    bb = tiny_backbone("bert", seed=3)
    batches = EvalBatches.build(encode(load_table(pair_files["tsv"], PAIR_COLUMNS), bb.tokenizer, 24),
                                bb.tokenizer.pad_token_id, 5)
    acc, mcc = evaluate(bb.model, batches, "mcc")
    with torch.inference_mode():
        pred = torch.cat([bb.model(**b).logits.argmax(-1) for b in batches.batches])
    labels = torch.cat(batches.labels)
    assert acc == int((pred == labels).sum()) / len(labels)
    assert mcc == pytest.approx(matthews_corrcoef(labels.numpy(), pred.numpy()))
    assert evaluate(bb.model, batches) == (acc, acc)


# --- data ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["tsv", "csv", "jsonl", "parquet", "disk"])
def test_every_format_gives_the_same_pairs(pair_files, kind):
    from noisesim.engine.grid import data_fingerprint

    table = load_table(pair_files[kind], PAIR_COLUMNS)
    assert table.column_names == ["sentence", "text_pair", "label"]
    rows = pair_rows()
    assert list(table["sentence"]) == [r["premise"] for r in rows]
    assert list(table["text_pair"]) == [r["hypothesis"] for r in rows]
    assert list(table["label"]) == [0 if r["gold"] == "entailment" else 1 for r in rows]
    assert data_fingerprint(table) == data_fingerprint(load_table(pair_files["tsv"], PAIR_COLUMNS))


def test_pairs_are_tokenised_as_pairs_and_cut_longest_first(pair_files):
    from noisesim.models import tiny_backbone

    tok = tiny_backbone("bert").tokenizer
    table = load_table(pair_files["jsonl"], PAIR_COLUMNS)
    encoded = encode(table, tok, 64)
    first = tok(table["sentence"][0], table["text_pair"][0])["input_ids"]
    assert encoded.input_ids[0] == first and first.count(tok.sep_token_id) == 2
    assert encoded.labels.tolist() == list(table["label"])
    short = encode(table, tok, 8)  # both halves cut, the longer first: both [SEP]s kept
    assert all(len(ids) <= 8 and ids.count(tok.sep_token_id) == 2 for ids in short.input_ids)
    single = encode(load_table(pair_files["tsv"], Columns("premise", None, "gold", PAIR_COLUMNS.labels)), tok, 64)
    assert all(ids.count(tok.sep_token_id) == 1 for ids in single.input_ids)


def test_label_names_and_integer_labels(tmp_path):
    ints = tmp_path / "ints.tsv"
    ints.write_text("sentence\tlabel\ngood\t1\nbad\t0\n")
    assert list(load_table(ints, Columns(labels=("neg", "pos")))["label"]) == [1, 0]  # integers still work
    with pytest.raises(UserError, match=r"out of range \(labels are class indices 0 \.\. 1"):
        (tmp_path / "three.tsv").write_text("sentence\tlabel\ngood\t2\n")
        load_table(tmp_path / "three.tsv", Columns(labels=("neg", "pos")))
    words = tmp_path / "words.tsv"
    words.write_text("sentence\tlabel\ngood\tpos\nbad\tneg\n")
    assert list(load_table(words, Columns(labels=("neg", "pos")))["label"]) == [1, 0]
    with pytest.raises(UserError, match="'pos' is not a class index.*--labels"):
        load_table(words)
    with pytest.raises(UserError, match=r"line 2: label 'pos' is not one of the labels neg, positive"):
        load_table(words, Columns(labels=("neg", "positive")))
    jsonl = tmp_path / "b.jsonl"
    jsonl.write_text('{"sentence": "good", "label": true}\n')
    with pytest.raises(UserError, match="line 1: label True is not a class index"):
        load_table(jsonl)


def test_missing_columns_and_saved_splits(tmp_path, pair_files):
    import datasets

    with pytest.raises(UserError, match=r"lacks column\(s\) premis; found .*'premise'.*did you mean 'premise'"):
        load_table(pair_files["parquet"], Columns("premis", "hypothesis", "gold", PAIR_COLUMNS.labels))
    with pytest.raises(UserError, match=r"line 1, lacks column\(s\) sentence, label"):
        load_table(pair_files["jsonl"])
    with pytest.raises(UserError, match=r"lacks column\(s\) sentence, label; found .*--text-column/--label-column"):
        load_table(pair_files["disk"])
    splits = tmp_path / "splits"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"sentence": ["a"], "label": [0]})}).save_to_disk(
        str(splits))
    with pytest.raises(UserError, match=r"holds the splits \(train\): give one"):
        load_table(splits)
    with pytest.raises(UserError, match="not one saved by datasets"):
        load_table(tmp_path)


def test_bundled_rte_and_cola():
    from noisesim.data import bundled_path

    rte, cola = load_table("rte-dev"), load_table("cola-dev")
    assert len(rte) == 277 and len(load_table("rte-train")) == 2490
    assert rte.column_names == ["sentence", "text_pair", "label"]
    assert np.bincount(rte["label"]).tolist() == [146, 131]
    assert rte["sentence"][0].startswith("Dana Reeve") and rte["text_pair"][0] == "Christopher Reeve had an accident."
    quoted = [s for s in rte["sentence"] if "Dr. Death" in s]  # a quoted field with doubled quotes inside
    assert quoted and '"Dr. Death,"' in quoted[0] and not quoted[0].startswith('"')
    assert len(cola) == 516 and len(load_table("cola-train")) == 8551
    assert cola.column_names == ["sentence", "label"] and np.bincount(cola["label"]).tolist() == [162, 354]
    assert cola["sentence"][0] == "somebody just left guess who"
    assert metric_for("cola-dev") == "mcc" and metric_for("rte-dev") == metric_for("sst2-dev") == "accuracy"
    assert metric_for("cola-dev", "f1") == "f1"
    assert columns_for("rte-dev") == Columns("sentence1", "sentence2", "label", ("entailment", "not_entailment"))
    assert columns_for("sst2-dev") == Columns() and columns_for("x.tsv", label="y") == Columns(label="y")
    for name in ("rte-dev", "cola-train"):
        path = bundled_path(name)
        assert path.parent.parent.name == "data" and path.parent.parent.parent.name == "noisesim"
        assert (path.parent / "README.md").is_file()


# --- keys ----------------------------------------------------------------------------------------------------------

def test_cell_keys_follow_columns_labels_and_metric(tiny_ckpts, tiny_tsv):
    from noisesim.engine.config import SweepConfig
    from noisesim.engine.grid import axes_of, build_cells, build_settings, data_fingerprint, expand_checkpoints

    def keys(**options):
        config = SweepConfig.build(ckpt=[tiny_ckpts["grasp"]], sigma="0.05", programs=1, data=[tiny_tsv], **options)
        notes: list[str] = []
        cells = build_cells(expand_checkpoints(config.ckpt, False, notes), build_settings(config, notes), config,
                            {tiny_tsv: data_fingerprint(load_table(tiny_tsv))}, notes)
        return [c.key for c in cells], axes_of(config)

    default, axes = keys()
    assert "metric" not in axes
    # the defaults spelled out keep the keys
    assert keys(text_column="sentence", label_column="label", metric="accuracy") == (default, axes)
    others = [keys(metric="mcc"), keys(metric="f1"), keys(labels="neg,pos"), keys(labels="pos,neg")]
    assert "metric" in others[0][1] and "metric" not in others[2][1]
    every = [k for ks, _ in others for k in ks] + default
    assert len(set(every)) == len(every)


# --- train, sweep, report ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pair_ckpt(tiny_dirs, pair_files, tmp_path_factory):
    from noisesim.api import train

    folder, result, meta = train(str(tmp_path_factory.mktemp("pair") / "pair-grasp"), method="grasp", k=8,
                                 model=tiny_dirs["bert"], steps=6, batch_size=8, max_length=24, eval_every=3,
                                 lr=1e-2, train_data=pair_files["tsv"], eval_data=pair_files["jsonl"],
                                 text_column="premise", text_pair_column="hypothesis", label_column="gold",
                                 labels=LABELS, metric="mcc", progress=False)
    return folder, result, meta


def test_train_on_pairs_selects_by_the_metric(pair_ckpt):
    folder, result, meta = pair_ckpt
    assert result.dev_metric == "mcc" and meta["dev_metric"] == "mcc" and -1 <= meta["dev_score"] <= 1
    evaluated = [h for h in meta["history"] if h["step"] >= 1]
    assert all("dev_mcc" in h for h in evaluated)
    best = max(evaluated, key=lambda h: h["dev_mcc"])
    assert meta["dev_score"] >= best["dev_mcc"] and meta["num_labels"] == 2
    assert meta["training"]["labels"] == ["entailment", "not_entailment"]
    assert meta["training"]["text_pair_column"] == "hypothesis"


def test_sweep_and_report_on_pairs_with_mcc(pair_ckpt, pair_files, tmp_path):
    folder = pair_ckpt[0]
    out = tmp_path / "o"
    result = invoke("sweep", "--ckpt", folder, "--data", pair_files["tsv"], *PAIR_ARGS, "--metric", "mcc",
                    "--sigma", "0.05", "--programs", "2", "--max-length", "24", "--batch-size", "8", "--out", out)
    assert result.exit_code == 0, result.output
    assert "MCC (× 100) on" in result.output and "chance (any constant prediction): MCC 0.0 (× 100)" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["metric"]) == {"mcc"} and frame["score"].between(-1, 1).all()
    assert frame["accuracy"].between(0, 1).all() and len(frame) == 3
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["metric"] == "mcc" and meta["chance"] == 0.0 and "metric" in meta["axes"]
    assert meta["columns_by_data"][pair_files["tsv"]]["pair"] == "hypothesis"
    report = invoke("report", out)
    assert report.exit_code == 0, report.output
    header = report.output.splitlines()[0]
    assert header.startswith("# Sweep on") and "MCC (× 100)" in header and "chance 0.0 (× 100" in header
    assert "Chance (any constant prediction): 0.0 (× 100)." in report.output
    summary = pd.read_csv(out / "summary.csv")
    clean = frame[frame["clean"]]
    assert summary[summary["clean"]]["mean"].iloc[0] == pytest.approx(clean["score"].iloc[0])
    # the same data as JSON lines and as a save_to_disk folder: the same numbers
    import noisesim

    again = noisesim.sweep(ckpt=folder, data=[pair_files["jsonl"], pair_files["disk"]], sigma="0.05", programs=2,
                           max_length=24, batch_size=8, text_column="premise", text_pair_column="hypothesis",
                           label_column="gold", labels=LABELS, metric="mcc", progress=False)
    assert "holds the same sentences" in " ".join(again.meta["notices"])
    assert list(again.frame["score"]) == list(frame["score"]) and list(again.frame["accuracy"]) == list(
        frame["accuracy"])
    # accuracy rows of the same data are other cells, and a folder may hold both (metric is an axis)
    both = invoke("sweep", "--ckpt", folder, "--data", pair_files["tsv"], *PAIR_ARGS, "--sigma", "0.05",
                  "--programs", "2", "--max-length", "24", "--batch-size", "8", "--out", out)
    assert both.exit_code == 0, both.output
    frame2 = pd.read_parquet(out / "results.parquet")
    assert len(frame2) == 6 and set(frame2["metric"]) == {"mcc", "accuracy"}
    acc = frame2[frame2["metric"] == "accuracy"]
    assert list(acc["score"]) == list(acc["accuracy"]) == list(frame["accuracy"])
    assert invoke("report", out).exit_code == 0


def test_sensitivity_names_the_metric(pair_ckpt, pair_files, tmp_path):
    result = invoke("sensitivity", "--ckpt", pair_ckpt[0], "--data", pair_files["tsv"], *PAIR_ARGS, "--metric",
                    "f1", "--sigma", "0.05", "--programs", "1", "--by", "type", "--max-length", "24",
                    "--batch-size", "8", "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "f1 (× 100) drop per type" in result.output and "clean f1" in result.output


def test_results_without_a_score_still_load(tiny_ckpts, tiny_tsv, tmp_path):
    """A table written before metrics (no metric / score columns): its accuracy is the score."""
    import noisesim
    from noisesim.engine.results import load_results

    out = tmp_path / "old"
    noisesim.sweep(ckpt=tiny_ckpts["grasp"], sigma="0.05", programs=2, data=tiny_tsv, out=str(out), max_length=16,
                   batch_size=8, progress=False)
    table = pd.read_parquet(out / "results.parquet")
    assert set(table["metric"]) == {"accuracy"} and list(table["score"]) == list(table["accuracy"])
    table.drop(columns=["metric", "score"]).to_parquet(out / "results.parquet", index=False)
    meta = json.loads((out / "sweep.json").read_text())
    for key in ("metric", "metric_by_data", "chance"):
        meta.pop(key)
    (out / "sweep.json").write_text(json.dumps(meta))
    loaded = load_results(out)
    assert loaded.metric == "accuracy" and list(loaded.frame["score"]) == list(table["accuracy"])
    assert loaded.chance == 0.5
    assert invoke("report", out).output.startswith("# Sweep on")


# --- bad input -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args,fragments", [
    (["--text-column", "premis"], ["lacks column(s) premis", "did you mean 'premise'", "found 'premise'"]),
    (["--labels", "entailment,neutral"], ["'not_entailment' is not one of the labels entailment, neutral"]),
    ([], ["lacks column(s) sentence, label"]),
    (["--metric", "acc"], ["unknown metric 'acc'", "did you mean 'accuracy'"]),
    (["--labels", "a,a"], ["names 'a' twice"]),
    (["--text-pair-column", "premise"], ["--text-pair-column and --text-column both name the column 'premise'"]),
    (["--label-column", "hypothesis"], ["--label-column and --text-pair-column both name the column 'hypothesis'"]),
])
def test_bad_columns_labels_and_metrics_are_one_line_errors(tiny_ckpts, pair_files, tmp_path, args, fragments):
    out = tmp_path / "o"
    base = dict(zip(PAIR_ARGS[::2], PAIR_ARGS[1::2], strict=True))
    given = dict(zip(args[::2], args[1::2], strict=True))
    flags = [x for k, v in ({**base, **given} if args else {}).items() for x in (k, v)]
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp"], "--data", pair_files["tsv"], *flags,
                             "--sigma", "0.05", "--out", out), *fragments)
    assert not out.exists()


def test_train_refuses_bad_columns_and_labels_before_writing(tiny_dirs, pair_files, tmp_path):
    out = tmp_path / "ck"
    common = ["train", "--method", "grasp", "--k", "8", "--model", tiny_dirs["bert"], "--steps", "2",
              "--data", pair_files["tsv"], "--eval-data", pair_files["tsv"], "--out", out]
    assert_user_error(invoke(*common, "--text-column", "premise", "--label-column", "gold"),
                      "'entailment' is not a class index", "--labels")
    assert_user_error(invoke(*common, *PAIR_ARGS[:-2], "--labels", "x,y"), "'entailment' is not one of the labels x, y")
    assert_user_error(invoke(*common, *PAIR_ARGS, "--metric", "mcc2"), "unknown metric")
    assert_user_error(invoke(*common, *PAIR_ARGS, "--text-pair-column", "hyp"), "lacks column(s) hyp")
    assert not out.exists()


def test_config_files_take_the_data_options(tmp_path):
    from noisesim.engine.config import SweepConfig, load_sweep_config

    path = tmp_path / "sweep.yaml"
    path.write_text("ckpt: x\ndata: [rte-dev, my.jsonl]\ntext_column: premise\ntext_pair_column: hypothesis\n"
                    "label_column: gold\nlabels: [entailment, not_entailment]\nmetric: f1\n")
    config = SweepConfig.build(**load_sweep_config(path))
    assert (config.text_column, config.text_pair_column, config.label_column, config.metric) == (
        "premise", "hypothesis", "gold", "f1")
    assert config.labels == ["entailment", "not_entailment"]
    assert SweepConfig.build(ckpt="x", labels="a, b").labels == ["a", "b"]
    path.write_text("ckpt: x\nmetrc: mcc\n")
    with pytest.raises(UserError, match="unknown key 'metrc' \\(did you mean 'metric'\\?\\)"):
        load_sweep_config(path)
    with pytest.raises(UserError, match="--labels 'a': give at least two"):
        SweepConfig.build(ckpt="x", labels="a")
