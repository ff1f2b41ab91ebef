"""Read noise redrawn at run time, while the model runs: per forward pass or per matrix-vector product."""

from __future__ import annotations

import torch
from torch import nn

from noisesim.devices.components import RuntimeRead


class ReadNoiseHook:
    """Read noise redrawn at run time on one analog layer (a linear layer holding its realized weight).

    ``pass``: a fresh weight-space draw before every forward pass. ``mvm``: per token, the output-space
    equivalent y_j += ε_j·sqrt(Σ_i x_i² σ_ij²), which for σ that is constant per output is σ_j·‖x‖.
    """

    def __init__(self, layer: nn.Linear, realized: torch.Tensor, read: RuntimeRead, gen: torch.Generator):
        self.layer, self.realized, self.read, self.gen = layer, realized, read, gen
        self.std = read.var.sqrt()
        if read.per == "pass":
            self.scratch = torch.empty_like(realized)
            self.handle = layer.register_forward_pre_hook(self._pass)
        else:
            self.var_t = None if read.per_output else read.var.t().contiguous()
            self.handle = layer.register_forward_hook(self._mvm)

    def _pass(self, module, args):
        noise = torch.randn(self.realized.shape, generator=self.gen, dtype=self.realized.dtype)
        module.weight.data = torch.addcmul(self.realized, noise.to(self.realized.device), self.std, out=self.scratch)

    def _mvm(self, module, args, out):
        x = args[0]
        eps = torch.randn(out.shape, generator=self.gen, dtype=out.dtype).to(out.device)
        if self.var_t is None:  # σ_j·‖x‖: scale ε in place, no (tokens, out) temporary
            return out.addcmul_(eps.mul_(self.std[:, 0]), x.square().sum(-1, keepdim=True).sqrt_())
        return out.addcmul_(eps, (x.square() @ self.var_t).sqrt_())

    def remove(self):
        self.handle.remove()
