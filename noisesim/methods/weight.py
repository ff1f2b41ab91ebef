"""Weight-space GRASP (paper Eq. 3–6): grouped weight shifts μ, and StochGRASP's N(μ, σ²).

Notation follows the paper's W ∈ R^{D_in × D_out}: the perturbation of weight (i, j) is
ΔW_ij ~ N(μ_{f(i), g(j)}, σ²_{f(i), g(j)}) with g(j) the random grouping of the D_out outputs
into K groups and f(i) = i (``per-row``: one set of K per input row) or f(i) = 1 (``shared``).
PyTorch stores the transpose, ``base.weight[j, i]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from noisesim.configs import MethodConfig
from noisesim.methods.base import AdapterLinear, Method
from noisesim.methods.grouping import group_index, group_sizes


class GroupedWeightLinear(AdapterLinear):
    """``grasp-w``: the deterministic grouped weight shift μ (the weight-space twin of StochGRASP)."""

    adapter_parameter_names = ("mu",)
    saved_buffer_names = ("group",)

    def __init__(self, base: nn.Linear, k: int, gen: torch.Generator, rows: str = "per-row"):
        super().__init__(base)
        self.k = k
        self.rows = rows
        self.register_buffer("group", group_index(base.out_features, k, gen))
        self.n_rows = base.in_features if rows == "per-row" else 1
        self.mu = nn.Parameter(torch.zeros(self.n_rows, k))

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator,
                    role: str) -> GroupedWeightLinear:
        return cls(base, config.k, gen, rows=config.rows)

    def _expand(self, p: torch.Tensor) -> torch.Tensor:
        """(rows, K) group parameters → (D_out, D_in) weight-shaped tensor."""
        return p.t()[self.group].expand(self.out_features, self.in_features)

    def programmed_weight(self) -> torch.Tensor:
        return (self.frozen_weight + self._expand(self.mu)).detach()

    def _row_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.rows == "per-row" else x.sum(-1, keepdim=True)

    def _mean_output(self, x: torch.Tensor) -> torch.Tensor:
        """x (W + μ)ᵀ + b without forming W + μ."""
        return self.base(x) + (self._row_input(x) @ self.mu)[..., self.group]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_programmed:  # base holds a realization of W + μ
            return self.base(x)
        return self._mean_output(x)


class StochGraspLinear(GroupedWeightLinear):
    """``stochgrasp``: ΔW ~ N(μ, σ²) per group, σ learned and sampled while training; eval uses the mean μ.

    ``noise_path='weight'`` draws one ΔW per forward pass (as the paper); ``local`` draws the exact
    output-space equivalent per token (local reparameterisation).
    """

    adapter_parameter_names = ("mu", "sigma_raw")
    noise_parameter_names = ("sigma_raw",)

    def __init__(self, base: nn.Linear, k: int, gen: torch.Generator, rows: str = "per-row",
                 sigma_init: float = 0.003, noise_path: str = "weight"):
        super().__init__(base, k, gen, rows=rows)
        self.noise_path = noise_path
        # Eq. 6 weight of each group parameter: how many weights share it (fixed by the grouping).
        shared_by = group_sizes(self.group, k).float() * (1 if rows == "per-row" else base.in_features)
        self.register_buffer("shared_by", shared_by, persistent=False)
        # σ is parametrised directly (σ = |s|) so Adam moves it at a rate set by its own learning
        # rate, not proportional to σ itself as a log-σ parametrisation would.
        self.sigma_raw = nn.Parameter(torch.full((self.n_rows, k), float(sigma_init)))

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator,
                    role: str) -> StochGraspLinear:
        return cls(base, config.k, gen, rows=config.rows, sigma_init=config.sigma_init, noise_path=config.noise_path)

    @property
    def sigma(self) -> torch.Tensor:
        return self.sigma_raw.abs()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_programmed or not self.training:
            return super().forward(x)
        if self.noise_path == "weight":
            eps = self._randn(self.base.weight.shape, self.base.weight)
            shift = self._expand(self.mu) + self._expand(self.sigma) * eps
            return self.base(x) + F.linear(x, shift)  # through base: where HWA's per-token noise is hooked
        y = self._mean_output(x)  # local reparameterisation: Var(y_j) = Σ_i x_i² σ²_{f(i),g(j)}
        var = (self._row_input(x * x) @ (self.sigma * self.sigma))[..., self.group]
        return y + torch.sqrt(var + 1e-12) * self._randn(y.shape, y)

    def sigma_penalty(self, target: float, reduction: str) -> tuple[torch.Tensor, int]:
        sq = (self.sigma - target) ** 2
        if reduction == "mean":  # every group parameter counts once
            return sq.sum(), sq.numel()
        # Eq. 6 as written: a sum over all weights, so each group counts once per weight sharing it.
        return (sq * self.shared_by).sum(), sq.numel()


GRASP_W = Method("grasp-w", GroupedWeightLinear, trained="K-group weight shift μ per input row, and the head",
                 analog="W + μ", digital="the head")
STOCHGRASP = Method("stochgrasp", StochGraspLinear, trained="K-group N(μ, σ²) weight perturbation (μ and σ), and"
                    " the head", analog="W + μ (σ only shapes training)", digital="the head")
