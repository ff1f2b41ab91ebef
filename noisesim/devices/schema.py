"""The field types every part of a device profile is checked with, and readable validation errors.

Conductances are in µS. Numbers must be finite and in a physically meaningful range (stated in the error),
so no profile can turn weights into inf or NaN. Each component's parameters (its ``Spec``) are defined next
to the component in ``components.py``; the profile as a whole (``ProfileSpec``) in ``profile.py``.
"""

from __future__ import annotations

import difflib
import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

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
    """Parameters of one part of a profile: unknown keys refused, numbers strict and finite."""

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
