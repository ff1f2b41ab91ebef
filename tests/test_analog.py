"""Which layers are analog (--analog, --analog-head) and ``noisesim sensitivity``, on tiny models."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
import torch
from conftest import assert_user_error, invoke, numbers
from torch import nn

KW = dict(max_length=16, batch_size=8, progress=False)
TYPES = ("q", "k", "v", "o", "ff1", "ff2")


@pytest.fixture(scope="module")
def kvf2_ckpt(tmp_path_factory, tiny_dirs, tiny_tsv):
    """A tiny GRASP checkpoint whose analog layers are k, v, ff2 only (q, o, ff1 and the head are digital)."""
    from noisesim.api import train
    from noisesim.configs import MethodConfig, TrainConfig

    folder = tmp_path_factory.mktemp("kvf2") / "kvf2"
    cfg = TrainConfig(steps=2, batch_size=8, max_length=16, eval_every=1, train_data=tiny_tsv, eval_data=tiny_tsv,
                      lr=1e-2)
    train(str(folder), MethodConfig(method="grasp", k=8, layers="kvf2"), cfg, model=tiny_dirs["bert"],
          progress=False)
    return str(folder)


def effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every linear layer's weight as forward uses it, by the layer's name (an analog layer's ``base`` by its own)."""
    return {n.removesuffix(".base"): m.weight.detach().clone() for n, m in model.named_modules()
            if isinstance(m, nn.Linear)}


def score(model, batches) -> float:
    """A number in [0, 1] that moves with every weight (the mean probability of class 1): the tiny models' accuracy
    sits at chance under most noise, so the bookkeeping tests patch it in for ``accuracy``."""
    from noisesim.evaluate import logits

    return float(torch.softmax(logits(model, batches).double(), -1)[:, 1].mean())


def layer_name(block: int, role: str) -> str:
    suffix = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
              "o": "attention.output.dense", "ff1": "intermediate.dense", "ff2": "output.dense"}[role]
    return f"encoder.encoder.layer.{block}.{suffix}"


def spy_on_cells(monkeypatch, reference: dict[str, torch.Tensor]) -> list[set[str]]:
    """During every cell, the names of the linear layers whose weight differs from ``reference``."""
    from noisesim.engine import execute

    seen: list[set[str]] = []
    real = execute.accuracy

    def spy(model, batches):
        now = effective_weights(model)
        assert set(now) == set(reference)
        seen.append({n for n, w in now.items() if not torch.equal(w, reference[n])})
        return real(model, batches)

    monkeypatch.setattr(execute, "accuracy", spy)
    return seen


def test_analog_selections_change_exactly_the_intended_layers(kvf2_ckpt, tiny_tsv, monkeypatch):
    from noisesim import checkpoints
    from noisesim.engine.run import run

    built = checkpoints.build(checkpoints.read(kvf2_ckpt))
    reference = effective_weights(built.model)
    seen = spy_on_cells(monkeypatch, reference)
    selections = ["adapted", "all", "q,block1.o", "encoder.layer.0.*"]
    frame = run([kvf2_ckpt], "0.05", analog=selections, programs=1, data=tiny_tsv, **KW).frame
    everything = {layer_name(b, r) for b in (0, 1) for r in TYPES}
    want = {"adapted": {layer_name(b, r) for b in (0, 1) for r in ("k", "v", "ff2")}, "all": everything,
            "q,block1.o": {layer_name(0, "q"), layer_name(1, "q"), layer_name(1, "o")},
            "encoder.layer.0.*": {layer_name(0, r) for r in TYPES}}
    assert len(frame) == len(seen) == 2 * len(selections)  # a clean and a σ = 0.05 cell per selection
    for i, selection in enumerate(selections):
        clean, noisy = frame.iloc[2 * i], frame.iloc[2 * i + 1]
        assert clean["analog"] == noisy["analog"] == selection and clean["clean"] and not noisy["clean"]
        assert seen[2 * i] == set()  # the clean cell: every weight as trained
        assert seen[2 * i + 1] == want[selection], selection
    assert frame.attrs["axes"][:3] == ["data", "checkpoint", "analog"]
    assert frame["key"].is_unique
    seen.clear()
    head = run([kvf2_ckpt], "0.05", analog_head=True, programs=1, data=tiny_tsv, **KW).frame
    assert list(head["analog"]) == ["adapted+head"] * 2
    assert seen == [set(), want["adapted"] | {"head.dense", "head.out"}]
    assert not set(head["key"]) & set(frame["key"])


def test_layers_are_restored_bit_exactly(kvf2_ckpt, tiny_tsv, monkeypatch):
    """Wrapping, programming and unwrapping leave every module, tensor and requires_grad flag as it was, also when
    a cell fails; the engine's cached model is unchanged by a sweep over selections."""
    from noisesim import checkpoints
    from noisesim.engine import execute

    monkeypatch.setattr(execute, "_BACKBONES", {})  # only this test's backbones (others cache other heads)
    from noisesim.engine.analog import analog_layers
    from noisesim.engine.program import ProgrammedWeights
    from noisesim.engine.run import run
    from noisesim.methods import AdapterLinear

    built = checkpoints.build(checkpoints.read(kvf2_ckpt))
    model = built.model
    modules = dict(model.named_modules())
    state = {k: (v.clone(), v.data_ptr()) for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}

    def unchanged():
        assert dict(model.named_modules()).keys() == modules.keys()
        assert all(model.get_submodule(n) is m for n, m in modules.items() if n)
        now = model.state_dict()
        assert now.keys() == state.keys()
        assert all(torch.equal(now[k], v) and now[k].data_ptr() == ptr for k, (v, ptr) in state.items())
        assert {n: p.requires_grad for n, p in model.named_parameters()} == flags

    with analog_layers(model, built.family, "all", True) as layers, ProgrammedWeights(layers) as weights:
        assert len(layers) == 12 + 2 and all(isinstance(a, AdapterLinear) for a in layers.values())
        weights.realize(0.05, program=1)
        assert not torch.equal(model.get_submodule(layer_name(0, "q")).base.weight, state[
            layer_name(0, "q") + ".weight"][0])
    unchanged()
    with pytest.raises(RuntimeError, match="boom"):
        with analog_layers(model, built.family, "q,ff1", False) as layers, ProgrammedWeights(layers) as weights:
            weights.realize(0.05)
            raise RuntimeError("boom")
    unchanged()
    run([kvf2_ckpt], "0.05", analog=["all", "q"], analog_head=True, programs=1, data=tiny_tsv, **KW)
    cached = [b for k, b in execute._BACKBONES.items() if k[0] == checkpoints.read(kvf2_ckpt).meta["backbone"]]
    assert len(cached) == 1 and not any(isinstance(m, AdapterLinear) for m in cached[0].model.modules())
    fresh = type(cached[0].model)  # the cached backbone holds its own (untrained-head) tensors again
    assert fresh is type(model)
    again = checkpoints.build(checkpoints.read(kvf2_ckpt), cached[0])
    try:
        assert {k: v for k, v in again.model.state_dict().items()}.keys() == state.keys()
        assert all(torch.equal(again.model.state_dict()[k], v) for k, (v, _) in state.items())
    finally:
        from noisesim.external import release

        release(again)


def pre_issue12_key(cell, config) -> str:
    """A cell's key as noisesim computed it before --analog existed (the default must keep it), with 0.4.0's
    batching in its evaluation settings."""
    from noisesim.data import BATCHING

    what = [cell.checkpoint, cell.provenance["checkpoint_sha256"], cell.provenance["backbone_sha256"],
            cell.profile_name, cell.provenance["profile_sha256"], cell.t, cell.chip, cell.program, cell.read,
            config.seed, cell.data, cell.provenance["data_sha256"],
            {"max_length": config.max_length, "batch_size": config.batch_size, "batching": BATCHING}]
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]


def test_default_adapted_keeps_keys_and_numbers(tiny_ckpts, tiny_tsv, tmp_path, monkeypatch):
    """--analog adapted (the default) gives the keys and accuracies of before; 'all' on a checkpoint whose analog
    layers are all six roles programs the same layers (same numbers) but is its own setting (other keys)."""
    from noisesim import checkpoints
    from noisesim.data import EvalBatches, encode, load_table
    from noisesim.devices import gaussian
    from noisesim.engine import execute
    from noisesim.engine.config import SweepConfig
    from noisesim.engine.grid import build_cells, build_settings, data_fingerprint, expand_checkpoints
    from noisesim.engine.program import ProgrammedWeights
    from noisesim.engine.run import run
    from noisesim.methods import adapters_of

    monkeypatch.setattr(execute, "accuracy", score)
    ckpt = tiny_ckpts["grasp-w"]
    default = run([ckpt], "0.05", programs=2, data=tiny_tsv, **KW).frame
    explicit = run([ckpt], "0.05", programs=2, data=tiny_tsv, analog="adapted", **KW).frame
    pd.testing.assert_frame_equal(numbers(default), numbers(explicit))
    assert set(default["analog"]) == {"adapted"} and "analog" not in default.attrs["axes"]
    config = SweepConfig.build(ckpt=[ckpt], sigma="0.05", programs=2, data=[tiny_tsv], max_length=16, batch_size=8)
    notes: list[str] = []
    cells = build_cells(expand_checkpoints(config.ckpt, False, notes), build_settings(config, notes), config,
                        {tiny_tsv: data_fingerprint(load_table(tiny_tsv))}, notes)
    assert [pre_issue12_key(c, config) for c in cells] == [c.key for c in cells] == list(default["key"])
    # the numbers of the loop before --analog: every adapter of the checkpoint programmed
    built = checkpoints.build(checkpoints.read(ckpt))
    batches = EvalBatches.build(encode(load_table(tiny_tsv), built.tokenizer, 16), built.tokenizer.pad_token_id, 8)
    with ProgrammedWeights(adapters_of(built.model)) as weights:
        direct = []
        for sigma, program in ((0.0, 0), (0.05, 0), (0.05, 1)):
            weights.realize(gaussian(sigma), program=program)
            direct.append(score(built.model, batches))
    assert list(default["accuracy"]) == direct and len(set(direct)) == 3
    every = run([ckpt], "0.05", programs=2, data=tiny_tsv, analog="all", **KW).frame
    assert list(every["accuracy"]) == direct and not set(every["key"]) & set(default["key"])
    assert set(every["analog"]) == {"all"}


def test_sensitivity_by_layer_matches_single_selection_sweeps_and_resumes(tiny_ckpts, tiny_tsv, tmp_path,
                                                                         monkeypatch):
    import noisesim
    from noisesim.engine import execute
    from noisesim.engine.run import run

    ckpt = tiny_ckpts["grasp"]
    out = tmp_path / "sens"
    calls = []

    def dies_after_five(model, batches):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return score(model, batches)

    monkeypatch.setattr(execute, "accuracy", dies_after_five)
    with pytest.raises(KeyboardInterrupt):
        noisesim.sensitivity(ckpt, sigma=0.08, programs=3, data=tiny_tsv, out=str(out), **KW)
    monkeypatch.setattr(execute, "accuracy", score)
    result = noisesim.sensitivity(ckpt, sigma=0.08, programs=3, data=tiny_tsv, out=str(out), **KW)
    meta = result.sweep.meta
    assert meta["cells"] == 12 * (1 + 3) and meta["cells_reused"] == 5
    table = result.table
    assert list(table["unit"]) == [f"block{b}.{r}" for b in (0, 1) for r in TYPES]
    assert list(table["block"]) == [b for b in (0, 1) for _ in TYPES] and list(table["count"]) == [3] * 12
    fresh = noisesim.sensitivity(ckpt, sigma=0.08, programs=3, data=tiny_tsv, **KW).table
    pd.testing.assert_frame_equal(table, fresh)  # interrupted and resumed = run at once
    assert (out / "sensitivity.csv").is_file() and (out / "sensitivity.png").read_bytes()[:4] == b"\x89PNG"
    pd.testing.assert_frame_equal(pd.read_csv(out / "sensitivity.csv"), table, check_dtype=False)
    for unit in ("block0.q", "block1.ff2"):
        single = run([ckpt], "0.08", analog=unit, programs=3, data=tiny_tsv, **KW).frame
        clean = single[single["clean"]]["accuracy"].iloc[0]
        noisy = single[~single["clean"]]["accuracy"]
        row = table[table["unit"] == unit].iloc[0]
        assert row["clean"] == clean and row["mean"] == pytest.approx(noisy.mean(), abs=1e-12)
        assert row["drop"] == pytest.approx(clean - noisy.mean(), abs=1e-12)
        assert row["std"] == pytest.approx(noisy.std(), abs=1e-12)
        reused = run([ckpt], "0.08", analog=unit, programs=3, data=tiny_tsv, out=str(out), **KW)
        assert reused.meta["cells_reused"] == reused.meta["cells"] == 4  # the same cells: the same keys
    frame = result.sweep.frame
    assert frame[~frame["clean"]]["accuracy"].nunique() == 12 * 3  # every unit's noise acts, each draw its own
    assert table["drop"].abs().gt(0).all() and table["std"].gt(0).all()


def test_sensitivity_cli_by_type_and_block(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "by-type"
    res = invoke("sensitivity", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.08", "--by", "type", "--programs", 2,
                 "--data", tiny_tsv, "--max-length", 16, "--out", out)
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "sensitivity.csv")
    assert list(table["unit"]) == list(TYPES) and set(table["layers"]) == {2}
    assert "accuracy drop per type" in res.output and "block0" not in res.output
    assert (out / "sensitivity.png").is_file()
    again = invoke("sensitivity", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.08", "--by", "type", "--programs", 2,
                   "--data", tiny_tsv, "--max-length", 16, "--out", out)
    assert again.exit_code == 0 and "18 of 18 cells were already stored" in again.output
    blocks = invoke("sensitivity", "--ckpt", tiny_ckpts["grasp"], "--sigma", "0.08", "--by", "block", "--programs", 1,
                    "--data", tiny_tsv, "--max-length", 16, "--out", tmp_path / "by-block")
    assert blocks.exit_code == 0, blocks.output
    table = pd.read_csv(tmp_path / "by-block" / "sensitivity.csv")
    assert list(table["unit"]) == ["block0", "block1"] and set(table["layers"]) == {6}


@pytest.mark.parametrize("args, fragments", [
    (["sweep", "--analog", "qq"], ["did you mean 'q'?"]),
    (["sweep", "--analog", "block0.qq"], ["did you mean block0.q?"]),
    (["sweep", "--analog", "all,q"], ["all stands alone"]),
    (["sweep", "--analog", "q,,k"], ["empty item"]),
    (["sweep", "--analog", "block7"], ["has blocks 0–1"]),
    (["sweep", "--analog", "head.*"], ["matches no encoder linear layer", "--analog-head"]),
    (["sensitivity", "--by", "blok", "--sigma", "0.05"], ["did you mean 'block'?"]),
    (["sensitivity"], ["--sigma S (one value) or --profile P"]),
    (["sensitivity", "--sigma", "0.01,0.02"], ["one noise setting", "2"]),
    (["sensitivity", "--sigma", "0.05", "--time", "1s,1h"], ["one time"]),
])
def test_bad_analog_and_sensitivity_inputs_are_one_line(tiny_ckpts, tiny_tsv, tmp_path, args, fragments):
    extra = ["--ckpt", tiny_ckpts["grasp"], "--data", tiny_tsv, "--max-length", 16, "--out", tmp_path / "o"]
    if args[0] == "sweep":
        extra += ["--sigma", "0.05", "--programs", 1]
    res = invoke(*args, *extra)
    assert_user_error(res, *fragments)
