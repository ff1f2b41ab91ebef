"""--device and --dtype: the CPU numbers and keys unchanged, bad devices refused before any work, the device and
dtype recorded; on a machine with CUDA, sweeps on the GPU (repeatable, within the CPU's realization spread, drawn
by CUDA generators, no per-batch host copies)."""

import math

import pandas as pd
import pytest
import torch
from conftest import assert_user_error, invoke, numbers

from noisesim.engine.run import run
from noisesim.errors import UserError
from noisesim.hardware import device_label, resolve_device
from noisesim.seeds import SplitNormal, generator

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


def sweep(ckpt, data, **options):
    """A small sweep that draws at every stage: programming, per-MVM read noise, the periphery's output noise."""
    return run([ckpt], profile=["cycle-to-cycle", "pcm"], programs=2, reads=2, data=data,
               progress=False, batch_size=8, **options)


def test_cpu_is_the_default_and_gives_the_same_numbers_and_keys(tiny_ckpts, tiny_tsv):
    default = sweep(tiny_ckpts["stochgrasp"], tiny_tsv)
    cpu = sweep(tiny_ckpts["stochgrasp"], tiny_tsv, device="cpu")
    if not CUDA:  # auto is the CPU here
        pd.testing.assert_frame_equal(numbers(default.frame), numbers(cpu.frame))
    pd.testing.assert_frame_equal(numbers(cpu.frame), numbers(sweep(tiny_ckpts["stochgrasp"], tiny_tsv,
                                                                       device="CPU").frame))
    assert cpu.frame["device"].str.startswith("cpu (").all() and (cpu.frame["dtype"] == "float32").all()
    assert cpu.meta["config"]["device"] == "cpu" and cpu.meta["device"].startswith("cpu (")


def test_keys_name_the_device_type_and_dtype_only_when_not_cpu_float32(tiny_ckpts, tiny_tsv):
    from noisesim.data import load_table
    from noisesim.engine.config import SweepConfig
    from noisesim.engine.grid import build_cells, build_settings, data_fingerprint, expand_checkpoints

    def keys(device_type="cpu", **options):
        config = SweepConfig.build(ckpt=[tiny_ckpts["grasp-w"]], sigma="0.05", data=[tiny_tsv], **options)
        notices = []
        loaded = expand_checkpoints(config.ckpt, config.twin, notices, config.layers)
        cells = build_cells(loaded, build_settings(config, notices), config,
                            {tiny_tsv: data_fingerprint(load_table(tiny_tsv))}, notices, device_type=device_type)
        return [c.key for c in cells]

    cpu = keys()
    assert keys(device="cpu") == cpu  # the device's spelling is not in the key: only its type, and not for cpu
    cuda, bf16 = keys("cuda"), keys(dtype="bf16")
    assert not set(cpu) & set(cuda) and not set(cpu) & set(bf16) and not set(cuda) & set(keys("cuda", dtype="bf16"))


def test_bf16_is_opt_in_and_recorded(tiny_ckpts, tiny_tsv, tmp_path):
    plain = run([tiny_ckpts["grasp-w"]], "0.05", programs=2, data=tiny_tsv, progress=False, out=tmp_path / "s")
    mixed = run([tiny_ckpts["grasp-w"]], "0.05", programs=2, data=tiny_tsv, progress=False, out=tmp_path / "s",
                dtype="bf16", device="cpu")
    assert (plain.frame["dtype"] == "float32").all() and (mixed.frame["dtype"] == "bf16").all()
    assert mixed.meta["cells_reused"] == 0  # other cells than float32's, stored beside them
    assert not set(plain.frame["key"]) & set(mixed.frame["key"])
    assert ((mixed.frame["accuracy"] - plain.frame["accuracy"]).abs() <= 0.2).all()


@pytest.mark.skipif(CUDA, reason="auto picks CUDA here")
def test_auto_is_the_cpu_without_cuda():
    assert resolve_device("auto") == torch.device("cpu")
    assert device_label("cpu").startswith("cpu (")


@pytest.mark.parametrize("value, fragments", [
    ("gpu", ["--device 'gpu'", "give auto, cpu, cuda or cuda:N"]),
    ("cuda:x", ["--device 'cuda:x'", "give auto, cpu, cuda or cuda:N"]),
    ("", ["--device ''", "give auto"]),
])
def test_misspelled_devices_are_one_line_errors(value, fragments, tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "never"
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--out", out,
                             "--device", value), *fragments)
    assert_user_error(invoke("sensitivity", "--ckpt", tiny_ckpts["grasp-w"], "--sigma", "0.05", "--data", tiny_tsv,
                             "--out", out, "--device", value), *fragments)
    assert_user_error(invoke("train", "--out", out, "--model", "x", "--device", value), *fragments)
    assert not out.exists()


def test_bad_dtype_is_a_one_line_error(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "never"
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--out", out,
                             "--dtype", "fp16"), "--dtype 'fp16'", "'float32' or 'bf16'")
    assert_user_error(invoke("train", "--out", out, "--dtype", "fp16"), "--dtype 'fp16'", "float32", "bf16")
    assert not out.exists()


@pytest.mark.skipif(CUDA, reason="CUDA is present here")
def test_cuda_without_a_gpu_is_refused_before_any_work(tiny_ckpts, tiny_tsv, tmp_path):
    out = tmp_path / "never"
    for command in (["sweep", "--ckpt", tiny_ckpts["grasp-w"]],
                    ["sensitivity", "--ckpt", tiny_ckpts["grasp-w"], "--sigma", "0.05"]):
        assert_user_error(invoke(*command, "--data", tiny_tsv, "--out", out, "--device", "cuda"),
                          "--device cuda", "sees no CUDA device", "--device cpu")
    assert_user_error(invoke("train", "--out", out, "--device", "cuda:0"), "--device cuda:0", "no CUDA device")
    assert not out.exists()
    with pytest.raises(UserError, match="sees no CUDA device"):
        run([tiny_ckpts["grasp-w"]], "0.05", data=tiny_tsv, progress=False, device="cuda")


def test_a_gpu_index_that_is_not_there_is_refused(monkeypatch, tiny_ckpts, tiny_tsv, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    out = tmp_path / "never"
    assert_user_error(invoke("sweep", "--ckpt", tiny_ckpts["grasp-w"], "--data", tiny_tsv, "--out", out,
                             "--device", "cuda:3"), "--device cuda:3", "no CUDA device 3", "cuda:0")
    assert not out.exists()


def test_generators_live_on_the_device_asked_for():
    from noisesim.seeds import derive_seed

    cpu = generator(0, "read", 1, "layer")
    assert cpu.device.type == "cpu" and cpu.initial_seed() == derive_seed(0, "read", 1, "layer")
    assert len(SplitNormal(cpu).gens) == 2  # the CPU's serial sampler: two generators side by side


@pytest.mark.parametrize("device", DEVICES)
def test_a_cell_copies_nothing_to_the_host_per_batch(device, monkeypatch, tiny_ckpts, tiny_tsv):
    """The logits, hits and finiteness stay on the device: a handful of host transfers per cell, not one per batch."""
    from noisesim.data import load_table
    from noisesim.engine.config import SweepConfig
    from noisesim.engine.execute import evaluate_cells
    from noisesim.engine.grid import build_cells, build_settings, data_fingerprint, expand_checkpoints

    config = SweepConfig.build(ckpt=[tiny_ckpts["stochgrasp"]], profile=["cycle-to-cycle"], programs=2,
                               data=[tiny_tsv], twin=False, batch_size=2)
    notices = []
    loaded = expand_checkpoints(config.ckpt, config.twin, notices, config.layers)
    dev = resolve_device(device)
    cells = build_cells(loaded, build_settings(config, notices), config,
                        {tiny_tsv: data_fingerprint(load_table(tiny_tsv))}, notices, device_type=dev.type)
    list(evaluate_cells(cells[:1], config.max_length, 2, 0, device=str(dev)))  # load and move once, uncounted
    calls = []
    for name in ("cpu", "item", "tolist", "numpy"):
        original = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda self, *a, _f=original, _n=name, **k: (calls.append(_n),
                                                                                             _f(self, *a, **k))[1])
    rows = list(evaluate_cells(cells, config.max_length, 2, 0, device=str(dev)))
    batches = math.ceil(40 / 2)
    assert len(rows) == len(cells) and len(calls) < batches, calls


@needs_cuda
def test_cuda_same_seed_same_numbers(tiny_ckpts, tiny_tsv):
    first = sweep(tiny_ckpts["stochgrasp"], tiny_tsv, device="cuda")
    again = sweep(tiny_ckpts["stochgrasp"], tiny_tsv, device="cuda")
    pd.testing.assert_frame_equal(numbers(first.frame), numbers(again.frame))
    assert first.frame["device"].str.startswith("cuda:0 (").all()


@needs_cuda
def test_cuda_and_cpu_agree_within_the_realization_spread(tiny_ckpts, tiny_tsv):
    kw = dict(profile=["cycle-to-cycle"], programs=6, data=tiny_tsv, progress=False)
    cpu = run([tiny_ckpts["grasp-w"]], device="cpu", **kw).frame
    gpu = run([tiny_ckpts["grasp-w"]], device="cuda", **kw).frame
    assert not set(cpu["key"]) & set(gpu["key"])
    assert sorted(cpu["profile"].unique()) == ["cycle-to-cycle", "ideal"]
    for (_, a), (_, b) in zip(cpu.groupby("profile"), gpu.groupby("profile"), strict=True):
        spread = math.sqrt(a["accuracy"].var(ddof=1) / len(a) + b["accuracy"].var(ddof=1) / len(b)) \
            if len(a) > 1 else 0.0
        assert abs(a["accuracy"].mean() - b["accuracy"].mean()) <= 4 * spread + 1 / 40 + 1e-9


@needs_cuda
def test_cuda_realizations_are_drawn_by_cuda_generators(tiny_ckpts):
    from noisesim.checkpoints import build, read
    from noisesim.devices import load_profile
    from noisesim.engine.program import ProgrammedWeights
    from noisesim.methods import adapters_of

    model = build(read(tiny_ckpts["grasp-w"])).model.to("cuda")
    adapters = adapters_of(model)
    with ProgrammedWeights(adapters) as weights:
        for profile in ("cycle-to-cycle", "pcm"):
            weights.realize(load_profile(profile), t=86400.0, chip=0, program=1, read=0, seed=0)
            assert all(a.base.weight.device.type == "cuda" for a in adapters.values())
            for hook in weights.hooks:
                assert hook.gen.device.type == "cuda"
                for normal in (getattr(hook, "normal", None), getattr(hook, "read_normal", None)):
                    assert normal is None or [g.device.type for g in normal.gens] == ["cuda"]
    assert generator(0, "read", device="cuda").device.type == "cuda"


@needs_cuda
def test_cuda_training_runs_and_records_its_device(tiny_dirs, tiny_tsv, tmp_path):
    from noisesim.api import train

    _, result, meta = train(str(tmp_path / "g"), "stochgrasp", model=tiny_dirs["bert"], k=8, steps=4, batch_size=8,
                            max_length=16, eval_every=2, train_data=tiny_tsv, eval_data=tiny_tsv,
                            target_warmup=0.5, train_noise="gaussian:0.02", device="cuda", progress=False)
    assert meta["device"].startswith("cuda:0 (") and meta["dtype"] == "float32"
    assert all(t.device.type == "cpu" for t in result.state.values())


def test_a_config_file_takes_device_and_dtype(tiny_ckpts, tiny_tsv, tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(f"ckpt: [{tiny_ckpts['grasp-w']}]\ndata: [{tiny_tsv}]\ndevice: gpu\n")
    assert_user_error(invoke("sweep", "--config", config, "--out", tmp_path / "never"), "--device 'gpu'")
    config.write_text(f"ckpt: [{tiny_ckpts['grasp-w']}]\ndata: [{tiny_tsv}]\nsigma: 0.05\nprograms: 1\n"
                      "device: cpu\ndtype: bf16\n")
    result = invoke("sweep", "--config", config, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert (pd.read_parquet(tmp_path / "s" / "results.parquet")["dtype"] == "bf16").all()
    assert not (tmp_path / "never").exists()


def test_bf16_training_on_the_cpu_is_recorded(tiny_dirs, tiny_tsv, tmp_path):
    from noisesim.api import train

    _, result, meta = train(str(tmp_path / "b"), "grasp-w", model=tiny_dirs["bert"], k=8, steps=2, batch_size=8,
                            max_length=16, eval_every=2, train_data=tiny_tsv, eval_data=tiny_tsv, device="cpu",
                            dtype="bf16", progress=False)
    assert meta["dtype"] == "bf16" and meta["device"].startswith("cpu (") and 0 <= result.dev_accuracy <= 1
