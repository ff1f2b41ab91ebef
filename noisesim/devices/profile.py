"""Device profiles: loading by name or path, parameter overrides, and realizing one layer's weights."""

from __future__ import annotations

import copy
import difflib
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from noisesim.devices import schema
from noisesim.devices.components import COMPONENTS, Component, DeviceArray, Drift, RuntimeRead
from noisesim.errors import UserError
from noisesim.seeds import generator


def bundled_profiles() -> Path:
    """The profiles shipped with noisesim (the repository's ``devices/`` folder)."""
    return Path(str(resources.files("noisesim").joinpath("devices", "profiles")))


def user_profiles() -> Path:
    return Path(os.environ.get("NOISESIM_HOME", Path.home() / ".noisesim")) / "devices"


def known_profiles() -> dict[str, Path]:
    """Name → file for every profile in the user folder (first) and the bundled one."""
    found: dict[str, Path] = {}
    for folder in (bundled_profiles(), user_profiles()):
        if folder.is_dir():
            for path in sorted(folder.glob("*.yaml")):
                found[path.stem] = path
    return found


@dataclass
class Realization:
    """One layer's realized weight, plus any read noise that is redrawn at run time."""

    weight: torch.Tensor
    runtime_read: RuntimeRead | None = None


class Profile:
    """A validated device profile: a mapping and an ordered list of noise components."""

    def __init__(self, data: dict, source: str = "<profile>", name: str | None = None):
        self.data = data
        self.source = source
        self.spec = schema.validate(data, source)
        self.name = name or self.spec.name or Path(source).stem
        self.components: list[Component] = [COMPONENTS[kind](spec) for kind, spec in self.spec.noise]

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
        with i the component's position, so re-programming a chip keeps its device-to-device draws."""
        if self.noiseless:  # exact, not a conductance round trip
            return Realization(weight.detach().clone())
        if self.weight_space:  # the paper's protocol: w + σ·ε directly (same ε as through the mapping)
            out = weight.detach().clone()
            for i, comp in enumerate(self.components):
                gen = generator(seed, comp.stage, chip, program, layer, i)
                out.add_(torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device), alpha=comp.spec.sigma)
            return Realization(out)
        array = map_weight(weight, self.spec.mapping)
        for i, comp in enumerate(self.components):
            keys = {"chip": (chip,), "program": (chip, program), "read": (chip, program, read)}[comp.stage]
            gen = generator(seed, comp.stage, *keys, layer, i)
            if isinstance(comp, Drift):
                comp.apply(array, gen, t, read_gen=generator(seed, "read", chip, program, read, layer, i))
            else:
                comp.apply(array, gen, t)
        out = array.weight().to(weight.dtype)
        if array.runtime_read is not None:
            array.runtime_read.var.mul_(array.alpha ** 2)
        return Realization(out, array.runtime_read)


def _component_params(data: dict, head: str, name: str, path: str) -> dict:
    items = data.get("noise") or []
    if head.startswith("noise[") and head.endswith("]"):
        try:
            item = items[int(head[6:-1])]
        except (ValueError, IndexError):
            raise UserError(f"--set {path}: profile {name!r} has {len(items)} components") from None
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


def read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read profile ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}: not valid YAML{where} ({getattr(exc, 'problem', exc)})") from None
    return data


def load_profile(name_or_path: str | Path | Profile) -> Profile:
    """A profile from a shipped or user profile name (``pcm``) or a YAML file path."""
    if isinstance(name_or_path, Profile):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"profile file {text} not found")
        return Profile(read_yaml(path), str(path))
    known = known_profiles()
    if text not in known:
        hint = difflib.get_close_matches(text, known, n=1)
        raise UserError(f"unknown device profile {text!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        + f"; known: {', '.join(known)} (or give a .yaml path)")
    return Profile(read_yaml(known[text]), str(known[text]), name=text)
