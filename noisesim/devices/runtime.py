"""Read noise redrawn at run time, while the model runs: per forward pass or per matrix-vector product.

A profile whose ``read`` component has ``per: pass`` or ``per: mvm`` leaves a ``RuntimeRead`` next to the
realized weight. ``RuntimeRead.sample`` is the one place a weight-space read is drawn: the ``pass`` hook
draws one before every forward pass, ``devices.apply`` draws one for a single read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn


@dataclass
class RuntimeRead:
    """Read noise redrawn at run time: per forward ``pass`` or per token ``mvm``.

    ``var`` is the per-weight read-noise variance in weight units, either one value per output
    (state-independent noise: shape (out, 1)) or one per weight (shape (out, in)); fixed once realized.
    """

    per: str
    var: torch.Tensor

    @property
    def per_output(self) -> bool:
        return self.var.shape[-1] == 1

    @cached_property
    def std(self) -> torch.Tensor:
        return self.var.sqrt()

    def sample(self, realized: torch.Tensor, gen: torch.Generator, out: torch.Tensor | None = None) -> torch.Tensor:
        """One read of the weight: realized + σ·ε, ε ~ N(0, 1) drawn from ``gen`` (a generator of the weight's
        device) in the weight's dtype."""
        eps = torch.randn(realized.shape, generator=gen, dtype=realized.dtype, device=realized.device)
        return torch.addcmul(realized, eps, self.std.to(realized.device), out=out)


class ReadNoiseHook:
    """Read noise redrawn at run time on one analog layer: a linear layer whose weight holds the realization.

    ``pass``: a fresh weight-space draw before every forward pass. ``mvm``: per token, the output-space
    equivalent y_j += ε_j·sqrt(Σ_i x_i² σ_ij²), which for σ that is constant per output is σ_j·‖x‖.
    """

    def __init__(self, layer: nn.Linear, read: RuntimeRead, gen: torch.Generator):
        self.layer, self.realized, self.read, self.gen = layer, layer.weight.data, read, gen
        self.std = read.std.to(self.realized.device)
        if read.per == "pass":
            self.scratch = torch.empty_like(self.realized)
            self.handle = layer.register_forward_pre_hook(self._pass)
        else:
            self.var_t = None if read.per_output else read.var.t().contiguous()
            self.handle = layer.register_forward_hook(self._mvm)

    def _pass(self, module, args):
        module.weight.data = self.read.sample(self.realized, self.gen, out=self.scratch)

    def _mvm(self, module, args, out):
        x = args[0]
        eps = torch.randn(out.shape, generator=self.gen, dtype=out.dtype, device=out.device)
        if self.var_t is None:  # σ_j·‖x‖: scale ε in place, no (tokens, out) temporary
            return out.addcmul_(eps.mul_(self.std[:, 0]), x.square().sum(-1, keepdim=True).sqrt_())
        return out.addcmul_(eps, (x.square() @ self.var_t).sqrt_())

    def remove(self):
        self.handle.remove()
