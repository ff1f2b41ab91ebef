"""Device-model layer: what a chip makes of the weights programmed onto it.

A *profile* (YAML, ``devices/*.yaml``) maps each weight to a differential pair of conductances and
lists noise components applied in order: ``gaussian``, ``programming``, ``device_to_device``,
``read``, ``drift``, ``stuck_at``, ``levels``. A realization is keyed by (chip, program, read) seeds,
so device-to-device draws stay fixed across re-programmings of a chip. An optional ``periphery`` section
(``tile``, ``dac``, ``ir_drop``, ``output_noise``, ``adc``) acts at every matrix-vector product.

Modules, bottom up: ``schema`` (shared field types, error wording), ``runtime`` (read noise redrawn while
the model runs), ``components`` (each noise component next to its parameters; the ``COMPONENTS``
registry; the seed ``Streams`` a component draws from), ``periphery`` (DAC, ADC, output noise, tiles, IR
drop: ``PERIPHERY``, and the ``PeripheryHook`` that runs a layer's MVMs through them), ``profile`` (a
validated profile realizing one layer), ``library`` (built-in, shipped and user profiles by name).

Profiles are read with ``noisesim.safeyaml`` (bounded size, UTF-8, no duplicate keys, bounded aliases);
every number must be finite and in range, and a realization that turns a weight into inf or NaN is an
error naming the component. Shipped names (``ideal``, ``gaussian``, ``pcm``, …) cannot be shadowed.

Notebook use::

    from noisesim import devices
    pcm = devices.load_profile("pcm")
    noisy = devices.apply(pcm, weight, t="1d", chip=0, program=0)
"""

from __future__ import annotations

import torch

from noisesim.devices.components import COMPONENTS, DeviceArray, Streams
from noisesim.devices.library import (
    ProfileEntry,
    builtin_profile,
    known_profiles,
    load_profile,
    profile_listing,
    shipped_profiles,
    user_profiles,
)
from noisesim.devices.periphery import PERIPHERY, Periphery, PeripheryHook, quantize
from noisesim.devices.profile import Profile, Realization, map_weight
from noisesim.devices.runtime import ReadNoiseHook, RuntimeRead
from noisesim.devices.schema import format_time, parse_time
from noisesim.errors import UserError
from noisesim.seeds import generator


def gaussian(sigma: float) -> Profile:
    """The paper's protocol as a profile: N(0, σ²) added to every programmed weight (σ finite, 0 to 1000)."""
    if isinstance(sigma, str | bytes | bool) or not hasattr(sigma, "__float__"):
        raise TypeError(f"sigma must be a number, not {type(sigma).__name__}")
    try:
        value = float(sigma)
    except OverflowError:
        value = float("inf")
    return Profile({"name": "gaussian", "noise": [{"gaussian": {"sigma": value}}]}, "<gaussian>")


def to_seconds(t: str | float) -> float:
    """'1d' → 86400.0, as a UserError on bad input."""
    try:
        return parse_time(t)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def apply(profile: str | Profile, weight: torch.Tensor, *, t: str | float = 0.0, chip: int = 0, program: int = 0,
          read: int = 0, seed: int = 0, layer: str = "") -> torch.Tensor:
    """A noisy copy of ``weight`` as one read of chip ``chip``, programming ``program``, at time ``t``
    ("1s", "1h", "1d", "1y" or seconds) sees it. Read noise redrawn per pass or per MVM is included as
    one weight-space draw: the weight the sweep's first forward pass of layer ``layer`` uses.
    ``weight`` must be a floating-point tensor (TypeError otherwise). A profile's ``periphery`` acts on
    matrix-vector products, not on weights, so it is not in the returned weight: run a layer through it with
    ``load_profile(p).periphery.attach(...)`` or sweep."""
    out = load_profile(profile).realize(weight, t=to_seconds(t), chip=chip, program=program, read=read, seed=seed,
                                        layer=layer)
    if out.runtime_read is None:
        return out.weight
    return out.runtime_read.sample(out.weight, generator(seed, "read", chip, program, read, layer, "runtime",
                                                         device=out.weight.device),
                                   out=out.weight)


__all__ = ["COMPONENTS", "PERIPHERY", "DeviceArray", "Periphery", "PeripheryHook", "Profile", "ProfileEntry",
           "ReadNoiseHook", "Realization", "RuntimeRead", "Streams", "apply", "builtin_profile", "format_time",
           "gaussian", "known_profiles", "load_profile", "map_weight", "parse_time", "profile_listing", "quantize",
           "shipped_profiles", "to_seconds", "user_profiles"]
