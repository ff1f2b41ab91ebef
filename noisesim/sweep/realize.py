"""Programming a checkpoint's analog layers with one device realization, and restoring them exactly."""

from __future__ import annotations

import torch

from noisesim.devices import Profile, RuntimeRead
from noisesim.methods import AdapterLinear
from noisesim.seeds import generator


class ReadNoiseHook:
    """Read noise redrawn at run time on one analog layer.

    ``pass``: a fresh weight-space draw before every forward pass. ``mvm``: per token, the output-space
    equivalent y_j += ε_j·sqrt(Σ_i x_i² σ_ij²), which for σ that is constant per output is σ_j·‖x‖.
    """

    def __init__(self, adapter: AdapterLinear, realized: torch.Tensor, read: RuntimeRead, gen: torch.Generator):
        self.adapter, self.realized, self.read, self.gen = adapter, realized, read, gen
        self.std = read.var.sqrt()
        if read.per == "pass":
            self.scratch = torch.empty_like(realized)
            self.handle = adapter.base.register_forward_pre_hook(self._pass)
        else:
            self.var_t = None if read.per_output else read.var.t().contiguous()
            self.handle = adapter.base.register_forward_hook(self._mvm)

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


class ProgrammedWeights:
    """Holds each analog layer's programmed weight and swaps device realizations in; restores exactly."""

    def __init__(self, adapters: dict[str, AdapterLinear]):
        self.adapters = adapters
        self.original = {n: a.base.weight.data for n, a in adapters.items()}
        self.programmed = {n: a.programmed_weight() for n, a in adapters.items()}
        self.work = {n: torch.empty_like(w) for n, w in self.programmed.items()}
        self.hooks: list[ReadNoiseHook] = []

    def realize(self, profile: Profile | float, t: float = 0.0, chip: int = 0, program: int = 0, read: int = 0,
                seed: int = 0) -> None:
        """Program every analog layer as one chip realizes it (a float is the paper's Gaussian σ)."""
        from noisesim.devices import gaussian

        profile = gaussian(profile) if isinstance(profile, int | float) else profile
        self.remove_hooks()
        for name, adapter in self.adapters.items():
            out = profile.realize(self.programmed[name], t, chip, program, read, seed, layer=name)
            buf = self.work[name].copy_(out.weight)
            adapter.base.weight.data = buf
            adapter.programmed = True
            if out.runtime_read is not None:
                gen = generator(seed, "read", chip, program, read, name, "runtime")
                self.hooks.append(ReadNoiseHook(adapter, buf, out.runtime_read, gen))

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def restore(self) -> None:
        self.remove_hooks()
        for name, adapter in self.adapters.items():
            adapter.base.weight.data = self.original[name]
            adapter.programmed = False


