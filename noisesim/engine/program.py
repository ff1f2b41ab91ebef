"""Programming a checkpoint's analog layers with device realizations, and restoring them exactly."""

from __future__ import annotations

import torch

from noisesim.devices import Profile, gaussian
from noisesim.devices.periphery import PeripheryHook
from noisesim.devices.runtime import ReadNoiseHook
from noisesim.methods import AdapterLinear
from noisesim.seeds import generator


class ProgrammedWeights:
    """Programs a model's analog layers with one device realization after another; on leaving the ``with``
    block (also on an error or Ctrl-C) every layer holds its frozen weight again, bit-exactly, and no
    read-noise hook is left::

        with ProgrammedWeights(adapters_of(model)) as weights:
            weights.realize(profile, t=3600.0, chip=0, program=1, read=0, seed=0)
            accuracy(model, batches)

    ``programmed`` holds each layer's ``programmed_weight()`` (what is written to the devices), taken once; the
    realizations, and every draw of them, stay on the device the layers live on.
    """

    def __init__(self, adapters: dict[str, AdapterLinear]):
        if busy := [n for n, a in adapters.items() if a.is_programmed]:
            raise RuntimeError(f"adapter {busy[0]} is already programmed (by another ProgrammedWeights?)")
        self.adapters = adapters
        self.programmed = {n: a.programmed_weight() for n, a in adapters.items()}
        self.work = {n: torch.empty_like(w) for n, w in self.programmed.items()}  # reused by every realization
        self.hooks: list[ReadNoiseHook | PeripheryHook] = []
        self.entered = False

    def __enter__(self) -> ProgrammedWeights:
        self.entered = True
        return self

    def __exit__(self, *exc) -> None:
        self.entered = False
        self.restore()

    def realize(self, profile: Profile | float, *, t: float = 0.0, chip: int = 0, program: int = 0, read: int = 0,
                seed: int = 0) -> None:
        """Program every analog layer as chip ``chip`` realizes it after programming ``program``, read ``read``
        at time ``t`` (s); a float is the paper's Gaussian σ. Run-time read noise is hooked onto the layer,
        drawn from the (seed, chip, program, read, layer) stream. A profile with a ``periphery`` runs every
        MVM of the layer through it (``devices.periphery``): its ranges are calibrated on the layer's first
        MVM after this call, and its output noise is drawn from the read stage's (…, layer, "periphery")
        stream; per-MVM read noise is then added per tile by the periphery, from the same stream as without."""
        if not self.entered:
            raise RuntimeError("realize inside `with ProgrammedWeights(adapters) as weights:`, which restores them")
        profile = gaussian(profile) if isinstance(profile, int | float) else profile
        self.remove_hooks()
        for name, adapter in self.adapters.items():
            out = profile.realize(self.programmed[name], t=t, chip=chip, program=program, read=read, seed=seed,
                                  layer=name)
            adapter.program(self.work[name].copy_(out.weight))
            periphery = getattr(profile, "periphery", None)
            device = self.programmed[name].device  # every draw on the device the layer lives on
            if out.runtime_read is not None and (periphery is None or out.runtime_read.per != "mvm"):
                gen = generator(seed, "read", chip, program, read, name, "runtime", device=device)
                self.hooks.append(ReadNoiseHook(adapter.base, out.runtime_read, gen))
            if periphery is not None:
                self.hooks.append(periphery.attach(
                    adapter.base, self.programmed[name], profile.spec.mapping,
                    generator(seed, "read", chip, program, read, name, "periphery", device=device),
                    out.runtime_read, generator(seed, "read", chip, program, read, name, "runtime", device=device),
                    out.alpha))

    def remove_hooks(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []

    def restore(self) -> None:
        """Remove the read-noise hooks and put every frozen weight back (what leaving the ``with`` block does)."""
        self.remove_hooks()
        for adapter in self.adapters.values():
            adapter.unprogram()
