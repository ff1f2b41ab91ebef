"""The checkpoints shipped in the package: present, small, and reproducing their recorded numbers."""

import pytest

from noisesim import checkpoints
from noisesim.data import EvalBatches, encode, load_table
from noisesim.evaluate import accuracy
from noisesim.methods import remove
from noisesim.models import load_backbone

SHIPPED = ("sst2-grasp", "sst2-stoch")


@pytest.fixture(scope="module")
def minilm():
    bb = load_backbone()
    return bb, EvalBatches.build(encode(load_table("sst2-dev"), bb.tokenizer, 128), bb.tokenizer.pad_token_id, 64)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_reproduces_recorded_dev_accuracy(minilm, name):
    bb, dev = minilm
    ckpt = checkpoints.read(name)
    assert ckpt.path.parent == checkpoints.bundled_store()
    assert (ckpt.path / checkpoints.WEIGHTS).stat().st_size <= 10 * 2**20
    assert ckpt.meta["method"]["k"] == 64 and ckpt.meta["method"]["layers"] == "all"
    assert ckpt.meta["dev_accuracy"] >= 0.86  # the floor for shipped checkpoints
    built = checkpoints.build(ckpt, bb)
    try:
        assert accuracy(built.model, dev) == pytest.approx(ckpt.meta["dev_accuracy"], abs=1.5 / 872)
    finally:
        remove(built)


def test_stoch_names_its_twin_and_same_recipe():
    stoch, twin = checkpoints.read("sst2-stoch"), checkpoints.read("sst2-grasp")
    assert stoch.twin == "sst2-grasp" and stoch.meta["method"]["method"] == "stochgrasp"
    assert twin.meta["method"]["method"] == "grasp-w"
    assert stoch.meta["training"]["steps"] == twin.meta["training"]["steps"]
    assert stoch.meta["method"]["layers"] == twin.meta["method"]["layers"]
    assert 0.01 < stoch.meta["sigma_learned"]["q50"] < 0.05
