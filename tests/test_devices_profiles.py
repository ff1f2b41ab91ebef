"""Profile files through the CLI: shipped ones validate; malformed ones give one line naming file and field."""

import math
import os
import time
import typing
from pathlib import Path

import pytest
import yaml
from conftest import invoke
from pydantic import BaseModel

from noisesim import devices
from noisesim.devices import components, known_profiles, schema
from noisesim.devices.library import bundled_profiles
from noisesim.errors import UserError

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
    ("noise:\n  - gaussian: {sigma: -0.1}\n", ["noise[0].gaussian.sigma", "greater than or equal to 0", "-0.1",
                                              "allowed: 0 to 1000"]),
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
    ("", ["a profile must be a YAML mapping"]),
    # the non-finite and absurd values, each refused with its field and the allowed range
    ("noise:\n  - gaussian: {sigma: .inf}\n", ["noise[0].gaussian.sigma", "finite", "allowed: 0 to 1000"]),
    ("mapping: {g_max: .inf}\n", ["mapping.g_max", "finite", "1e-06 to 1e+06 µS"]),
    ("mapping: {g_max: 1.0e-300}\n", ["mapping.g_max", "greater than or equal to 1e-06", "1e-06 to 1e+06 µS"]),
    ("mapping: {g_max: 1.0e+300}\n", ["mapping.g_max", "less than or equal to 1e+06"]),
    ("noise:\n  - drift: {nu_mean: {a: .nan, b: 0.02}}\n", ["noise[0].drift.nu_mean.a", "finite", "nan"]),
    ("noise:\n  - drift: {nu_std: {a: 0.0, b: 0.02, max: .nan}}\n", ["noise[0].drift.nu_std.max", "not NaN"]),
    ("noise:\n  - device_to_device: {gain_std: .inf}\n", ["noise[0].device_to_device.gain_std", "finite"]),
    ("noise:\n  - programming: {coefficients: [0.1, .nan]}\n", ["noise[0].programming.coefficients[1]", "finite"]),
    ("noise:\n  - programming: {coefficients: [" + ", ".join(["0.1"] * 17) + "]}\n",
     ["noise[0].programming.coefficients", "at most 16"]),
    ("noise:\n  - drift: {t0: 1.0e-300}\n", ["noise[0].drift.t0", "1e-12 to 1e+12 s"]),
    ("noise:\n  - drift: {t0: 1e999}\n", ["noise[0].drift.t0", "finite"]),
    ("noise:\n  - drift: {t0: 1s, read_noise: {t_read: 1h}}\n", ["noise[0].drift", "t_read", "must not exceed t0"]),
    ("noise:\n  - levels: {n: 1000000000}\n", ["noise[0].levels.n", "less than or equal to 1000000"]),
    ("mapping: {g_max: 25.0, g_min: 24.9}\n", ["mapping", "at least 1 % of g_max"]),
    ("mapping: {clip_sigma: 0.0}\n", ["mapping.clip_sigma", "allowed: 0.01 to 100"]),
    ("name: ../../x\n", ["name", "should match pattern"]),
    ("name: ideal\nnoise:\n  - gaussian: {sigma: 0.1}\n", ["'ideal' must be noise-free"]),
    # YAML itself
    ("noise: []\nmapping: {g_max: 20}\nnoise: []\n", ["line 3", "duplicate key 'noise'"]),
    ("mapping: {g_max: 20, g_max: 30}\n", ["line 1", "duplicate key 'g_max'"]),
    ("noise:\n  - gaussian: {sigma: 0.1}\n  - gaussian: {sigma: 0.1, sigma: 0.2}\n", ["line 3", "duplicate key"]),
    ("description: !!python/object/apply:os.system [echo]\n", ["is not supported"]),
]



def test_shipped_profiles_list_show_validate():
    files = list(known_profiles().values())
    assert {p.stem for p in files} >= {"ideal", "gaussian", "pcm", "rram", "fefet"}
    result = invoke("profiles", "validate", *files)
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == len(files)
    listing = invoke("profiles", "list")
    assert listing.exit_code == 0, listing.output
    rows = {line.split()[0]: line for line in listing.output.splitlines()}
    assert "[programming, drift; periphery: tile, dac, output_noise, adc]" in rows["pcm"]
    assert "[programming, drift]" in rows["pcm-ideal-periphery"] and "periphery:" not in rows["pcm-ideal-periphery"]
    shown = invoke("profiles", "show", "pcm")
    assert shown.exit_code == 0 and "Nandakumar" in shown.output and "0.26348" in shown.output
    assert "Le Gallo" in shown.output and "periphery:\n  tile: {rows: 256, cols: 256}" in shown.output
    checked = {line.split()[1]: line for line in result.output.splitlines()}
    assert checked[f"{known_profiles()['pcm']}:"].endswith(
        ": programming, drift; periphery: tile 256x256, dac 8 bit (max), output_noise 0.004 of the ADC range,"
        " adc 8 bit per column (max)")
    assert checked[f"{known_profiles()['pcm-ideal-periphery']}:"].endswith(": programming, drift")


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


def float_fields(model: type[BaseModel], prefix: str) -> list[tuple[str, bool]]:
    """(dotted path, inf allowed) of every float field of a schema model, nested models included."""
    out = []
    for name, field in model.model_fields.items():
        args = [typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a
                for a in (typing.get_args(field.annotation) or (field.annotation,))]
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if nested:
            out += float_fields(nested[0], f"{prefix}.{name}")
        elif typing.get_origin(field.annotation) is list:
            out.append((f"{prefix}.{name}[0]", False))
        elif float in args:
            out.append((f"{prefix}.{name}", model is components.LogFit and name in ("min", "max")))
    return out


BASE = {"programming": {"coefficients": [0.1]}, "drift": {"nu_mean": {"a": 0.0, "b": 0.05},
                                                            "nu_std": {"a": 0.0, "b": 0.01}, "read_noise": {}}}
FIELDS = [("mapping", path, inf_ok) for path, inf_ok in float_fields(schema.Mapping, "mapping")] + [
    (kind, path, inf_ok) for kind, cls in components.COMPONENTS.items()
    for path, inf_ok in float_fields(cls.spec_class, kind)]


def with_field(kind: str, path: str, value) -> dict:
    """A profile with one component (or the mapping) whose field ``path`` is ``value``."""
    params = yaml.safe_load(yaml.safe_dump(BASE.get(kind, {})))
    node, *parts = path.split(".")
    target = params
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    last = parts[-1]
    if last.endswith("[0]"):
        target[last[:-3]] = [value]
    else:
        target[last] = value
    return {"mapping": params} if kind == "mapping" else {"noise": [{kind: params}]}


def test_every_float_field_is_covered():
    paths = {p for _, p, _ in FIELDS}
    assert len(FIELDS) >= 30 and {
        "mapping.g_max", "mapping.clip_sigma", "programming.reference_g_max", "gaussian.sigma", "drift.nu_mean.a",
        "drift.read_noise.t_read", "programming.coefficients[0]", "device_to_device.gain_std"} <= paths


@pytest.mark.parametrize("kind,path,inf_ok", FIELDS, ids=[p for _, p, _ in FIELDS])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_non_finite_in_every_field_is_refused_with_its_path(tmp_path, kind, path, inf_ok, value):
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(with_field(kind, path, value)))
    if inf_ok and not math.isnan(value):  # a log fit's min/max may be ±.inf: no clipping on that side
        devices.load_profile(file)
        return
    with pytest.raises(UserError) as info:
        devices.load_profile(file)
    message = str(info.value)
    where = path if kind == "mapping" else f"noise[0].{path}"
    assert message.startswith(f"{file}: {where}") and "\n" not in message, message
    assert ("finite" in message or "NaN" in message), message


def test_validate_non_finite_through_the_cli(tmp_path):
    for i, (kind, path, _) in enumerate(FIELDS[:6]):
        file = tmp_path / f"p{i}.yaml"
        file.write_text(yaml.safe_dump(with_field(kind, path, math.inf)))
        result = invoke("profiles", "validate", file)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith(f"error: {file}: "), result.output


def test_non_utf8_huge_and_alias_bomb_profiles(tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("description: d\xe9j\xe0 vu\nnoise: []\n".encode("latin-1"))
    result = invoke("profiles", "validate", latin)
    assert result.exit_code == 2 and result.output.strip() == (
        f"error: {latin}: profile is not UTF-8 text (byte 0xe9 at line 1); save it as UTF-8")
    huge = tmp_path / "huge.yaml"
    huge.write_text("description: " + "x" * (2 << 20) + "\n")
    result = invoke("profiles", "validate", huge)
    assert result.exit_code == 2 and "larger than 1 MiB" in result.output and len(result.output.splitlines()) == 1
    bomb = tmp_path / "bomb.yaml"
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
        f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi", strict=True)]
    bomb.write_text("\n".join(f"# {line}" for line in levels) + "\ndescription: x\n")  # commented: harmless
    assert invoke("profiles", "validate", bomb).exit_code == 0
    bomb.write_text("x: &x\n" + "\n".join(f"  {line}" for line in levels) + "\ndescription: *x\n")
    start = time.perf_counter()
    result = invoke("profiles", "validate", bomb)
    assert time.perf_counter() - start < 1.0
    assert result.exit_code == 2 and "not accepted YAML" in result.output and len(result.output.splitlines()) == 1


def user_file(name: str, text: str) -> Path:
    folder = Path(os.environ["NOISESIM_HOME"]) / "devices"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.yaml").write_text(text)
    return folder / f"{name}.yaml"


@pytest.mark.parametrize("name", ["ideal", "gaussian", "pcm"])
def test_user_profile_named_like_a_shipped_one_is_never_used_silently(name):
    shadow = user_file(name, "noise:\n  - gaussian: {sigma: 0.5}\n")
    result = invoke("profiles", "show", name)
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert f"error: profile {name!r} is shipped with noisesim, and {shadow} has the same name; rename" in result.output
    with pytest.raises(UserError, match="rename that file"):
        devices.load_profile(name)
    assert known_profiles()[name].parent == bundled_profiles()  # the shipped file keeps the name
    builtin = devices.builtin_profile(name)  # what the code itself uses
    assert builtin.data == devices.load_profile(known_profiles()[name]).data and (name != "ideal" or builtin.noiseless)
    listing = invoke("profiles", "list")
    assert listing.exit_code == 0, listing.output
    rows = [line for line in listing.output.splitlines() if line.startswith(f"{name} ")]
    assert len(rows) == 2 and "INVALID" not in rows[0] and str(shadow) in rows[1]
    assert "INVALID: has the name of a shipped profile" in rows[1]


def test_a_file_cannot_take_a_shipped_name(tmp_path):
    copy = tmp_path / "pcm.yaml"  # a copy of the shipped file under its own name
    copy.write_text(known_profiles()["pcm"].read_text())
    with pytest.raises(UserError, match="its name 'pcm' is a shipped profile's; rename it"):
        devices.load_profile(copy)
    named = tmp_path / "mine.yaml"
    named.write_text("name: ideal\nnoise: []\n")
    with pytest.raises(UserError, match="its name 'ideal' is a shipped profile's"):
        devices.load_profile(named)
    user_file("mine", "name: gaussian\nnoise:\n  - gaussian: {sigma: 0.3}\n")
    with pytest.raises(UserError, match="name: field 'gaussian' differs from the file name"):
        devices.load_profile("mine")
    assert devices.load_profile(known_profiles()["pcm"]).name == "pcm"  # the shipped file by path is fine


def test_bad_user_profile_does_not_break_the_listing():
    user_file("broken", "noise:\n  - gaussian: {sigma: .inf}\n")
    user_file("dupes", "noise: []\nnoise: []\n")
    (Path(os.environ["NOISESIM_HOME"]) / "devices" / "latin.yaml").write_bytes(b"description: \xff\n")
    user_file("mine", GOOD.replace("name: mine\n", ""))
    result = invoke("profiles", "list")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert "INVALID: noise[0].gaussian.sigma: Input should be a finite number" in rows["broken"]
    assert "INVALID: not valid YAML at line 2: duplicate key 'noise'" in rows["dupes"]
    assert "INVALID: profile is not UTF-8 text" in rows["latin"]
    assert "programming, drift" in rows["mine"] and "INVALID" not in rows["mine"]
    assert "programming, drift" in rows["pcm"] and len(rows) == 13  # 9 shipped, 4 user
    assert invoke("profiles", "show", "mine").exit_code == 0
    result = invoke("profiles", "show", "broken")
    assert result.exit_code == 2 and "noise[0].gaussian.sigma" in result.output


@pytest.mark.parametrize("name", ["ideal", "gaussian"])
def test_protocol_profiles_are_built_in_code_and_equal_their_files(name, monkeypatch):
    from noisesim.devices import library

    shipped = devices.load_profile(name)
    assert shipped.path == bundled_profiles() / f"{name}.yaml"

    def no_files():
        raise AssertionError("a built-in profile looked for files")

    monkeypatch.setattr(library, "bundled_profiles", no_files)
    built = devices.builtin_profile(name)
    assert built.path is None and built.source == f"<built-in {name}>" and built.name == name
    assert built.data == shipped.data and built.spec == shipped.spec and built.sha256 == shipped.sha256
    assert [c.spec.sigma for c in built.components] == ([] if name == "ideal" else [0.02])
    monkeypatch.undo()
    shown = invoke("profiles", "show", name)
    assert shown.exit_code == 0 and yaml.safe_load(shown.output) == library.BUILTIN[name]


def test_missing_shipped_folder_is_an_error_not_an_empty_listing(monkeypatch, tmp_path):
    from noisesim.devices import library

    def not_installed(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(library.resources, "files", not_installed)
    monkeypatch.setattr(library, "__file__", str(tmp_path / "noisesim" / "devices" / "library.py"))
    (tmp_path / "devices").mkdir()  # a source tree whose devices/ folder is empty
    for call in (devices.known_profiles, devices.shipped_profiles, devices.profile_listing,
                 lambda: devices.load_profile("pcm")):
        with pytest.raises(UserError, match=r"shipped device profiles are missing .* reinstall noisesim"):
            call()
    assert devices.builtin_profile("gaussian").components[0].spec.sigma == 0.02  # the sweep's protocol still runs
    result = invoke("profiles", "list")
    assert result.exit_code == 2 and "shipped device profiles are missing" in result.output


def test_a_source_tree_uses_its_own_profiles(monkeypatch, tmp_path):
    """Code run from a checkout reads that checkout's devices/, even where the installed package (an editable
    install of another checkout) points elsewhere; installed code reads its package."""
    from noisesim.devices import library

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "pcm.yaml").write_text("noise: []\n")
    monkeypatch.setattr(library.resources, "files", lambda package: elsewhere)
    assert bundled_profiles() == Path(library.__file__).resolve().parents[2] / "devices"
    monkeypatch.setattr(library, "__file__", str(tmp_path / "site" / "noisesim" / "devices" / "library.py"))
    (tmp_path / "site" / "devices").mkdir(parents=True)  # a devices/ folder but no pyproject.toml: not a checkout
    (tmp_path / "site" / "devices" / "x.yaml").write_text("noise: []\n")
    assert bundled_profiles() == elsewhere


def test_shipped_folder_holds_every_profile_file():
    folder = bundled_profiles()
    names = ["cycle-to-cycle", "device-to-device", "drift", "fefet", "gaussian", "ideal", "pcm", "pcm-ideal-periphery",
             "rram"]
    assert sorted(p.stem for p in folder.glob("*.yaml")) == names
    assert list(devices.shipped_profiles()) == names
