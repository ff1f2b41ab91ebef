"""The method configuration stored with every checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from noisesim.errors import UserError


@dataclass
class MethodConfig:
    """How a backbone is adapted.

    method: ``grasp`` (activation scale/shift, Eq. 1–2), ``grasp-w`` (grouped weight shift μ),
      ``stochgrasp`` (grouped N(μ, σ²) weight perturbation, Eq. 5–6).
    k: groups per layer (GRASP: along the input features; weight-space: along the outputs).
    layers: preset (all, kvf2, ff2) or comma-separated roles (q,k,v,o,ff1,ff2).
    rows: weight-space only; ``per-row`` is f(i)=i (one set of K per input row i),
      ``shared`` is f(i)=1 (one set of K for the whole matrix).
    scale, shift: GRASP only; switch γ or β off (paper Table V).
    sigma_init: StochGRASP's initial σ (paper: 0.001–0.005).
    noise_path: StochGRASP's training noise: ``weight`` draws one ΔW per forward pass and
      batch (as the paper), ``local`` draws the exact output-space equivalent per token.
    perm_seed: seed of the ``grouping`` stream (the permutations are also stored).
    """

    method: str = "stochgrasp"
    k: int = 64
    layers: str = "all"
    rows: str = "per-row"
    scale: bool = True
    shift: bool = True
    sigma_init: float = 0.003
    noise_path: str = "weight"
    perm_seed: int = 0

    def __post_init__(self):
        if self.rows not in ("per-row", "shared"):
            raise UserError(f"rows={self.rows!r} is not known (use per-row or shared)")
        if self.noise_path not in ("weight", "local"):
            raise UserError(f"noise_path={self.noise_path!r} is not known (use weight or local)")
        if self.k < 1:
            raise UserError(f"K={self.k} must be a positive integer")
        if not (self.scale or self.shift):
            raise UserError("GRASP needs scale or shift (both are switched off)")
        if self.sigma_init <= 0:
            raise UserError(f"sigma_init={self.sigma_init} must be > 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MethodConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
