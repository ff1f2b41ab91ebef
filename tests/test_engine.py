import numpy as np
import pandas as pd
import pytest
import torch

from noisesim import checkpoints
from noisesim.data import EvalBatches, encode, load_table
from noisesim.engine.config import parse_sigmas
from noisesim.engine.program import ProgrammedWeights
from noisesim.engine.run import run
from noisesim.errors import UserError
from noisesim.evaluate import accuracy, logits
from noisesim.methods import adapters_of
from noisesim.models import load_backbone


def test_parse_sigmas():
    assert parse_sigmas("0.05, 0.01,0.01") == [0.0, 0.01, 0.05]
    for bad in ("0.01,-0.02", "nan", "0.01,abc", "inf"):
        with pytest.raises(UserError):
            parse_sigmas(bad)


@pytest.mark.parametrize("method", ["grasp", "grasp-w", "stochgrasp"])
def test_save_load_identical_logits(tiny_ckpts, tiny_dirs, tiny_tsv, method):
    ckpt = checkpoints.read(tiny_ckpts[method])
    bb = checkpoints.build(ckpt)
    dev = EvalBatches.build(encode(load_table(tiny_tsv), bb.tokenizer, 16), bb.tokenizer.pad_token_id)
    first = logits(bb.model, dev)
    again = checkpoints.build(checkpoints.read(tiny_ckpts[method]))
    assert torch.equal(logits(again.model, dev), first)
    # groupings are stored, so they survive save/load exactly
    for name, a in adapters_of(again.model).items():
        assert a.group.dtype == torch.long
        assert torch.equal(a.group, ckpt.tensors[f"{name}.group"].long())
    assert ckpt.meta["dev_accuracy"] == accuracy(bb.model, dev)
    assert ckpt.meta["method"]["method"] == method


def test_weights_bit_identical_after_sweep_cells(tiny_ckpts):
    bb = checkpoints.build(checkpoints.read(tiny_ckpts["stochgrasp"]))
    adapters = adapters_of(bb.model)
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    frozen = {n: a.base.weight.data_ptr() for n, a in adapters.items()}
    draws = []
    with ProgrammedWeights(adapters) as pw:
        for sigma, seed in ((0.05, 0), (0.05, 1), (0.05, 0)):
            pw.realize(sigma, seed=seed)
            assert all(a.is_programmed for a in adapters.values())
            draws.append({n: a.base.weight.clone() for n, a in adapters.items()})
        changed = bb.model.state_dict()
        assert any(not torch.equal(changed[k], before[k]) for k in before)
    assert not any(a.is_programmed for a in adapters.values())
    after = bb.model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert {n: a.base.weight.data_ptr() for n, a in adapters.items()} == frozen  # the very same tensors
    # the seed picks the draw: seed 1 differs from seed 0, seed 0 again repeats it exactly
    assert all(torch.equal(draws[0][n], draws[2][n]) and not torch.equal(draws[0][n], draws[1][n]) for n in frozen)


@pytest.mark.parametrize("stop", [UserError("boom"), KeyboardInterrupt()])
def test_leaving_the_block_on_an_error_restores_weights_and_hooks(tiny_ckpts, stop):
    from noisesim.devices import load_profile

    bb = checkpoints.build(checkpoints.read(tiny_ckpts["grasp-w"]))
    adapters = adapters_of(bb.model)
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    with pytest.raises(type(stop)):
        with ProgrammedWeights(adapters) as pw:
            pw.realize(load_profile("fefet"), read=1)
            assert all(len(a.base._forward_hooks) + len(a.base._forward_pre_hooks) == 1 for a in adapters.values())
            raise stop
    assert not any(a.is_programmed for a in adapters.values())
    assert all(len(a.base._forward_hooks) + len(a.base._forward_pre_hooks) == 0 for a in adapters.values())
    assert all(torch.equal(bb.model.state_dict()[k], before[k]) for k in before)


def test_realize_needs_the_block_and_keywords(tiny_ckpts):
    bb = checkpoints.build(checkpoints.read(tiny_ckpts["grasp"]))
    adapters = adapters_of(bb.model)
    pw = ProgrammedWeights(adapters)
    with pytest.raises(RuntimeError, match="inside `with ProgrammedWeights"):
        pw.realize(0.05)
    with pw:
        with pytest.raises(TypeError):
            pw.realize(0.05, 3600.0)  # t, chip, program, read and seed are keyword-only
        pw.realize(0.05, seed=1)
        with pytest.raises(RuntimeError, match="already programmed"):
            ProgrammedWeights(adapters)
    assert not any(a.is_programmed for a in adapters.values())


def test_programmed_noise_has_requested_std(tiny_ckpts):
    bb = checkpoints.build(checkpoints.read(tiny_ckpts["grasp-w"]))
    adapters = adapters_of(bb.model)
    with ProgrammedWeights(adapters) as pw:
        pw.realize(0.03, seed=5)
        diffs = torch.cat([(a.base.weight - pw.programmed[n]).flatten() for n, a in adapters.items()])
    assert diffs.numel() > 10000
    assert abs(diffs.std().item() / 0.03 - 1) < 0.03
    assert abs(diffs.mean().item()) < 0.03 * 4 / diffs.numel() ** 0.5


def test_sweep_table_twin_and_reproducibility(tiny_ckpts, tiny_tsv):
    res = run([tiny_ckpts["stochgrasp"]], "0.01,0.5", seeds=2, data=tiny_tsv, progress=False)
    df = res.frame
    assert set(df["checkpoint"]) == {"stochgrasp", "grasp-w"}  # the twin came along
    assert len(df) == 2 * (1 + 2 * 2)
    clean = df[df.sigma == 0].set_index("checkpoint")["accuracy"]
    for name in ("stochgrasp", "grasp-w"):
        assert clean[name] == checkpoints.read(tiny_ckpts[name]).meta["dev_accuracy"]
    again = run([tiny_ckpts["stochgrasp"]], "0.01,0.5", seeds=2, data=tiny_tsv, progress=False).frame
    pd.testing.assert_frame_equal(df.drop(columns="seconds"), again.drop(columns="seconds"))
    no_twin = run([tiny_ckpts["stochgrasp"]], "0.01", seeds=1, data=tiny_tsv, twin=False, progress=False).frame
    assert set(no_twin["checkpoint"]) == {"stochgrasp"}
    assert 0.5 <= res.chance <= 1


def test_same_seed_same_noise_across_checkpoints(tiny_ckpts):
    """Layers of equal shape get identical draws for the same seed, whatever the checkpoint."""
    draws = []
    for method in ("grasp", "grasp-w"):
        bb = checkpoints.build(checkpoints.read(tiny_ckpts[method]))
        with ProgrammedWeights(adapters_of(bb.model)) as pw:
            pw.realize(0.1, seed=3)
            draws.append({n: a.base.weight - pw.programmed[n] for n, a in adapters_of(bb.model).items()})
    assert draws[0].keys() == draws[1].keys()
    for n in draws[0]:
        torch.testing.assert_close(draws[0][n], draws[1][n], rtol=0, atol=1e-6)


def test_unknown_checkpoint_lists_known(tiny_ckpts):
    with pytest.raises(UserError, match="known: .*sst2-stoch"):
        run(["no-such-ckpt"], "0.01", progress=False)


def test_backbone_reloaded_clean(tiny_dirs):
    bb = load_backbone(tiny_dirs["roberta"])
    assert bb.family == "roberta" and len(bb.linear_layers("all")) == 12


# --- device profiles in the sweep -----------------------------------------------------------------------------


@pytest.mark.slow
def test_profile_sweep_grid_times_chips_and_reproducibility(tiny_ckpts, tiny_tsv):
    kw = dict(profiles=["pcm"], times="1h,1y", chips=2, seeds=2, data=tiny_tsv, progress=False)
    df = run([tiny_ckpts["stochgrasp"]], **kw).frame
    per_ckpt = 1 + 2 * 2 * 2  # the clean (ideal) reference once, then chips × programmings × times
    assert len(df) == 2 * per_ckpt
    clean = df[df.profile == "ideal"]
    assert len(clean) == 2 and set(clean["time"]) == {"0s"}
    noisy = df[df.profile == "pcm"]
    assert set(noisy["time"]) == {"1h", "1y"} and set(noisy["time_s"]) == {3600.0, 365 * 86400.0}
    assert set(zip(noisy.chip, noisy.program, strict=True)) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    again = run([tiny_ckpts["stochgrasp"]], **kw).frame
    pd.testing.assert_frame_equal(df.drop(columns="seconds"), again.drop(columns="seconds"))
    other_seed = run([tiny_ckpts["stochgrasp"]], seed=1, **kw).frame
    assert set(other_seed["seed"]) == {1}


def test_set_axis_and_time_needs_drift(tiny_ckpts, tiny_tsv):
    sets = ["programming.scale=0,3", "drift.compensation=none,global"]
    df = run([tiny_ckpts["grasp-w"]], profiles=["pcm"], sets=sets, seeds=1, data=tiny_tsv, progress=False).frame
    pcm = df[df.profile == "pcm"]
    assert set(zip(pcm["programming.scale"], pcm["drift.compensation"], strict=True)) == {
        (0, "none"), (0, "global"), (3, "none"), (3, "global")}
    with pytest.raises(UserError, match="drift component; 'rram' has none"):
        run([tiny_ckpts["grasp-w"]], profiles=["rram"], times="1d", data=tiny_tsv, progress=False)
    with pytest.raises(UserError, match="--time"):
        run([tiny_ckpts["grasp-w"]], profiles=["pcm"], times="1 fortnight", data=tiny_tsv, progress=False)
    with pytest.raises(UserError, match="--chips 0"):
        run([tiny_ckpts["grasp-w"]], profiles=["pcm"], chips=0, data=tiny_tsv, progress=False)


@pytest.mark.parametrize("name", ["rram", "fefet"])
def test_runtime_read_noise_hooks_restored_bit_exactly(tiny_ckpts, tiny_tsv, name):
    from noisesim.devices import load_profile

    bb = checkpoints.build(checkpoints.read(tiny_ckpts["grasp"]))
    dev = EvalBatches.build(encode(load_table(tiny_tsv), bb.tokenizer, 16), bb.tokenizer.pad_token_id)
    before = {k: v.clone() for k, v in bb.model.state_dict().items()}
    clean = logits(bb.model, dev)
    adapters = adapters_of(bb.model)
    with ProgrammedWeights(adapters) as pw:
        pw.realize(load_profile(name), read=0)
        assert all(len(a.base._forward_hooks) + len(a.base._forward_pre_hooks) == 1 for a in adapters.values())
        first, second = logits(bb.model, dev), logits(bb.model, dev)
        assert not torch.equal(first, second)  # redrawn on every pass / token
        assert not torch.equal(first, clean)
        pw.realize(load_profile(name), read=0)  # same read seed: the same sequence of draws
        assert torch.equal(logits(bb.model, dev), first)
        pw.realize(load_profile(name), read=1)
        assert not torch.equal(logits(bb.model, dev), first)
    assert all(len(a.base._forward_hooks) + len(a.base._forward_pre_hooks) == 0 for a in adapters.values())
    assert all(torch.equal(bb.model.state_dict()[k], before[k]) for k in before)
    assert torch.equal(logits(bb.model, dev), clean)


def test_variance_components_recover_nested_spread():
    from noisesim.stats import variance_components

    gen = np.random.default_rng(0)
    chips, programs, reads = 300, 4, 4
    rows = []
    chip_fx = gen.normal(0, 0.03, chips)
    for c in range(chips):
        prog_fx = gen.normal(0, 0.02, programs)
        for p in range(programs):
            for r, read_fx in enumerate(gen.normal(0, 0.01, reads)):
                rows.append({"chip": c, "program": p, "read": r, "accuracy": 0.8 + chip_fx[c] + prog_fx[p] + read_fx})
    got = variance_components(pd.DataFrame(rows))
    assert abs(got["sd_chip"] / 0.03 - 1) < 0.1
    assert abs(got["sd_program"] / 0.02 - 1) < 0.05
    assert abs(got["sd_read"] / 0.01 - 1) < 0.03
    assert abs(got["sd_total"] / np.sqrt(0.03**2 + 0.02**2 + 0.01**2) - 1) < 0.1
    once = pd.DataFrame(rows).query("program == 0")  # one programming per chip: chip not separable
    assert np.isnan(variance_components(once)["sd_chip"]) and np.isnan(variance_components(once)["sd_program"])
    single = variance_components(pd.DataFrame(rows[:1]))
    assert np.isnan(single["sd_chip"]) and np.isnan(single["sd_total"])  # one value: no spread to estimate


# --- worker processes: rows per cell ----------------------------------------------------------------------------


def test_next_row_takes_sent_rows_before_a_workers_error():
    import concurrent.futures as cf
    import queue

    from noisesim.engine.execute import _next_row

    rows, running, failed = queue.Queue(), cf.Future(), cf.Future()
    rows.put({"key": "a"})
    failed.set_exception(UserError("cell b failed"))
    assert _next_row(rows, [running, failed], poll=0.01) == {"key": "a"}  # sent before the error: kept
    with pytest.raises(UserError, match="cell b failed"):
        _next_row(rows, [running, failed], poll=0.01)


@pytest.mark.slow
def test_workers_report_each_cell_as_it_finishes(tiny_ckpts, tmp_path, monkeypatch):
    """With --workers, on_row is called as each cell finishes, not when a worker's chunk of cells does."""
    import time

    import noisesim.engine.run as run_module
    from noisesim.engine.execute import chunks, run_local

    data = tmp_path / "many.tsv"  # enough sentences that one cell takes a measurable time
    data.write_text("sentence\tlabel\n" + "".join(f"a good movie {'the ' * (i % 7)}\t{i % 2}\n" for i in range(3000)))
    arrivals, sizes = [], []

    def spy(cells, workers, on_row, **kw):
        sizes.extend(len(c) for c in chunks(cells, max(1, min(8, len(cells) // (2 * workers) or 1))))
        return run_local(cells, workers, lambda row: (arrivals.append((time.perf_counter(), row)), on_row(row)), **kw)

    monkeypatch.setattr(run_module, "run_local", spy)
    kw = dict(sigmas="0.01,0.02,0.03,0.04,0.05,0.06,0.07", seeds=2, data=str(data), twin=False, progress=False)
    pooled = run([tiny_ckpts["grasp-w"]], workers=2, out=tmp_path / "w", **kw).frame
    assert max(sizes) == 3 and len(arrivals) == len(pooled) == 15  # chunks of 3 cells, 15 rows one by one
    local = run([tiny_ckpts["grasp-w"]], **kw).frame
    assert sorted(zip(pooled.key, pooled.accuracy, strict=True)) == sorted(zip(local.key, local.accuracy, strict=True))
    # Two workers send at most two rows at nearly the same moment; a chunk sent at once would be three.
    window = 0.3 * float(pooled["seconds"].median())
    times = [t for t, _ in arrivals]
    assert all(times[i + 2] - times[i] > window for i in range(len(times) - 2)), (window, times)
