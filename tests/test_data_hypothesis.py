"""Property tests: whatever a data file holds, load_table returns a valid table or raises UserError."""

import string
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from noisesim.data import MAX_LABEL, load_table  # noqa: E402
from noisesim.errors import UserError  # noqa: E402

pytestmark = pytest.mark.slow  # property-based: hundreds of generated files

SETTINGS = settings(max_examples=200, deadline=None, database=None,  # no saved failing examples: each run stands alone
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
FIELD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["0", "1", "1.0", "1.5", "-1", "True", "", " ", "99999999999999999999", "1e3", str(MAX_LABEL),
                     str(MAX_LABEL + 1), '"', '""', ",", "\t", "\r", "\n", "\x00", "sentence", "label"]),
    st.integers(-10, 10**20).map(str),
)
HEADERS = st.one_of(st.just(["sentence", "label"]), st.just(["label", "sentence", "x"]),
                    st.lists(st.sampled_from(["sentence", "label", "x", "", "label "]), max_size=4))


def check(path: Path) -> None:
    """The property: a table whose rows are all valid, or a one-line UserError naming the file."""
    try:
        table = load_table(path)
    except UserError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message
        assert str(path) in message or "no data file" in message
        return
    assert len(table) > 0 and table.column_names == ["sentence", "label"]
    assert all(isinstance(v, int) and 0 <= v <= MAX_LABEL for v in table["label"])
    assert all(isinstance(s, str) and s.strip() for s in table["sentence"])


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
@SETTINGS
@given(raw=st.binary(max_size=300))
def test_random_bytes(tmp_path, suffix, raw):
    path = tmp_path / f"random{suffix}"
    path.write_bytes(raw)
    check(path)


@pytest.mark.parametrize("suffix", [".tsv", ".csv"])
@SETTINGS
@given(header=HEADERS, rows=st.lists(st.lists(FIELD, max_size=4), max_size=6),
       newline=st.sampled_from(["\n", "\r\n"]), quote=st.booleans())
def test_random_rows(tmp_path, suffix, header, rows, newline, quote):
    sep = "," if suffix == ".csv" else "\t"

    def cell(value: str) -> str:  # CSV: quote as a spreadsheet would, or (quote=False) write it raw
        return '"' + value.replace('"', '""') + '"' if quote and suffix == ".csv" else value

    text = newline.join(sep.join(cell(v) for v in row) for row in [header, *rows]) + newline
    path = tmp_path / f"rows{suffix}"
    path.write_text(text, encoding="utf-8", newline="")
    check(path)


@settings(SETTINGS, max_examples=100)
@given(rows=st.lists(st.tuples(st.text(string.ascii_letters + ' ,"\n', min_size=1, max_size=20)
                               .filter(lambda s: s.strip()), st.integers(0, MAX_LABEL)), min_size=1, max_size=8))
def test_csv_round_trip(tmp_path, rows):
    """Any sentence written by the csv module (quotes, commas, newlines) comes back unchanged."""
    import csv

    path = tmp_path / "round.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "label"])
        writer.writerows(rows)
    table = load_table(path)
    assert list(zip(table["sentence"], table["label"], strict=True)) == [(s, label) for s, label in rows]
