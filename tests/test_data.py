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
