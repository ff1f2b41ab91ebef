"""Property tests: random profile data, YAML text, CLI values and times give a valid result or a one-line
UserError (ValueError for the low-level parse_time), never another exception; a valid profile never
realizes a non-finite weight without an error."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisesim import devices
from noisesim.devices import components, schema
from noisesim.errors import UserError
from noisesim.safeyaml import loads_yaml, safe_scalar

pytestmark = pytest.mark.slow  # property-based: hundreds of generated profiles

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPECS = [c.spec_class for c in components.COMPONENTS.values()]
FIELD_NAMES = sorted({f for spec in (*SPECS, schema.Mapping, components.LogFit, components.FlickerSpec)
                      for f in spec.model_fields})
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 30, 10 ** 30),
                    st.sampled_from([0, 1, 0.5, 1e-300, 1e300, 25.0, -1.0, 1e-6, 1e6]))
scalars = st.one_of(numbers, st.booleans(), st.none(), st.text(max_size=8),
                    st.sampled_from(["1h", "20s", "1e999s", "global", "column", "pass", "mvm", "value"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELD_NAMES), inner, max_size=4)), max_leaves=12)
params = st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=5)
component = st.dictionaries(st.sampled_from([*components.COMPONENTS, "bogus"]), st.one_of(params, st.none()),
                            min_size=1, max_size=2)
profiles = st.fixed_dictionaries({}, optional={
    "name": st.one_of(st.text(max_size=10), st.sampled_from(["mine", "ideal", "x-1"])),
    "description": scalars,
    "mapping": st.one_of(params, values),
    "noise": st.one_of(st.lists(component, max_size=4), values),
})


def realize_is_finite_or_refused(prof: devices.Profile, scale: float = 0.05) -> None:
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(0)) * scale
    for t in (0.0, 3600.0):
        try:
            out = prof.realize(w, t=t, layer="l")
        except UserError as exc:
            assert "\n" not in str(exc)
            continue
        assert torch.isfinite(out.weight).all()
        if out.runtime_read is not None:
            assert torch.isfinite(out.runtime_read.var).all()


@FAST
@given(profiles)
def test_random_profile_data_is_a_profile_or_a_user_error(data):
    try:
        prof = devices.Profile(data, "<random>")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("<random>")
        return
    realize_is_finite_or_refused(prof)


edge = st.one_of(st.sampled_from([0.0, 1e-12, 1e-6, 1e-3, 0.01, 0.5, 1.0, 10.0, 100.0, 1e3, 1e6, -1.0, -1e3, -1e6]),
                 st.floats(-1e6, 1e6))
times = st.sampled_from(["1e-12s", 1e-9, "1s", 20, "1h", "1y", 1e12])
log_fit = st.fixed_dictionaries({"a": edge, "b": edge}, optional={"min": edge, "max": edge})
SPEC_PARAMS = {
    "gaussian": {"sigma": edge, "relative_to": st.sampled_from(["weight", "g_max", "absmax", "value"])},
    "programming": {"coefficients": st.lists(edge, min_size=1, max_size=16), "reference_g_max": edge,
                    "scale": edge},
    "device_to_device": {"gain_std": edge, "offset_std": edge, "scale": edge},
    "read": {"sigma": edge, "relative_to": st.sampled_from(["g_max", "value"]),
             "per": st.sampled_from(["evaluation", "pass", "mvm"]), "scale": edge},
    "drift": {"t0": times, "nu_mean": log_fit, "nu_std": log_fit, "scale": edge,
              "compensation": st.sampled_from(["none", "global"]),
              "read_noise": st.fixed_dictionaries({}, optional={
                  "q": edge, "exponent": edge, "q_max": edge, "g_floor": edge, "t_read": times, "scale": edge})},
    "stuck_at": {"at_g_min": edge, "at_g_max": edge},
    "levels": {"n": st.integers(2, 1_000_000)},
}
edge_component = st.sampled_from(sorted(SPEC_PARAMS)).flatmap(
    lambda kind: st.fixed_dictionaries({}, optional=SPEC_PARAMS[kind]).map(lambda p: {kind: p}))
edge_mapping = st.fixed_dictionaries({}, optional={"g_max": edge, "g_min": edge, "clip_sigma": edge,
                                                   "scale": st.sampled_from(["tensor", "column"])})


@FAST
@given(edge_mapping, st.lists(edge_component, min_size=1, max_size=4), st.sampled_from([0.05, 1e3, 1e30]))
def test_extreme_valid_parameters_realize_finite_or_refuse(mapping, noise, scale):
    """Parameters at and near their bounds: a profile that validates gives finite weights or an error."""
    try:
        prof = devices.Profile({"mapping": mapping, "noise": noise}, "<random>")
    except UserError:
        return
    realize_is_finite_or_refused(prof, scale)


@FAST
@given(st.dictionaries(st.sampled_from(["programming.scale", "mapping.g_max", "mapping.g_min", "drift.t0",
                                        "drift.nu_mean.a", "drift.scale", "noise[0].scale", "noise[1].t0",
                                        "noise[-1].scale", "drift.read_noise.t_read", "drift.compensation"]),
                       scalars, min_size=1, max_size=3))
def test_random_set_values_give_a_profile_or_a_user_error(values):
    try:
        prof = devices.load_profile("pcm").with_values(values)
    except UserError:
        return
    realize_is_finite_or_refused(prof)


yaml_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["a: 1", "a: &x [1, 2]", "b: *x", "- *x", "c: {d: *x, d: 2}", "  - e", "noise: []",
                              "<<: *x", "!!binary", "[", "]", "{", "}", "&y", "*y", "---", ": :", "\t", "? k",
                              "sigma: .nan", "g_max: 1e-300", "%YAML 1.1", "'", '"\\x"']),
             max_size=12).map("\n".join))


@FAST
@given(yaml_text)
def test_random_yaml_is_a_value_or_a_user_error(text):
    try:
        value = loads_yaml(text, "<text>")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("<text>")
        return
    try:
        devices.Profile(value, "<text>") if isinstance(value, dict) else None
    except UserError:
        pass


@FAST
@given(st.text(max_size=40))
def test_random_cli_values_are_scalars_or_user_errors(text):
    try:
        value = safe_scalar(text, "--set x")
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert value is None or isinstance(value, str | int | float | bool)


@FAST
@given(st.one_of(st.text(max_size=30), numbers,
                 st.from_regex(r"\s*[0-9.e+-]{1,12}\s*(s|min|h|d|w|y|x)?", fullmatch=True)))
def test_random_times_parse_or_refuse(value):
    try:
        seconds = schema.parse_time(value)
    except ValueError as exc:
        assert "\n" not in str(exc)
        try:
            devices.to_seconds(value)
        except UserError:
            return
        raise AssertionError(f"to_seconds accepted {value!r}") from None
    assert math.isfinite(seconds) and seconds >= 0 and devices.to_seconds(value) == seconds
