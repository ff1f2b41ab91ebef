"""noisesim.safeyaml: duplicate keys, alias bombs, size, encoding and tags are one-line UserErrors."""

import math
import time

import pytest

from noisesim.errors import UserError
from noisesim.safeyaml import MAX_BYTES, load_yaml, loads_yaml, safe_scalar

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]) + "\n"


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    return message


def test_plain_documents_load_as_json_like_values():
    text = "a: 1\nb: [1.5, .inf, .nan, true, null, text]\nc: {d: 2020-01-01}\n"
    value = loads_yaml(text, "x")
    assert value["a"] == 1 and value["b"][0] == 1.5 and math.isinf(value["b"][1]) and math.isnan(value["b"][2])
    assert value["b"][3:] == [True, None, "text"]
    assert value["c"] == {"d": "2020-01-01"}  # dates stay strings: every value is JSON-like
    assert loads_yaml("", "x") is None and loads_yaml("# only a comment\n", "x") is None


@pytest.mark.parametrize("text,line,key", [
    ("a: 1\nb: 2\na: 3\n", 3, "'a'"),
    ("outer:\n  x: 1\n  y: 2\n  x: 2\n", 4, "'x'"),
    ("- {k: 1, k: 2}\n", 1, "'k'"),
    ("1: a\n1.0: b\n", 2, "1.0"),  # equal as values
])
def test_duplicate_keys_are_refused_with_line_and_key(text, line, key):
    message = one_line_error(loads_yaml, text, "f.yaml")
    assert message.startswith(f"f.yaml: not valid YAML at line {line}: duplicate key {key}"), message


@pytest.mark.parametrize("text", ["base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n", "<<: {seeds: 5}\nseeds: 1\n",
                                  "<<: [{sigma: 0.3}, {sigma: 0.05}]\n"])
def test_merge_keys_are_refused(text):
    """A merge key can give a key twice without a word (the later or the local one wins)."""
    assert "merge keys (<<) are not supported" in one_line_error(loads_yaml, text, "f")


def test_alias_bomb_fails_fast():
    start = time.perf_counter()
    message = one_line_error(loads_yaml, BOMB, "bomb.yaml")
    assert time.perf_counter() - start < 0.5
    assert "bomb.yaml: not accepted YAML at line" in message and "100,000 values" in message


def test_alias_bomb_in_a_free_text_field_of_a_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(BOMB + "description: *i\n")
    start = time.perf_counter()
    message = one_line_error(load_yaml, path, "profile")
    assert time.perf_counter() - start < 0.5 and message.startswith(f"{path}: not accepted YAML")


def test_modest_aliases_are_fine_and_limit_is_adjustable():
    text = "a: &a [1, 2, 3]\nb: *a\nc: *a\n"
    assert loads_yaml(text, "f") == {"a": [1, 2, 3], "b": [1, 2, 3], "c": [1, 2, 3]}
    assert "more than 10 values" in one_line_error(loads_yaml, text, "f", max_nodes=10)


@pytest.mark.parametrize("text,fragment", [
    ("a: &a [*a]\n", "refers to a node that contains it"),
    ("[" * 300 + "]" * 300, "nest"),
    ("a: [1, 2\n", "not valid YAML at line 2"),
    ("a: 1\n---\nb: 2\n", "single document"),
    ("a: *nowhere\n", "undefined alias"),
    ("a: \x00\n", "unacceptable character #x0000"),
    ("a: !!binary aGVsbG8=\n", "tag tag:yaml.org,2002:binary is not supported"),
    ("a: !!python/object/apply:os.system [ls]\n", "is not supported"),
    ("a: !!set {x, y}\n", "is not supported"),
    ("a: !custom 1\n", "tag !custom is not supported"),
    ("{[1, 2]: a}\n", "unhashable key"),
])
def test_malformed_or_unsupported_yaml_is_one_line(text, fragment):
    message = one_line_error(loads_yaml, text, "src")
    assert message.startswith("src: ") and fragment in message, message


def test_files_bounded_strict_utf8_and_readable(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_BYTES + "\n")
    assert "larger than 1 MiB" in one_line_error(load_yaml, big, "profile")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("description: ok\nname: caf\xe9\n".encode("latin-1"))
    message = one_line_error(load_yaml, latin, "profile")
    assert message == f"{latin}: profile is not UTF-8 text (byte 0xe9 at line 2); save it as UTF-8"
    assert "cannot read profile" in one_line_error(load_yaml, tmp_path / "missing.yaml", "profile")
    assert "cannot read --config" in one_line_error(load_yaml, tmp_path, "--config")  # a folder
    good = tmp_path / "good.yaml"
    good.write_text("\ufeffa: café\n", encoding="utf-8")  # a BOM is fine
    assert load_yaml(good) == {"a": "café"}
    assert "characters is more than" in one_line_error(loads_yaml, "a" * (MAX_BYTES + 1), "s")


@pytest.mark.parametrize("text,value", [
    ("1e-3", 0.001), (".5", 0.5), ("2E3", 2000.0), ("-1.5e+2", -150.0), ("3", 3), (" 7 ", 7),
    ("global", "global"), ("true", True), ("null", None), ("2020-01-01", "2020-01-01"), ("1,5", "1,5"),
])
def test_safe_scalar_reads_cli_values(text, value):
    got = safe_scalar(text, "--set x")
    assert got == value and type(got) is type(value)


def test_safe_scalar_non_finite_left_to_the_schema():
    assert math.isinf(safe_scalar("1e999")) and math.isnan(safe_scalar(".nan"))


@pytest.mark.parametrize("text,fragment", [
    ("", "empty value"), ("  ", "empty value"), ("[1, 2]", "not a single value"), ("{a: 1}", "not a single value"),
    ("a: b", "not a single value"), ("*x", "undefined alias"), ("!!binary aGk=", "not supported"),
    ("x" * 20_000, "too long"), ("'unclosed", "not valid YAML"),
])
def test_safe_scalar_refuses_non_scalars(text, fragment):
    message = one_line_error(safe_scalar, text, "--set programming.scale")
    assert message.startswith("--set programming.scale: ") and fragment in message, message


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError, match="text must be str"):
        loads_yaml(b"a: 1", "x")
    with pytest.raises(TypeError, match="text must be str"):
        safe_scalar(1.0)


def test_only_plain_decimal_numbers_are_numbers():
    from noisesim.safeyaml import loads_yaml

    got = loads_yaml("a: 0x10\nb: 1_0\nc: 1e-3\nd: 12\ne: -.5\nf: .inf\ng: 1:30\nh: 007\ni: 0o7\n")
    assert got == {"a": "0x10", "b": "1_0", "c": 0.001, "d": 12, "e": -0.5, "f": float("inf"), "g": "1:30",
                   "h": "007", "i": "0o7"}
