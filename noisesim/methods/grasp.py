"""GRASP (paper Eq. 1–2): grouped scale and shift on a linear layer's input activations."""

from __future__ import annotations

import torch
from torch import nn

from noisesim.configs import MethodConfig
from noisesim.methods.base import AdapterLinear, Method
from noisesim.methods.grouping import group_index


class GraspLinear(AdapterLinear):
    """x̃_i = (x_i − β_g(i)) / γ_g(i), then the frozen linear map; γ=1, β=0 at init (identity).

    The modulation runs digitally, so the programmed weights are the frozen W. ``scale=False`` or
    ``shift=False`` leaves γ or β out (None): not trained, not stored.
    """

    adapter_parameter_names = ("gamma", "beta")
    saved_buffer_names = ("group",)

    def __init__(self, base: nn.Linear, k: int, gen: torch.Generator, scale: bool = True, shift: bool = True):
        super().__init__(base)
        self.register_buffer("group", group_index(base.in_features, k, gen))
        self.gamma = nn.Parameter(torch.ones(k)) if scale else None
        self.beta = nn.Parameter(torch.zeros(k)) if shift else None

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator, role: str) -> GraspLinear:
        return cls(base, config.k, gen, scale=config.scale, shift=config.shift)

    @classmethod
    def saved_names(cls, config: MethodConfig | None = None) -> tuple[str, ...]:
        off = set() if config is None else {n for n, on in (("gamma", config.scale), ("beta", config.shift)) if not on}
        return tuple(n for n in super().saved_names() if n not in off)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.beta is not None:
            x = x - self.beta[self.group]
        if self.gamma is not None:
            x = x / self.gamma[self.group]
        return self.base(x)


GRASP = Method("grasp", GraspLinear, trained="K-group scale γ and shift β of each analog layer's input, and the head",
               analog="the frozen pretrained W", digital="the scale and shift, the head")
