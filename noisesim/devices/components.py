"""Device state of one analog layer and the noise components that act on it.

A layer's weights live on differential pairs: ``w = α·k·(G+ − G−)`` (µS; ``k`` = weight per µS from the
mapping, ``α`` = a digital output scale, 1 unless drift compensation sets it). Each component reads
and changes the pair in place, drawing from the seed stream of its *stage*:

- ``chip``: drawn once per chip, the same for every programming and read of it (device-to-device,
  stuck-at faults);
- ``program``: drawn at each programming event (programming noise, the paper's Gaussian, drift
  exponents ν);
- ``read``: drawn at each read (read noise, 1/f noise).

Draws are per device: the G+ device first, then the G− device, from the component's own generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from noisesim.devices import schema


@dataclass
class DeviceArray:
    """Conductances (µS) of one layer's differential pairs, plus what the components need."""

    g_pos: torch.Tensor
    g_neg: torch.Tensor
    k: torch.Tensor  # weight per µS, broadcastable to the weight: (out, 1) or ()
    g_max: float
    g_min: float
    target_pos: torch.Tensor  # the noise-free programming targets (drift exponents depend on them)
    target_neg: torch.Tensor
    alpha: float = 1.0
    runtime_read: RuntimeRead | None = None

    @property
    def devices(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.g_pos, self.g_neg

    def weight(self) -> torch.Tensor:
        return (self.g_pos - self.g_neg).mul_(self.k).mul_(self.alpha)


@dataclass
class RuntimeRead:
    """Read noise redrawn at run time: per forward ``pass`` or per token ``mvm``.

    ``var`` is the per-weight read-noise variance in weight units, either one value per output
    (state-independent noise: shape (out, 1)) or one per weight (shape (out, in)).
    """

    per: str
    var: torch.Tensor

    @property
    def per_output(self) -> bool:
        return self.var.shape[-1] == 1


def _randn(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(like.shape, generator=gen, dtype=like.dtype).to(like.device)


def _rand(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(like.shape, generator=gen, dtype=like.dtype).to(like.device)


class Component:
    """One physical effect. ``stage`` picks the seed stream; ``apply`` changes the array in place."""

    key: str = ""
    stage: str = "program"

    def __init__(self, spec: schema.Spec):
        self.spec = spec

    def apply(self, array: DeviceArray, gen: torch.Generator, t: float) -> None:
        raise NotImplementedError

    @property
    def noiseless(self) -> bool:
        """True when the component cannot change any weight (e.g. σ = 0)."""
        return False


class Gaussian(Component):
    """Additive N(0, σ²) on each weight, drawn per programming (the paper's protocol, Sec. IV-D).

    ``relative_to``: ``weight`` (σ in weight units), ``g_max`` (σ·g_max in µS on the pair's
    difference), ``absmax`` (σ times the tensor/column abs-max), ``value`` (multiplicative, σ·|w|).
    """

    key = "gaussian"

    def apply(self, array, gen, t):
        s = self.spec
        if s.sigma == 0:
            return
        eps = _randn(array.g_pos, gen)
        if s.relative_to == "weight":
            array.g_pos.add_(eps.mul_(s.sigma / array.k))
        elif s.relative_to == "g_max":
            array.g_pos.add_(eps.mul_(s.sigma * array.g_max))
        elif s.relative_to == "absmax":
            array.g_pos.add_(eps.mul_(s.sigma * (array.g_max - array.g_min)))
        else:
            array.g_pos.add_(eps.mul_((array.g_pos - array.g_neg).abs_().mul_(s.sigma)))

    @property
    def noiseless(self):
        return self.spec.sigma == 0


class Programming(Component):
    """State-dependent programming noise: G += σ(G)·ε, σ(G) = scale·Σ c_i (G/g_max)^i · g_max/reference_g_max.

    The polynomial is in µS at ``reference_g_max`` (IBM's PCM fit: 25 µS), rescaled to the mapping's
    g_max; conductances are clipped at 0 afterwards.
    """

    key = "programming"

    def sigma(self, g: torch.Tensor, g_max: float) -> torch.Tensor:
        s = self.spec
        x = g / g_max
        poly = torch.zeros_like(g)
        for c in reversed(s.coefficients):  # Horner
            poly.mul_(x).add_(c)
        return poly.mul_(s.scale * g_max / (s.reference_g_max or g_max)).clamp_(min=0)

    def apply(self, array, gen, t):
        for g in array.devices:
            g.add_(_randn(g, gen).mul_(self.sigma(g, array.g_max))).clamp_(min=0)

    @property
    def noiseless(self):
        return self.spec.scale == 0


class DeviceToDevice(Component):
    """Static per-device variation, fixed per chip: G ← G·(1 + gain_std·ε₁) + offset_std·g_max·ε₂."""

    key = "device_to_device"
    stage = "chip"

    def apply(self, array, gen, t):
        s = self.spec
        for g in array.devices:
            gain = _randn(g, gen).mul_(s.gain_std * s.scale).add_(1)
            offset = _randn(g, gen).mul_(s.offset_std * s.scale * array.g_max)
            g.mul_(gain).add_(offset).clamp_(min=0)

    @property
    def noiseless(self):
        return self.spec.scale == 0 or (self.spec.gain_std == 0 and self.spec.offset_std == 0)


class Read(Component):
    """Cycle-to-cycle read noise: G + σ·ε at every read, σ = sigma·g_max (``g_max``) or sigma·|G| (``value``).

    ``per: evaluation`` draws one read held for the evaluation pass (read seed stream); ``pass``
    redraws it on every forward pass; ``mvm`` on every matrix-vector product, i.e. per token, using
    the output-space equivalent y_j += ε·sqrt(Σ_i x_i² σ_ij²) (exact in distribution for independent
    Gaussian per-weight noise) instead of a noise matrix per token.
    """

    key = "read"
    stage = "read"

    def device_sigma(self, g: torch.Tensor, g_max: float) -> torch.Tensor | float:
        s = self.spec
        return s.sigma * s.scale * (g_max if s.relative_to == "g_max" else g.abs())

    def apply(self, array, gen, t):
        if self.noiseless:
            return
        if self.spec.per == "evaluation":
            for g in array.devices:
                g.add_(_randn(g, gen).mul_(self.device_sigma(g, array.g_max))).clamp_(min=0)
            return
        k2 = array.k.square()
        if self.spec.relative_to == "g_max":  # the same σ for every device of an output: keep (out, 1)
            var = (2 * (self.spec.sigma * self.spec.scale * array.g_max) ** 2) * k2.expand(array.g_pos.shape[0], 1)
        else:
            var = sum(self.device_sigma(g, array.g_max).square() for g in array.devices) * k2
        array.runtime_read = RuntimeRead(self.spec.per, var.contiguous())  # drawn by the sweep's read hook

    @property
    def noiseless(self):
        return self.spec.sigma == 0 or self.spec.scale == 0


def log_fit(fit: schema.LogFit, x: torch.Tensor) -> torch.Tensor:
    return (torch.log(x) * fit.a + fit.b).clamp_(min=fit.min, max=fit.max)


class Drift(Component):
    """PCM conductance drift G(t) = G_prog·((t + t0)/t0)^(−ν) with ν = |N(μ_ν(x), σ_ν(x))| per device.

    x = G_target/g_max; μ_ν and σ_ν are clipped log fits (IBM PCM: Nandakumar et al. 2019). ν is drawn
    at programming and kept for all t. ``read_noise`` adds accumulated 1/f noise
    σ = |G(t)|·Q_s·sqrt(ln((t + t0 + t_read)/(2·t_read))) drawn per read. ``compensation: global``
    sets one output scale α per layer so that the mean |output| over one-hot reference inputs (i.e. the
    mean |w|) equals its value right after programming, as an accelerator's drift calibration does.
    """

    key = "drift"
    stage = "program"

    def nu(self, target: torch.Tensor, g_max: float, gen: torch.Generator) -> torch.Tensor:
        s = self.spec
        x = (target / g_max).abs_().clamp_(min=1e-7)
        mean, std = log_fit(s.nu_mean, x), log_fit(s.nu_std, x)
        return _randn(target, gen).mul_(std).add_(mean).abs_().mul_(s.scale)

    def factor(self, nu: torch.Tensor, t: float) -> torch.Tensor:
        """((t + t0)/t0)^(−ν): the drift of each device after t seconds."""
        return torch.exp(nu * -math.log((t + self.spec.t0) / self.spec.t0))

    def flicker_sigma(self, g_prog: torch.Tensor, g_max: float, t: float) -> torch.Tensor:
        """1/f read-noise σ relative to |G(t)|."""
        f = self.spec.read_noise
        q = (f.q / ((g_prog.abs() / g_max) ** f.exponent).clamp_(min=f.g_floor)).clamp_(max=f.q_max)
        return q.mul_(f.scale * math.sqrt(math.log((t + self.spec.t0 + f.t_read) / (2 * f.t_read))))

    def apply(self, array, gen, t, read_gen: torch.Generator | None = None):
        before = array.weight().abs().mean() if self.spec.compensation == "global" else None
        for g, target in zip(array.devices, (array.target_pos, array.target_neg), strict=True):
            nu = self.nu(target, array.g_max, gen)  # drawn before the time-dependent part: same ν at every t
            g_prog = g.clone() if self.spec.read_noise is not None else None
            if t > 0:
                g.mul_(self.factor(nu, t))
            if g_prog is not None:
                g.add_(_randn(g, read_gen).mul_(g.abs()).mul_(self.flicker_sigma(g_prog, array.g_max, t)))
            g.clamp_(min=0)
        if before is not None:
            after = array.weight().abs().mean()
            array.alpha *= float(before.clamp(min=1e-12) / after.clamp(min=1e-12))


class StuckAt(Component):
    """Per-chip faults: each device is stuck at g_min with probability ``at_g_min`` and at g_max with
    probability ``at_g_max``, whatever it was programmed to (list it after programming components)."""

    key = "stuck_at"
    stage = "chip"

    def apply(self, array, gen, t):
        s = self.spec
        for g in array.devices:
            u = _rand(g, gen)
            g[u < s.at_g_min] = array.g_min
            g[(u >= s.at_g_min) & (u < s.at_g_min + s.at_g_max)] = array.g_max

    @property
    def noiseless(self):
        return self.spec.at_g_min == 0 and self.spec.at_g_max == 0


class Levels(Component):
    """Finite programming resolution: G is rounded to the nearest of ``n`` levels evenly spaced on [g_min, g_max]."""

    key = "levels"

    def apply(self, array, gen, t):
        step = (array.g_max - array.g_min) / (self.spec.n - 1)
        for g in array.devices:
            g.clamp_(array.g_min, array.g_max).sub_(array.g_min).div_(step).round_().mul_(step).add_(array.g_min)


COMPONENTS: dict[str, type[Component]] = {c.key: c for c in (Gaussian, Programming, DeviceToDevice, Read, Drift,
                                                              StuckAt, Levels)}
assert COMPONENTS.keys() == schema.SPECS.keys()
