import pytest
import torch

from noisesim.configs import MethodConfig
from noisesim.data import EvalBatches, collate
from noisesim.errors import UserError
from noisesim.methods import METHODS, adapters_of, inject, remove, set_training_noise
from noisesim.methods.grouping import group_index, group_sizes
from noisesim.models import tiny_backbone

FAMILIES = ["bert", "roberta", "distilbert"]


def batch(bb, n=6):
    texts = ["a good movie", "the film is bad", "great", "not awful at all the movie", "bad bad", "a"][:n]
    return collate(bb.tokenizer(texts)["input_ids"], bb.tokenizer.pad_token_id)


@pytest.mark.parametrize("dim,k", [(32, 5), (48, 7), (384, 64), (1536, 64), (10, 10), (10, 1)])
def test_group_sizes_are_floor_or_ceil(dim, k):
    group = group_index(dim, k, torch.Generator().manual_seed(3))
    sizes = group_sizes(group, k)
    assert sizes.sum() == dim
    assert set(sizes.tolist()) <= {dim // k, -(-dim // k)}


def test_permutation_fixed_by_seed():
    a = group_index(100, 8, torch.Generator().manual_seed(1))
    b = group_index(100, 8, torch.Generator().manual_seed(1))
    c = group_index(100, 8, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_k_larger_than_width_is_user_error():
    bb = tiny_backbone("bert")
    with pytest.raises(UserError, match="do not fit a layer of width 32"):
        inject(bb, MethodConfig(method="grasp", k=33))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("layers", ["all", "kvf2", "ff2"])
def test_identity_at_init(family, method, layers):
    bb = tiny_backbone(family, seed=1)
    inputs = batch(bb)
    with torch.no_grad():
        ref = bb.model(**inputs).logits
        adapters = inject(bb, MethodConfig(method=method, k=4, layers=layers))
        out = bb.model(**inputs).logits
    expected = {"all": 6, "kvf2": 3, "ff2": 1}[layers] * 2
    assert len(adapters) == expected
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


VARIANTS = {  # config → the per-layer names its layers declare and a checkpoint stores
    "grasp": (dict(method="grasp"), ("gamma", "beta", "group")),
    "grasp-no-scale": (dict(method="grasp", scale=False), ("beta", "group")),
    "grasp-no-shift": (dict(method="grasp", shift=False), ("gamma", "group")),
    "grasp-w": (dict(method="grasp-w"), ("mu", "group")),
    "grasp-w-shared": (dict(method="grasp-w", rows="shared"), ("mu", "group")),
    "stochgrasp": (dict(method="stochgrasp"), ("mu", "sigma_raw", "group")),
    "stochgrasp-local": (dict(method="stochgrasp", noise_path="local"), ("mu", "sigma_raw", "group")),
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_only_declared_parameters_and_head_get_gradients(family, variant):
    options, names = VARIANTS[variant]
    bb = tiny_backbone(family, seed=2)
    adapters = inject(bb, MethodConfig(k=4, **options))
    bb.model.train()
    set_training_noise(bb.model, torch.Generator().manual_seed(0))
    inputs = batch(bb)
    loss = torch.nn.functional.cross_entropy(bb.model(**inputs).logits, torch.tensor([1, 0, 1, 0, 0, 1]))
    loss.backward()
    declared = {f"{n}.{p}" for n, a in adapters.items() for p in a.adapter_parameters()}
    assert {p.rsplit(".", 1)[1] for p in declared} == set(names) - {"group"}
    expected = declared | set(bb.head_parameters())
    trainable = {name for name, p in bb.model.named_parameters() if p.requires_grad}
    assert trainable == expected
    for name, p in bb.model.named_parameters():
        if name in expected:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_saved_state_is_exactly_the_declared_names(variant):
    from noisesim.methods import LAYERS, saved_names, trainable_state

    options, names = VARIANTS[variant]
    config = MethodConfig(k=4, **options)
    bb = tiny_backbone("bert")
    adapters = inject(bb, config)
    assert saved_names(config) == names
    assert set(LAYERS[config.method].saved_names()) >= set(names)
    for a in adapters.values():
        assert tuple(a.saved_state()) == names
        assert set(a.noise_parameters()) == ({"sigma_raw"} if config.method == "stochgrasp" else set())
    state = trainable_state(bb)
    assert set(state) == {f"{n}.{key}" for n in adapters for key in names} | set(bb.head_parameters())
    assert len(state) == len(adapters) * len(names) + 4


def test_checkpoint_keys_come_from_the_layer_declarations():
    from noisesim import checkpoints
    from noisesim.methods import LAYERS

    assert checkpoints.METHOD_KEYS == {"grasp": ("gamma", "beta", "group"), "grasp-w": ("mu", "group"),
                                       "stochgrasp": ("mu", "sigma_raw", "group"), "full": ("delta",), "head": (),
                                       "bitfit": (), "lora": ("lora_A", "lora_B"), "ia3": ("ia3_l",)}
    assert checkpoints.METHOD_KEYS == {m: layer.saved_names() for m, layer in LAYERS.items()}
    assert checkpoints.NOISE_KEYS == {"sigma_raw"}


def test_undeclared_tensors_are_refused():
    from noisesim.methods import GroupedWeightLinear

    class Extra(GroupedWeightLinear):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.scale = torch.nn.Parameter(torch.ones(3))  # not in adapter_parameter_names

    layer = Extra(torch.nn.Linear(8, 6), 3, torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"holds parameters \['mu', 'scale'\].*declares \['mu'\]"):
        layer.check_declarations()
    with pytest.raises(TypeError, match="noise_parameter_names must be among adapter_parameter_names"):
        type("Bad", (GroupedWeightLinear,), {"noise_parameter_names": ("sigma_raw",)})


def test_training_noise_generator_is_declared_and_seeded():
    bb = tiny_backbone("bert")
    adapters = inject(bb, MethodConfig(method="stochgrasp", k=4, sigma_init=0.05))
    for a in adapters.values():
        a.train()  # the adapters sample; the backbone's dropout stays off
    inputs = batch(bb)
    outs = []
    for _ in range(2):
        gen = torch.Generator().manual_seed(7)
        set_training_noise(bb.model, gen)
        assert all(a.noise_generator is gen for a in adapters.values())
        with torch.no_grad():
            outs.append(bb.model(**inputs).logits)
    assert torch.equal(outs[0], outs[1])
    with torch.no_grad():
        assert not torch.equal(bb.model(**inputs).logits, outs[0])  # the stream moved on
    a = next(iter(adapters.values()))
    with pytest.raises(AttributeError):
        a.noise_generator = torch.Generator()  # read-only: use_noise_generator is the protocol
    with pytest.raises(TypeError, match="torch.Generator or None"):
        a.use_noise_generator(7)


@pytest.mark.parametrize("method", list(METHODS))
def test_program_and_unprogram(method):
    bb = tiny_backbone("bert")
    a = next(iter(inject(bb, MethodConfig(method=method, k=4, layers="ff2", targets="ff2")).values()))
    with torch.no_grad():
        for p in a.adapter_parameters().values():
            p.add_(torch.rand_like(p) * 0.1 + 0.05)
    frozen = a.base.weight.data
    data_ptr, parameter, before = frozen.data_ptr(), a.base.weight, frozen.clone()
    target = a.programmed_weight()
    x = torch.randn(3, a.in_features)
    with torch.no_grad():
        clean = a(x)
        realized = target + 0.01 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
        assert not a.is_programmed
        a.program(realized)
        assert a.is_programmed and a.base.weight is parameter and a.base.weight.data_ptr() == realized.data_ptr()
        torch.testing.assert_close(a.programmed_weight(), target, rtol=0, atol=0)  # still W + μ
        if method == "grasp":  # the modulation stays digital, the weight is the device's
            modulated = (x - a.beta[a.group]) / a.gamma[a.group]
            torch.testing.assert_close(a(x), torch.nn.functional.linear(modulated, realized, a.base.bias))
        elif method == "ia3":  # the scale of the feed-forward input stays digital
            scaled = x * a.peft.ia3_l["default"].flatten()
            torch.testing.assert_close(a(x), torch.nn.functional.linear(scaled, realized, a.base.bias))
        else:  # the whole weight-space part comes from the programmed weight (LoRA: merged)
            torch.testing.assert_close(a(x), torch.nn.functional.linear(x, realized, a.base.bias))
        assert not torch.equal(a(x), clean)
        a.unprogram()
        assert not a.is_programmed and a.base.weight is parameter
        assert a.base.weight.data_ptr() == data_ptr and torch.equal(a.base.weight, before)
        assert torch.equal(a(x), clean)
        a.unprogram()  # a no-op when not programmed
        assert a.base.weight.data_ptr() == data_ptr
    with pytest.raises(ValueError, match="must match the layer's"):
        a.program(realized[:-1])
    assert not a.is_programmed


def test_grasp_formula():
    bb = tiny_backbone("bert")
    (name, a), *_ = inject(bb, MethodConfig(method="grasp", k=4, layers="ff2")).items()
    with torch.no_grad():
        a.gamma.copy_(torch.tensor([1.0, 2.0, 0.5, 4.0]))
        a.beta.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    x = torch.randn(3, a.in_features)
    expected = torch.nn.functional.linear((x - a.beta[a.group]) / a.gamma[a.group], a.base.weight, a.base.bias)
    torch.testing.assert_close(a(x), expected)


@pytest.mark.parametrize("rows", ["per-row", "shared"])
def test_weight_shift_equals_programmed_weight(rows):
    bb = tiny_backbone("bert")
    adapters = inject(bb, MethodConfig(method="grasp-w", k=5, rows=rows))
    a = next(iter(adapters.values()))
    with torch.no_grad():
        a.mu.normal_(0, 0.1)
    x = torch.randn(4, 7, a.in_features)
    expected = torch.nn.functional.linear(x, a.programmed_weight(), a.base.bias)
    torch.testing.assert_close(a(x), expected, rtol=1e-5, atol=1e-5)
    # ΔW_ij = μ_{f(i), g(j)}: constant within a group along the outputs
    delta = a.programmed_weight() - a.base.weight
    for g in range(5):
        block = delta[a.group == g]
        assert torch.allclose(block, block[0].expand_as(block))
    if rows == "shared":
        assert torch.allclose(delta, delta[:, :1].expand_as(delta))


@pytest.mark.parametrize("noise_path", ["weight", "local"])
def test_stochgrasp_training_noise_distribution(noise_path):
    """Output noise of one layer has variance Σ_i x_i² σ²_{i,g(j)} on both training paths."""
    bb = tiny_backbone("bert")
    a = next(iter(inject(bb, MethodConfig(method="stochgrasp", k=4, sigma_init=0.05, noise_path=noise_path)).values()))
    with torch.no_grad():
        a.sigma_raw.uniform_(0.02, 0.1)
        a.mu.normal_(0, 0.05)
    a.train()
    a.use_noise_generator(torch.Generator().manual_seed(0))
    x = torch.randn(1, a.in_features)
    with torch.no_grad():
        samples = torch.stack([a(x)[0] for _ in range(4000)])
        mean_expected = torch.nn.functional.linear(x, a.programmed_weight(), a.base.bias)[0]
        var_expected = (x[0] ** 2) @ (a.sigma**2)  # (K,)
        var_expected = var_expected[a.group]
    torch.testing.assert_close(samples.mean(0), mean_expected, atol=4 * var_expected.sqrt().max() / 60, rtol=0)
    ratio = samples.var(0) / var_expected
    assert ratio.min() > 0.88 and ratio.max() < 1.12


def test_eval_mode_is_deterministic_mean():
    bb = tiny_backbone("bert")
    inject(bb, MethodConfig(method="stochgrasp", k=4, sigma_init=0.05))
    inputs = batch(bb)
    with torch.no_grad():
        a, b = bb.model(**inputs).logits, bb.model(**inputs).logits
    assert torch.equal(a, b)


def test_remove_restores_plain_linears():
    bb = tiny_backbone("bert")
    inputs = batch(bb)
    with torch.no_grad():
        ref = bb.model(**inputs).logits
        inject(bb, MethodConfig(method="grasp", k=4))
        remove(bb)
        assert not adapters_of(bb.model)
        assert torch.equal(bb.model(**inputs).logits, ref)


def test_unknown_method_suggests():
    from noisesim.methods import check_method

    with pytest.raises(UserError, match="did you mean 'stochgrasp'"):
        check_method("stochgrsp")


def test_eval_batches_are_length_sorted():
    from noisesim.data import Encoded

    ids = [[2] * n for n in (5, 1, 9, 3, 7, 9, 1)]
    b = EvalBatches.build(Encoded(ids, torch.arange(7), "x"), 0, batch_size=2)
    assert [x["input_ids"].shape[1] for x in b.batches] == [1, 3, 5, 7, 9]  # any merge would pad > 2 %
    assert [x.tolist() for x in b.labels] == [[1, 6], [3], [0], [4], [2, 5]]
    assert b.tokens == (35, 35)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"method": "lorra"}, "unknown method 'lorra': did you mean 'lora'"),
    ({"k": 0}, "k=0"),
    ({"k": 4.0}, "k=4.0"),
    ({"k": True}, "k=True"),
    ({"layers": "qq"}, "unknown layer selection qq"),
    ({"rows": "all"}, "rows='all'"),
    ({"noise_path": "both"}, "noise_path='both'"),
    ({"sigma_init": 0.0}, "sigma_init=0.0"),
    ({"sigma_init": float("nan")}, "finite number"),
    ({"sigma_init": float("inf")}, "finite number"),
    ({"perm_seed": -1}, "perm_seed=-1"),
    ({"scale": False, "shift": False}, "needs scale or shift"),
    ({"scale": "yes"}, "scale='yes'"),
    ({"rnk": 8}, "rnk=8 is invalid: Extra inputs"),
    ({"method": "lora", "rank": 0}, "rank=0"),
    ({"method": "lora", "lora_alpha": float("nan")}, "finite number"),
    ({"method": "grasp", "lora_digital": True}, "--lora-digital is a LoRA switch"),
    ({"method": "lora", "layers": "ff2", "targets": "q,v"}, "not among the analog --layers"),
    ({"method": "lora", "targets": "x"}, "unknown layer selection x"),
])
def test_method_config_refuses_bad_values(kwargs, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")) as err:
        MethodConfig(**kwargs)
    assert str(err.value).startswith("method config: ") and "\n" not in str(err.value)


def test_method_config_round_trips_and_validates_from_dict():
    cfg = MethodConfig(method="grasp", k=8, layers="k,v", scale=False)
    assert MethodConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match="must be a mapping"):
        MethodConfig.from_dict(["grasp"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_accuracy_refuses_non_finite_logits(bad):
    from noisesim.evaluate import accuracy

    bb = tiny_backbone("bert")
    inject(bb, MethodConfig(method="grasp-w", k=4))
    inputs = batch(bb)
    dev = EvalBatches([inputs], [torch.tensor([1, 0, 1, 0, 0, 1])])
    assert 0 <= accuracy(bb.model, dev) <= 1
    with torch.no_grad():
        bb.model.head.out.bias[0] = bad  # the majority-class argmax would otherwise be scored
    with pytest.raises(UserError, match="outputs are not finite"):
        accuracy(bb.model, dev)
