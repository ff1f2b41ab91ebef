import pytest

from noisesim.data import load_table
from noisesim.errors import UserError


def test_bundled_sst2_splits():
    train, dev = load_table("sst2-train"), load_table("sst2-dev")
    assert (len(train), len(dev)) == (67349, 872)
    assert sum(train["label"]) == 37569 and sum(dev["label"]) == 444
    assert dev[0]["sentence"].startswith("it 's a charming and often affecting journey")


def test_user_csv_and_bad_labels(tmp_path):
    good = tmp_path / "x.csv"
    good.write_text('sentence,label\n"fine, really",1\nbad,0\n')
    table = load_table(good)
    assert table["sentence"][0] == "fine, really" and list(table["label"]) == [1, 0]
    bad = tmp_path / "y.tsv"
    bad.write_text("sentence\tlabel\nok\tpositive\n")
    with pytest.raises(UserError, match="'positive' is not a class index"):
        load_table(bad)
    empty = tmp_path / "z.tsv"
    empty.write_text("sentence\tlabel\n")
    with pytest.raises(UserError, match="no rows"):
        load_table(empty)


def _encoded(n: int, seed: int = 0):
    import torch

    from noisesim.data import Encoded

    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 60, (n,), generator=gen).tolist()
    ids = [[i] * length for i, length in enumerate(lengths)]  # token id = example index
    return Encoded(ids, torch.arange(n) % 2, "synthetic")


@pytest.mark.parametrize("group", [1, 50])
def test_train_batches_cover_each_epoch_once(group):
    import itertools

    import torch

    from noisesim.data import train_batches

    n, bs = 1000, 32
    batches = train_batches(_encoded(n), 0, bs, torch.Generator().manual_seed(1), group=group)
    epoch = list(itertools.islice(batches, n // bs))
    seen = [int(row[0]) for b in epoch for row in b["input_ids"]]
    assert len(seen) == len(set(seen)) == (n // bs) * bs  # no example twice within an epoch
    assert all(len(b["labels"]) == bs for b in epoch)
    for b in epoch:  # labels travel with their sentences
        assert torch.equal(b["labels"], b["input_ids"][:, 0] % 2)


def test_length_grouping_cuts_padding_and_is_seeded():
    import itertools

    import torch

    from noisesim.data import train_batches

    data = _encoded(3200)

    def padded(group, seed=1):
        gen = torch.Generator().manual_seed(seed)
        return [b["input_ids"] for b in itertools.islice(train_batches(data, 0, 32, gen, group=group), 100)]

    plain = sum(b.numel() for b in padded(1))
    grouped = padded(50)
    assert sum(b.numel() for b in grouped) < 0.6 * plain  # lengths 3..59: random batches pad to ~57
    assert all(torch.equal(a, b) for a, b in zip(grouped, padded(50), strict=True))  # same seed, same batches
    assert not all(torch.equal(a, b) for a, b in zip(grouped, padded(50, seed=2), strict=True))
