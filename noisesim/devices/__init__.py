"""Device noise applied to programmed weights.

A noise component turns programmed weights into the weights a chip realises. This first
version has the paper's protocol (``gaussian``): every weight gets an independent
N(0, σ²) offset, drawn once per realization and held for the whole evaluation pass.
"""

from __future__ import annotations

import torch

from noisesim.seeds import generator


class GaussianNoise:
    """w' = w + σ·ε, ε ~ N(0, 1) per weight; σ in weight units (paper Sec. IV-D)."""

    name = "gaussian"

    def __init__(self, sigma: float):
        if not sigma >= 0:  # also rejects NaN
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)

    def apply_(self, weight: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Add one draw in place and return ``weight``."""
        if self.sigma > 0:
            noise = torch.randn(weight.shape, generator=gen, dtype=weight.dtype)
            weight.add_(noise.to(weight.device), alpha=self.sigma)
        return weight


def apply(weight: torch.Tensor, sigma: float, seed: int, layer: str = "") -> torch.Tensor:
    """A noisy copy of ``weight``: the ``noise`` stream keyed by (seed, layer) draws ε."""
    return GaussianNoise(sigma).apply_(weight.detach().clone(), generator(seed, "noise", layer))
