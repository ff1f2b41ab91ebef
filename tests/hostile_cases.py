"""Hostile CLI inputs for tests/test_hostile.py (issue 9): each case sets up a temp world and gives argv.

A case is ``Case(args, setup)``: ``setup(env)`` writes the hostile files (user store, data, profiles, broken
checkpoint copies) and ``args`` are formatted with ``env.vars`` ({gw}, {tsv}, {work}, ...). Every case must end
with exit code 2, one ``error: …`` line and nothing changed on disk.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml


@dataclass
class Env:
    """The temp world of one case: ``work`` is the cwd, ``home`` is NOISESIM_HOME."""

    root: Path
    work: Path
    home: Path
    ckpts: dict[str, str]
    tsv: str
    model: str
    results: str
    vars: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        self.vars.update(gw=self.ckpts["grasp-w"], grasp=self.ckpts["grasp"], stoch=self.ckpts["stochgrasp"],
                         tsv=self.tsv, model=self.model, work=str(self.work), home=str(self.home),
                         store=str(self.store), root=str(self.root))

    @property
    def store(self) -> Path:
        return self.home / "checkpoints"

    def write(self, rel: str | Path, content: str | bytes) -> Path:
        path = self.work / rel if not Path(rel).is_absolute() else Path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
        return path

    def copy_ckpt(self, method: str = "grasp-w", dest: str | Path = "ck") -> Path:
        dest = self.work / dest if not Path(dest).is_absolute() else Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(self.ckpts[method], dest)
        return dest

    def copy_results(self, dest: str = "res") -> Path:
        shutil.copytree(self.results, self.work / dest)
        self.vars["res"] = str(self.work / dest)
        return self.work / dest


@dataclass
class Case:
    args: list[str]
    setup: Callable[[Env], None] | None = None
    timeout: float = 30.0
    any_of: tuple[str, ...] = ()  # the error line names one of these (case-insensitive)


def case(id_, args, setup=None, **kw):
    return pytest.param(Case(list(args), setup, **kw), id=id_)


SWEEP = ["sweep", "--ckpt", "{gw}", "--data", "{tsv}", "--programs", "1"]
TRAIN = ["train", "--method", "grasp-w", "--k", "2", "--model", "{model}", "--steps", "2", "--eval-every", "1",
         "--batch-size", "8", "--max-length", "16", "--data", "{tsv}", "--eval-data", "{tsv}"]


def sweep(*extra):
    base = SWEEP[:-2] if "--programs" in extra else SWEEP  # a one-value option is given once (twice is refused)
    return [*base, *extra, "--out", "{work}/res"] if "--out" not in extra else [*base, *extra]


def train(*extra):
    return [*TRAIN, *extra] if "--out" in extra else [*TRAIN, *extra, "--out", "mine"]


# ---------------------------------------------------------------- setups


def thesis(env: Env):
    """User-owned files everywhere an --out might point."""
    env.write("thesis.tex", "\\documentclass{article} % three years of work\n")
    env.write("results/thesis.tex", "\\chapter{Results}\n")
    env.write(env.work.parent / "notes.txt", "do not delete\n")
    env.copy_ckpt("grasp-w", env.store / "mine")


def store_with(name: str, method: str = "grasp-w"):
    def setup(env: Env):
        thesis(env)
        env.copy_ckpt(method, env.store / name)
    return setup


def user_folder_in_store(env: Env):
    thesis(env)
    env.write(env.store / "notes" / "draft.txt", "not a checkpoint\n")


def with_results(env: Env):
    thesis(env)
    env.copy_results()


def results_then(fn):
    def setup(env: Env):
        res = env.copy_results()
        env.write("thesis.tex", "user file\n")
        fn(res, env)
    return setup


def file_setup(rel: str, content: str | bytes):
    def setup(env: Env):
        env.vars["f"] = str(env.write(rel, content))
    return setup


# ---------------------------------------------------------------- --out of every command

OUT_CASES = [
    case("train-out-empty", train("--out", ""), thesis),
    case("train-out-dot", train("--out", "."), thesis),
    case("train-out-dotdot", train("--out", ".."), thesis),
    case("train-out-root", train("--out", "/"), thesis),
    case("train-out-user-folder-slash", train("--out", "results/"), thesis),
    case("train-out-user-folder-dotslash", train("--out", "./results"), thesis),
    case("train-out-user-folder-abs", train("--out", "{work}/results"), thesis),
    case("train-out-cwd-abs", train("--out", "{work}"), thesis),
    case("train-out-existing-file", train("--out", "./thesis.tex"), thesis),
    case("train-out-under-file", train("--out", "thesis.tex/ck"), thesis),
    case("train-out-proc", train("--out", "/proc/noisesim-x"), thesis),
    case("train-out-shipped-name-grasp", train("--out", "sst2-grasp"), thesis),
    case("train-out-shipped-name-stoch", train("--out", "sst2-stoch"), thesis),
    case("train-out-store-non-ckpt-folder", train("--out", "notes"), user_folder_in_store),
    case("train-out-user-store-itself", train("--out", "{store}"), thesis),
    case("train-out-home-itself", train("--out", "{home}/"), thesis),
    case("sweep-out-empty", sweep("--out", ""), thesis),
    case("sweep-out-dot", sweep("--out", "."), thesis),
    case("sweep-out-dotdot", sweep("--out", ".."), thesis),
    case("sweep-out-root", sweep("--out", "/"), thesis),
    case("sweep-out-user-folder", sweep("--out", "results/"), thesis),
    case("sweep-out-file", sweep("--out", "thesis.tex"), thesis),
    case("sweep-out-under-file", sweep("--out", "thesis.tex/res"), thesis),
    case("sweep-out-proc", sweep("--out", "/proc/noisesim-x"), thesis),
    case("sweep-out-user-store", sweep("--out", "{store}"), thesis),
    case("sweep-out-checkpoint-folder", sweep("--out", "{store}/mine"), thesis),
    case("plot-out-proc", ["plot", "{res}", "--out", "/proc/noisesim-x/fig"], with_results),
    case("plot-out-under-file", ["plot", "{res}", "--out", "thesis.tex/fig"], with_results),
    case("plot-out-dot", ["plot", "{res}", "--out", "."], with_results),
    case("plot-out-empty", ["plot", "{res}", "--out", ""], with_results),
    case("plot-out-root", ["plot", "{res}", "--out", "/"], with_results),
    case("report-out-proc", ["report", "{res}", "--out", "/proc/noisesim-x.md"], with_results),
    case("report-out-under-file", ["report", "{res}", "--out", "thesis.tex/r.md"], with_results),
    case("report-out-directory", ["report", "{res}", "--out", "results"], with_results),
    case("report-out-dot", ["report", "{res}", "--out", "."], with_results),
    case("report-out-empty", ["report", "{res}", "--out", ""], with_results),
    case("report-out-root", ["report", "{res}", "--out", "/"], with_results),
]


# ---------------------------------------------------------------- results folders for plot / report


def corrupt_table(res: Path, env: Env):
    (res / "results.parquet").write_bytes(b"PAR1" + bytes(range(256)) * 8)


def truncated_table(res: Path, env: Env):
    data = (res / "results.parquet").read_bytes()
    (res / "results.parquet").write_bytes(data[: len(data) // 2])


def foreign_table(res: Path, env: Env):
    import pandas as pd

    (res / "results.parquet").unlink()
    pd.DataFrame({"x": [1, 2], "y": [3.0, 4.0]}).to_parquet(res / "results.parquet")


def empty_table(res: Path, env: Env):
    import pandas as pd

    frame = pd.read_parquet(res / "results.parquet")
    (res / "results.parquet").unlink()
    frame.iloc[:0].to_parquet(res / "results.parquet")


def nan_accuracy(res: Path, env: Env):
    import pandas as pd

    frame = pd.read_parquet(res / "results.parquet")
    frame.loc[frame.index[-1], "accuracy"] = float("nan")
    (res / "results.parquet").unlink()
    frame.to_parquet(res / "results.parquet")


def table_as_dir(res: Path, env: Env):
    (res / "results.parquet").unlink()
    (res / "results.parquet").mkdir()


def broken_meta(res: Path, env: Env):
    (res / "sweep.json").write_bytes(b"\xff\xfe{not json")


def empty_folder(env: Env):
    (env.work / "res").mkdir()
    env.vars["res"] = str(env.work / "res")


def user_folder(env: Env):
    env.write("res/thesis.tex", "user file\n")
    env.vars["res"] = str(env.work / "res")


RESULTS_CASES = [
    case("plot-results-missing", ["plot", "{work}/nope"]),
    case("plot-results-empty-folder", ["plot", "{res}"], empty_folder),
    case("plot-results-user-folder", ["plot", "{res}"], user_folder),
    case("plot-results-is-file", ["plot", "{f}"], file_setup("thesis.tex", "user\n")),
    case("plot-results-checkpoint-folder", ["plot", "{gw}"]),
    case("plot-results-corrupt-parquet", ["plot", "{res}"], results_then(corrupt_table)),
    case("plot-results-truncated-parquet", ["plot", "{res}"], results_then(truncated_table)),
    case("plot-results-foreign-parquet", ["plot", "{res}"], results_then(foreign_table)),
    case("plot-results-parquet-is-dir", ["plot", "{res}"], results_then(table_as_dir)),
    case("plot-results-no-rows", ["plot", "{res}"], results_then(empty_table)),
    case("plot-results-nan-accuracy", ["plot", "{res}"], results_then(nan_accuracy)),
    case("plot-x-unknown-column", ["plot", "{res}", "--x", "nosuch"], with_results, any_of=("nosuch",)),
    case("plot-hue-unknown-column", ["plot", "{res}", "--hue", "nosuch"], with_results, any_of=("nosuch",)),
    case("plot-col-unknown-column", ["plot", "{res}", "--col", "nosuch"], with_results, any_of=("nosuch",)),
    case("report-results-missing", ["report", "{work}/nope"]),
    case("report-results-user-folder", ["report", "{res}"], user_folder),
    case("report-results-corrupt-parquet", ["report", "{res}"], results_then(corrupt_table)),
    case("report-results-truncated-parquet", ["report", "{res}"], results_then(truncated_table)),
    case("report-results-foreign-parquet", ["report", "{res}"], results_then(foreign_table)),
    case("report-results-no-rows", ["report", "{res}"], results_then(empty_table)),
    case("report-results-nan-accuracy", ["report", "{res}"], results_then(nan_accuracy)),
    case("report-results-sweep-json-not-utf8", ["report", "{res}"], results_then(broken_meta)),
    case("sweep-out-corrupt-results-table", sweep("--out", "{res}"), results_then(corrupt_table)),
    case("sweep-out-foreign-results-table", sweep("--out", "{res}"), results_then(foreign_table)),
]


# ---------------------------------------------------------------- numbers on the command line

NUMBER_CASES = [
    case(f"sigma-{name}", sweep("--sigma", value), any_of=("sigma", "σ"))
    for name, value in [("empty", ""), ("comma", ","), ("nan", "nan"), ("NaN", "NaN"), ("inf", "inf"),
                        ("minus-inf", "-inf"), ("infinity", "Infinity"), ("1e309", "1e309"),
                        ("negative", "-0.01"), ("1e300", "1e300"), ("hex", "0x10"), ("empty-item", "0.01,,0.02"),
                        ("semicolon", "0.01;0.02"), ("unicode-minus", "\u22120.01"), ("word", "abc"),
                        ("space", " ")]
] + [
    case(f"{flag[2:]}-{name}", sweep(flag, value), any_of=(flag, flag[2:], "--programs"))
    for flag in ("--programs", "--seeds", "--chips", "--reads")  # --seeds: the old name of --programs
    for name, value in [("0", "0"), ("-1", "-1"), ("huge", str(10**12)), ("word", "abc"), ("float", "1.5")]
] + [
    case("workers-0", sweep("--workers", "0"), any_of=("workers",)),
    case("workers-negative", sweep("--workers", "-2"), any_of=("workers",)),
    case("workers-huge", sweep("--workers", str(10**6)), any_of=("workers",)),
    case("seed-word", sweep("--seed", "abc"), any_of=("seed",)),
    case("backend-unknown", sweep("--backend", "foo"), any_of=("backend", "foo")),
    case("backend-empty", sweep("--backend", ""), any_of=("backend",)),
    case("ray-address-without-ray-backend", sweep("--ray-address", "auto"), any_of=("ray",)),
    case("time-without-drift-profile", sweep("--time", "1h")),
] + [
    case(f"time-{name}", sweep("--profile", "pcm", "--time", value), any_of=("time",))
    for name, value in [("nan", "nan"), ("negative", "-1s"), ("unknown-unit", "1parsec"), ("overflow", "1e999y"),
                        ("inf", "inf"), ("empty", ""), ("comma", ","), ("empty-item", "1h,,1d"),
                        ("huge-finite", "1e300y")]
]


# ---------------------------------------------------------------- --set and flags that cannot take effect

SET_CASES = [
    case(f"set-{name}", sweep("--profile", profile, "--set", value), any_of=("--set", value.split("=")[0]))
    for name, profile, value in [
        ("no-equals", "pcm", "programming.scale"),
        ("no-field", "pcm", "programming=1"),
        ("empty-path", "pcm", "=1"),
        ("no-values", "pcm", "programming.scale="),
        ("unknown-component", "pcm", "nosuch.field=1"),
        ("unknown-field", "pcm", "programming.nosuch=1"),
        ("component-not-in-profile", "pcm", "levels.n=4"),
        ("noise-index-negative", "pcm", "noise[-1].scale=1"),
        ("noise-index-past-end", "pcm", "noise[99].scale=1"),
        ("noise-index-word", "pcm", "noise[x].scale=1"),
        ("value-nan", "pcm", "programming.scale=.nan"),
        ("value-inf", "pcm", "programming.scale=.inf"),
        ("value-word", "pcm", "programming.scale=abc"),
        ("value-bad-yaml", "pcm", "programming.coefficients=[1"),
        ("value-bad-literal", "pcm", "drift.compensation=maybe"),
        ("g-max-zero", "pcm", "mapping.g_max=0"),
        ("g-max-tiny", "pcm", "mapping.g_max=1e-300"),
        ("g-max-inf", "pcm", "mapping.g_max=.inf"),
        ("mapping-unknown-field", "pcm", "mapping.nosuch=1"),
    ]
] + [
    case("set-gaussian-sigma-next-to-sigma", sweep("--sigma", "0.01", "--set", "gaussian.sigma=0.1"),
         any_of=("gaussian.sigma", "--sigma")),
    case("set-gaussian-sigma-next-to-sigma-profile", sweep("--profile", "gaussian", "--sigma", "0.01", "--set",
                                                           "gaussian.sigma=0.1"), any_of=("gaussian.sigma", "--sigma")),
    case("sigma-with-profile-lacking-gaussian", sweep("--profile", "rram", "--sigma", "0.01"), any_of=("sigma",)),
    case("profile-unknown-name", sweep("--profile", "pcn"), any_of=("pcn",)),
    case("profile-empty-name", sweep("--profile", ""), any_of=("profile",)),
]


# ---------------------------------------------------------------- device profiles

BASE_PROFILE = {
    "name": "hostile",
    "description": "every component once",
    "mapping": {"g_max": 25.0, "g_min": 0.5, "scale": "column", "clip_sigma": 3.0},
    "noise": [
        {"levels": {"n": 16}},
        {"programming": {"coefficients": [0.5, 0.1], "reference_g_max": 25.0, "scale": 1.0}},
        {"device_to_device": {"gain_std": 0.01, "offset_std": 0.001, "scale": 1.0}},
        {"stuck_at": {"at_g_min": 0.001, "at_g_max": 0.001}},
        {"drift": {"t0": 20.0, "nu_mean": {"a": -0.0155, "b": 0.0244, "min": 0.049, "max": 0.1},
                   "nu_std": {"a": -0.0125, "b": -0.0059, "min": 0.008, "max": 0.045}, "scale": 1.0,
                   "read_noise": {"q": 0.0088, "exponent": 0.65, "q_max": 0.2, "g_floor": 0.001,
                                  "t_read": 2.5e-7, "scale": 1.0}}},
        {"gaussian": {"sigma": 0.001, "relative_to": "weight"}},
        {"read": {"sigma": 0.001, "relative_to": "g_max", "per": "evaluation", "scale": 1.0}},
    ],
}
NUMERIC_FIELDS = [
    "mapping.g_max", "mapping.g_min", "mapping.clip_sigma", "levels.n", "programming.coefficients.0",
    "programming.reference_g_max", "programming.scale", "device_to_device.gain_std", "device_to_device.offset_std",
    "device_to_device.scale", "stuck_at.at_g_min", "stuck_at.at_g_max", "drift.t0", "drift.nu_mean.a",
    "drift.nu_mean.b", "drift.nu_std.a", "drift.nu_std.b", "drift.scale", "drift.read_noise.q",
    "drift.read_noise.exponent", "drift.read_noise.q_max", "drift.read_noise.g_floor", "drift.read_noise.t_read",
    "drift.read_noise.scale", "gaussian.sigma", "read.sigma", "read.scale",
]


def profile_with(path: str, value) -> dict:
    """BASE_PROFILE with one field (COMPONENT.FIELD[.SUB][.INDEX] or mapping.FIELD) set to ``value``."""
    data = json.loads(json.dumps(BASE_PROFILE))
    head, *rest = path.split(".")
    node = data["mapping"] if head == "mapping" else next(i[head] for i in data["noise"] if head in i)
    for part in rest[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last = rest[-1]
    if last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return data


def profile_file(content, name="p.yaml", where=None):
    def setup(env: Env):
        text = content if isinstance(content, str | bytes) else yaml.safe_dump(content, sort_keys=False)
        folder = Path(where.format(**env.vars)) if where else env.work
        env.vars["p"] = str(env.write(folder / name, text))
    return setup


ALIAS_BOMB = "\n".join([
    "name: bomb",
    "description: [&a [lol,lol,lol,lol,lol,lol,lol,lol,lol],",
    "  &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c],",
    "  &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], &g [*f,*f,*f,*f,*f,*f,*f,*f,*f],",
    "  &h [*g,*g,*g,*g,*g,*g,*g,*g,*g], &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]]",
    "noise: []",
]) + "\n"
ALIAS_BOMB_STR = ALIAS_BOMB.replace("description: [", "description: &top [").replace(
    "noise: []", "noise: [{gaussian: {sigma: 0.01}}]\nextra: *top")
VALID = yaml.safe_dump({"name": "ok", "noise": [{"gaussian": {"sigma": 0.01}}]})
STRUCTURE = [
    ("duplicate-top-key", "name: a\nname: b\nnoise: []\n"),
    ("duplicate-nested-key", "name: d\nmapping: {g_max: 25.0, g_max: 50.0}\nnoise: []\n"),
    ("duplicate-component-field", "name: d\nnoise:\n  - gaussian: {sigma: 0.01, sigma: 0.5}\n"),
    ("alias-bomb-description", ALIAS_BOMB),
    ("alias-bomb-unknown-key", ALIAS_BOMB_STR),
    ("not-utf8", b"name: \xff\xfe\xfa\nnoise: []\n"),
    ("utf16", "name: x\nnoise: []\n".encode("utf-16")),
    ("empty-file", ""),
    ("only-comment", "# nothing here\n"),
    ("top-level-list", "- gaussian: {sigma: 0.01}\n"),
    ("top-level-scalar", "hello\n"),
    ("top-level-null", "null\n"),
    ("noise-is-mapping", "name: x\nnoise: {gaussian: {sigma: 0.01}}\n"),
    ("noise-item-two-keys", "name: x\nnoise:\n  - {gaussian: {sigma: 0.01}, read: {sigma: 0.1}}\n"),
    ("unknown-component", "name: x\nnoise:\n  - telepathy: {sigma: 0.01}\n"),
    ("unknown-top-key", "name: x\nnoize: []\n"),
    ("g-max-tiny", yaml.safe_dump(profile_with("mapping.g_max", 1e-300))),
    ("g-min-above-g-max", yaml.safe_dump(profile_with("mapping.g_min", 30.0))),
    ("fraction-above-one", yaml.safe_dump(profile_with("stuck_at.at_g_min", 1.5))),
    ("levels-one", yaml.safe_dump(profile_with("levels.n", 1))),
    ("levels-float", yaml.safe_dump(profile_with("levels.n", 4.5))),
    ("bool-as-number", yaml.safe_dump(profile_with("gaussian.sigma", True))),
    ("string-number", yaml.safe_dump(profile_with("gaussian.sigma", "0.01"))),
    ("python-tag", "name: !!python/object/apply:os.system ['true']\nnoise: []\n"),
    ("bad-yaml", "name: [unclosed\nnoise: []\n"),
    ("tab-indented", "name: x\nnoise:\n\t- gaussian: {sigma: 0.01}\n"),
    ("huge-file", "# " + "x" * 200 + "\n" * 1 + ("# " + "y" * 1000 + "\n") * 16000 + VALID),
]

PROFILE_CASES = [
    case(f"profile-validate-{path}={label}", ["profiles", "validate", "{p}"],
         profile_file(profile_with(path, value)), any_of=(path.split(".")[-1].rstrip("0123456789"), "p.yaml"))
    for path in NUMERIC_FIELDS for label, value in (("inf", float("inf")), ("nan", float("nan")))
] + [
    case(f"profile-validate-{name}", ["profiles", "validate", "{p}"], profile_file(text), timeout=10)
    for name, text in STRUCTURE
] + [
    case("profile-validate-missing-file", ["profiles", "validate", "{work}/nope.yaml"]),
    case("profile-validate-directory", ["profiles", "validate", "{work}/results"], thesis),
] + [
    case(f"profile-sweep-{name}", sweep("--profile", "{p}"), profile_file(content), timeout=10)
    for name, content in [
        ("gaussian-sigma-inf", profile_with("gaussian.sigma", float("inf"))),
        ("g-max-inf", profile_with("mapping.g_max", float("inf"))),
        ("g-max-tiny", profile_with("mapping.g_max", 1e-300)),
        ("nu-mean-nan", profile_with("drift.nu_mean.b", float("nan"))),
        ("gain-std-inf", profile_with("device_to_device.gain_std", float("inf"))),
        ("gaussian-sigma-1e300", {"name": "huge", "noise": [{"gaussian": {"sigma": 1e300}}]}),
        ("programming-scale-1e300", {"name": "huge", "noise": [{"programming": {"coefficients": [1e300]}}]}),
        ("alias-bomb", ALIAS_BOMB),
        ("not-utf8", b"name: \xff\nnoise: []\n"),
        ("duplicate-key", "name: a\nnoise: []\nnoise: [{gaussian: {sigma: 0.5}}]\n"),
        ("empty", ""),
    ]
] + [
    case("profile-show-not-utf8", ["profiles", "show", "{p}"], profile_file(b"name: \xff\nnoise: []\n")),
    case("profile-show-unknown", ["profiles", "show", "nosuch"], any_of=("nosuch",)),
    case("profile-user-store-not-utf8-used-by-name", sweep("--profile", "mine"),
         profile_file(b"name: \xff\nnoise: []\n", "mine.yaml", "{home}/devices")),
    case("profile-user-store-duplicate-key-used-by-name", sweep("--profile", "mine"),
         profile_file("name: a\nnoise: []\nnoise: []\n", "mine.yaml", "{home}/devices")),
]


# ---------------------------------------------------------------- checkpoints

def broken_ckpt(fn, method="grasp-w"):
    """A copy of a tiny checkpoint at ./ck, then ``fn(folder)`` breaks it."""
    def setup(env: Env):
        thesis(env)
        fn(env.copy_ckpt(method), env)
    return setup


def weights(fn):
    """Edit the tensors of ./ck/adapter.safetensors with ``fn(dict)``."""
    def edit(folder: Path, env: Env):
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "adapter.safetensors")
        fn(tensors)
        save_file(tensors, folder / "adapter.safetensors")
    return edit


def config(fn):
    """Edit ./ck/config.json with ``fn(dict)`` (may return a replacement value or raw bytes)."""
    def edit(folder: Path, env: Env):
        meta = json.loads((folder / "config.json").read_text())
        new = fn(meta)
        new = meta if new is None else new
        data = new if isinstance(new, bytes) else json.dumps(new).encode()
        (folder / "config.json").write_bytes(data)
    return edit


def raw(name, data):
    def edit(folder: Path, env: Env):
        content = data(folder / name) if callable(data) else data
        (folder / name).write_bytes(content)
    return edit


def first(tensors, suffix):
    return next(k for k in sorted(tensors) if k.endswith(suffix))


def setitem(d, key, value):
    d[key] = value


def set_first(suffix, value):
    return weights(lambda t: setitem(t, first(t, suffix), value(t[first(t, suffix)])))


def pickle_weights(folder: Path, env: Env):
    (folder / "adapter.safetensors").write_bytes(pickle.dumps({"head.out.bias": [0.0, 0.0]}))


def pickle_only_backbone(folder: Path, env: Env):
    backbone = env.work / "pickled-model"
    shutil.copytree(env.model, backbone)
    (backbone / "model.safetensors").unlink()
    (backbone / "pytorch_model.bin").write_bytes(pickle.dumps({"weight": [1.0]}))
    config(lambda m: setitem(m, "backbone", str(backbone)))(folder, env)


def fake_header(length: int, body: bytes):
    return struct.pack("<Q", length) + body


def poke(value):
    """A copy of a tensor with its first element set to ``value``."""
    def edit(v):
        v = v.clone()
        v.view(-1)[0] = value
        return v
    return edit


CKPT_CASES = [
    case(f"ckpt-{name}", [*SWEEP[:2], "./ck", *SWEEP[3:], "--sigma", "0.01", "--out", "{work}/res"],
         broken_ckpt(fn, method))
    for name, fn, method in [
        ("adapter-truncated", raw("adapter.safetensors", lambda p: p.read_bytes()[: p.stat().st_size // 2]), "grasp-w"),
        ("adapter-empty", raw("adapter.safetensors", b""), "grasp-w"),
        ("adapter-random-bytes", raw("adapter.safetensors", bytes(range(256)) * 16), "grasp-w"),
        ("adapter-pickle-renamed", pickle_weights, "grasp-w"),
        ("adapter-header-huge-length", raw("adapter.safetensors", fake_header(2**62, b"{}")), "grasp-w"),
        ("adapter-header-not-json", raw("adapter.safetensors", fake_header(8, b"not json")), "grasp-w"),
        ("adapter-is-directory", lambda f, e: ((f / "adapter.safetensors").unlink(),
                                               (f / "adapter.safetensors").mkdir()), "grasp-w"),
        ("config-not-utf8", raw("config.json", b'{"backbone": "\xff\xfe"}'), "grasp-w"),
        ("config-not-json", raw("config.json", b"{backbone: oops"), "grasp-w"),
        ("config-empty", raw("config.json", b""), "grasp-w"),
        ("config-list", config(lambda m: [m]), "grasp-w"),
        ("config-null", config(lambda m: b"null"), "grasp-w"),
        ("config-empty-object", config(lambda m: {}), "grasp-w"),
        ("config-missing-method", config(lambda m: m.pop("method") and None), "grasp-w"),
        ("config-missing-backbone", config(lambda m: m.pop("backbone") and None), "grasp-w"),
        ("config-method-is-string", config(lambda m: setitem(m, "method", "grasp-w")), "grasp-w"),
        ("config-wrong-k", config(lambda m: setitem(m["method"], "k", 3)), "grasp-w"),
        ("config-k-string", config(lambda m: setitem(m["method"], "k", "8")), "grasp-w"),
        ("config-k-nan", config(lambda m: b'{"method": {"method": "grasp-w", "k": NaN}}'), "grasp-w"),
        ("config-unknown-method", config(lambda m: setitem(m["method"], "method", "dora")), "grasp-w"),
        ("config-method-swapped", config(lambda m: setitem(m["method"], "method", "grasp")), "grasp-w"),
        ("config-unknown-layers", config(lambda m: setitem(m["method"], "layers", "nosuch")), "grasp-w"),
        ("config-num-labels-zero", config(lambda m: setitem(m, "num_labels", 0)), "grasp-w"),
        ("config-num-labels-string", config(lambda m: setitem(m, "num_labels", "2")), "grasp-w"),
        ("config-num-labels-mismatch", config(lambda m: setitem(m, "num_labels", 3)), "grasp-w"),
        ("config-pooling-unknown", config(lambda m: setitem(m, "pooling", "max")), "grasp-w"),
        ("config-backbone-missing", config(lambda m: setitem(m, "backbone", "/nonexistent/model")), "grasp-w"),
        ("config-backbone-number", config(lambda m: setitem(m, "backbone", 5)), "grasp-w"),
        ("config-backbone-pickle-only", pickle_only_backbone, "grasp-w"),
        ("config-twin-missing", config(lambda m: setitem(m, "twin", "no-such-twin")), "stochgrasp"),
        ("tensor-nan-in-mu", set_first(".mu", poke(float("nan"))), "grasp-w"),
        ("tensor-inf-in-mu", set_first(".mu", lambda v: v + float("inf")), "grasp-w"),
        ("tensor-inf-in-head", set_first("head.out.weight", lambda v: v * float("inf")), "grasp-w"),
        ("tensor-nan-in-head-bias", set_first("head.dense.bias", lambda v: v * float("nan")), "grasp-w"),
        ("tensor-nan-in-gamma", set_first(".gamma", lambda v: v * float("nan")), "grasp"),
        ("tensor-zero-gamma", set_first(".gamma", lambda v: v * 0), "grasp"),
        ("tensor-int32-head", set_first("head.out.weight", lambda v: (v * 100).to(__import__("torch").int32)),
         "grasp-w"),
        ("tensor-float-group", set_first(".group", lambda v: v.float()), "grasp-w"),
        ("tensor-group-minus-one", set_first(".group", poke(-1)), "grasp-w"),
        ("tensor-group-equal-k", set_first(".group", poke(8)), "grasp-w"),
        ("tensor-group-huge", set_first(".group", poke(30000)), "grasp-w"),
        ("tensor-group-short", set_first(".group", lambda v: v[:-1].clone()), "grasp-w"),
        ("tensor-mu-wrong-shape", set_first(".mu", lambda v: v[:, :4].clone()), "grasp-w"),
        ("tensor-extra", weights(lambda t: setitem(t, "encoder.backdoor", t[first(t, "head.out.bias")].clone())),
         "grasp-w"),
        ("tensor-missing", weights(lambda t: t.pop(first(t, ".mu"))), "grasp-w"),
        ("tensor-missing-group", weights(lambda t: t.pop(first(t, ".group"))), "grasp-w"),
    ]
] + [
    case("ckpt-hidden-temp-folder-by-name", [*SWEEP[:2], ".mine-abc123", *SWEEP[3:], "--out", "{work}/res"],
         store_with(".mine-abc123")),
    case("ckpt-config-only-leftover-by-name", [*SWEEP[:2], "half", *SWEEP[3:], "--out", "{work}/res"],
         lambda env: (thesis(env), env.copy_ckpt("grasp-w", env.store / "half"),
                      (env.store / "half" / "adapter.safetensors").unlink())),
    case("ckpt-empty-name", [*SWEEP[:2], "", *SWEEP[3:], "--out", "{work}/res"], thesis),
    case("ckpt-root", [*SWEEP[:2], "/", *SWEEP[3:], "--out", "{work}/res"], thesis),
    case("ckpt-store-file-by-name", [*SWEEP[:2], "notes", *SWEEP[3:], "--out", "{work}/res"],
         lambda env: (thesis(env), env.write(env.store / "notes", "not a checkpoint\n"))),
    case("ckpt-unknown-name", [*SWEEP[:2], "sst2-stok", *SWEEP[3:], "--out", "{work}/res"], any_of=("sst2-stok",)),
]


# ---------------------------------------------------------------- --data files

DATA_CASES = [
    case(f"data-{name}", sweep("--data", "{f}"), file_setup(fname, content))
    for name, fname, content in [
        ("extra-field", "d.tsv", "sentence\tlabel\ngood film\t1\textra\nbad film\t0\n"),
        ("extra-field-last-row", "d.tsv", "sentence\tlabel\ngood film\t1\nbad film\t0\tx\n"),
        ("missing-field", "d.tsv", "sentence\tlabel\ngood film\t1\nbad film\n"),
        ("label-half", "d.tsv", "sentence\tlabel\ngood film\t1.5\nbad film\t0\n"),
        ("label-negative", "d.tsv", "sentence\tlabel\ngood film\t-1\nbad film\t0\n"),
        ("label-overflow-int64", "d.tsv", "sentence\tlabel\ngood film\t99999999999999999999\nbad film\t0\n"),
        ("label-2-pow-63", "d.tsv", "sentence\tlabel\ngood film\t9223372036854775808\nbad film\t0\n"),
        ("label-word", "d.tsv", "sentence\tlabel\ngood film\tyes\nbad film\t0\n"),
        ("label-empty", "d.tsv", "sentence\tlabel\ngood film\t\nbad film\t0\n"),
        ("label-nan", "d.tsv", "sentence\tlabel\ngood film\tnan\nbad film\t0\n"),
        ("label-inf", "d.tsv", "sentence\tlabel\ngood film\tinf\nbad film\t0\n"),
        ("label-out-of-range", "d.tsv", "sentence\tlabel\ngood film\t2\nbad film\t0\n"),
        ("empty-file", "d.tsv", ""),
        ("header-only", "d.tsv", "sentence\tlabel\n"),
        ("not-utf8", "d.tsv", b"sentence\tlabel\ngood \xff\xfe film\t1\nbad film\t0\n"),
        ("wrong-columns", "d.tsv", "text\ty\ngood film\t1\n"),
        ("csv-extra-field", "d.csv", "sentence,label\ngood film,1,extra\nbad film,0\n"),
        ("csv-label-half", "d.csv", "sentence,label\ngood film,0.5\nbad film,0\n"),
        ("binary", "d.tsv", bytes(range(256)) * 4),
    ]
] + [
    case("data-directory", sweep("--data", "{work}/results"), thesis),
    case("data-missing-file", sweep("--data", "{work}/nope.tsv"), any_of=("nope.tsv",)),
    case("data-empty-name", sweep("--data", "")),
    case("train-data-extra-field", train("--data", "{f}"), file_setup("d.tsv", "sentence\tlabel\na\t1\tx\nb\t0\n")),
    case("train-data-label-half", train("--data", "{f}"), file_setup("d.tsv", "sentence\tlabel\na\t1.5\nb\t0\n")),
    case("train-eval-data-not-utf8", train("--eval-data", "{f}"), file_setup("d.tsv", b"sentence\tlabel\n\xff\t1\n")),
]


# ---------------------------------------------------------------- --config YAML


CONFIG_BASE = {"ckpt": "[{gw}]", "data": "{tsv}", "programs": "1", "out": "{work}/res"}


def config_file(content: str | bytes, complete: bool = True):
    """./c.yaml. Text is formatted with env.vars ({gw} → the tiny checkpoint) and, when ``complete``, gets the
    ckpt / data / programs / out lines it does not set itself (so nothing is overridden from the command line)."""
    def setup(env: Env):
        text = content
        if isinstance(text, str):
            given = set(re.findall(r"^(\w+):", text, re.M))
            extra = "".join(f"{k}: {v}\n" for k, v in CONFIG_BASE.items() if k not in given) if complete else ""
            text = (extra + text).format(**env.vars)
        env.vars["f"] = str(env.write("c.yaml", text))
    return setup


CONFIG_CASES = [
    case(f"config-{name}", ["sweep", "--config", "{f}"], config_file(text, complete), timeout=10)
    for name, text, complete in [
        ("ckpt-number", "ckpt: 5\n", True),
        ("ckpt-list-of-numbers", "ckpt: [5]\n", True),
        ("ckpt-null-item", "ckpt: [null]\n", True),
        ("ckpt-empty-list", "ckpt: []\n", True),
        ("sigma-mapping", "sigma: {{a: 1}}\n", True),
        ("sigma-nan", "sigma: .nan\n", True),
        ("sigma-list-inf", "sigma: [0.01, .inf]\n", True),
        ("sigma-list-repeated-string", "sigma: ['0.01,0.02']\n", True),
        ("programs-float", "programs: 1.5\n", True),
        ("programs-inf", "programs: .inf\n", True),
        ("programs-zero", "programs: 0\n", True),
        ("seeds-zero", "ckpt: [{gw}]\ndata: {tsv}\nout: {work}/res\nseeds: 0\n", False),  # programs' old name
        ("seeds-and-programs", "seeds: 1\nprograms: 2\n", True),
        ("chips-bool", "chips: true\n", True),
        ("chips-string", "chips: '3'\n", True),
        ("unknown-key", "sigmas: 0.01\n", True),
        ("duplicate-key", "sigma: 0.01\nsigma: 0.05\n", True),
        ("duplicate-key-programs", "programs: 1\nprograms: 2\n", False),
        ("not-utf8", b"ckpt: [\xff\xfe]\n", False),
        ("top-level-list", "- ckpt: x\n", False),
        ("empty", "", False),
        ("scalar", "sweep\n", False),
        ("alias-bomb", ALIAS_BOMB.split("\n", 1)[1].replace("description:", "profile:").replace("noise: []\n", ""),
         True),
        ("out-number", "out: 5\n", True),
        ("out-empty", "out: ''\n", True),
        ("profile-null-item", "profile: [null]\n", True),
        ("set-number-item", "profile: pcm\nset: [5]\n", True),
        ("set-mapping-nan", "profile: pcm\nset: {{programming.scale: [.nan]}}\n", True),
        ("backend-number", "backend: 5\n", True),
        ("data-number", "data: 5\n", True),
        ("time-nan", "profile: pcm\ntime: [.nan]\n", True),
        ("ray-address-without-ray", "ray_address: auto\n", True),
        ("python-tag", "ckpt: !!python/object/apply:os.getcwd []\n", True),
    ]
] + [
    case("config-missing-file", sweep("--config", "{work}/nope.yaml")),
    case("config-directory", sweep("--config", "{work}/results"), thesis),
]


# ---------------------------------------------------------------- train

def train_words(flag: str, value: str) -> tuple[str, ...]:
    """The error names the option (as --flag, flag, flag_name or 'flag name', singular or plural) or the value."""
    stem = flag[2:].rstrip("s")
    return (stem, stem.replace("-", "_"), stem.replace("-", " "), *([value] if len(value) > 2 else []))


TRAIN_CASES = [
    case(f"train-{flag[2:]}-{name}", train(flag, value), thesis, any_of=train_words(flag, value))
    for flag, name, value in [
        ("--lr", "nan", "nan"), ("--lr", "inf", "inf"), ("--lr", "negative", "-1"), ("--head-lr", "nan", "nan"),
        ("--sigma-lr", "nan", "nan"), ("--eval-every", "0", "0"), ("--eval-every", "negative", "-1"),
        ("--steps", "0", "0"), ("--steps", "negative", "-5"), ("--k", "0", "0"), ("--k", "negative", "-1"),
        ("--dropout", "above-one", "1.5"), ("--dropout", "nan", "nan"), ("--batch-size", "0", "0"),
        ("--max-length", "0", "0"), ("--lambda", "nan", "nan"), ("--sigma-init", "nan", "nan"),
        ("--sigma-init", "negative", "-0.1"), ("--sigma-target", "inf", "inf"), ("--target-warmup", "2", "2"),
        ("--target-warmup", "nan", "nan"), ("--length-group", "0", "0"), ("--method", "empty", ""),
        ("--layers", "unknown", "q,nosuch"), ("--rows", "unknown", "diagonal"), ("--pooling", "unknown", "max"),
        ("--noise-path", "unknown", "sideways"), ("--sigma-reduction", "unknown", "median"),
        ("--model", "missing", "/nonexistent/model"),
    ]
] + [
    case("train-twin-no-such", train("--method", "stochgrasp", "--twin", "no-such-name"), thesis,
         any_of=("no-such-name",)),
    case("train-model-pickle-only", train("--model", "{work}/pickled"),
         lambda env: (thesis(env), shutil.copytree(env.model, env.work / "pickled"),
                      (env.work / "pickled" / "model.safetensors").unlink(),
                      env.write("pickled/pytorch_model.bin", pickle.dumps({"w": 1})))),
    case("train-model-empty-folder", train("--model", "{work}/results"), thesis),
]


# ---------------------------------------------------------------- usage errors (typer / click)

USAGE_CASES = [
    case("usage-unknown-option", sweep("--sigmaa", "0.1"), any_of=("--sigmaa",)),
    case("usage-unknown-command", ["swep", "--ckpt", "x"], any_of=("swep",)),
    case("usage-unknown-subcommand", ["profiles", "lst"], any_of=("lst",)),
    case("usage-train-missing-out", TRAIN, any_of=("--out",)),
    case("usage-seeds-not-int", sweep("--seeds", "abc"), any_of=("--seeds", "abc")),
    case("usage-programs-not-int", sweep("--programs", "abc"), any_of=("--programs", "abc")),
    case("usage-option-missing-value", [*SWEEP, "--chips"], any_of=("--chips",)),
    case("usage-extra-positional", [*sweep(), "stray"], any_of=("stray",)),
    case("usage-bool-flag-with-value", sweep("--csv=yes"), any_of=("--csv",)),
    case("usage-validate-no-files", ["profiles", "validate"]),
    case("usage-plot-no-results", ["plot"]),
    case("usage-ckpts-extra-arg", ["ckpts", "extra"], any_of=("extra",)),
    case("usage-train-k-not-int", train("--k", "abc"), any_of=("--k", "abc")),
]


ALL = OUT_CASES + RESULTS_CASES + NUMBER_CASES + SET_CASES + PROFILE_CASES + CKPT_CASES + DATA_CASES + \
    CONFIG_CASES + TRAIN_CASES + USAGE_CASES
