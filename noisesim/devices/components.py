"""Device state of one analog layer, and the noise components that act on it, each next to its parameters.

A layer's weights live on differential pairs: ``w = α·k·(G+ − G−)`` (µS; ``k`` = weight per µS from the
mapping, ``α`` = a digital output scale, 1 unless drift compensation sets it). Each component reads and
changes the pair in place (``apply``), drawing from the seed streams it needs (``Streams``):

- ``chip``: drawn once per chip, the same for every programming and read of it (device-to-device,
  stuck-at faults);
- ``program``: drawn at each programming event (programming noise, i.e. cycle-to-cycle write-to-write
  variation; the paper's Gaussian, drift exponents ν);
- ``read``: drawn at each read (read noise, i.e. cycle-to-cycle read-to-read variation; 1/f noise).

A component's ``stage`` is the stream its draws mostly come from (a sweep varies that index for it). Draws
are per device: the G+ device first, then the G− device. A component that can act in weight units (the
paper's Gaussian) also has ``apply_to_weight``, which skips the conductance round trip.

``COMPONENTS`` (key → class) is the one registry: a profile's ``noise`` items are checked with each class's
``spec_class`` and built from the class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
from pydantic import Field, model_serializer, model_validator

from noisesim.devices.runtime import RuntimeRead
from noisesim.devices.schema import Bounded, Clip, Conductance, Fraction, NonNeg, Seconds, Spec
from noisesim.seeds import generator


class Streams:
    """The seed streams of one component (position ``index`` in the profile) of one layer's realization.

    ``chip``, ``program`` and ``read`` are generators ``generator(seed, stage, *keys, layer, index)`` with keys
    (chip,), (chip, program) and (chip, program, read), each created on first use and then continued.
    """

    def __init__(self, seed: int = 0, chip: int = 0, program: int = 0, read: int = 0, layer: str = "",
                 index: int = 0, device: torch.device | str = "cpu"):
        self.seed, self.layer, self.index, self.device = seed, layer, index, device
        self.keys = {"chip": (chip,), "program": (chip, program), "read": (chip, program, read)}
        self.made: dict[str, torch.Generator] = {}

    def __getitem__(self, stage: str) -> torch.Generator:
        if stage not in self.made:
            self.made[stage] = generator(self.seed, stage, *self.keys[stage], self.layer, self.index,
                                         device=self.device)
        return self.made[stage]

    @property
    def chip(self) -> torch.Generator:
        return self["chip"]

    @property
    def program(self) -> torch.Generator:
        return self["program"]

    @property
    def read(self) -> torch.Generator:
        return self["read"]


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
    alpha: float | torch.Tensor = 1.0  # a number, or one per output column (out, 1): per-column compensation
    runtime_read: RuntimeRead | None = None
    read_components: list = field(default_factory=list)  # the profile's active ``read`` components (reference reads)

    @property
    def devices(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.g_pos, self.g_neg

    def weight(self) -> torch.Tensor:
        return (self.g_pos - self.g_neg).mul_(self.k).mul_(self.alpha)


def _randn(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """N(0, 1) shaped like ``like``, drawn where it lives (``gen`` must be a generator of that device)."""
    return torch.randn(like.shape, generator=gen, dtype=like.dtype, device=like.device)


def _rand(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(like.shape, generator=gen, dtype=like.dtype, device=like.device)


class Component:
    """One physical effect with its parameters ``spec`` (an instance of ``spec_class``)."""

    key: ClassVar[str] = ""
    stage: ClassVar[str] = "program"  # the stream a sweep varies for this component's draws
    spec_class: ClassVar[type[Spec]] = Spec
    depends_on_time: ClassVar[bool] = False

    def __init__(self, spec: Spec):
        self.spec = spec

    def apply(self, array: DeviceArray, streams: Streams, t: float) -> None:
        """Change the conductances in place, ``t`` seconds after programming."""
        raise NotImplementedError(f"{type(self).__name__} must define apply")

    @property
    def noiseless(self) -> bool:
        """True when the component cannot change any weight (e.g. σ = 0)."""
        return False

    @property
    def in_weight_units(self) -> bool:
        """True when ``apply_to_weight`` gives the same weights as the conductance round trip."""
        return False

    def apply_to_weight(self, weight: torch.Tensor, streams: Streams) -> None:
        """Change the weight itself in place (only where ``in_weight_units``)."""
        raise TypeError(f"component {self.key!r} with these parameters does not act in weight units")


class GaussianSpec(Spec):
    sigma: NonNeg = 0.0
    relative_to: Literal["weight", "g_max", "absmax", "value"] = "weight"


class Gaussian(Component):
    """Additive N(0, σ²) on each weight, drawn per programming (the paper's protocol, Sec. IV-D).

    ``relative_to``: ``weight`` (σ in weight units), ``g_max`` (σ·g_max in µS on the pair's
    difference), ``absmax`` (σ times the tensor/column abs-max), ``value`` (multiplicative, σ·|w|).
    """

    key = "gaussian"
    spec_class = GaussianSpec

    def apply(self, array, streams, t):
        s = self.spec
        if s.sigma == 0:
            return
        eps = _randn(array.g_pos, streams.program)
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

    @property
    def in_weight_units(self):
        return self.spec.relative_to == "weight"

    def apply_to_weight(self, weight, streams):
        """w + σ·ε, the same ε as ``apply`` draws (drawn even at σ = 0, in the weight's dtype)."""
        if not self.in_weight_units:
            raise TypeError(f"gaussian relative_to {self.spec.relative_to!r} needs the conductances, not the weight")
        eps = _randn(weight, streams.program)
        weight.add_(eps, alpha=self.spec.sigma)


class ProgrammingSpec(Spec):
    coefficients: list[Bounded(-1e6, 1e6, " µS")] = Field(min_length=1, max_length=16)
    reference_g_max: Conductance | None = None
    scale: NonNeg = 1.0


class Programming(Component):
    """State-dependent programming noise: G += σ(G)·ε, σ(G) = scale·Σ c_i (G/g_max)^i · g_max/reference_g_max.

    The polynomial is in µS at ``reference_g_max`` (IBM's PCM fit: 25 µS), rescaled to the mapping's
    g_max; conductances are clipped at 0 afterwards.
    """

    key = "programming"
    spec_class = ProgrammingSpec

    def sigma(self, g: torch.Tensor, g_max: float) -> torch.Tensor:
        s = self.spec
        x = g / g_max
        poly = torch.zeros_like(g)
        for c in reversed(s.coefficients):  # Horner
            poly.mul_(x).add_(c)
        return poly.mul_(s.scale * g_max / (s.reference_g_max or g_max)).clamp_(min=0)

    def apply(self, array, streams, t):
        for g in array.devices:
            g.add_(_randn(g, streams.program).mul_(self.sigma(g, array.g_max))).clamp_(min=0)

    @property
    def noiseless(self):
        return self.spec.scale == 0


class DeviceToDeviceSpec(Spec):
    gain_std: NonNeg = 0.0
    offset_std: NonNeg = 0.0
    scale: NonNeg = 1.0


class DeviceToDevice(Component):
    """Static per-device variation, fixed per chip: G ← G·(1 + gain_std·ε₁) + offset_std·g_max·ε₂."""

    key = "device_to_device"
    stage = "chip"
    spec_class = DeviceToDeviceSpec

    def apply(self, array, streams, t):
        s = self.spec
        for g in array.devices:
            gain = _randn(g, streams.chip).mul_(s.gain_std * s.scale).add_(1)
            offset = _randn(g, streams.chip).mul_(s.offset_std * s.scale * array.g_max)
            g.mul_(gain).add_(offset).clamp_(min=0)

    @property
    def noiseless(self):
        return self.spec.scale == 0 or (self.spec.gain_std == 0 and self.spec.offset_std == 0)


class ReadSpec(Spec):
    sigma: NonNeg = 0.0
    relative_to: Literal["g_max", "value"] = "g_max"
    per: Literal["evaluation", "pass", "mvm"] = "evaluation"
    scale: NonNeg = 1.0


class Read(Component):
    """Cycle-to-cycle read noise: G + σ·ε at every read, σ = sigma·g_max (``g_max``) or sigma·|G| (``value``).

    ``per: evaluation`` draws one read held for the evaluation pass (read seed stream); ``pass``
    redraws it on every forward pass; ``mvm`` on every matrix-vector product, i.e. per token, using
    the output-space equivalent y_j += ε·sqrt(Σ_i x_i² σ_ij²) (exact in distribution for independent
    Gaussian per-weight noise) instead of a noise matrix per token. Both leave a ``RuntimeRead`` (the
    per-weight variance) on the array, drawn at run time (``runtime.py``).
    """

    key = "read"
    stage = "read"
    spec_class = ReadSpec

    def device_sigma(self, g: torch.Tensor, g_max: float) -> torch.Tensor | float:
        s = self.spec
        return s.sigma * s.scale * (g_max if s.relative_to == "g_max" else g.abs())

    def apply(self, array, streams, t):
        if self.noiseless:
            return
        if self.spec.per == "evaluation":
            for g in array.devices:
                g.add_(_randn(g, streams.read).mul_(self.device_sigma(g, array.g_max))).clamp_(min=0)
            return
        k2 = array.k.square()
        if self.spec.relative_to == "g_max":  # the same σ for every device of an output: keep (out, 1)
            var = (2 * (self.spec.sigma * self.spec.scale * array.g_max) ** 2) * k2.expand(array.g_pos.shape[0], 1)
        else:
            var = sum(self.device_sigma(g, array.g_max).square() for g in array.devices) * k2
        array.runtime_read = RuntimeRead(self.spec.per, var.contiguous())

    @property
    def noiseless(self):
        return self.spec.sigma == 0 or self.spec.scale == 0


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

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.log(x) * self.a + self.b).clamp_(min=self.min, max=self.max)


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
    compensation: Literal["none", "global", "column"] = "none"
    reference_reads: int = Field(0, ge=0, le=10_000, description="0: exact reference reads; N: the mean of N noisy")

    @model_validator(mode="after")
    def _read_time(self):
        if self.read_noise is not None and self.read_noise.t_read > self.t0:
            raise ValueError(f"read_noise.t_read ({self.read_noise.t_read:g} s) must not exceed t0"
                             f" ({self.t0:g} s): the 1/f noise model needs t_read ≤ t0")
        if self.reference_reads and self.compensation == "none":
            raise ValueError("reference_reads needs compensation: global or column (it is the number of noisy"
                             " reads the compensation averages)")
        return self

    @model_serializer(mode="wrap")
    def _without_default_reference(self, handler):
        """Exact reference reads (the default) dump and hash as before the field existed."""
        data = handler(self)
        if self.reference_reads == 0 and isinstance(data, dict):
            data.pop("reference_reads", None)
        return data


class Drift(Component):
    """PCM conductance drift G(t) = G_prog·((t + t0)/t0)^(−ν) with ν = |N(μ_ν(x), σ_ν(x))| per device.

    x = G_target/g_max; μ_ν and σ_ν are clipped log fits (IBM PCM: Nandakumar et al. 2019). ν is drawn
    at programming (program stream) and kept for all t. ``read_noise`` adds accumulated 1/f noise
    σ = |G(t)|·Q_s·sqrt(ln((t + t0 + t_read)/(2·t_read))) drawn per read (read stream).

    Drift compensation, as an accelerator's drift calibration does it, from reference reads: the outputs for
    one-hot inputs, i.e. the weights themselves. ``global`` sets one digital output scale α per layer so that
    the mean |output| over them equals its value right after programming; ``column`` sets one α per output
    column (aihwkit's per-column drift compensation), so each column's mean |output| is restored.
    ``reference_reads: N`` (N ≥ 1) takes each of the two readouts (right after programming, and at t) as the
    mean over N reads through the same read noise the evaluation sees: the drift's 1/f noise at that time
    (t = 0 for the first readout) and every active ``read`` component of the profile, drawn from an own
    generator ``generator(seed, "read", chip, program, read, layer, index, "reference")``, so the
    evaluation's draws stay the same. The default, 0, reads the references exactly.
    """

    key = "drift"
    spec_class = DriftSpec
    depends_on_time = True

    def nu(self, target: torch.Tensor, g_max: float, gen: torch.Generator) -> torch.Tensor:
        s = self.spec
        x = (target / g_max).abs_().clamp_(min=1e-7)
        mean, std = s.nu_mean(x), s.nu_std(x)
        return _randn(target, gen).mul_(std).add_(mean).abs_().mul_(s.scale)

    def factor(self, nu: torch.Tensor, t: float) -> torch.Tensor:
        """((t + t0)/t0)^(−ν): the drift of each device after t seconds."""
        return torch.exp(nu * -math.log((t + self.spec.t0) / self.spec.t0))

    def flicker_sigma(self, g_prog: torch.Tensor, g_max: float, t: float) -> torch.Tensor:
        """1/f read-noise σ relative to |G(t)|."""
        f = self.spec.read_noise
        q = (f.q / ((g_prog.abs() / g_max) ** f.exponent).clamp_(min=f.g_floor)).clamp_(max=f.q_max)
        return q.mul_(f.scale * math.sqrt(math.log((t + self.spec.t0 + f.t_read) / (2 * f.t_read))))

    def readout(self, array: DeviceArray, pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
                progs: tuple[torch.Tensor, torch.Tensor] | None = None, t: float = 0.0,
                gen: torch.Generator | None = None) -> torch.Tensor:
        """Mean |w| over one-hot reference reads: one number (``global``) or one per output column (out, 1).
        Exact from the array's weight, or, with ``gen``, the mean over ``reference_reads`` noisy reads of the
        conductances ``pairs`` (programmed as ``progs``) at time t."""
        if gen is None:
            return _column_mean(array.weight().abs(), self.spec.compensation)
        total = None
        for _ in range(self.spec.reference_reads):
            read = []
            for g, g_prog in zip(pairs, progs, strict=True):
                var = torch.zeros_like(g)
                if self.spec.read_noise is not None:
                    var.add_(g.abs().mul(self.flicker_sigma(g_prog, array.g_max, t)).square_())
                for comp in array.read_components:
                    var.add_(torch.as_tensor(comp.device_sigma(g, array.g_max), dtype=g.dtype).square())
                read.append(g + _randn(g, gen).mul_(var.sqrt_()))
            w = (read[0] - read[1]).mul_(array.k).mul_(array.alpha)
            mean = _column_mean(w.abs_(), self.spec.compensation)
            total = mean if total is None else total + mean
        return total / self.spec.reference_reads

    def apply(self, array, streams, t):
        s = self.spec
        noisy = s.compensation != "none" and s.reference_reads > 0
        gen = generator(streams.seed, "read", *streams.keys["read"], streams.layer, streams.index, "reference",
                        device=streams.device) if noisy else None
        before = None
        if s.compensation == "global" and not noisy:  # as before per-column compensation existed: bit-identical
            before = array.weight().abs().mean()
        elif s.compensation != "none":
            before = self.readout(array, array.devices, array.devices, 0.0, gen)
        drifted = []
        for g, target in zip(array.devices, (array.target_pos, array.target_neg), strict=True):
            nu = self.nu(target, array.g_max, streams.program)  # drawn before the t-dependent part: same ν at all t
            g_prog = g.clone() if s.read_noise is not None or noisy else None
            if t > 0:
                g.mul_(self.factor(nu, t))
            if noisy:
                drifted.append((g.clone(), g_prog))
            if s.read_noise is not None:
                g.add_(_randn(g, streams.read).mul_(g.abs()).mul_(self.flicker_sigma(g_prog, array.g_max, t)))
            g.clamp_(min=0)
        if before is None:
            return
        if noisy:
            after = self.readout(array, tuple(d[0] for d in drifted), tuple(d[1] for d in drifted), t, gen)
        else:
            after = array.weight().abs().mean() if s.compensation == "global" else self.readout(array)
        ratio = before.clamp(min=1e-12) / after.clamp(min=1e-12)
        if s.compensation == "global":
            array.alpha *= float(ratio)
        else:
            array.alpha = ratio * array.alpha


def _column_mean(w_abs: torch.Tensor, compensation: str) -> torch.Tensor:
    """Mean over the inputs of each output column (out, 1), or over every weight (``global``)."""
    if compensation == "global" or w_abs.dim() < 2:
        return w_abs.mean() if compensation == "global" else w_abs
    return w_abs.mean(dim=tuple(range(1, w_abs.dim())), keepdim=True)


class StuckAtSpec(Spec):
    at_g_min: Fraction = 0.0
    at_g_max: Fraction = 0.0

    @model_validator(mode="after")
    def _total(self):
        if self.at_g_min + self.at_g_max > 1:
            raise ValueError(f"at_g_min + at_g_max = {self.at_g_min + self.at_g_max} exceeds 1")
        return self


class StuckAt(Component):
    """Per-chip faults: each device is stuck at g_min with probability ``at_g_min`` and at g_max with
    probability ``at_g_max``, whatever it was programmed to (list it after programming components)."""

    key = "stuck_at"
    stage = "chip"
    spec_class = StuckAtSpec

    def apply(self, array, streams, t):
        s = self.spec
        for g in array.devices:
            u = _rand(g, streams.chip)
            g[u < s.at_g_min] = array.g_min
            g[(u >= s.at_g_min) & (u < s.at_g_min + s.at_g_max)] = array.g_max

    @property
    def noiseless(self):
        return self.spec.at_g_min == 0 and self.spec.at_g_max == 0


class LevelsSpec(Spec):
    n: int = Field(ge=2, le=1_000_000)


class Levels(Component):
    """Finite programming resolution: G is rounded to the nearest of ``n`` levels evenly spaced on [g_min, g_max]."""

    key = "levels"
    spec_class = LevelsSpec

    def apply(self, array, streams, t):
        step = (array.g_max - array.g_min) / (self.spec.n - 1)
        for g in array.devices:
            g.clamp_(array.g_min, array.g_max).sub_(array.g_min).div_(step).round_().mul_(step).add_(array.g_min)


COMPONENTS: dict[str, type[Component]] = {c.key: c for c in (Gaussian, Programming, DeviceToDevice, Read, Drift,
                                                              StuckAt, Levels)}
