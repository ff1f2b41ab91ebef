"""Profile files through the CLI: shipped ones validate; malformed ones give one line naming file and field."""

import pytest
from typer.testing import CliRunner

from noisesim.cli import app
from noisesim.devices import known_profiles

runner = CliRunner()

GOOD = """
name: mine
mapping: {g_max: 20.0}
noise:
  - programming: {coefficients: [0.3, 1.0]}
  - drift: {t0: 20s}
"""

# (file text, fragments the one-line error must contain: the field path and what is allowed)
MALFORMED = [
    ("mapingg: {g_max: 25}\nnoise: []\n", ["mapingg", "unknown key", "did you mean 'mapping'"]),
    ("noise:\n  - drfit: {}\n", ["noise[0]", "unknown component 'drfit'", "did you mean 'drift'", "allowed:"]),
    ("noise:\n  - gaussian: {sigma: -0.1}\n", ["noise[0].gaussian.sigma", "greater than or equal to 0", "-0.1"]),
    ("noise:\n  - stuck_at: {at_g_min: 1.5}\n", ["noise[0].stuck_at.at_g_min", "less than or equal to 1"]),
    ("noise:\n  - levels: {n: 1}\n", ["noise[0].levels.n", "greater than or equal to 2"]),
    ("noise:\n  - drift: {t0: tomorrow}\n", ["noise[0].drift.t0", "'tomorrow'", "1h"]),
    ("noise:\n  - programming: {coefficients: abc}\n", ["noise[0].programming.coefficients", "valid list"]),
    ("mapping: {g_max: 10, g_min: 20}\n", ["mapping", "g_min (20.0) must be below g_max (10.0)"]),
    ("noise:\n  - read: {sigma: 0.01, per: token}\n", ["noise[0].read.per", "'evaluation', 'pass' or 'mvm'"]),
    ("noise:\n  - programming: {coefficients: [0.1], scael: 2}\n",
     ["noise[0].programming.scael", "did you mean 'scale'", "allowed: coefficients"]),
    ("noise:\n  - {gaussian: {sigma: 0.1}, read: {sigma: 0.1}}\n", ["noise[0]", "one-key mapping"]),
    ("noise: [gaussian: {sigma: 0.1}\n", ["not valid YAML", "line"]),
    ("noise:\n  - stuck_at: {at_g_min: 0.6, at_g_max: 0.6}\n", ["noise[0].stuck_at", "exceeds 1"]),
    ("mapping: {scale: row}\n", ["mapping.scale", "'tensor' or 'column'"]),
    ("noise:\n  - read: {sigma: 0.01, per: mvm}\n  - gaussian: {sigma: 0.1}\n", ["noise", "must be the last"]),
    ("noise:\n  - drift: {nu_mean: {a: 1.0}}\n", ["noise[0].drift.nu_mean.b", "Field required"]),
    ("noise:\n  - gaussian: {sigma: '0.1'}\n", ["noise[0].gaussian.sigma", "valid number"]),
    ("- gaussian\n", ["a profile must be a YAML mapping"]),
]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_shipped_profiles_list_show_validate():
    files = list(known_profiles().values())
    assert {p.stem for p in files} >= {"ideal", "gaussian", "pcm", "rram", "fefet"}
    result = invoke("profiles", "validate", *files)
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(files)
    listing = invoke("profiles", "list")
    assert listing.exit_code == 0 and "pcm" in listing.output and "programming, drift" in listing.output
    shown = invoke("profiles", "show", "pcm")
    assert shown.exit_code == 0 and "Nandakumar" in shown.output and "0.26348" in shown.output


def test_custom_profile_validates(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(GOOD)
    result = invoke("profiles", "validate", path)
    assert result.exit_code == 0 and "programming, drift" in result.output


@pytest.mark.parametrize("text,fragments", MALFORMED, ids=[f"bad{i}" for i in range(len(MALFORMED))])
def test_malformed_profile_one_line_error(tmp_path, text, fragments):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = invoke("profiles", "validate", path)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_unknown_profile_and_missing_file():
    result = invoke("profiles", "show", "pcn")
    assert result.exit_code == 2 and "did you mean 'pcm'" in result.output
    result = invoke("profiles", "validate", "nope.yaml")
    assert result.exit_code == 2 and "nope.yaml not found" in result.output
