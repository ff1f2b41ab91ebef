"""What a device profile is and does: its validated form (``ProfileSpec``), parameter overrides, and realizing
one layer's weights. Where profiles come from (shipped, built in, user files) is ``library.py``."""

from __future__ import annotations

import copy
import difflib
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from pydantic import Field, ValidationError, model_serializer, model_validator

from noisesim.devices.components import COMPONENTS, Component, DeviceArray, Streams
from noisesim.devices.periphery import Periphery, PeripherySpec
from noisesim.devices.runtime import RuntimeRead
from noisesim.devices.schema import Mapping, PathError, Spec, describe
from noisesim.errors import UserError


class ProfileSpec(Spec):
    """A profile file::

        name: pcm                      # optional; defaults to the file name
        description: ...               # free text (source, units)
        mapping: {g_max: 25.0, g_min: 0.0, scale: column, clip_sigma: null}
        noise:                         # applied in this order; a component's parameters: its spec_class
          - programming: {coefficients: [0.26348, 1.965, -1.1731], reference_g_max: 25.0}
          - drift: {t0: 20s, compensation: global}
        periphery:                     # optional: DAC, ADC, output noise, tiles, IR drop at every MVM
          adc: {bits: 8}               # (``periphery.py``)
    """

    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                             description="letters, digits, '.', '_', '-'; at most 64 characters")
    description: str = Field("", max_length=10_000)
    mapping: Mapping = Mapping()
    noise: list[tuple[str, Spec]] = Field(default_factory=list, max_length=64)
    periphery: PeripherySpec | None = None

    @model_serializer(mode="wrap")
    def _without_absent_periphery(self, handler):
        """A profile without a periphery dumps (and hashes) exactly as before periphery existed."""
        data = handler(self)
        if self.periphery is None and isinstance(data, dict):
            data.pop("periphery", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _components(cls, data: Any):
        """Each ``noise`` item is a one-key mapping {component: parameters}, checked by the component's spec."""
        if not isinstance(data, dict) or not isinstance(data.get("noise", []), list):
            return data
        items = []
        for i, item in enumerate(data.get("noise") or []):
            if not isinstance(item, dict) or len(item) != 1:
                raise PathError(f"noise[{i}]", f"must be a one-key mapping like '- drift: {{...}}'"
                                f" (components: {', '.join(COMPONENTS)})")
            (kind, params), = item.items()
            if kind not in COMPONENTS:
                hint = difflib.get_close_matches(str(kind), COMPONENTS, n=1)
                raise PathError(f"noise[{i}]", f"unknown component {kind!r}" + (f" (did you mean {hint[0]!r}?)"
                                if hint else "") + f"; allowed: {', '.join(COMPONENTS)}")
            spec = COMPONENTS[kind].spec_class
            try:
                items.append((kind, spec.model_validate(params if params is not None else {})))
            except ValidationError as exc:
                raise PathError(f"noise[{i}].{kind}", exc, spec) from None
        later = [k for k, s in items[:-1] if k == "read" and s.per != "evaluation"]
        if later:
            raise PathError("noise", "a read component with per: pass or per: mvm acts at run time and must"
                            " be the last component")
        return {**data, "noise": items}


def validate(data: Any, source: str) -> ProfileSpec:
    """A checked profile, or UserError '<source>: <field path>: <problem>'."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a profile must be a YAML mapping with keys {', '.join(ProfileSpec.model_fields)}")
    try:
        return ProfileSpec.model_validate(data)
    except PathError as exc:
        raise UserError(f"{source}: {exc}") from None
    except ValidationError as exc:
        errors = exc.errors()
        inner = errors[0].get("ctx", {}).get("error")
        if isinstance(inner, PathError):
            raise UserError(f"{source}: {inner}") from None
        path, msg = describe(exc, ProfileSpec)
        raise UserError(f"{source}: {path}: {msg}") from None


@dataclass
class Realization:
    """One layer's realized weight, plus any read noise that is redrawn at run time. ``alpha``: the digital
    output scale of drift compensation already folded into ``weight`` (a number, or (out, 1) per column);
    a periphery divides it out of what its converters see."""

    weight: torch.Tensor
    runtime_read: RuntimeRead | None = None
    alpha: float | torch.Tensor = 1.0


class Profile:
    """A validated device profile: a mapping and an ordered list of noise components."""

    def __init__(self, data: dict, source: str = "<profile>", name: str | None = None):
        self.data = _plain(copy.deepcopy(data))
        self.source = str(source)
        self.path: Path | None = None  # the file it was read from, if any
        self.spec = validate(self.data, self.source)
        self.name = name or self.spec.name or Path(self.source).stem
        self.components: list[Component] = [COMPONENTS[kind](spec) for kind, spec in self.spec.noise]
        self.periphery = Periphery(self.spec.periphery) if self.spec.periphery is not None else None
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
        """True when the profile leaves every weight exactly as programmed (no clipping, no active component)
        and has no periphery."""
        return (self.spec.mapping.clip_sigma is None and all(c.noiseless for c in self.components)
                and self.periphery is None)

    @property
    def weight_space(self) -> bool:
        """True when every component acts in weight units (no conductances needed: the paper's protocol)."""
        return self.spec.mapping.clip_sigma is None and all(c.in_weight_units for c in self.components)

    @property
    def has_drift(self) -> bool:
        """True when the weights depend on the time since programming."""
        return any(c.depends_on_time for c in self.components)

    def summary(self) -> dict[str, Any]:
        """What the profile does, for listings: ``noise`` (the components' keys, in order) and ``periphery``
        (part key → one-line description, in MVM order; empty without a periphery), e.g.
        ``{'noise': ['programming', 'drift'], 'periphery': {'tile': 'tile 256x256', 'dac': 'dac 8 bit (max)',
        ...}}``."""
        parts = self.periphery.parts if self.periphery is not None else {}
        return {"noise": [c.key for c in self.components],
                "periphery": {key: _describe_part(key, part.spec) for key, part in parts.items()}}

    def with_values(self, values: dict[str, Any]) -> Profile:
        """A copy with parameters set, e.g. {'programming.scale': 2, 'drift.compensation': 'global'}.

        A path is ``COMPONENT.FIELD[.SUBFIELD]`` (the first component of that kind), ``noise[I].FIELD``,
        ``mapping.FIELD`` or ``periphery.PART.FIELD`` (e.g. ``periphery.adc.bits``). The result is validated
        like a file.
        """
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise TypeError("with_values: values must be a dict {'COMPONENT.FIELD': value}")
        data = copy.deepcopy(self.data)
        for path, value in values.items():
            head, *rest = path.split(".")
            if not rest:
                raise UserError(f"--set {path}: give COMPONENT.FIELD, e.g. programming.scale=0.5,1,2")
            if head in ("mapping", "periphery"):
                node = data.get(head)
                if not isinstance(node, dict):
                    node = data[head] = {}
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

    def realize(self, weight: torch.Tensor, *, t: float = 0.0, chip: int = 0, program: int = 0, read: int = 0,
                seed: int = 0, layer: str = "") -> Realization:
        """The weight one chip realizes for ``weight`` after programming ``program`` and read ``read`` at
        time ``t`` (s). Component i of layer ``layer`` draws from ``Streams(seed, chip, program, read, layer, i)``,
        so re-programming a chip keeps its device-to-device draws.

        ``weight`` must be a floating-point tensor (TypeError otherwise: integer weights would round the
        noise away) with finite values; a component that makes a weight inf or NaN is a UserError naming it.
        """
        _check_weight(weight)
        _check_indices(chip, program, read, seed, layer)
        t = _check_time(t)
        keys = {"seed": seed, "chip": chip, "program": program, "read": read, "layer": layer}
        out = self._realize(weight, t, keys)
        # fast check: a sum is finite only if every term is; on a non-finite sum the draws are replayed
        # (same seeds, same numbers) with a check after every stage, to name what made the weight inf or NaN
        total = out.weight.sum() + (out.runtime_read.var.sum() if out.runtime_read is not None else 0)
        if not bool(torch.isfinite(total)):
            flags: list = []
            self._realize(weight, t, keys, flags)
            self._raise_if_not_finite(flags, layer)
        return out

    def _realize(self, weight: torch.Tensor, t: float, keys: dict, finite: list | None = None) -> Realization:
        """``realize`` without checks; with ``finite``, a flag per stage: input, each component, mapped back."""
        if finite is not None:
            finite.append(torch.isfinite(weight).all())
        if self.noiseless or weight.numel() == 0:  # exact, not a conductance round trip
            return Realization(weight.detach().clone())
        if self.weight_space:  # the paper's protocol: w + σ·ε directly (same ε as through the mapping)
            out = weight.detach().clone()
            for i, comp in enumerate(self.components):
                comp.apply_to_weight(out, Streams(**keys, index=i, device=weight.device))
                if finite is not None:
                    finite.append(torch.isfinite(out).all())
            return Realization(out)
        array = map_weight(weight, self.spec.mapping)
        array.read_components = [c for c in self.components if c.key == "read" and not c.noiseless]
        for i, comp in enumerate(self.components):
            comp.apply(array, Streams(**keys, index=i, device=weight.device), t)
            if finite is not None:
                flag = torch.isfinite(array.g_pos).all() & torch.isfinite(array.g_neg).all()
                if array.runtime_read is not None:
                    flag = flag & torch.isfinite(array.runtime_read.var).all()
                finite.append(flag & bool(torch.isfinite(torch.as_tensor(array.alpha)).all()))
        out = array.weight().to(weight.dtype)
        if array.runtime_read is not None:
            array.runtime_read.var.mul_(array.alpha ** 2)
        if finite is not None:
            rr = array.runtime_read
            finite.append(torch.isfinite(out).all() & (torch.isfinite(rr.var).all() if rr is not None else True))
        alpha = array.alpha.detach().clone() if isinstance(array.alpha, torch.Tensor) else float(array.alpha)
        return Realization(out, array.runtime_read, alpha)

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


def _describe_part(key: str, spec: Spec) -> str:
    """One periphery part in a few words: 'tile 256x256', 'dac 8 bit (max)', 'adc 8 bit per column (±2)',
    'output_noise 0.004 of the ADC range', 'ir_drop 0.35 ohm'."""
    if key == "tile":
        return f"tile {spec.rows}x{spec.cols}"
    if key in ("dac", "adc"):
        if spec.range is not None:
            how = f"±{spec.range:g}"
        else:
            how = "max" if spec.calibrate == "max" else f"percentile {spec.percentile:g}"
        per = f" per {spec.per}" if key == "adc" else ""
        return f"{key} {spec.bits} bit{per} ({how})"
    if key == "output_noise":
        return f"output_noise {spec.sigma:g} of the ADC range"
    scale = f" x {spec.scale:g}" if spec.scale != 1 else ""
    return f"ir_drop {spec.wire_resistance:g} ohm{scale}"


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


def map_weight(weight: torch.Tensor, mapping: Mapping) -> DeviceArray:
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
