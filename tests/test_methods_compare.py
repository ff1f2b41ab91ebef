"""The common fine-tuning methods (full, head, bitfit, lora, ia3) next to GRASP's, hardware-aware training on any of
them, and training seeds as recipes: tiny random models built in code."""

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import assert_user_error, invoke

from noisesim import checkpoints
from noisesim.configs import MethodConfig, TrainConfig
from noisesim.errors import UserError
from noisesim.methods import (
    METHODS,
    adapters_of,
    backbone_parameters,
    inject,
    remove,
    set_training_noise,
    trainable_state,
    trains_backbone,
)
from noisesim.models import tiny_backbone
from noisesim.training import TrainingNoise, parameter_groups

NEW = {  # variant → MethodConfig options
    "full": dict(method="full"),
    "head": dict(method="head"),
    "bitfit": dict(method="bitfit"),
    "lora": dict(method="lora"),
    "lora-digital": dict(method="lora", lora_digital=True),
    "lora-all": dict(method="lora", targets="all", rank=2),
    "ia3": dict(method="ia3"),
}


def batch(bb):
    from noisesim.data import collate

    texts = ["a good movie", "the film is bad", "great", "not awful at all the movie", "bad bad", "a"]
    return collate(bb.tokenizer(texts)["input_ids"], bb.tokenizer.pad_token_id)


def shake(bb, scale=0.05, seed=0):
    """Move every trainable tensor away from its initial value (LoRA's B starts at 0, IA3's scales at 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in bb.model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("family", ["bert", "distilbert"])
@pytest.mark.parametrize("variant", list(NEW))
def test_exactly_the_method_s_tensors_get_gradients(family, variant):
    config = MethodConfig(**NEW[variant])
    bb = tiny_backbone(family, seed=2)
    adapters = inject(bb, config)
    shake(bb)  # a zero B would leave A without gradient
    bb.model.train()
    inputs = batch(bb)
    F.cross_entropy(bb.model(**inputs).logits, torch.tensor([1, 0, 1, 0, 0, 1])).backward()
    groups = parameter_groups(bb, adapters, trains_backbone=trains_backbone(config))
    trained = {id(p) for ps in groups.values() for p in ps}
    for name, p in bb.model.named_parameters():
        if id(p) in trained:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name
    for a in adapters.values():  # the analog W never trains: programming and HWA need it frozen
        assert not a.base.weight.requires_grad
    names = {n for n, p in bb.model.named_parameters() if id(p) in trained}
    if config.method == "bitfit":
        assert names - set(bb.head_parameters()) == set(backbone_parameters(bb))
        assert all(n.endswith(".bias") for n in backbone_parameters(bb)) and len(backbone_parameters(bb)) > 10
    if config.method == "head":
        assert names == set(bb.head_parameters())
    if config.method == "lora":
        lora = {n.rsplit(".", 3)[0] for n in names if ".lora_" in n}
        roles = {"all": 12, "q,v": 4}["all" if config.targets == "all" else "q,v"]
        assert len(lora) == roles


def test_percent_trainable_of_each_method():
    from noisesim.methods import count_parameters

    counts = {}
    for variant, options in NEW.items():
        bb = tiny_backbone("bert")
        total_before = sum(p.numel() for p in bb.model.parameters())
        adapters = inject(bb, MethodConfig(**options))
        trainable, total = count_parameters(bb)
        added = sum(p.numel() for a in adapters.values() for p in a.adapter_parameters().values())
        # a peft layer shares its base (counted once); full fine-tuning's ΔW re-trains W (not extra parameters)
        assert total == total_before + (0 if options["method"] == "full" else added)
        counts[variant] = trainable
    head = 32 * 32 + 32 + 32 * 2 + 2
    assert counts["head"] == head
    assert counts["full"] == total_before
    assert counts["lora"] == head + 4 * 8 * (32 + 32)  # q, v of 2 blocks: A (8×32) and B (32×8)
    # ia3: k, v scale their 32 outputs, ff2 its 48 inputs, in 2 blocks
    assert counts["ia3"] == head + 2 * (32 + 32 + 48)
    # bitfit: 12 linear biases (q, k, v, o: 32; ff1: 48; ff2: 32) + 5 layer-norm biases of 32
    assert counts["bitfit"] == head + 2 * (5 * 32 + 48) + 5 * 32


def test_lora_programmed_weight_is_merged_unless_digital():
    for digital in (False, True):
        bb = tiny_backbone("bert")
        adapters = inject(bb, MethodConfig(method="lora", lora_digital=digital, rank=4, lora_alpha=8.0))
        shake(bb)
        a = adapters["encoder.encoder.layer.0.attention.self.query"]
        ba = a.peft.lora_B["default"].weight @ a.peft.lora_A["default"].weight * (8.0 / 4)
        expected = a.base.weight + (0 if digital else ba)
        torch.testing.assert_close(a.programmed_weight(), expected)
        x = torch.randn(5, 32)
        with torch.no_grad():
            torch.testing.assert_close(a(x), F.linear(x, a.base.weight + ba, a.base.bias))
            realized = a.programmed_weight() + 0.01
            a.program(realized)
            want = F.linear(x, realized, a.base.bias) + (F.linear(x, ba) if digital else 0)
            torch.testing.assert_close(a(x), want)
            a.unprogram()
        assert not adapters["encoder.encoder.layer.0.attention.self.key"].adapter_parameters()  # not a target


def test_ia3_scales_outputs_and_the_feed_forward_input():
    bb = tiny_backbone("bert")
    adapters = inject(bb, MethodConfig(method="ia3"))
    shake(bb)
    x = torch.randn(3, 32)
    key = adapters["encoder.encoder.layer.0.attention.self.key"]
    with torch.no_grad():
        torch.testing.assert_close(key(x), key.base(x) * key.peft.ia3_l["default"].flatten())
        ff2 = adapters["encoder.encoder.layer.0.output.dense"]
        h = torch.randn(3, 48)
        torch.testing.assert_close(ff2(h), ff2.base(h * ff2.peft.ia3_l["default"].flatten()))
    torch.testing.assert_close(key.programmed_weight(), key.base.weight, rtol=0, atol=0)


@pytest.mark.parametrize("variant", list(NEW))
def test_checkpoint_round_trip_gives_identical_logits_and_restores_the_backbone(tmp_path, variant):
    config = MethodConfig(**NEW[variant])
    bb = tiny_backbone("bert", seed=3)
    inject(bb, config)
    shake(bb, seed=1)
    inputs = batch(bb)
    with torch.no_grad():
        want = bb.model(**inputs).logits
    meta = {"backbone": "tiny-bert", "num_labels": 2, "pooling": "mean", "method": config.to_dict()}
    folder = checkpoints.write(tmp_path / "ck", trainable_state(bb), meta)
    fresh = tiny_backbone("bert", seed=3)
    before = {n: p.detach().clone() for n, p in fresh.model.named_parameters()}
    tensors = {id(p): p.data for p in fresh.model.parameters()}
    built = checkpoints.build(checkpoints.read(folder), fresh)
    with torch.no_grad():
        assert torch.equal(built.model(**inputs).logits, want)
    remove(built)  # a cached backbone serves the next checkpoint: every tensor is its own again
    for name, p in fresh.model.named_parameters():
        if not name.startswith("head."):
            assert torch.equal(p, before[name]), name
            assert p.data is tensors[id(p)] or p.data.data_ptr() == tensors[id(p)].data_ptr(), name


def test_a_checkpoint_of_another_method_or_with_stray_tensors_is_refused(tmp_path):
    bb = tiny_backbone("bert")
    inject(bb, MethodConfig(method="bitfit"))
    state = trainable_state(bb)
    meta = {"backbone": "tiny-bert", "num_labels": 2, "pooling": "mean",
            "method": MethodConfig(method="head").to_dict()}
    with pytest.raises(UserError, match="is not a head parameter"):
        checkpoints.write(tmp_path / "a", state, meta)
    bad = dict(state)
    bad["encoder.embeddings.word_embeddings.weight"] = torch.zeros(3, 3)
    meta["method"] = MethodConfig(method="bitfit").to_dict()
    folder = checkpoints.write(tmp_path / "b", bad, meta)  # names and shapes are checked against the model
    with pytest.raises(UserError, match="does not fit backbone"):
        checkpoints.build(checkpoints.read(folder), tiny_backbone("bert"))
    nan = dict(state)
    key = next(k for k in nan if k.startswith("encoder."))
    nan[key] = torch.full_like(nan[key], float("nan"))
    with pytest.raises(UserError, match="finite float32"):
        checkpoints.write(tmp_path / "c", nan, meta)


# --- hardware-aware training ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["grasp-w", "full", "lora", "ia3", "grasp", "stochgrasp"])
def test_hwa_forward_sees_the_realized_weight_and_passes_the_gradient_straight_through(variant):
    options = NEW.get(variant, dict(method=variant, k=4))
    bb = tiny_backbone("bert", seed=4)
    adapters = inject(bb, MethodConfig(**options))
    shake(bb, seed=2)
    name = "encoder.encoder.layer.1.attention.self.value"
    a = adapters[name]
    noise = TrainingNoise(TrainConfig(train_noise="gaussian:0.05", seed=3))
    frozen, ptr = a.base.weight.data, a.base.weight.data_ptr()
    clean = a.programmed_weight()
    noise.step(adapters, step=1, ramp=0.5)
    offset = a.base.weight.detach() - frozen
    assert 0.02 < float(offset.std()) < 0.03  # 0.5 · 0.05
    assert not a.is_programmed
    torch.testing.assert_close(a.programmed_weight(), clean, rtol=0, atol=0)  # what is written stays P
    x = torch.randn(4, 32)
    a.eval()  # StochGRASP: the mean path; its own training noise is tested elsewhere
    params = [p for n, p in a.adapter_parameters().items() if n not in a.noise_parameters()]
    out = a(x)
    if variant not in ("ia3", "grasp"):  # the whole weight-space part is the device's: P̃
        torch.testing.assert_close(out, F.linear(x, clean + offset, a.base.bias))
    grads = torch.autograd.grad(out.square().sum(), params)
    noise.clear(adapters)
    assert a.base.weight.data_ptr() == ptr and torch.equal(a.base.weight, frozen)
    # straight-through: the gradient at the noisy point is that of the clean parameters shifted by the offset
    with torch.no_grad():
        a.base.weight.add_(offset)
    want = torch.autograd.grad(a(x).square().sum(), params)
    with torch.no_grad():
        a.base.weight.sub_(offset)
    for g, w in zip(grads, want, strict=True):
        torch.testing.assert_close(g, w)


def test_hwa_draws_are_seeded_and_fresh_each_step():
    def offsets(seed, steps=2):
        bb = tiny_backbone("bert")
        adapters = inject(bb, MethodConfig(method="head"))
        noise = TrainingNoise(TrainConfig(train_noise="gaussian:0.03", seed=seed))
        out = []
        for step in range(1, steps + 1):
            noise.step(adapters, step, 1.0)
            a = next(iter(adapters.values()))
            out.append(a.base.weight.detach() - a.frozen_weight)
            noise.clear(adapters)
        return out

    a, b, c = offsets(0), offsets(0), offsets(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], c[0])


def test_hwa_with_a_device_profile_uses_its_realization():
    from noisesim.devices import load_profile

    bb = tiny_backbone("bert")
    adapters = inject(bb, MethodConfig(method="grasp-w", k=4))
    shake(bb)
    noise = TrainingNoise(TrainConfig(train_noise="pcm@1d", seed=0))
    name, a = next(iter(adapters.items()))
    clean = a.programmed_weight()
    noise.step(adapters, step=7, ramp=1.0)
    want = load_profile("pcm").realize(clean, t=86400.0, chip=7, program=0, read=0, seed=noise.seed, layer=name)
    assert want.runtime_read is None  # pcm's read noise is per programming: no run-time draw to replay
    torch.testing.assert_close(a.base.weight - a.frozen_weight, want.weight - clean)  # forward sees P̃
    noise.clear(adapters)


def test_hwa_per_token_noise_has_the_weight_noise_variance():
    bb = tiny_backbone("bert")
    adapters = inject(bb, MethodConfig(method="head", layers="ff2"))
    noise = TrainingNoise(TrainConfig(train_noise="gaussian:0.1", train_noise_per="token", seed=0))
    a = next(iter(adapters.values()))
    noise.step(adapters, 1, 1.0)
    x = torch.randn(20000, 48)
    a.train()
    with torch.no_grad():
        diff = a(x) - F.linear(x, a.base.weight, a.base.bias)
    z = diff / (0.1 * x.norm(dim=-1, keepdim=True))  # standard normal if Var = σ²‖x‖²
    assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    a.eval()
    with torch.no_grad():  # no noise in eval mode (dev evaluation during training)
        assert torch.equal(a(x), F.linear(x, a.base.weight, a.base.bias))
    noise.close(adapters)
    a.train()
    with torch.no_grad():
        assert torch.equal(a(x), F.linear(x, a.base.weight, a.base.bias))


@pytest.mark.parametrize("options,fragment", [
    ({"train_noise": "gaussian:abc"}, "is not a plain decimal number"),
    ({"train_noise": "gaussian:1_0"}, "is not a plain decimal number"),
    ({"train_noise": "gaussian:-1"}, "σ must be a finite number from 0 to 100"),
    ({"train_noise": "gaussian:nan"}, "is not a plain decimal number"),
    ({"train_noise": "gaussian:1e308"}, "σ must be a finite number from 0 to 100"),
    ({"train_noise": "gaussian:0.1@1d"}, "does not change with time"),
    ({"train_noise": "pcm@1d@2d"}, "more than one @TIME"),
    ({"train_noise": "pcm@1001y"}, "more than 1000 years"),
    ({"train_noise": "pcm@yesterday"}, "is not a number of seconds"),
    ({"train_noise": ""}, "is empty"),
    ({"train_noise": "pcm", "train_noise_per": "token"}, "draws Gaussian noise per token"),
    ({"train_noise_per": "batch"}, "train_noise_per='batch'"),
])
def test_train_noise_specs_are_checked(options, fragment):
    with pytest.raises(UserError, match=fragment):
        TrainConfig(**options)


# --- training every method, seeds as recipes -------------------------------------------------------------------


def _train_args(tiny_dirs, tiny_tsv, out, *extra):
    return ["train", "--out", out, "--model", tiny_dirs["bert"], "--steps", "4", "--eval-every", "2",
            "--batch-size", "8", "--max-length", "16", "--data", tiny_tsv, "--eval-data", tiny_tsv, *extra]


@pytest.mark.parametrize("method", list(METHODS))
def test_train_every_method_from_the_cli_and_sweep_it(tmp_path, tiny_dirs, tiny_tsv, method):
    from noisesim.api import sweep

    out = str(tmp_path / method)
    extra = ["--k", "4"] if method in ("grasp", "grasp-w", "stochgrasp") else []
    extra += ["--target-warmup", "0.5"] if method == "stochgrasp" else []
    result = invoke(*_train_args(tiny_dirs, tiny_tsv, out, "--method", method, *extra))
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / method / "config.json").read_text())
    assert meta["method"]["method"] == method and meta["recipe"] == method
    swept = sweep(ckpt=out, sigma="0.05", programs=2, data=tiny_tsv, twin=False, progress=False)
    frame = swept.frame
    assert len(frame) == 3 and set(frame["method"]) == {method}
    clean = frame[frame["clean"]]["accuracy"].iloc[0]
    assert clean == pytest.approx(meta["dev_accuracy"])  # the sweep's clean cell is the trained model


def test_hwa_training_from_the_cli(tmp_path, tiny_dirs, tiny_tsv):
    out = str(tmp_path / "hwa")
    result = invoke(*_train_args(tiny_dirs, tiny_tsv, out, "--method", "grasp-w", "--k", "4",
                                 "--train-noise", "gaussian:0.03", "--target-warmup", "0.5"))
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "hwa" / "config.json").read_text())
    assert meta["training"]["train_noise"] == "gaussian:0.03"
    assert [row["train_noise_scale"] for row in meta["history"]] == [1.0, 1.0]  # ramp over 0.5·4 steps
    assert meta["best_step"] >= 2  # selected only once the noise is fully in
    result = invoke(*_train_args(tiny_dirs, tiny_tsv, str(tmp_path / "x"), "--method", "lora",
                                 "--train-noise", "nosuchprofile"))
    assert_user_error(result, "nosuchprofile")
    assert not (tmp_path / "x").exists()


def test_hwa_training_with_a_periphery_profile_says_the_periphery_is_not_trained(tmp_path, tiny_dirs, tiny_tsv):
    prof = tmp_path / "conv.yaml"
    prof.write_text("name: conv\nnoise:\n  - gaussian: {sigma: 0.02, relative_to: g_max}\n"
                    "periphery: {dac: {bits: 6}, adc: {bits: 6}}\n")
    out = str(tmp_path / "hwa")
    result = invoke(*_train_args(tiny_dirs, tiny_tsv, out, "--method", "grasp-w", "--k", "4",
                                 "--train-noise", str(prof)))
    assert result.exit_code == 0, result.output
    assert "periphery (dac, adc) acts at evaluation, not in training" in result.output
    meta = json.loads((tmp_path / "hwa" / "config.json").read_text())
    assert any("periphery (dac, adc)" in n for n in meta["notes"])
    assert checkpoints.read(out).meta["notes"] == meta["notes"]


def test_several_seeds_make_one_recipe(tmp_path, tiny_dirs, tiny_tsv):
    out = str(tmp_path / "gw")
    result = invoke(*_train_args(tiny_dirs, tiny_tsv, out, "--method", "grasp-w", "--k", "4", "--seed", "0,1"))
    assert result.exit_code == 0, result.output
    metas = [json.loads((tmp_path / f"gw-s{s}" / "config.json").read_text()) for s in (0, 1)]
    assert [m["training"]["seed"] for m in metas] == [0, 1] and {m["recipe"] for m in metas} == {"gw"}
    a, b = (checkpoints.read(str(tmp_path / f"gw-s{s}")).tensors["head.out.weight"] for s in (0, 1))
    assert not torch.equal(a, b)  # different heads: different seeds
    assert_user_error(invoke(*_train_args(tiny_dirs, tiny_tsv, out, "--seed", "0,0")), "repeats a seed")
    assert_user_error(invoke(*_train_args(tiny_dirs, tiny_tsv, out, "--seed", "0,x")), "comma-separated")


def test_training_noise_leaves_no_perturbation_behind(tiny_dirs, tiny_tsv):
    from noisesim.training import train

    bb = tiny_backbone("bert")
    config = MethodConfig(method="lora")
    adapters = inject(bb, config)
    frozen = {n: (a.base.weight.data_ptr(), a.base.weight.detach().clone()) for n, a in adapters.items()}
    cfg = TrainConfig(steps=3, eval_every=3, batch_size=8, max_length=16, train_data=tiny_tsv, eval_data=tiny_tsv,
                      train_noise="gaussian:0.05", target_warmup=0.0)
    set_training_noise(bb.model, None)
    train(bb, cfg, progress=False, method=config)
    for n, a in adapters_of(bb.model).items():
        assert a.base.weight.data_ptr() == frozen[n][0] and torch.equal(a.base.weight, frozen[n][1])
        assert not a.is_programmed and not a._perturbed


def test_methods_command_lists_what_is_analog_and_digital():
    result = invoke("methods")
    assert result.exit_code == 0, result.output
    names = [line for line in result.output.splitlines() if line and not line.startswith(" ")]
    assert names == list(METHODS)
    assert "analog:  W + B·A·α/r merged" in result.output and "targets: q,v" in result.output


@pytest.mark.parametrize("method,options,fragment", [
    ("lora", {"k": 3}, "--k has no effect with --method lora"),
    ("grasp", {"rank": 4}, "--rank has no effect with --method grasp"),
    ("grasp", {"lora_alpha": 4.0}, "--lora-alpha has no effect"),
    ("head", {"targets": "q"}, "--targets has no effect with --method head"),
    ("bitfit", {"targets": "q"}, "--targets has no effect with --method bitfit"),
    ("grasp-w", {"noise_path": "weight"}, "--noise-path has no effect with --method grasp-w"),
    ("full", {"lam": 0.5}, "--lambda has no effect with --method full"),
    ("lora", {"target_warmup": 0.5}, "--target-warmup ramps"),
    ("lora", {"train_noise": "gaussian:0"}, "adds no noise"),
    ("lora", {"train_noise": "ideal"}, "adds no noise"),
])
def test_settings_that_cannot_take_effect_are_refused(tmp_path, tiny_dirs, tiny_tsv, method, options, fragment):
    from noisesim.api import train

    with pytest.raises(UserError, match=fragment):
        train(str(tmp_path / "x"), method=method, model=tiny_dirs["bert"], train_data=tiny_tsv, eval_data=tiny_tsv,
              steps=2, **options)
    assert not (tmp_path / "x").exists()


def test_rank_above_the_layer_width_is_refused():
    with pytest.raises(UserError, match="--rank 33 is larger"):
        inject(tiny_backbone("bert"), MethodConfig(method="lora", rank=33))


def test_lora_init_follows_the_training_seed():
    def a_of(seed):
        bb = tiny_backbone("bert")
        adapters = inject(bb, MethodConfig(method="lora"), init_seed=seed)
        return adapters["encoder.encoder.layer.0.attention.self.query"].peft.lora_A["default"].weight.detach().clone()

    assert torch.equal(a_of(0), a_of(0)) and not torch.equal(a_of(0), a_of(1))


def test_per_token_noise_reaches_every_method_s_analog_layers():
    """The hook sits on each analog layer's base: a method whose forward bypassed it would train without noise."""
    from noisesim.training import train

    for variant in ("full", "lora", "ia3", "grasp-w", "stochgrasp-weight", "grasp"):
        options = {"stochgrasp-weight": dict(method="stochgrasp", noise_path="weight")}.get(variant,
                                                                                             dict(method=variant))
        bb = tiny_backbone("bert")
        adapters = inject(bb, MethodConfig(**options, **({"k": 4} if "grasp" in variant else {})))
        noise = TrainingNoise(TrainConfig(train_noise="gaussian:0.1", train_noise_per="token"))
        noise.step(adapters, 1, 1.0)
        bb.model.train()
        bb.model(**batch(bb))
        noise.clear(adapters, check=True)  # raises if a layer's hook never fired
        assert len(noise.fired) == len(adapters)
        noise.close(adapters)
    assert train  # the check runs inside training.train after every step


def test_seed_names_keep_paths_paths_and_names_names(tmp_path, monkeypatch):
    from noisesim.api import seed_names

    monkeypatch.chdir(tmp_path)
    assert seed_names("gw", [0, 1]) == ["gw-s0", "gw-s1"]
    assert seed_names("a/", [0]) == ["./a-s0"] and seed_names("./runs/x", [2]) == ["./runs/x-s2"]
    assert seed_names(tmp_path / "y", [1]) == [str(tmp_path / "y-s1")]
    with pytest.raises(UserError, match="names no user's home"):
        seed_names("~nosuchuser-xyz/r", [0])
    with pytest.raises(TypeError, match="out must be"):
        seed_names(None, [0])


def test_train_seeds_checks_every_target_before_the_first_run(tmp_path, tiny_dirs, tiny_tsv):
    from noisesim.api import train_seeds

    common = dict(method="head", model=tiny_dirs["bert"], train_data=tiny_tsv, eval_data=tiny_tsv, steps=2,
                  eval_every=1, batch_size=8, max_length=16)
    (tmp_path / "r-s1").mkdir()
    (tmp_path / "r-s1" / "thesis.tex").write_text("keep me")
    with pytest.raises(UserError, match="thesis.tex"):
        train_seeds(str(tmp_path / "r"), [0, 1], **common)
    assert not (tmp_path / "r-s0").exists()
    with pytest.raises(UserError, match="shipped checkpoint"):
        train_seeds("sst2-grasp", [0, 1], **common)
    written = train_seeds(str(tmp_path / "q"), [0, 1], recipe="mine", **common)
    assert [json.loads((f / "config.json").read_text())["recipe"] for f, _, _ in written] == ["mine", "mine"]


@pytest.mark.parametrize("text", ["1_0", "０.1", "nan", "inf", "0x10", "1e", ""])
def test_numbers_on_the_command_line_are_plain_decimals(text):
    from noisesim.cli import parse_seeds
    from noisesim.engine.config import parse_sigmas

    with pytest.raises(UserError):
        parse_sigmas(text)
    with pytest.raises(UserError):
        parse_seeds(text)
    assert parse_sigmas("0.01,.02,3e-2") == [0.0, 0.01, 0.02, 0.03] and parse_seeds("0,1,2") == [0, 1, 2]


def test_ckpts_listing_shows_k_and_rows_only_where_they_mean_something():
    bb = tiny_backbone("bert")
    config = MethodConfig(method="lora")
    inject(bb, config)
    meta = {"backbone": "tiny-bert", "num_labels": 2, "pooling": "mean", "method": config.to_dict(), "recipe": "lr"}
    checkpoints.write(checkpoints.out_folder("my-lora"), trainable_state(bb), meta)
    row = next(r for r in checkpoints.listing() if r["name"] == "my-lora")
    assert (row["method"], row["k"], row["rows"], row["recipe"]) == ("lora", None, None, "lr")
