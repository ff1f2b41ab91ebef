"""External checkpoints: Hugging Face sequence classifier folders and PEFT (LoRA, IA3) adapter folders, swept like
noisesim checkpoints. Tiny models built in code, saved offline."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import assert_user_error, invoke

from noisesim.data import EvalBatches, encode, load_table
from noisesim.devices import builtin_profile
from noisesim.engine import execute
from noisesim.engine.config import SweepConfig
from noisesim.engine.grid import build_cells, build_settings, data_fingerprint, expand_checkpoints
from noisesim.engine.program import ProgrammedWeights
from noisesim.engine.run import run
from noisesim.errors import UserError
from noisesim.evaluate import accuracy, logits
from noisesim.external import build_external, load_external, read_external, release
from noisesim.methods import AdapterLinear, FrozenLinear, IA3Linear, adapters_of
from noisesim.models import tiny_backbone

COMMON = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
              max_position_embeddings=64)


def tiny_classifier(family: str, num_labels: int = 2):
    """A tiny random ``…ForSequenceClassification`` and the tiny tokenizer of ``tiny_backbone``."""
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        DistilBertConfig,
        DistilBertForSequenceClassification,
        RobertaConfig,
        RobertaForSequenceClassification,
    )

    tokenizer = tiny_backbone("bert").tokenizer
    vocab = max(tokenizer.get_vocab().values()) + 1  # ("a" is a letter and a word: ids are not dense)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        if family == "bert":
            model = BertForSequenceClassification(BertConfig(vocab_size=vocab, num_labels=num_labels, **COMMON))
        elif family == "roberta":
            model = RobertaForSequenceClassification(RobertaConfig(vocab_size=vocab, num_labels=num_labels,
                                                                   pad_token_id=0, **COMMON))
        else:
            model = DistilBertForSequenceClassification(DistilBertConfig(
                vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=64,
                num_labels=num_labels))
    return model, tokenizer


def fit(model, tokenizer, tsv: str, steps: int = 10) -> None:
    """A few full-batch steps on the tiny data, so that noise has accuracy to lose (one thread: tiny matrices are
    slower on several)."""
    table = load_table(tsv)
    batch = tokenizer(list(table["sentence"]), padding=True, return_tensors="pt")
    labels = torch.tensor(list(table["label"]))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for _ in range(steps):
                opt.zero_grad()
                out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
                out.loss.backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()


@pytest.fixture(scope="session")
def hf_dirs(tmp_path_factory, tiny_tsv):
    """family → a saved, briefly fitted tiny sequence classifier with its tokenizer."""
    dirs = {}
    for family in ("bert", "roberta", "distilbert"):
        folder = tmp_path_factory.mktemp("hf") / f"tiny-{family}-clf"
        model, tokenizer = tiny_classifier(family)
        fit(model, tokenizer, tiny_tsv)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        dirs[family] = folder
    return dirs


@pytest.fixture(scope="session")
def peft_dirs(tmp_path_factory, hf_dirs):
    """'lora' / 'ia3' / 'prefix' → PEFT adapter folders on the saved tiny BERT classifier (their base)."""
    from peft import IA3Config, LoraConfig, PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    root = tmp_path_factory.mktemp("peft")
    configs = {"lora": LoraConfig(task_type="SEQ_CLS", r=2, target_modules=["query", "value"]),
               "ia3": IA3Config(task_type="SEQ_CLS", target_modules=["key", "value", "output.dense"],
                                feedforward_modules=["output.dense"]),
               "prefix": PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=2)}
    dirs = {}
    for name, config in configs.items():
        base = AutoModelForSequenceClassification.from_pretrained(str(hf_dirs["bert"]))
        model = get_peft_model(base, config)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for key, p in model.named_parameters():
                if "lora_B" in key:  # zero at init: make the update visible
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
                elif "ia3_l" in key:
                    p.copy_(1 + torch.randn(p.shape, generator=gen) * 0.3)
        model.save_pretrained(root / name)
        dirs[name] = root / name
    return dirs


def batches_of(folder, tsv, max_length=128, batch_size=64):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return EvalBatches.build(encode(load_table(tsv), tokenizer, max_length), tokenizer.pad_token_id, batch_size)


def direct_model(folder):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()


def direct_peft(folder, base):
    from peft import PeftModel

    return PeftModel.from_pretrained(direct_model(base), str(folder)).eval()


def clean_logits(backbone, batches):
    with ProgrammedWeights(adapters_of(backbone.model)) as weights:
        weights.realize(builtin_profile("ideal"))
        return logits(backbone.model, batches)


def cell_keys(ckpts, data, **options):
    config = SweepConfig.build(ckpt=[str(c) for c in ckpts], data=[data], twin=False, **options)
    notes: list[str] = []
    loaded = expand_checkpoints(config.ckpt, False, notes, config.layers)
    return [c.key for c in build_cells(loaded, build_settings(config, notes), config,
                                       {data: data_fingerprint(load_table(data))}, notes)]


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert"])
def test_clean_sweep_is_the_hf_model_run_directly(hf_dirs, tiny_tsv, family):
    folder = hf_dirs[family]
    frame = run([str(folder)], "0.05", programs=1, data=tiny_tsv, progress=False).frame
    clean = frame[frame["clean"]]
    batches = batches_of(folder, tiny_tsv)
    model = direct_model(folder)
    assert clean["accuracy"].item() == accuracy(model, batches) > 0.5
    assert set(frame["method"]) == {"hf"} and set(frame["checkpoint"]) == {folder.name}
    assert set(frame["backbone"]) == {str(folder)}
    ckpt = read_external(folder)
    backbone = build_external(ckpt)
    try:
        assert len(adapters_of(backbone.model)) == 12
        assert all(type(a) is FrozenLinear for a in adapters_of(backbone.model).values())
        assert torch.equal(clean_logits(backbone, batches), logits(model, batches))  # the same predictions
    finally:
        release(backbone)


def external_entries():
    return [bb for key, bb in execute._BACKBONES.items() if key[0] == "external"]


@pytest.mark.parametrize("which", ["hf", "ia3"])
def test_noise_changes_the_numbers_and_every_weight_is_restored(hf_dirs, peft_dirs, tiny_tsv, which):
    folder = hf_dirs["bert"] if which == "hf" else peft_dirs["ia3"]
    frame = run([str(folder)], "0.3", programs=3, data=tiny_tsv, progress=False).frame
    clean = frame[frame["clean"]]["accuracy"].item()
    noisy = frame[~frame["clean"]]["accuracy"]
    assert len(noisy) == 3 and (noisy != clean).any()
    (cached,) = external_entries()  # the engine's cached model, after its cells
    fresh = load_external(read_external(folder))
    assert not adapters_of(cached.model)
    assert all(cached.model.get_submodule(n) is m for n, m in cached.originals.items())
    state = cached.model.state_dict()
    assert list(state) == list(fresh.model.state_dict())
    assert all(torch.equal(state[k], v) for k, v in fresh.model.state_dict().items())
    # and at the level of one realization: noise changes the logits, leaving the block restores every bit
    batches = batches_of(hf_dirs["bert"], tiny_tsv)
    backbone = build_external(read_external(folder), fresh)
    before = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    clean_out = logits(backbone.model, batches)
    with ProgrammedWeights(adapters_of(backbone.model)) as weights:
        weights.realize(0.3, seed=0)
        assert not torch.equal(logits(backbone.model, batches), clean_out)
    assert all(torch.equal(backbone.model.state_dict()[k], v) for k, v in before.items())
    assert torch.equal(logits(backbone.model, batches), clean_out)
    release(backbone)
    if which == "ia3":
        from peft.tuners.ia3 import Linear as PeftIA3Linear

        assert sum(isinstance(m, PeftIA3Linear) for m in backbone.model.modules()) == 8  # back in place


def test_peft_lora_programs_w_plus_ba_and_its_clean_cell_is_the_peft_model(hf_dirs, peft_dirs, tiny_tsv):
    ckpt = read_external(peft_dirs["lora"])
    assert ckpt.meta["backbone"] == str(hf_dirs["bert"]) and ckpt.method.method == "peft-lora"
    reference = direct_peft(peft_dirs["lora"], hf_dirs["bert"])
    base = direct_model(hf_dirs["bert"])
    backbone = build_external(ckpt)
    try:
        adapters = adapters_of(backbone.model)
        assert len(adapters) == 12 and all(type(a) is FrozenLinear for a in adapters.values())
        merged = 0
        for name, adapter in adapters.items():
            w = base.get_submodule(name).weight
            if name.endswith(("query", "value")):
                lora = reference.base_model.model.get_submodule(name)
                delta = lora.lora_B["default"].weight @ lora.lora_A["default"].weight * lora.scaling["default"]
                assert delta.abs().max() > 1e-3
                torch.testing.assert_close(adapter.programmed_weight(), w + delta, rtol=0, atol=1e-6)
                merged += 1
            else:
                assert torch.equal(adapter.programmed_weight(), w)
        assert merged == 4
        batches = batches_of(hf_dirs["bert"], tiny_tsv)
        expected = logits(reference, batches)
        got = clean_logits(backbone, batches)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)  # merged vs side path: rounding only
        assert torch.equal(got.argmax(-1), expected.argmax(-1))
    finally:
        release(backbone)
    frame = run([str(peft_dirs["lora"])], "0.05", programs=1, data=tiny_tsv, progress=False).frame
    assert set(frame["method"]) == {"peft-lora"} and set(frame["checkpoint"]) == {"lora"}
    assert set(frame["backbone"]) == {str(hf_dirs["bert"])}


def test_peft_ia3_keeps_its_scales_digital(hf_dirs, peft_dirs, tiny_tsv):
    ckpt = read_external(peft_dirs["ia3"])
    reference = direct_peft(peft_dirs["ia3"], hf_dirs["bert"])
    base = direct_model(hf_dirs["bert"])
    backbone = build_external(ckpt)
    try:
        adapters = adapters_of(backbone.model)
        kinds = {name.split("layer.0.")[-1]: type(a) for name, a in adapters.items() if ".layer.0." in name}
        assert kinds == {"attention.self.query": FrozenLinear, "attention.self.key": IA3Linear,
                         "attention.self.value": IA3Linear, "attention.output.dense": IA3Linear,
                         "intermediate.dense": FrozenLinear, "output.dense": IA3Linear}
        for name, adapter in adapters.items():  # the pretrained W is programmed, the scales are not
            assert torch.equal(adapter.programmed_weight(), base.get_submodule(name).weight)
        batches = batches_of(hf_dirs["bert"], tiny_tsv)
        expected = logits(reference, batches)
        assert not torch.allclose(expected, logits(base, batches))  # the scales matter
        torch.testing.assert_close(clean_logits(backbone, batches), expected, rtol=1e-5, atol=1e-5)
    finally:
        release(backbone)
    frame = run([str(peft_dirs["ia3"])], "0.05", programs=1, data=tiny_tsv, progress=False).frame
    assert set(frame["method"]) == {"peft-ia3"}


def test_layers_pick_the_analog_layers_and_enter_the_key(hf_dirs, tiny_ckpts, tiny_tsv):
    folder = hf_dirs["bert"]
    counts = {}
    for layers in ("all", "kvf2", "ff2", "q,ff1"):
        backbone = build_external(read_external(folder, layers))
        counts[layers] = sorted({name.rsplit("layer.", 1)[1].split(".", 1)[1] for name in
                                 adapters_of(backbone.model)})
        assert len(adapters_of(backbone.model)) == 2 * len(counts[layers])
        release(backbone)
        assert not any(isinstance(m, AdapterLinear) for m in backbone.model.modules())
    assert counts["ff2"] == ["output.dense"]
    assert counts["q,ff1"] == ["attention.self.query", "intermediate.dense"]
    assert len(counts["all"]) == 6 and len(counts["kvf2"]) == 3
    every = cell_keys([folder], tiny_tsv, sigma="0.1", programs=1)
    assert cell_keys([folder], tiny_tsv, sigma="0.1", programs=1, layers="q,k,v,o,ff1,ff2") == every
    assert set(cell_keys([folder], tiny_tsv, sigma="0.1", programs=1, layers="ff2")).isdisjoint(every)
    own = cell_keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.1", programs=1)
    mixed = cell_keys([tiny_ckpts["grasp-w"], folder], tiny_tsv, sigma="0.1", programs=1, layers="ff2")
    assert mixed[:2] == own  # a noisesim checkpoint keeps its own layers and keys
    with pytest.raises(UserError, match="noisesim checkpoints carry their own"):
        cell_keys([tiny_ckpts["grasp-w"]], tiny_tsv, sigma="0.1", programs=1, layers="ff2")
    with pytest.raises(UserError, match="--layers"):
        SweepConfig.build(ckpt=[str(folder)], layers="q,zz")
    frame = run([str(folder)], "0.1", programs=1, data=tiny_tsv, layers="ff2", progress=False).frame
    assert set(frame["key"]).isdisjoint(every)


def test_a_folder_changed_during_a_sweep_is_refused(hf_dirs, peft_dirs, tiny_tsv, tmp_path):
    from noisesim.engine.execute import evaluate_cells

    hf = tmp_path / "hf"
    shutil.copytree(hf_dirs["bert"], hf)
    base = tmp_path / "base"
    shutil.copytree(hf_dirs["bert"], base)
    adapter = tmp_path / "lora"
    shutil.copytree(peft_dirs["lora"], adapter)
    config_path = adapter / "adapter_config.json"
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "base_model_name_or_path": str(base)}))
    notes: list[str] = []
    config = SweepConfig.build(ckpt=[str(hf), str(adapter)], sigma="0.1", programs=1, data=[tiny_tsv])
    cells = build_cells(expand_checkpoints(config.ckpt, False, notes), build_settings(config, notes), config,
                        {tiny_tsv: data_fingerprint(load_table(tiny_tsv))}, notes)
    (hf / "README.md").write_text("changed")
    with pytest.raises(UserError, match="changed on disk while this sweep ran"):
        list(evaluate_cells([c for c in cells if c.checkpoint == "hf"], 128, 64, 0))
    tokenizer_config = base / "tokenizer_config.json"
    tokenizer_config.write_text(tokenizer_config.read_text() + " ")
    with pytest.raises(UserError, match="changed while this sweep ran"):
        list(evaluate_cells([c for c in cells if c.checkpoint == "lora"], 128, 64, 0))


def test_the_tokenizer_is_the_adapters_when_it_has_one(hf_dirs, peft_dirs, tmp_path):
    assert read_external(peft_dirs["lora"]).meta["tokenizer"] == str(hf_dirs["bert"])
    adapter = tmp_path / "with-tokenizer"
    shutil.copytree(peft_dirs["lora"], adapter)
    tiny_backbone("bert").tokenizer.save_pretrained(adapter)
    assert read_external(adapter).meta["tokenizer"] == str(adapter)


def bad_inputs(hf_dirs, peft_dirs, tiny_dirs, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(hf_dirs["bert"] / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    no_base = tmp_path / "no-base"
    shutil.copytree(peft_dirs["lora"], no_base)
    config = json.loads((no_base / "adapter_config.json").read_text())
    (no_base / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": "bert-base-uncased"}))
    neither = tmp_path / "neither"
    neither.mkdir()
    (neither / "notes.txt").write_text("hello")
    return {
        "pickle": (pickled, ["pytorch_model.bin", "safetensors weights only"]),
        "no-base": (no_base, ["'bert-base-uncased'", "local folder or the bundled all-MiniLM-L6-v2"]),
        "prefix": (peft_dirs["prefix"], ["PEFT type 'PREFIX_TUNING' is not supported", "LORA, IA3"]),
        "neither": (neither, ["is not a checkpoint folder"]),
        "encoder": (Path(tiny_dirs["bert"]), ["BertModel, not a sequence classifier"]),
    }


@pytest.mark.parametrize("case", ["pickle", "no-base", "prefix", "neither", "encoder"])
def test_bad_folders_are_one_line_errors(hf_dirs, peft_dirs, tiny_dirs, tiny_tsv, tmp_path, case):
    folder, fragments = bad_inputs(hf_dirs, peft_dirs, tiny_dirs, tmp_path)[case]
    result = invoke("sweep", "--ckpt", folder, "--sigma", "0.05", "--data", tiny_tsv, "--out", tmp_path / "o")
    assert_user_error(result, *fragments)


def test_labels_beyond_the_classifier_are_a_one_line_error(hf_dirs, tiny_tsv, tmp_path):
    data = tmp_path / "three.tsv"
    data.write_text(Path(tiny_tsv).read_text() + "a film\t2\n")
    result = invoke("sweep", "--ckpt", hf_dirs["bert"], "--sigma", "0.05", "--data", data, "--out", tmp_path / "o")
    assert_user_error(result, "label 2", "knows 2 classes")


def test_cli_sweeps_a_hf_folder(hf_dirs, tiny_tsv, tmp_path):
    out = tmp_path / "out"
    result = invoke("sweep", "--ckpt", hf_dirs["bert"], "--sigma", "0.05", "--programs", "2", "--data", tiny_tsv,
                    "--out", out)
    assert result.exit_code == 0, result.output
    assert "tiny-bert-clf" in result.output
    for name in ("results.parquet", "summary.csv", "sweep.json"):
        assert (out / name).is_file()
    assert list(out.glob("accuracy_vs_*.png"))
    import pandas as pd

    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 3 and set(frame["method"]) == {"hf"}
    assert json.loads((out / "sweep.json").read_text())["config"]["layers"] == "all"


# --- folders holding two kinds, --layers across sweeps, inputs longer than the model takes, foreign bases ----------


def mixed_folders(tiny_ckpts, hf_dirs, peft_dirs, tmp_path):
    both = tmp_path / "both"  # a noisesim checkpoint and a PEFT adapter in one folder
    shutil.copytree(tiny_ckpts["grasp-w"], both)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(peft_dirs["lora"] / name, both / name)
    hf_mix = tmp_path / "hf-mix"  # a Hugging Face model with a noisesim checkpoint's tensors
    shutil.copytree(hf_dirs["bert"], hf_mix)
    shutil.copy(Path(tiny_ckpts["grasp-w"]) / "adapter.safetensors", hf_mix)
    return both, hf_mix


def test_a_folder_of_two_kinds_is_refused_by_path_and_by_store_name(tiny_ckpts, hf_dirs, peft_dirs, tiny_tsv,
                                                                     tmp_path, monkeypatch):
    both, hf_mix = mixed_folders(tiny_ckpts, hf_dirs, peft_dirs, tmp_path)
    for folder, fragments in ((both, ["adapter.safetensors", "a PEFT adapter (adapter_config.json"]),
                              (hf_mix, ["adapter.safetensors", "a Hugging Face BertForSequenceClassification"])):
        result = invoke("sweep", "--ckpt", folder, "--sigma", "0.05", "--data", tiny_tsv, "--out", tmp_path / "o")
        assert_user_error(result, str(folder), "holds both a noisesim checkpoint", *fragments, "separate folders")
        assert "backbone is missing" not in result.output
    from noisesim import checkpoints

    checkpoints.user_store().mkdir(parents=True, exist_ok=True)
    shutil.copytree(both, checkpoints.user_store() / "both")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert "both" in checkpoints.known_checkpoints()
    result = invoke("sweep", "--ckpt", "both", "--sigma", "0.05", "--data", tiny_tsv, "--out", tmp_path / "o2")
    assert_user_error(result, "holds both a noisesim checkpoint", "separate folders")


def test_layers_have_one_spelling_and_are_a_setting_of_external_checkpoints(hf_dirs, tiny_ckpts, tiny_tsv, tmp_path):
    folder = hf_dirs["bert"]
    assert cell_keys([folder], tiny_tsv, sigma="0.1", programs=1, layers="k,q") == \
        cell_keys([folder], tiny_tsv, sigma="0.1", programs=1, layers="q,k")
    assert read_external(folder, "k,q").layers == ("q", "k")
    assert_user_error(invoke("sweep", "--ckpt", folder, "--layers", "q,,k", "--data", tiny_tsv), "--layers",
                      "empty item")
    out = tmp_path / "sw"
    for layers in ("q,k", "k,q", "ff2"):
        result = invoke("sweep", "--ckpt", folder, "--ckpt", tiny_ckpts["grasp-w"], "--layers", layers, "--sigma",
                        "0.1", "--programs", "2", "--data", tiny_tsv, "--out", out)
        assert result.exit_code == 0, result.output
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["cells_reused"] == 3 and "layers" in meta["axes"]  # the noisesim checkpoint's cells
    report = invoke("report", out)
    assert report.exit_code == 0, report.output
    plot = invoke("plot", out)
    assert plot.exit_code == 0, plot.output
    import pandas as pd

    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 3 * 3  # q,k and k,q: one setting; ff2: another; grasp-w once
    hf = frame[frame["checkpoint"] == folder.name]
    assert sorted(hf["layers"].unique()) == ["ff2", "q,k"]
    assert frame.loc[frame["checkpoint"] == "grasp-w", "layers"].isna().all()
    from noisesim.api import load_results, summarize

    summary = summarize(load_results(out))  # every sweep's cells in the folder
    assert len(summary[summary["checkpoint"] == folder.name]) == 4  # 2 layer selections × (clean, σ = 0.1)
    assert summary.attrs["axes"][:3] == ["data", "checkpoint", "layers"]


def test_max_positions_of_every_family(hf_dirs):
    from noisesim.models import max_positions

    for family, limit in (("bert", 64), ("roberta", 63), ("distilbert", 64)):  # roberta: pad_token_id 0 + 1
        backbone = load_external(read_external(hf_dirs[family]))
        assert max_positions(backbone) == limit
    assert max_positions(tiny_backbone("bert")) == 64 and max_positions(tiny_backbone("roberta")) == 63


@pytest.mark.parametrize("which", ["bert", "roberta", "distilbert", "lora"])
def test_sentences_longer_than_the_model_takes_are_one_line_errors(hf_dirs, peft_dirs, tmp_path, which):
    folder = peft_dirs["lora"] if which == "lora" else hf_dirs[which]
    limit = 63 if which == "roberta" else 64
    data = tmp_path / "long.tsv"
    data.write_text(f"sentence\tlabel\n{' '.join(['good'] * 100)}\t1\na bad film\t0\n")
    result = invoke("sweep", "--ckpt", folder, "--sigma", "0.05", "--programs", "1", "--data", data, "--max-length",
                    "300", "--out", tmp_path / "o")
    assert_user_error(result, f"at most {limit}", f"--max-length {limit} or less")
    fine = invoke("sweep", "--ckpt", folder, "--sigma", "0.05", "--programs", "1", "--data", data, "--max-length",
                  limit, "--out", tmp_path / "fine")
    assert fine.exit_code == 0, fine.output


def test_an_adapter_on_a_base_of_other_shapes_names_the_mismatch(peft_dirs, tmp_path, tiny_tsv):
    from transformers import BertConfig, BertForSequenceClassification

    base = tmp_path / "wide-base"
    tokenizer = tiny_backbone("bert").tokenizer
    vocab = max(tokenizer.get_vocab().values()) + 1
    wide = BertForSequenceClassification(BertConfig(vocab_size=vocab, **{**COMMON, "hidden_size": 64}))
    wide.save_pretrained(base)
    tokenizer.save_pretrained(base)
    adapter = tmp_path / "lora"
    shutil.copytree(peft_dirs["lora"], adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": str(base)}))
    result = invoke("sweep", "--ckpt", adapter, "--sigma", "0.05", "--programs", "1", "--data", tiny_tsv, "--out",
                    tmp_path / "o")
    assert_user_error(result, "does not fit its base", "has shape (2, 32) in the adapter, (2, 64) in the base",
                      "trained on another base", "base_model_name_or_path")
    assert "lora_A.weight" in result.output and ".default" not in result.output


def test_touching_a_hf_folder_keeps_its_cells(hf_dirs, tiny_tsv, tmp_path):
    import os

    folder = tmp_path / "clf"
    shutil.copytree(hf_dirs["bert"], folder)
    before = cell_keys([folder], tiny_tsv, sigma="0.1", programs=1)
    config = folder / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns + 10**9, config.stat().st_mtime_ns + 10**9))  # `touch`
    assert cell_keys([folder], tiny_tsv, sigma="0.1", programs=1) == before
    config.write_text(config.read_text() + "\n")  # new content
    assert set(cell_keys([folder], tiny_tsv, sigma="0.1", programs=1)).isdisjoint(before)
