"""What every method's layer shares: it wraps a frozen ``nn.Linear`` whose weight lives on devices."""

from __future__ import annotations

import torch
from torch import nn


class AdapterLinear(nn.Module):
    """A frozen linear layer plus a method's trainable parameters.

    ``base`` is the analog layer: its weight is what gets programmed onto devices.
    ``programmed_weight()`` is the weight written to the devices (frozen W plus any weight-space
    mean); while ``programmed`` is True the forward pass reads the weight-space part from
    ``base.weight`` (set by the sweep) instead of adding it itself.
    """

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.programmed = False
        self.noise_generator: torch.Generator | None = None

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def programmed_weight(self) -> torch.Tensor:
        return self.base.weight.detach().clone()

    def sigma_penalty(self, target: float, reduction: str) -> tuple[torch.Tensor, int]:
        """(penalty, number of group σ) for the σ-target term (``mean`` divides by the total number);
        zero for deterministic methods."""
        return self.base.weight.new_zeros(()), 0

    def _randn(self, shape, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(shape, generator=self.noise_generator, dtype=like.dtype).to(like.device)
