"""The periphery around the crossbar, applied at every matrix-vector product (MVM): DAC, tiles, IR drop,
output noise, ADC. A profile lists them under ``periphery:`` (absent: none, and nothing changes)::

    periphery:
      tile: {rows: 256, cols: 256}               # crossbar size: inputs (rows) × outputs (cols) per tile
      dac: {bits: 8, calibrate: max}             # or {bits: 8, range: 3.0} (fixed, in the layer's input units)
      adc: {bits: 8, per: column, calibrate: percentile, percentile: 99.99}   # or range: (output units)
      output_noise: {sigma: 0.01}                # σ relative to the ADC range, per output per MVM
      ir_drop: {wire_resistance: 0.35, scale: 1.0}

What one MVM of a layer y = x·Wᵀ + b does, W the realized weight (every noise component applied):

1. ``dac``: x is clipped to [−r, r] and rounded to 2^bits − 1 levels (``quantize``);
2. ``tile``: the inputs are split into blocks of ``rows`` and the outputs into blocks of ``cols``; each
   row block gives partial sums y_p = x_p·W_pᵀ, read by its own ADC;
3. ``ir_drop`` lowers each partial sum (``IrDrop``);
4. per-MVM read noise of the profile's ``read`` component (``per: mvm``) is added per tile, from the
   same run-time stream as without a periphery;
5. ``output_noise``: + σ·R·ε per output per MVM, R the ADC range of that output in that tile;
6. ``adc``: the partial sum is clipped to [−R, R] and rounded to 2^bits − 1 levels;
7. the tiles' digital partial sums are added, then the (digital) bias.

Ranges: fixed (``range:``, in the layer's own units: inputs for the DAC, partial sums x_p·W_pᵀ for the
ADC) or calibrated per layer (``calibrate: max | percentile``) on the first MVM the layer performs after
each programming, i.e. on the first evaluation batch of every sweep cell; that batch is then itself
evaluated with the calibrated ranges. The DAC calibrates one range per layer (over every input value of
the batch), the ADC one per output of each row tile (``per: column``) or one per tile (``per: tile``),
over the batch's pre-ADC partial sums (read noise and IR drop included, output noise not).

Randomness (output noise) comes from the ``read`` stream: ``generator(seed, "read", chip, program, read,
layer, "periphery")``, continued from one MVM to the next, so the same seeds give the same numbers.
The drift-compensation scale α is digital, applied after the ADC: the layer's weight holds it folded in
(as without a periphery), so the hook divides it out of what the array sees: a fixed ADC range R is α·R
in the layer's units and IR drop sees the drifted conductances (calibrated ranges scale with α anyway).
The periphery acts in sweeps (``noisesim.engine.program``); ``devices.apply`` and hardware-aware training
realize weights only and ignore it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal

import torch
from pydantic import AfterValidator, Field, model_validator
from torch import nn
from torch.nn import functional as F  # noqa: N812

from noisesim.devices.runtime import RuntimeRead
from noisesim.devices.schema import Bounded, Mapping, NonNeg, Spec
from noisesim.seeds import SplitNormal


def _int_range(lo: int, hi: int, unit: str = ""):
    def check(value: int) -> int:
        if lo <= value <= hi:
            return value
        side = f"greater than or equal to {lo}" if value < lo else f"less than or equal to {hi}"
        raise ValueError(f"Input should be {side} (allowed: {lo} to {hi}{unit})")
    return Annotated[int, AfterValidator(check)]


Bits = _int_range(2, 24, " bits; float32 resolves 24")
Cells = _int_range(1, 1_000_000, " devices")


# --- the quantizer ---------------------------------------------------------------------------------------------


def levels(bits: int) -> int:
    """L = 2^(bits−1) − 1: a ``bits`` converter has the 2^bits − 1 levels k·r/L, k = −L … L (zero included)."""
    return 2 ** (bits - 1) - 1


def quantize(x: torch.Tensor, bound: torch.Tensor | float, bits: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """x clipped to [−bound, bound] and rounded to the nearest level k·Δ, Δ = bound/L, k = −L … L
    (L = 2^(bits−1) − 1): k = round(clip(x·(L/bound), −L, L)), in x's dtype. Ties (x·L/bound exactly
    half-way between two integers) round to the even k, as ``torch.round`` does (round half to even):
    0.5Δ → 0, 1.5Δ → 2Δ, 2.5Δ → 2Δ, −0.5Δ → −0. ``out``: where to write (may be x itself); else a new
    tensor. ``bound`` > 0, a number or a tensor broadcastable to x."""
    n = levels(bits)
    return torch.mul(x, n / bound, out=out).clamp_(-n, n).round_().mul_(bound / n)


def calibrated_range(values: torch.Tensor, method: str, percentile: float, dim: int | None = None) -> torch.Tensor:
    """max |v| (``max``) or the nearest-rank ``percentile`` of |v| (the ⌈q/100·n⌉-th smallest of the n
    values; ``percentile``), over all values or along ``dim`` (kept). A range of 0 (every value 0) becomes
    the smallest positive float, so that later values saturate at ±0 instead of dividing by zero."""
    mag = values.detach().abs()
    if dim is None:
        mag = mag.reshape(-1)
    axis = 0 if dim is None else dim
    n = mag.shape[axis]
    if method == "max" or n == 0:
        out = mag.amax(dim=axis, keepdim=dim is not None) if n else mag.new_zeros(())
    else:
        k = min(max(math.ceil(percentile / 100 * n), 1), n)
        out = mag.kthvalue(k, dim=axis, keepdim=dim is not None).values
    return out.clamp(min=torch.finfo(out.dtype).tiny)


# --- the components' parameters ---------------------------------------------------------------------------------


class ConverterSpec(Spec):
    """A converter: ``bits`` and a fixed ``range`` or a calibrated one (``calibrate``, ``percentile``)."""

    bits: Bits
    range: Bounded(1e-12, 1e12) | None = Field(None, description="fixed range ±range (layer units); else calibrated")
    calibrate: Literal["max", "percentile"] = "max"
    percentile: Bounded(50.0, 100.0) = 99.99

    @model_validator(mode="after")
    def _one_range(self):
        if self.range is not None and {"calibrate", "percentile"} & self.model_fields_set:
            raise ValueError("give a fixed range or calibrate (with percentile), not both")
        if self.calibrate == "max" and "percentile" in self.model_fields_set:
            raise ValueError("percentile needs calibrate: percentile")
        return self


class DacSpec(ConverterSpec):
    pass


class AdcSpec(ConverterSpec):
    per: Literal["column", "tile"] = "column"


class OutputNoiseSpec(Spec):
    sigma: NonNeg  # relative to the ADC range; 0 switches it off


class TileSpec(Spec):
    rows: Cells
    cols: Cells


class IrDropSpec(Spec):
    wire_resistance: Bounded(0.0, 1e6, " Ω") = 0.35
    scale: NonNeg = 1.0


class PeripherySpec(Spec):
    """The ``periphery:`` section of a profile; every part optional."""

    tile: TileSpec | None = None
    dac: DacSpec | None = None
    ir_drop: IrDropSpec | None = None
    output_noise: OutputNoiseSpec | None = None
    adc: AdcSpec | None = None

    @model_validator(mode="after")
    def _noise_needs_adc(self):
        if self.output_noise is not None and self.adc is None:
            raise ValueError("output_noise.sigma is relative to the ADC range: add an adc (e.g. adc: {bits: 8})"
                             " or remove output_noise")
        return self


# --- the components ---------------------------------------------------------------------------------------------


class PeripheryComponent:
    """One part of the periphery with its parameters ``spec``; stateless: a layer's calibrated ranges live
    in its ``PeripheryHook``."""

    key: ClassVar[str] = ""
    spec_class: ClassVar[type[Spec]] = Spec

    def __init__(self, spec: Spec):
        self.spec = spec


class Converter(PeripheryComponent):
    def bound(self, values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
        """The range: fixed, or calibrated from ``values`` (over all of them, or along ``dim``)."""
        s = self.spec
        if s.range is not None:
            return values.new_tensor(s.range)
        return calibrated_range(values, s.calibrate, s.percentile, dim)

    def __call__(self, values: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
        return quantize(values, bound, self.spec.bits)


class Dac(Converter):
    """Input quantization: each input clipped to [−r, r] and rounded to 2^bits − 1 levels (``quantize``);
    r fixed (``range``, the layer's input units) or calibrated once per layer and programming."""

    key = "dac"
    spec_class = DacSpec


class Adc(Converter):
    """Output quantization of each tile's partial sum, with saturation at ±R; R per output column of the
    tile (``per: column``) or one per tile (``per: tile``), fixed (``range``) or calibrated."""

    key = "adc"
    spec_class = AdcSpec


class OutputNoise(PeripheryComponent):
    """Additive N(0, (σ·R)²) on every output of every tile at every MVM, R that output's ADC range."""

    key = "output_noise"
    spec_class = OutputNoiseSpec

    def __call__(self, y: torch.Tensor, bound: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        eps = torch.randn(y.shape, generator=gen, dtype=y.dtype, device=y.device)
        return y.addcmul_(eps, bound * self.spec.sigma)


class Tiles(PeripheryComponent):
    """Crossbar-sized pieces: inputs in blocks of ``rows`` (each block a tile's word lines), outputs in blocks
    of ``cols``; each tile has its own ADC and the partial sums of the row blocks are added digitally.
    Without ``tile:`` the layer is one tile."""

    key = "tile"
    spec_class = TileSpec


class IrDrop(PeripheryComponent):
    """First-order IR drop along the columns, as aihwkit documents and implements it (``IOParameters.ir_drop``,
    ``ir_drop_g_ratio``; ``ForwardBackwardPassIOManaged::applyIrDrop`` in ``rpu_forward_backward_pass.cpp``).
    In one tile of n rows, with normalized weights w̃ = w/w_max (w_max: the mapping's abs-max, i.e. the
    conductance window) and inputs x̃ = x/r (r: the DAC range, else max |x| calibrated like the DAC), output j
    loses

        Δy_j = scale · c(a_j) · Σ_i w_ji x_i (1 − (1 − i/n)²),
        a_j  = n · Σ_i |w̃_ji| |x̃_i| / g_ratio,     c(a) = a (a (0.05 a − 0.2) + 0.5),

    where i = 0 is the row farthest from the column's output and g_ratio = G_wire/g_max = 1/(R_wire·g_max) is
    the wire conductance between neighbouring cells over the device's g_max (``wire_resistance`` in Ω, the
    mapping's g_max in µS; aihwkit's default is 0.35 Ω and 5 µS). The drop grows with the column's total
    input current (a_j) and with the row's distance from the output. Δy_j is in the layer's units; the
    formula is aihwkit's, this code is noisesim's own."""

    key = "ir_drop"
    spec_class = IrDropSpec

    def g_ratio(self, g_max: float) -> float:
        r = self.spec.wire_resistance
        return math.inf if r == 0 else 1.0 / (r * g_max * 1e-6)

    @staticmethod
    def cubic(a: torch.Tensor) -> torch.Tensor:
        return a * (a * (0.05 * a - 0.2) + 0.5)

    @property
    def noiseless(self) -> bool:
        return self.spec.scale == 0 or self.spec.wire_resistance == 0


PERIPHERY: dict[str, type[PeripheryComponent]] = {c.key: c for c in (Tiles, Dac, IrDrop, OutputNoise, Adc)}


class Periphery:
    """A profile's validated ``periphery:``, one component object per key given."""

    def __init__(self, spec: PeripherySpec):
        self.spec = spec
        self.parts: dict[str, Any] = {k: PERIPHERY[k](getattr(spec, k)) for k in PERIPHERY
                                      if getattr(spec, k) is not None}

    def __repr__(self) -> str:
        return f"Periphery({', '.join(self.parts)})"

    @property
    def draws(self) -> bool:
        """True when it draws random numbers (output noise with σ > 0)."""
        noise = self.parts.get("output_noise")
        return noise is not None and noise.spec.sigma > 0

    def attach(self, layer: nn.Linear, programmed: torch.Tensor, mapping: Mapping, gen: torch.Generator,
               read: RuntimeRead | None = None, read_gen: torch.Generator | None = None,
               alpha: float | torch.Tensor = 1.0) -> PeripheryHook:
        """Run every MVM of ``layer`` (holding a realization of ``programmed``, drift-compensation scale ``alpha``
        folded in) through the periphery."""
        return PeripheryHook(self, layer, programmed, mapping, gen, read, read_gen, alpha)


def full_scale(weight: torch.Tensor, mapping: Mapping) -> torch.Tensor:
    """The weight that maps to the whole conductance window: the abs-max per tensor or per output column
    (after clipping at ±clip_sigma·std), as ``map_weight`` computes it; shape (out, 1) or ()."""
    w = weight.detach().to(torch.float32)
    per_column = mapping.scale == "column" and w.dim() > 1
    reduce = {"dim": tuple(range(1, w.dim())), "keepdim": True} if per_column else {}
    if mapping.clip_sigma is not None:
        bound = (w.std(**reduce) if per_column else w.std()) * mapping.clip_sigma
        w = torch.maximum(torch.minimum(w, bound), -bound)
    absmax = w.abs().amax(**reduce) if per_column else w.abs().max()
    return torch.where(absmax > 0, absmax, torch.ones_like(absmax))


class PeripheryHook:
    """Every MVM of one linear layer through its periphery: replaces the layer's ``forward`` until ``remove``.

    Forward pre- and post-hooks of the layer still run around it; read noise per forward ``pass`` (a
    pre-hook that sets the weight) composes with it, and read noise per ``mvm`` is added here, per tile.
    Each row tile is one matrix product on a slice of the inputs and of the weight's columns (no copies);
    its partial sum is converted in place and accumulated.
    """

    def __init__(self, periphery: Periphery, layer: nn.Linear, programmed: torch.Tensor, mapping: Mapping,
                 gen: torch.Generator, read: RuntimeRead | None = None, read_gen: torch.Generator | None = None,
                 alpha: float | torch.Tensor = 1.0):
        if not isinstance(layer, nn.Linear):
            raise TypeError(f"the periphery models nn.Linear layers, not {type(layer).__name__}")
        self.layer, self.parts = layer, periphery.parts
        self.gen = gen
        noise = self.parts.get("output_noise")
        self.noise_sigma = noise.spec.sigma if noise is not None else 0.0
        self.normal = SplitNormal(gen) if self.noise_sigma > 0 else None
        self.mvm_read = read if read is not None and read.per == "mvm" else None
        self.read_normal = SplitNormal(read_gen) if self.mvm_read is not None else None
        out_f, in_f = layer.out_features, layer.in_features
        tile = self.parts.get("tile")
        self.rows = min(tile.spec.rows, in_f) if tile else in_f
        self.cols = min(tile.spec.cols, out_f) if tile else out_f
        self.n_row_tiles = -(-in_f // self.rows)
        self.slices = [slice(p * self.rows, min((p + 1) * self.rows, in_f)) for p in range(self.n_row_tiles)]
        self.g_max = mapping.g_max
        dev, dtype = layer.weight.device, layer.weight.dtype
        self.full_scale = full_scale(programmed, mapping).to(device=dev, dtype=dtype)
        # the drift-compensation scale α is digital, after the ADC: the array's partial sums are the layer's
        # (α folded in) divided by α, so a fixed ADC range R is α·R in the layer's units, and IR drop sees
        # the drifted conductances w/α
        self.alpha = torch.as_tensor(alpha, dtype=dtype).to(dev).reshape(-1).abs()  # (1,) or (out,)
        ir = self.parts.get("ir_drop")
        self.ir = ir if ir is not None and not ir.noiseless else None
        if self.ir is not None:  # the position factor 1 − (1 − i/n)² of each input in its tile, n the tile's rows
            self.position = []
            for sl in self.slices:
                n = sl.stop - sl.start
                pos = 1 - (1 - torch.arange(n, dtype=torch.float64) / n) ** 2
                self.position.append(pos.to(device=dev, dtype=dtype))
        if self.mvm_read is not None:
            var = self.mvm_read.var.to(device=dev, dtype=dtype)
            self.read_std = var.sqrt().view(1, out_f) if self.mvm_read.per_output else None
            self.read_var = None if self.mvm_read.per_output else [var[:, sl].t().contiguous() for sl in self.slices]
        self.input_range: torch.Tensor | None = None
        self.scratch: torch.Tensor | None = None
        self.noise: torch.Tensor | None = None
        self.output_range: torch.Tensor | None = None  # (P, 1, out): each row tile's ADC range per output
        layer.forward = self.forward

    def _per_tile(self, values: torch.Tensor) -> torch.Tensor:
        """(P, N, out) → ADC range per (row tile, column tile), expanded to (P, 1, out)."""
        out_f = values.shape[-1]
        q = -(-out_f // self.cols)
        pad = q * self.cols - out_f
        v = F.pad(values.detach().abs(), (0, pad)) if pad else values.detach().abs()
        v = v.view(v.shape[0], v.shape[1], q, self.cols).permute(0, 2, 1, 3).reshape(v.shape[0], q, -1)
        adc = self.parts["adc"]
        r = adc.bound(v.transpose(1, 2), dim=1)  # (P, 1, q)
        return r.repeat_interleave(self.cols, dim=-1)[..., :out_f]

    def _calibrate_adc(self, partial: list[torch.Tensor]) -> None:
        adc = self.parts["adc"]
        y = torch.stack(partial)
        if adc.spec.range is not None:
            self.output_range = (y.new_tensor(adc.spec.range) * self.alpha).expand(y.shape[0], 1, y.shape[-1])
        elif adc.spec.per == "column":
            self.output_range = adc.bound(y, dim=1)
        else:
            self.output_range = self._per_tile(y)
        self.noise_scale = self.output_range * self.noise_sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        weight = layer.weight
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        if x2.shape[0] == 0:  # nothing to convert, and nothing to calibrate on
            return F.linear(x, weight, layer.bias)
        dac = self.parts.get("dac")
        if self.input_range is None and (dac is not None or self.ir is not None):
            self.input_range = dac.bound(x2) if dac is not None else calibrated_range(x2, "max", 100.0)
        if dac is not None:  # into a scratch buffer kept between MVMs: no fresh memory per call
            if self.scratch is None or self.scratch.numel() < x2.numel() or self.scratch.dtype != x2.dtype:
                self.scratch = torch.empty(x2.numel(), dtype=x2.dtype, device=x2.device)
            x2 = quantize(x2, self.input_range, dac.spec.bits, out=self.scratch[:x2.numel()].view(x2.shape))
        partial = []
        for p, sl in enumerate(self.slices):
            xp = x2 if self.n_row_tiles == 1 else x2[:, sl]
            wp = weight if self.n_row_tiles == 1 else weight[:, sl]
            y = torch.matmul(xp, wp.t())
            if self.ir is not None:
                y = y.sub_(self._ir_drop(xp, wp, p))
            if self.mvm_read is not None:  # σ_j·‖x_p‖ per tile, or sqrt(Σ_i x_i² σ_ij²)
                eps = self.read_normal(y.shape, y.dtype)
                if self.read_std is not None:
                    y = y.addcmul_(eps.mul_(self.read_std), xp.square().sum(-1, keepdim=True).sqrt_())
                else:
                    y = y.addcmul_(eps, (xp.square() @ self.read_var[p]).sqrt_())
            partial.append(y)
        adc = self.parts.get("adc")
        if adc is not None:
            if self.output_range is None:
                self._calibrate_adc(partial)
            for p, y in enumerate(partial):  # in place: y + σ·R·ε, then quantized
                if self.normal is not None:
                    y.addcmul_(self._draw(y), self.noise_scale[p])
                quantize(y, self.output_range[p], adc.spec.bits, out=y)
        out = partial[0]
        for y in partial[1:]:
            out = out.add_(y)
        if layer.bias is not None:
            out = out.add_(layer.bias)
        return out.view(*lead, out.shape[-1])

    def _draw(self, y: torch.Tensor) -> torch.Tensor:
        """Output noise ε ~ N(0, 1) shaped like y, drawn into a buffer kept between MVMs (no fresh memory)."""
        n = y.numel()
        if self.noise is None or self.noise.numel() < n or self.noise.dtype != y.dtype:
            self.noise = torch.empty(n, dtype=y.dtype, device=y.device)
        return self.normal(y.shape, y.dtype, out=self.noise[:n].view(y.shape))

    def _ir_drop(self, xp: torch.Tensor, wp: torch.Tensor, p: int) -> torch.Tensor:
        """Δy of row tile ``p`` (N, out), see ``IrDrop``."""
        n = xp.shape[-1]
        scale = self.full_scale.reshape(-1, 1) if self.full_scale.dim() else self.full_scale
        wn = wp.abs() / (scale * self.alpha.reshape(-1, 1))  # the conductances G/g_max, α divided out
        current = torch.matmul(xp.abs() / self.input_range, wn.t())  # Σ_i |w̃_ji| |x̃_i|
        a = current.mul_(n / self.ir.g_ratio(self.g_max))
        return torch.matmul(xp * self.position[p], wp.t()).mul_(self.ir.cubic(a)).mul_(self.ir.spec.scale)

    def remove(self) -> None:
        if self.layer.__dict__.get("forward") == self.forward:
            del self.layer.forward
