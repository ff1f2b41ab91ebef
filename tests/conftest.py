"""Shared by every test file: the ``--slow`` switch, an isolated user store, tiny random BERT / RoBERTa backbones
built in code, a tiny labelled TSV, tiny trained checkpoints, and the CLI as the tests drive it (``invoke``,
``assert_user_error``; test files import them with ``from conftest import ...``)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typer.testing import CliRunner  # noqa: E402

from noisesim.cli import app  # noqa: E402 (after HF_HUB_OFFLINE is set)

runner = CliRunner()
TIMING = ["seconds", "device"]  # how long a cell took and where: the only columns allowed to differ


def numbers(frame):
    """A results table without its timing columns: what two equal sweeps must agree on exactly."""
    return frame.drop(columns=[c for c in TIMING if c in frame]).reset_index(drop=True)


def invoke(*args):
    """Run ``noisesim ARGS`` in this process."""
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *fragments):
    """Exit code 2, exactly one non-empty line starting with 'error: ', no traceback, each fragment in it."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow (CI and the README do)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def isolated_store(tmp_path_factory, monkeypatch):
    """Each test sees an empty user checkpoint store."""
    monkeypatch.setenv("NOISESIM_HOME", str(tmp_path_factory.mktemp("home")))


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory):
    """family → folder with a saved tiny random model + tokenizer (loadable with load_backbone)."""
    from noisesim.models import tiny_backbone

    dirs = {}
    for family in ("bert", "roberta"):
        folder = tmp_path_factory.mktemp(f"tiny-{family}")
        bb = tiny_backbone(family)
        bb.model.encoder.save_pretrained(folder)
        bb.tokenizer.save_pretrained(folder)
        dirs[family] = str(folder)
    return dirs


@pytest.fixture(scope="session")
def tiny_tsv(tmp_path_factory):
    """40 labelled sentences a tiny model can partly learn."""
    path = tmp_path_factory.mktemp("data") / "tiny.tsv"
    rows = ["sentence\tlabel"]
    for i in range(20):
        rows.append(f"a good great movie {'the ' * (i % 4)}\t1")
        rows.append(f"a bad awful film {'not ' * (i % 3)}\t0")
    path.write_text("\n".join(rows) + "\n")
    return str(path)


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory, tiny_dirs, tiny_tsv):
    """Trained tiny checkpoints: name → folder, for grasp, grasp-w and stochgrasp (twin = grasp-w)."""
    from noisesim.api import train as train_checkpoint
    from noisesim.configs import MethodConfig, TrainConfig

    root = tmp_path_factory.mktemp("ckpts")
    common = dict(steps=6, batch_size=8, max_length=16, eval_every=3, train_data=tiny_tsv, eval_data=tiny_tsv, lr=1e-2)
    stoch = dict(sigma_lr=1e-2, lam=0.01, sigma_target=0.05, target_warmup=0.5)
    out = {}
    for method, k in (("grasp", 8), ("grasp-w", 8), ("stochgrasp", 8)):
        cfg = TrainConfig(**common, **(stoch if method == "stochgrasp" else {}))
        twin = str(root / "grasp-w") if method == "stochgrasp" else None
        folder, _, _ = train_checkpoint(str(root / method), MethodConfig(method=method, k=k, sigma_init=0.003),
                                        cfg, model=tiny_dirs["bert"], twin=twin, progress=False)
        out[method] = str(folder)
    return out
