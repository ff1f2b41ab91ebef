"""Device profiles: loading by name or path, parameter overrides, and realizing one layer's weights.

Names: the shipped profiles (``devices/*.yaml``) come first and cannot be shadowed. A user profile
(``$NOISESIM_HOME/devices/NAME.yaml``) named like a shipped one is never used: asking for that name is an
error that says to rename the file, and ``profiles list`` marks it. Any other file whose name (``name:``
or file name) is a shipped one is refused too, so a row labelled ``pcm`` or ``ideal`` is always the
shipped profile (with the ``--set`` values of its row).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import math
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from noisesim.devices import schema
from noisesim.devices.components import COMPONENTS, Component, DeviceArray, Drift, RuntimeRead
from noisesim.errors import UserError
from noisesim.safeyaml import load_yaml
from noisesim.seeds import generator

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def bundled_profiles() -> Path:
    """The profiles shipped with noisesim (the repository's ``devices/`` folder)."""
    return Path(str(resources.files("noisesim").joinpath("devices", "profiles")))


def user_profiles() -> Path:
    return Path(os.environ.get("NOISESIM_HOME") or Path.home() / ".noisesim") / "devices"


def _files(folder: Path) -> dict[str, Path]:
    try:
        return {p.stem: p for p in sorted(folder.glob("*.yaml")) if p.is_file()} if folder.is_dir() else {}
    except OSError:
        return {}


def shipped_profiles() -> dict[str, Path]:
    """Name → file of the profiles shipped with noisesim."""
    return _files(bundled_profiles())


def known_profiles() -> dict[str, Path]:
    """Name → file of every profile usable by name: the shipped ones, then user ones that shadow none."""
    shipped = shipped_profiles()
    return {**shipped, **{n: p for n, p in _files(user_profiles()).items() if n not in shipped}}


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
    entries = [ProfileEntry(n, p, "shipped") for n, p in shipped.items()]
    entries += [ProfileEntry(n, p, "user") for n, p in _files(user_profiles()).items()]
    for entry in entries:
        if entry.origin == "user" and entry.name in shipped:
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
    """A shipped profile, never a user file (e.g. the ``ideal`` clean reference, the ``gaussian`` protocol)."""
    shipped = shipped_profiles()
    if name not in shipped:
        raise UserError(f"no shipped profile {name!r}; shipped: {', '.join(shipped)}")
    return _from_file(shipped[name], name)


@dataclass
class Realization:
    """One layer's realized weight, plus any read noise that is redrawn at run time."""

    weight: torch.Tensor
    runtime_read: RuntimeRead | None = None


class Profile:
    """A validated device profile: a mapping and an ordered list of noise components."""

    def __init__(self, data: dict, source: str = "<profile>", name: str | None = None):
        self.data = _plain(copy.deepcopy(data))
        self.source = str(source)
        self.path: Path | None = None  # the file it was read from, if any
        self.spec = schema.validate(self.data, self.source)
        self.name = name or self.spec.name or Path(self.source).stem
        self.components: list[Component] = [COMPONENTS[kind](spec) for kind, spec in self.spec.noise]
        if self.name == "ideal" and not self.noiseless:
            raise UserError(f"{self.source}: a profile named 'ideal' must be noise-free (it is the clean"
                            " reference); give this one another name")

    def __repr__(self) -> str:
        return f"Profile({self.name!r}: {', '.join(c.key for c in self.components) or 'ideal'})"

    @property
    def sha256(self) -> str:
        text = yaml.safe_dump(self.data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def noiseless(self) -> bool:
        """True when the profile leaves every weight exactly as programmed (no clipping, no active component)."""
        return self.spec.mapping.clip_sigma is None and all(c.noiseless for c in self.components)

    @property
    def weight_space(self) -> bool:
        """True when every component is additive Gaussian noise in weight units (no conductances needed)."""
        return self.spec.mapping.clip_sigma is None and all(
            c.key == "gaussian" and c.spec.relative_to == "weight" for c in self.components)

    @property
    def has_drift(self) -> bool:
        return any(isinstance(c, Drift) for c in self.components)

    def with_values(self, values: dict[str, Any]) -> Profile:
        """A copy with parameters set, e.g. {'programming.scale': 2, 'drift.compensation': 'global'}.

        A path is ``COMPONENT.FIELD[.SUBFIELD]`` (the first component of that kind), ``noise[I].FIELD``,
        or ``mapping.FIELD``. The result is validated like a file.
        """
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise TypeError("with_values: values must be a dict {'COMPONENT.FIELD': value}")
        data = copy.deepcopy(self.data)
        for path, value in values.items():
            head, *rest = path.split(".")
            if not rest:
                raise UserError(f"--set {path}: give COMPONENT.FIELD, e.g. programming.scale=0.5,1,2")
            if head == "mapping":
                node = data.setdefault("mapping", {})
            else:
                node = _component_params(data, head, self.name, path)
            for part in rest[:-1]:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
                if not isinstance(child, dict):
                    raise UserError(f"--set {path}: {part!r} of profile {self.name!r} is not a group of fields")
                node = child
            node[rest[-1]] = value
        return Profile(data, f"{self.source} with --set {', '.join(f'{k}={v}' for k, v in values.items())}",
                       name=self.name)

    def realize(self, weight: torch.Tensor, t: float = 0.0, chip: int = 0, program: int = 0, read: int = 0,
                seed: int = 0, layer: str = "") -> Realization:
        """The weight one chip realizes for ``weight`` after programming ``program`` and read ``read`` at
        time ``t`` (s). Streams: chip (seed, chip, layer, i), program (+ program), read (+ program, read),
        with i the component's position, so re-programming a chip keeps its device-to-device draws.

        ``weight`` must be a floating-point tensor (TypeError otherwise: integer weights would round the
        noise away) with finite values; a component that makes a weight inf or NaN is a UserError naming it.
        """
        _check_weight(weight)
        _check_indices(chip, program, read, seed, layer)
        t = _check_time(t)
        out = self._realize(weight, t, chip, program, read, seed, layer)
        # fast check: a sum is finite only if every term is; on a non-finite sum the draws are replayed
        # (same seeds, same numbers) with a check after every stage, to name what made the weight inf or NaN
        total = out.weight.sum() + (out.runtime_read.var.sum() if out.runtime_read is not None else 0)
        if not bool(torch.isfinite(total)):
            flags: list = []
            self._realize(weight, t, chip, program, read, seed, layer, flags)
            self._raise_if_not_finite(flags, layer)
        return out

    def _realize(self, weight: torch.Tensor, t: float, chip: int, program: int, read: int, seed: int, layer: str,
                 finite: list | None = None) -> Realization:
        """``realize`` without checks; with ``finite``, a flag per stage: input, each component, mapped back."""
        if finite is not None:
            finite.append(torch.isfinite(weight).all())
        if self.noiseless or weight.numel() == 0:  # exact, not a conductance round trip
            return Realization(weight.detach().clone())
        if self.weight_space:  # the paper's protocol: w + σ·ε directly (same ε as through the mapping)
            out = weight.detach().clone()
            for i, comp in enumerate(self.components):
                gen = generator(seed, comp.stage, chip, program, layer, i)
                out.add_(torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device), alpha=comp.spec.sigma)
                if finite is not None:
                    finite.append(torch.isfinite(out).all())
            return Realization(out)
        array = map_weight(weight, self.spec.mapping)
        for i, comp in enumerate(self.components):
            keys = {"chip": (chip,), "program": (chip, program), "read": (chip, program, read)}[comp.stage]
            gen = generator(seed, comp.stage, *keys, layer, i)
            if isinstance(comp, Drift):
                comp.apply(array, gen, t, read_gen=generator(seed, "read", chip, program, read, layer, i))
            else:
                comp.apply(array, gen, t)
            if finite is not None:
                flag = torch.isfinite(array.g_pos).all() & torch.isfinite(array.g_neg).all()
                if array.runtime_read is not None:
                    flag = flag & torch.isfinite(array.runtime_read.var).all()
                finite.append(flag & math.isfinite(array.alpha))
        out = array.weight().to(weight.dtype)
        if array.runtime_read is not None:
            array.runtime_read.var.mul_(array.alpha ** 2)
        if finite is not None:
            rr = array.runtime_read
            finite.append(torch.isfinite(out).all() & (torch.isfinite(rr.var).all() if rr is not None else True))
        return Realization(out, array.runtime_read)

    def _raise_if_not_finite(self, flags: list[torch.Tensor], layer: str) -> None:
        """flags: input weight, then one per component, then (optionally) the weight mapped back."""
        ok = torch.stack([torch.as_tensor(f, device=flags[0].device) for f in flags]).cpu().tolist()
        if all(ok):
            return  # only the fast check's sum overflowed: every weight is finite
        bad = ok.index(False)
        where = f" in layer {layer}" if layer else ""
        if bad == 0:
            raise UserError(f"profile {self.name!r}: the weight{where} holds inf or NaN before any noise;"
                            " the checkpoint is corrupt (retrain it or use another)")
        if bad <= len(self.components):
            comp = self.components[bad - 1]
            raise UserError(f"profile {self.name!r}: noise[{bad - 1}] {comp.key} produced non-finite weights{where}"
                            " (inf or NaN); lower its parameters (e.g. scale, sigma) or check the weights' range")
        raise UserError(f"profile {self.name!r}: the weights{where} overflow when mapped back from conductances"
                        " (inf or NaN); lower the noise parameters or check the weights' range")


def _plain(value: Any) -> Any:
    """Builtin types only (subclasses such as numpy floats become float), so the profile hashes and dumps."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return kind(value)
    return value


def _check_weight(weight: Any) -> None:
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor, not {type(weight).__name__}")
    if weight.device.type == "meta":
        raise TypeError("weight is a meta tensor (no values); give a tensor with data")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, not {weight.dtype} (integer weights would round"
                        " the noise away); convert it with weight.float()")


def _check_indices(chip: Any, program: Any, read: Any, seed: Any, layer: Any) -> None:
    """Realization indices are plain non-negative integers (1.5, '0', True would silently pick another
    stream), the seed a 62-bit one, the layer a name."""
    for name, value in (("chip", chip), ("program", program), ("read", read), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, not {type(value).__name__} ({value!r})")
        if not 0 <= value <= 2**62:
            raise UserError(f"{name} = {value} must lie in [0, 2**62]")
    if not isinstance(layer, str):
        raise TypeError(f"layer must be a str (the layer's name), not {type(layer).__name__}")


def _check_time(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise TypeError(f"t must be a number of seconds, not {type(t).__name__} (devices.to_seconds reads '1d')")
    try:
        seconds = float(t)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise UserError(f"time t = {t!r} s must be finite and >= 0")
    return seconds


def _component_params(data: dict, head: str, name: str, path: str) -> dict:
    items = data.get("noise") or []
    if head.startswith("noise["):
        index = re.fullmatch(r"noise\[([0-9]{1,6})\]", head)
        if index is None or int(index.group(1)) >= len(items):
            raise UserError(f"--set {path}: give noise[I] with I from 0 to {len(items) - 1} (profile {name!r} has"
                            f" {len(items)} components; negative indices are not accepted)" if items else
                            f"--set {path}: profile {name!r} has no noise components")
        item = items[int(index.group(1))]
        (kind, params), = item.items()
    else:
        kinds = [next(iter(item)) for item in items if isinstance(item, dict) and item]
        if head not in kinds:
            raise UserError(f"--set {path}: profile {name!r} has no {head!r} component"
                            f" (it has: {', '.join(kinds) or 'none'}; or use mapping.FIELD)")
        item = items[kinds.index(head)]
        kind, params = head, item[head]
    if params is None:
        params = item[kind] = {}
    return params


def map_weight(weight: torch.Tensor, mapping: schema.Mapping) -> DeviceArray:
    """Weight (out, in) → differential pair: the positive part on G+, the negative part on G−, each
    g_min + |w|/k with k = abs-max/(g_max − g_min) per tensor or per output column (optionally after
    clipping w to ±clip_sigma·std)."""
    w = weight.detach().to(torch.float32)
    per_column = mapping.scale == "column" and w.dim() > 1
    reduce = {"dim": tuple(range(1, w.dim())), "keepdim": True} if per_column else {}
    if mapping.clip_sigma is not None:
        bound = w.std(**reduce) * mapping.clip_sigma if per_column else w.std() * mapping.clip_sigma
        w = torch.maximum(torch.minimum(w, bound), -bound)
    absmax = w.abs().amax(**reduce) if per_column else w.abs().max()
    absmax = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    k = absmax / (mapping.g_max - mapping.g_min)
    g_pos = w.clamp(min=0).div_(k).add_(mapping.g_min)
    g_neg = (-w).clamp_(min=0).div_(k).add_(mapping.g_min)
    return DeviceArray(g_pos, g_neg, k, mapping.g_max, mapping.g_min, g_pos.clone(), g_neg.clone())


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
        if prof.name in shipped and not _same_file(path, shipped[prof.name]):
            raise UserError(f"{text}: its name {prof.name!r} is a shipped profile's; rename it (the name: field or"
                            " the file name) so its results are not mistaken for the shipped one")
        if not NAME.fullmatch(prof.name):
            raise UserError(f"{text}: profile name {prof.name!r} must be letters, digits, '.', '_' or '-' (at most 64);"
                            " rename the file or set name:")
        return prof
    user = _files(user_profiles())
    if text in shipped:
        if text in user:
            raise UserError(f"profile {text!r} is shipped with noisesim, and {user[text]} has the same name; rename"
                            f" that file (e.g. {text}-custom.yaml) to use it, or remove it to use the shipped one")
        return _from_file(shipped[text], text)
    if text in user:
        return _user_profile(text, user[text])
    known = known_profiles()
    hint = difflib.get_close_matches(text, known, n=1)
    raise UserError(f"unknown device profile {text!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; known: {', '.join(known)} (or give a .yaml path)")
