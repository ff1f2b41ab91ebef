"""Where profiles come from: built in (``ideal``, ``gaussian``), shipped files, user files, paths.

Names: the shipped profiles (``devices/*.yaml`` of the repository, installed as ``noisesim/profiles``) come
first and cannot be shadowed. A user profile (``$NOISESIM_HOME/devices/NAME.yaml``) named like a shipped one
is never used: asking for that name is an error that says to rename the file, and ``profiles list`` marks
it. Any other file whose name (``name:`` or file name) is a shipped one is refused too, so a row labelled
``pcm`` or ``ideal`` is always the shipped profile (with the ``--set`` values of its row).

The protocol profiles ``ideal`` and ``gaussian`` are built from ``BUILTIN`` in code, so a sweep needs no file
to run them; their files (kept for ``profiles show``, with a header) hold the same data.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from noisesim.devices.profile import Profile
from noisesim.errors import UserError
from noisesim.safeyaml import load_yaml

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
PACKAGE = "noisesim.profiles"  # setuptools maps the repository's devices/ folder to this package

BUILTIN: dict[str, dict] = {
    "ideal": {"name": "ideal", "description": "Noise-free devices (reference).", "noise": []},
    "gaussian": {"name": "gaussian",
                 "description": "Additive per-weight Gaussian noise in weight units (the paper's Fig. 6 protocol).",
                 "noise": [{"gaussian": {"sigma": 0.02, "relative_to": "weight"}}]},
}


def bundled_profiles() -> Path:
    """The folder of the shipped profiles: ``devices/`` of the source tree this code runs from (a repository
    root: it has a ``pyproject.toml``), else the package ``noisesim.profiles`` (the repository's ``devices/``,
    mapped by setuptools for a wheel, ``pip install .`` and ``pip install -e .``). The source tree comes first
    so that code run from a checkout (``PYTHONPATH``) never pairs with another checkout's editable-installed
    profiles. UserError if the folder holds no profile."""
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").is_file() and any((root / "devices").glob("*.yaml")):
        folder = root / "devices"
    else:
        try:
            folder = Path(str(resources.files(PACKAGE)))
        except ModuleNotFoundError:
            folder = root / "devices"  # a source tree without pyproject.toml: the repository root
    if not (folder.is_dir() and any(folder.glob("*.yaml"))):
        raise UserError(f"noisesim's shipped device profiles are missing (no {PACKAGE} package, nothing in"
                        f" {folder}); reinstall noisesim (pip install noisesim, or pip install -e . in its repository)")
    return folder


def user_profiles() -> Path:
    return Path(os.environ.get("NOISESIM_HOME") or Path.home() / ".noisesim") / "devices"


def _files(folder: Path) -> dict[str, Path]:
    try:
        return ({p.stem: p for p in sorted(folder.glob("*.yaml"), key=lambda p: p.stem) if p.is_file()}
                if folder.is_dir() else {})
    except OSError:
        return {}


def shipped_profiles() -> dict[str, Path]:
    """Name → file of the profiles shipped with noisesim."""
    return _files(bundled_profiles())


def known_profiles() -> dict[str, Path]:
    """Name → file of every profile usable by name: the shipped ones, then user ones that shadow none."""
    shipped = shipped_profiles()
    taken = {*BUILTIN, *shipped}
    return {**shipped, **{n: p for n, p in _files(user_profiles()).items() if n not in taken}}


@dataclass
class ProfileEntry:
    """One line of ``noisesim profiles list``: a usable profile, or a file with its one-line problem."""

    name: str
    path: Path
    origin: str  # "shipped" | "user"
    profile: Profile | None = None
    problem: str | None = None


def profile_listing() -> list[ProfileEntry]:
    """Every shipped and user profile file; an invalid or shadowing user file is listed with its problem
    instead of breaking the listing."""
    shipped = shipped_profiles()
    taken = {*BUILTIN, *shipped}
    entries = [ProfileEntry(n, p, "shipped") for n, p in shipped.items()]
    entries += [ProfileEntry(n, p, "user") for n, p in _files(user_profiles()).items()]
    for entry in entries:
        if entry.origin == "user" and entry.name in taken:
            entry.problem = (f"has the name of a shipped profile, so --profile {entry.name} is refused until you"
                             f" rename this file (e.g. {entry.name}-custom.yaml)")
            continue
        try:
            entry.profile = (_from_file(entry.path, entry.name) if entry.origin == "shipped"
                             else _user_profile(entry.name, entry.path))
        except UserError as exc:
            entry.problem = str(exc).removeprefix(f"{entry.path}: ")
    return entries


def builtin_profile(name: str) -> Profile:
    """A shipped profile, never a user file: ``ideal`` (the clean reference) and ``gaussian`` (the paper's
    protocol) are built in code; another shipped name is read from its file."""
    if name in BUILTIN:
        return Profile(BUILTIN[name], f"<built-in {name}>", name=name)
    shipped = shipped_profiles()
    if name not in shipped:
        raise UserError(f"no shipped profile {name!r}; shipped: {', '.join(sorted({*BUILTIN, *shipped}))}")
    return _from_file(shipped[name], name)


def _from_file(path: Path, name: str | None = None) -> Profile:
    prof = Profile(load_yaml(path, "profile"), str(path), name=name)
    prof.path = Path(path)
    return prof


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _user_profile(name: str, path: Path) -> Profile:
    """A profile of the user folder, by its file name (which its ``name:`` field, if any, must equal)."""
    if not NAME.fullmatch(name):
        raise UserError(f"{path}: profile name {name!r} must be letters, digits, '.', '_' or '-' (at most 64);"
                        " rename the file")
    prof = _from_file(path, name)
    if prof.spec.name is not None and prof.spec.name != name:
        raise UserError(f"{path}: its name: field {prof.spec.name!r} differs from the file name; make them equal"
                        " (or remove name:)")
    return prof


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """A profile from a shipped or user profile name (``pcm``) or a YAML file path.

    A name that is both shipped and in the user folder is refused (rename the user file); a file whose
    name is a shipped profile's is refused unless it is that shipped file.
    """
    if isinstance(name_or_path, Profile):
        return name_or_path
    if not isinstance(name_or_path, str | Path):
        raise TypeError(f"profile must be a name, a path or a Profile, not {type(name_or_path).__name__}")
    text = str(name_or_path)
    path = Path(text)
    shipped = shipped_profiles()
    if path.suffix in (".yaml", ".yml") or ("/" in text or os.sep in text) or path.is_file():
        if not path.is_file():
            raise UserError(f"profile file {text} not found")
        prof = _from_file(path)
        if prof.name in {*BUILTIN, *shipped} and not (prof.name in shipped and _same_file(path, shipped[prof.name])):
            raise UserError(f"{text}: its name {prof.name!r} is a shipped profile's; rename it (the name: field or"
                            " the file name) so its results are not mistaken for the shipped one")
        if not NAME.fullmatch(prof.name):
            raise UserError(f"{text}: profile name {prof.name!r} must be letters, digits, '.', '_' or '-' (at most 64);"
                            " rename the file or set name:")
        return prof
    user = _files(user_profiles())
    if text in shipped or text in BUILTIN:
        if text in user:
            raise UserError(f"profile {text!r} is shipped with noisesim, and {user[text]} has the same name; rename"
                            f" that file (e.g. {text}-custom.yaml) to use it, or remove it to use the shipped one")
        return _from_file(shipped[text], text) if text in shipped else builtin_profile(text)
    if text in user:
        return _user_profile(text, user[text])
    known = known_profiles()
    hint = difflib.get_close_matches(text, known, n=1)
    raise UserError(f"unknown device profile {text!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; known: {', '.join(known)} (or give a .yaml path)")
