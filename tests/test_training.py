import pytest
import torch

from noisesim.configs import MethodConfig, TrainConfig
from noisesim.errors import UserError
from noisesim.methods import adapters_of, inject
from noisesim.models import tiny_backbone
from noisesim.training import lr_factor, parameter_groups, sigma_penalty, sigma_target_at, sigma_values


def stoch(rows="per-row", k=4, sigma_init=0.003):
    bb = tiny_backbone("bert")
    inject(bb, MethodConfig(method="stochgrasp", k=k, rows=rows, sigma_init=sigma_init))
    return bb


def test_penalty_golden_values():
    """Eq. 6 as written weights each group by the weights sharing it; 'mean' by group parameter."""
    bb = stoch(sigma_init=0.01)
    n_weights = sum(a.base.weight.numel() for a in adapters_of(bb.model).values())
    n_params = sum(a.sigma_raw.numel() for a in adapters_of(bb.model).values())
    total = sigma_penalty(bb, 0.05, "sum")
    torch.testing.assert_close(total, torch.tensor(n_weights * 0.04**2), rtol=1e-5, atol=0)
    torch.testing.assert_close(sigma_penalty(bb, 0.05, "mean"), torch.tensor(0.04**2), rtol=1e-5, atol=0)
    assert n_params < n_weights
    shared = stoch(rows="shared", sigma_init=0.01)
    torch.testing.assert_close(sigma_penalty(shared, 0.05, "sum"), torch.tensor(n_weights * 0.04**2), rtol=1e-5, atol=0)


@pytest.mark.parametrize("method,counts", [
    # tiny BERT: 2 blocks × 6 linear layers, K=4; per-row μ and σ are (in_features, 4); head 32·32+32+32·2+2
    # bitfit: 12 linear biases + 2·2 block norms + the embeddings' norm = 17 biases; full: 12 ΔW, and 5 embedding
    # tensors + 2 × (6 biases + 4 norm tensors) = 25 backbone tensors; lora: A, B on q and v; ia3: k, v, ff2
    ("stochgrasp", {"adapter": 12, "backbone": 0, "noise": 12, "head": 4}),
    ("grasp-w", {"adapter": 12, "backbone": 0, "noise": 0, "head": 4}),
    ("grasp", {"adapter": 24, "backbone": 0, "noise": 0, "head": 4}),
    ("full", {"adapter": 12, "backbone": 25, "noise": 0, "head": 4}),
    ("head", {"adapter": 0, "backbone": 0, "noise": 0, "head": 4}),
    ("bitfit", {"adapter": 0, "backbone": 17, "noise": 0, "head": 4}),
    ("lora", {"adapter": 8, "backbone": 0, "noise": 0, "head": 4}),
    ("ia3", {"adapter": 6, "backbone": 0, "noise": 0, "head": 4}),
])
def test_parameter_groups_follow_the_declarations(method, counts):
    from noisesim.methods import trains_backbone

    bb = tiny_backbone("bert")
    config = MethodConfig(method=method, k=4)
    adapters = inject(bb, config)
    groups = parameter_groups(bb, adapters, trains_backbone=trains_backbone(config))
    assert {role: len(ps) for role, ps in groups.items()} == counts
    declared = {id(p) for a in adapters.values() for p in a.adapter_parameters().values()}
    noise = {id(p) for a in adapters.values() for p in a.noise_parameters().values()}
    assert {id(p) for p in groups["adapter"] + groups["noise"]} == declared
    if method == "bitfit":
        trained = [n for n, p in bb.model.named_parameters() if any(p is q for q in groups["backbone"])]
        assert all(n.endswith(".bias") for n in trained)
    assert {id(p) for p in groups["noise"]} == noise
    assert sum(p.numel() for p in groups["head"]) == 32 * 32 + 32 + 32 * 2 + 2
    trainable = [p for p in bb.model.parameters() if p.requires_grad]  # the model's order within each group
    for ps in groups.values():
        assert ps == [p for p in trainable if any(p is q for q in ps)]


def test_an_undeclared_trainable_parameter_is_refused():
    bb = tiny_backbone("bert")
    adapters = inject(bb, MethodConfig(method="grasp-w", k=4))
    bb.model.encoder.embeddings.word_embeddings.weight.requires_grad_(True)
    with pytest.raises(TypeError, match="word_embeddings.weight requires grad but is neither the head nor"):
        parameter_groups(bb, adapters)


def test_regulariser_pulls_sigma_to_target():
    bb = stoch(sigma_init=0.003)
    sig = [a.sigma_raw for a in adapters_of(bb.model).values()]
    opt = torch.optim.Adam(sig, lr=2e-3)
    before = sigma_values(bb).mean().item()
    for _ in range(60):
        opt.zero_grad()
        sigma_penalty(bb, 0.05, "sum").backward()
        opt.step()
    after = sigma_values(bb)
    assert before < 0.004
    assert abs(after.mean().item() - 0.05) < 0.01
    assert (after - 0.05).abs().max() < 0.02


def test_sigma_target_warmup_and_lr_schedule():
    cfg = TrainConfig(steps=100, sigma_target=0.05, target_warmup=0.5)
    assert sigma_target_at(0, cfg, 0.003) == 0.003
    assert abs(sigma_target_at(25, cfg, 0.003) - 0.0265) < 1e-12
    assert sigma_target_at(80, cfg, 0.003) == 0.05
    assert sigma_target_at(3, TrainConfig(steps=100, sigma_target=0.05, target_warmup=0), 0.003) == 0.05
    assert lr_factor(0, 100) < lr_factor(5, 100) == 1.0 > lr_factor(50, 100) > lr_factor(99, 100) > 0


@pytest.mark.slow
def test_training_improves_and_is_reproducible(tiny_dirs, tiny_tsv):
    from noisesim.models import load_backbone
    from noisesim.training import train

    def run():
        bb = load_backbone(tiny_dirs["bert"], seed=0)
        inject(bb, MethodConfig(method="stochgrasp", k=8, sigma_init=0.003))
        cfg = TrainConfig(steps=30, batch_size=8, max_length=16, eval_every=10, train_data=tiny_tsv,
                          eval_data=tiny_tsv, lr=2e-2, head_lr=2e-2, sigma_lr=2e-3, sigma_target=0.01,
                          target_warmup=0.5)
        return train(bb, cfg, sigma_init=0.003, progress=False), bb

    (a, _), (b, _) = run(), run()
    assert a.dev_accuracy >= 0.75
    assert a.best_step >= 15  # selection waits for the σ warm-up
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert a.history[-1]["sigma_mean"] > 0.007  # σ moved from 0.003 toward 0.01
    assert 0 < a.trainable < a.total


@pytest.mark.parametrize("field,value,fragment", [
    ("lr", float("nan"), "finite number"),
    ("lr", float("inf"), "finite number"),
    ("lr", 0.0, "greater than 0"),
    ("lr", 1e6, "less than or equal to 10"),
    ("head_lr", -1e-3, "greater than 0"),
    ("sigma_lr", float("nan"), "finite number"),
    ("lam", float("-inf"), "finite number"),
    ("lam", -0.1, "greater than or equal to 0"),
    ("sigma_target", float("nan"), "finite number"),
    ("sigma_target", 5.0, "less than or equal to 1"),
    ("target_warmup", 1.5, "less than or equal to 1"),
    ("dropout", 1.0, "less than 1"),
    ("dropout", float("nan"), "finite number"),
    ("eval_every", 0, "greater than or equal to 1"),
    ("max_length", 0, "greater than or equal to 2"),
    ("steps", 0, "greater than or equal to 1"),
    ("batch_size", 0, "greater than or equal to 1"),
    ("length_group", 0, "greater than or equal to 1"),
    ("seed", -1, "greater than or equal to 0"),
    ("sigma_reduction", "avg", "'sum' or 'mean'"),
    ("steps", 1.5, "valid integer"),
    ("batch_size", True, "valid integer"),
    ("lr", "0.1", "valid number"),
    ("train_data", "", "at least 1 character"),
])
def test_train_config_refuses_bad_values(field, value, fragment):
    with pytest.raises(UserError, match=fragment) as err:
        TrainConfig(**{field: value})
    assert f"{field}=" in str(err.value) and "--" in str(err.value) and "\n" not in str(err.value)


def test_train_config_refuses_unknown_keys_and_bad_assignment():
    with pytest.raises(UserError, match="lr_head=.*remove that key"):
        TrainConfig(lr_head=1e-3)
    cfg = TrainConfig(eval_every=100)
    with pytest.raises(UserError, match="eval_every=0"):
        cfg.eval_every = 0
    assert cfg.eval_every == 100  # the refused assignment changed nothing


@pytest.mark.parametrize("args,fragment", [
    (["--lr", "nan"], "lr=nan"),
    (["--head-lr", "inf"], "head_lr=inf"),
    (["--eval-every", "0"], "eval_every=0"),
    (["--lambda", "nan"], "--lambda"),
    (["--dropout", "nan"], "dropout=nan"),
    (["--dropout", "-inf"], "dropout=-inf"),
    (["--max-length", "0"], "max_length=0"),
    (["--sigma-init", "0"], "sigma_init=0"),
    (["--k", "0"], "k=0"),
])
def test_train_cli_refuses_non_finite_and_out_of_range(args, fragment, tiny_dirs, tiny_tsv):
    from typer.testing import CliRunner

    from noisesim.cli import app

    result = CliRunner().invoke(app, ["train", "--model", tiny_dirs["bert"], "--data", tiny_tsv, "--eval-data",
                                      tiny_tsv, "--steps", "2", "--out", "x", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.output


def test_divergence_stops_training_and_writes_nothing(tiny_dirs, tiny_tsv, monkeypatch):
    import noisesim.training as training
    from noisesim import checkpoints
    from noisesim.api import train as train_checkpoint

    real, calls = training.F.cross_entropy, {"n": 0}

    def blows_up(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs) * (float("nan") if calls["n"] >= 3 else 1.0)

    monkeypatch.setattr(training.F, "cross_entropy", blows_up)
    cfg = TrainConfig(steps=6, batch_size=8, max_length=16, eval_every=2, train_data=tiny_tsv, eval_data=tiny_tsv)
    with pytest.raises(UserError, match="diverged at step 3: the loss \\(nan\\) is not finite.*lower --lr"):
        train_checkpoint("x", MethodConfig(method="grasp-w", k=4), cfg, model=tiny_dirs["bert"], progress=False)
    assert not checkpoints.user_store().exists()


def test_non_finite_parameter_stops_training(tiny_dirs, tiny_tsv):
    from noisesim.models import load_backbone
    from noisesim.training import train

    bb = load_backbone(tiny_dirs["bert"])
    inject(bb, MethodConfig(method="grasp-w", k=4))
    mu = next(a.mu for a in adapters_of(bb.model).values())
    mu.register_hook(lambda g: torch.full_like(g, float("inf")))  # the first step makes μ non-finite
    cfg = TrainConfig(steps=4, batch_size=8, max_length=16, eval_every=1, train_data=tiny_tsv, eval_data=tiny_tsv)
    with pytest.raises(UserError, match="diverged at step"):
        train(bb, cfg, progress=False)


def test_train_checkpoint_names_wrong_argument_types(tiny_tsv):
    from noisesim.api import train as train_checkpoint

    with pytest.raises(TypeError, match="method must be a MethodConfig or a method name"):
        train_checkpoint("x", 3, TrainConfig())  # (a method name is accepted: "grasp" would train)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train_checkpoint("x", MethodConfig(), {"steps": 3})
    with pytest.raises(TypeError, match="out must be"):
        train_checkpoint(3, MethodConfig(), TrainConfig())
    with pytest.raises(UserError, match="pooling='max'"):
        train_checkpoint("x", MethodConfig(), TrainConfig(), pooling="max")


def test_sentences_longer_than_the_model_takes_are_refused(tiny_dirs, tmp_path):
    from noisesim.models import load_backbone
    from noisesim.training import train

    data = tmp_path / "long.tsv"
    data.write_text("sentence\tlabel\n" + "the good movie " * 40 + "\t1\nbad\t0\n")
    bb = load_backbone(tiny_dirs["bert"])
    inject(bb, MethodConfig(method="grasp", k=4))
    cfg = TrainConfig(steps=2, max_length=100, train_data=str(data), eval_data=str(data))
    with pytest.raises(UserError, match="takes at most 64: use --max-length 64 or less"):
        train(bb, cfg, progress=False)
