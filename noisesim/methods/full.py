"""``full``: full fine-tuning. Every encoder parameter and the head train; the analog layers' fine-tuned W is
programmed. Each analog layer keeps W frozen and trains a dense offset ΔW (Adam without weight decay moves W + ΔW
exactly as it would move W), so programming, HWA and the bit-exact restore work as for every other method."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from noisesim.configs import MethodConfig
from noisesim.methods.base import AdapterLinear, Method


class FullLinear(AdapterLinear):
    """W + ΔW, ΔW (``delta``) dense and zero at init."""

    adapter_parameter_names = ("delta",)

    def __init__(self, base: nn.Linear):
        super().__init__(base)
        self.delta = nn.Parameter(torch.zeros_like(base.weight))

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator, role: str) -> FullLinear:
        return cls(base)

    def programmed_weight(self) -> torch.Tensor:
        return (self.frozen_weight + self.delta).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_programmed:
            return self.base(x)
        return self.base(x) + F.linear(x, self.delta)  # through base: where HWA's per-token noise is hooked


def _encoder(name: str) -> bool:
    return name.startswith("encoder.")


FULL = Method("full", FullLinear, trained="every weight, bias, norm and embedding, and the head",
              analog="the fine-tuned W of the analog layers", digital="embeddings, norms, biases, head",
              trains_backbone=_encoder)
