from pathlib import Path

import pytest
import torch

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


def _write(path, content):
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


@pytest.mark.parametrize(("name", "content", "labels"), [
    ("float.tsv", "sentence\tlabel\nok\t1.0\nfine\t 0 \n", [1, 0]),  # an exact integer written as 1.0
    ("big.tsv", "sentence\tlabel\nok\t9999\nx\t007\n", [9999, 7]),  # the largest class index, leading zeros
    ("bom.tsv", "\ufeffsentence\tlabel\r\na \"q\" b\t1\r\n\r\nc\t0\r\n", [1, 0]),  # BOM, CRLF, blank line
    ("quoted.csv", 'label,sentence,extra\n1,"a, b",x\n0,"say ""hi""\nthere",y\n', [1, 0]),
])
def test_strict_loader_accepts(tmp_path, name, content, labels):
    table = load_table(_write(tmp_path / name, content))
    assert list(table["label"]) == labels
    assert table.features["label"].dtype == "int64" and table.features["sentence"].dtype == "string"
    if name == "quoted.csv":
        assert table["sentence"] == ["a, b", 'say "hi"\nthere']
    if name == "bom.tsv":
        assert table["sentence"] == ['a "q" b', "c"]  # TSV: quotes are ordinary characters


@pytest.mark.parametrize(("content", "fragments"), [
    ("sentence\tlabel\nok\t99999999999999999999\n", ["line 2", "out of range", "9999"]),  # would wrap an int64
    ("sentence\tlabel\nok\t10000\n", ["line 2", "out of range"]),
    ("sentence\tlabel\nok\t1.5\n", ["line 2", "'1.5' is not a class index"]),
    ("sentence\tlabel\nok\tTrue\n", ["'True' is not a class index"]),
    ("sentence\tlabel\nok\t-1\n", ["'-1' is not a class index"]),
    ("sentence\tlabel\nok\t1e0\n", ["'1e0' is not a class index"]),
    ("sentence\tlabel\nok\t\u0661\n", ["is not a class index"]),  # a non-ASCII digit
    ("sentence\tlabel\nok\t1\nbad\t\n", ["line 3", "label '' is not a class index"]),
    ("sentence\tlabel\ngood\t1\n3\tfine movie\t1\n", ["line 3", "3 tab-separated field(s)", "header has 2"]),
    ("sentence\tlabel\ngood\t1\nno label here\n", ["line 3", "1 tab-separated field(s)", "header has 2"]),
    ("sentence\tlabel\n\t1\n", ["line 2", "empty sentence"]),
    ("sentence\tlabel\n   \t1\n", ["line 2", "empty sentence"]),
    ("sentence\tlabel\tlabel\nok\t1\t1\n", ["line 1", "duplicate column", "'label'"]),
    ("sentence\tlabel\n", ["no rows"]),
    ("", ["is empty"]),
    ("\n\n\n", ["is empty"]),
    ("text\ty\nhello\t1\n", ["lacks column(s) sentence, label", "found 'text', 'y'"]),
    ("sentence\tlabel\nok\x00\t1\n", ["line 2", "NUL byte"]),
    (b"sentence\tlabel\nok\t1\nnon-utf8 \xff\t0\n", ["line 3", "not UTF-8", "0xff"]),
    ("sentence\tlabel\nok\t1\n" + "x" * 200_000 + "\t1\n", ["line 3", "field limit"]),
])
def test_strict_loader_refuses_with_line_number(tmp_path, content, fragments):
    path = _write(tmp_path / "bad.tsv", content)
    with pytest.raises(UserError) as info:
        load_table(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(("content", "fragments"), [
    ('sentence,label\n"a, b,1\nc,0\n', ["line 2", "cannot parse it as CSV"]),  # an unclosed quote
    ('sentence,label\n"a" b,1\n', ["line 2", "cannot parse it as CSV"]),
    ("sentence,label\nfine, really,1\n", ["line 2", "3 comma-separated field(s)", "double quotes"]),
    ('sentence,label\n"multi\nline",1\nx,1,2\n', ["line 4", "3 comma-separated"]),  # numbering past a quoted newline
])
def test_strict_csv_refuses(tmp_path, content, fragments):
    with pytest.raises(UserError) as info:
        load_table(_write(tmp_path / "bad.csv", content))
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_unusable_paths(tmp_path, monkeypatch):
    import noisesim.data as data

    (tmp_path / "folder.tsv").mkdir()
    cases = {str(tmp_path / "folder.tsv"): "is a folder", str(tmp_path / "nope.tsv"): "not found",
             str(tmp_path / "nope" / "x.tsv"): "not found", "": "no data file named", "/dev/null": "not a regular file",
             "a" * 5000: "cannot read data file", "a\x00b.tsv": "cannot read data file"}
    for source, fragment in cases.items():
        with pytest.raises(UserError, match=fragment):
            load_table(source)
    big = tmp_path / "big.tsv"
    big.write_text("sentence\tlabel\nok\t1\n")
    monkeypatch.setattr(data, "MAX_BYTES", 10)
    with pytest.raises(UserError, match="larger than"):
        load_table(big)


def test_unreadable_file(tmp_path, monkeypatch):
    from pathlib import Path

    path = _write(tmp_path / "x.tsv", "sentence\tlabel\nok\t1\n")

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # chmod 000 does not stop root
    with pytest.raises(UserError, match="cannot read data file .*Permission denied"):
        load_table(path)


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


def test_bundled_name_and_local_file_are_told_apart(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sst2-dev").write_text("sentence\tlabel\nmine\t1\n")
    with pytest.raises(UserError, match="both a bundled data set and a file"):
        load_table("sst2-dev")
    assert list(load_table("./sst2-dev")["sentence"]) == ["mine"]


@pytest.mark.parametrize("seed,max_rows", [(0, 64), (1, 7), (2, 1), (3, 1000)])
def test_plan_batches_pads_at_most_two_percent(seed, max_rows):
    from noisesim.data import MAX_PADDING, plan_batches

    gen = torch.Generator().manual_seed(seed)
    lengths = (torch.randint(2, 130, (3000,), generator=gen) ** torch.rand(3000, generator=gen)).ceil().long().tolist()
    chunks = plan_batches(lengths, max_rows)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(lengths)))  # each example once
    widths = [max(lengths[i] for i in chunk) for chunk in chunks]
    assert widths == sorted(widths) and all(1 <= len(chunk) <= max_rows for chunk in chunks)
    padded = sum(len(chunk) * w for chunk, w in zip(chunks, widths, strict=True))
    assert padded <= (1 + MAX_PADDING) * sum(lengths)
    assert chunks == plan_batches(lengths, max_rows)  # deterministic


def test_plan_batches_trades_padding_for_fewer_batches():
    from noisesim.data import plan_batches

    lengths = [10] * 50 + [11] * 50  # one batch of 100 pads 50 tokens (4.8 %): too many; two batches pad none
    assert [len(c) for c in plan_batches(lengths, 100)] == [50, 50]
    lengths = [100] * 20 + [101]  # one batch pads 20 tokens (1 %), less than a forward's overhead of 24: taken
    assert [len(c) for c in plan_batches(lengths, 100)] == [21]
    assert [len(c) for c in plan_batches(lengths, 100, overhead=0)] == [20, 1]
    assert [len(c) for c in plan_batches([100] * 30 + [101], 100)] == [30, 1]  # 30 padded tokens cost more
    assert plan_batches([], 4) == []


def test_plan_batches_is_the_least_cost_cut():
    """The pruned dynamic programme (starts at runs of equal lengths and multiples of max_rows) finds the least
    padded tokens + overhead × batches that trying every start finds."""
    import random

    from noisesim.data import plan_batches

    def least(lengths, max_rows, c):
        s = sorted(lengths)
        best = [0.0] + [float("inf")] * len(s)
        for j in range(1, len(s) + 1):
            for i in range(max(0, j - max_rows), j):
                best[j] = min(best[j], best[i] + (j - i) * s[j - 1] + c)
        return best[-1]

    rng = random.Random(1)
    for _ in range(300):
        lengths = [rng.choice([rng.randint(1, 8), rng.randint(1, 40)]) for _ in range(rng.randint(1, 50))]
        max_rows, c = rng.randint(1, 20), rng.choice([0, 1, 5, 24, 100])
        chunks = plan_batches(lengths, max_rows, max_padding=10.0, overhead=c)
        cost = sum(len(ch) * max(lengths[i] for i in ch) for ch in chunks) + c * len(chunks)
        assert cost == least(lengths, max_rows, c)
