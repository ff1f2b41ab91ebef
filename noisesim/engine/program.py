"""Programming a checkpoint's analog layers with one device realization, and restoring them exactly."""

from __future__ import annotations

import torch

from noisesim.devices import Profile
from noisesim.devices.runtime import ReadNoiseHook
from noisesim.methods import AdapterLinear
from noisesim.seeds import generator


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
                self.hooks.append(ReadNoiseHook(adapter.base, buf, out.runtime_read, gen))

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def restore(self) -> None:
        self.remove_hooks()
        for name, adapter in self.adapters.items():
            adapter.base.weight.data = self.original[name]
            adapter.programmed = False


