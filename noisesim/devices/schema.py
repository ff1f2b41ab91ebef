"""YAML schema of a device profile (pydantic), time parsing, and readable validation errors.

A profile is::

    name: pcm                      # optional; defaults to the file name
    description: ...               # free text (source, units)
    mapping: {g_max: 25.0, g_min: 0.0, scale: column, clip_sigma: null}
    noise:                         # applied in this order
      - programming: {coefficients: [0.26348, 1.965, -1.1731], reference_g_max: 25.0}
      - drift: {t0: 20s, compensation: global}

Conductances are in µS. Every component's parameters are checked here: numbers must be finite and in a
physically meaningful range (stated in the error), so no profile can turn weights into inf or NaN. The
physics is in ``components.py``.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from noisesim.errors import UserError
from noisesim.units import TIME_HELP, format_time, parse_time  # noqa: F401 (re-exported)


def _range_check(lo: float, hi: float, unit: str):
    def check(value: float) -> float:
        if math.isfinite(value) and lo <= value <= hi:
            return value
        side = ("a finite number" if not math.isfinite(value) else
                f"greater than or equal to {lo:g}" if value < lo else f"less than or equal to {hi:g}")
        raise ValueError(f"Input should be {side} (allowed: {lo:g} to {hi:g}{unit})")
    return AfterValidator(check)


def Bounded(lo: float, hi: float, unit: str = "") -> Any:  # noqa: N802 (a type)
    """A finite float in [lo, hi]; the error states the range."""
    return Annotated[float, Field(allow_inf_nan=True), _range_check(lo, hi, unit)]


def _not_nan(value: float) -> float:
    if math.isnan(value):
        raise ValueError("Input should be a number or ±.inf (no bound), not NaN")
    return value


MAX_SPREAD = 1e3  # relative spreads, σ in weight units and scale factors: far past "all noise", still finite
Conductance = Bounded(1e-6, 1e6, " µS")
NonNeg = Bounded(0.0, MAX_SPREAD)
Fraction = Bounded(0.0, 1.0)
Clip = Annotated[float, Field(allow_inf_nan=True), AfterValidator(_not_nan)]
Seconds = Annotated[float, BeforeValidator(parse_time), _range_check(1e-12, 1e12, " s")]


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Mapping(Spec):
    """Weight → differential pair (G+, G−): w = k·(G+ − G−) with k = scale/(g_max − g_min)."""

    g_max: Conductance = Field(25.0, description="µS, conductance the largest |w| maps to")
    g_min: Bounded(0.0, 1e6, " µS") = Field(0.0, description="µS, conductance of an unused device (w = 0)")
    scale: Literal["tensor", "column"] = Field("tensor", description="abs-max per tensor or per output column")
    clip_sigma: Bounded(0.01, 100.0) | None = Field(None, description="clip weights to ±clip_sigma·std before mapping")

    @model_validator(mode="after")
    def _range(self):
        if self.g_min >= self.g_max:
            raise ValueError(f"g_min ({self.g_min}) must be below g_max ({self.g_max})")
        if self.g_max - self.g_min < 0.01 * self.g_max:
            raise ValueError(f"the window g_max − g_min ({self.g_max} − {self.g_min} µS) must be at least 1 % of"
                             " g_max (an on/off ratio of 1.01 or more), or weights are lost to rounding")
        return self


class GaussianSpec(Spec):
    sigma: NonNeg = 0.0
    relative_to: Literal["weight", "g_max", "absmax", "value"] = "weight"


class ProgrammingSpec(Spec):
    coefficients: list[Bounded(-1e6, 1e6, " µS")] = Field(min_length=1, max_length=16)
    reference_g_max: Conductance | None = None
    scale: NonNeg = 1.0


class DeviceToDeviceSpec(Spec):
    gain_std: NonNeg = 0.0
    offset_std: NonNeg = 0.0
    scale: NonNeg = 1.0


class ReadSpec(Spec):
    sigma: NonNeg = 0.0
    relative_to: Literal["g_max", "value"] = "g_max"
    per: Literal["evaluation", "pass", "mvm"] = "evaluation"
    scale: NonNeg = 1.0


class LogFit(Spec):
    """clip(a·ln(g/g_max) + b, min, max)."""

    a: Bounded(-1e3, 1e3)
    b: Bounded(-1e3, 1e3)
    min: Clip = -math.inf
    max: Clip = math.inf

    @model_validator(mode="after")
    def _order(self):
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class FlickerSpec(Spec):
    """1/f read noise: σ/|g| = clip(q / max((g/g_max)^exponent, g_floor), q_max)·sqrt(ln((t+t_read)/(2 t_read)))."""

    q: NonNeg = 0.0088
    exponent: Bounded(-10.0, 10.0) = 0.65
    q_max: NonNeg = 0.2
    g_floor: Bounded(1e-12, 1.0) = 1e-3
    t_read: Seconds = 250e-9
    scale: NonNeg = 1.0


class DriftSpec(Spec):
    t0: Seconds = 20.0
    nu_mean: LogFit = LogFit(a=-0.0155, b=0.0244, min=0.049, max=0.1)
    nu_std: LogFit = LogFit(a=-0.0125, b=-0.0059, min=0.008, max=0.045)
    scale: NonNeg = 1.0
    read_noise: FlickerSpec | None = None
    compensation: Literal["none", "global"] = "none"

    @model_validator(mode="after")
    def _read_time(self):
        if self.read_noise is not None and self.read_noise.t_read > self.t0:
            raise ValueError(f"read_noise.t_read ({self.read_noise.t_read:g} s) must not exceed t0"
                             f" ({self.t0:g} s): the 1/f noise model needs t_read ≤ t0")
        return self


class StuckAtSpec(Spec):
    at_g_min: Fraction = 0.0
    at_g_max: Fraction = 0.0

    @model_validator(mode="after")
    def _total(self):
        if self.at_g_min + self.at_g_max > 1:
            raise ValueError(f"at_g_min + at_g_max = {self.at_g_min + self.at_g_max} exceeds 1")
        return self


class LevelsSpec(Spec):
    n: int = Field(ge=2, le=1_000_000)


SPECS: dict[str, type[Spec]] = {
    "gaussian": GaussianSpec, "programming": ProgrammingSpec, "device_to_device": DeviceToDeviceSpec,
    "read": ReadSpec, "drift": DriftSpec, "stuck_at": StuckAtSpec, "levels": LevelsSpec,
}


class ProfileSpec(Spec):
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                             description="letters, digits, '.', '_', '-'; at most 64 characters")
    description: str = Field("", max_length=10_000)
    mapping: Mapping = Mapping()
    noise: list[tuple[str, Spec]] = Field(default_factory=list, max_length=64)

    @model_validator(mode="before")
    @classmethod
    def _components(cls, data: Any):
        """Each ``noise`` item is a one-key mapping {component: parameters}."""
        if not isinstance(data, dict) or not isinstance(data.get("noise", []), list):
            return data
        items = []
        for i, item in enumerate(data.get("noise") or []):
            if not isinstance(item, dict) or len(item) != 1:
                raise PathError(f"noise[{i}]", f"must be a one-key mapping like '- drift: {{...}}'"
                                f" (components: {', '.join(SPECS)})")
            (kind, params), = item.items()
            if kind not in SPECS:
                hint = difflib.get_close_matches(str(kind), SPECS, n=1)
                raise PathError(f"noise[{i}]", f"unknown component {kind!r}"
                                + (f" (did you mean {hint[0]!r}?)" if hint else "") + f"; allowed: {', '.join(SPECS)}")
            try:
                items.append((kind, SPECS[kind].model_validate(params if params is not None else {})))
            except ValidationError as exc:
                raise PathError(f"noise[{i}].{kind}", exc, SPECS[kind]) from None
        later = [k for k, s in items[:-1] if k == "read" and s.per != "evaluation"]
        if later:
            raise PathError("noise", "a read component with per: pass or per: mvm acts at run time and must"
                            " be the last component")
        return {**data, "noise": items}


class PathError(ValueError):
    """A validation error already located at a field path."""

    def __init__(self, path: str, problem: str | ValidationError, spec: type[Spec] | None = None):
        if isinstance(problem, ValidationError):
            sub, problem = describe(problem, spec)
            path = f"{path}.{sub}" if sub else path
        super().__init__(f"{path}: {problem}")


def describe(exc: ValidationError, spec: type[BaseModel] | None = None) -> tuple[str, str]:
    """(field path, message) of a pydantic error, with the allowed keys for unknown ones."""
    err = exc.errors()[0]
    path = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and spec is not None:
        model = spec
        for part in err["loc"][:-1]:
            field = model.model_fields.get(str(part))
            inner = getattr(field, "annotation", None) if field else None
            model = next((a for a in getattr(inner, "__args__", (inner,)) if isinstance(a, type)
                          and issubclass(a, BaseModel)), model)
        hint = difflib.get_close_matches(str(err["loc"][-1]), model.model_fields, n=1)
        msg = ("unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
               + f"; allowed: {', '.join(model.model_fields)}")
    elif "input" in err and err["type"] not in ("missing",):
        got = repr(err["input"])
        msg = f"{msg} (got {got if len(got) <= 80 else got[:77] + '...'})"
    return path, msg


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
