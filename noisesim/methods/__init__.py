"""Methods registry: name → layer factory; inject adapters into a backbone and read their state."""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import nn

from noisesim.configs import MethodConfig
from noisesim.errors import UserError
from noisesim.methods.base import AdapterLinear
from noisesim.methods.grasp import GraspLinear
from noisesim.methods.weight import GroupedWeightLinear
from noisesim.models import Backbone
from noisesim.seeds import generator

LayerFactory = Callable[[nn.Linear, MethodConfig, torch.Generator], AdapterLinear]

METHODS: dict[str, LayerFactory] = {
    "grasp": lambda base, c, gen: GraspLinear(base, c.k, gen, scale=c.scale, shift=c.shift),
    "grasp-w": lambda base, c, gen: GroupedWeightLinear(base, c.k, gen, rows=c.rows),
    "stochgrasp": lambda base, c, gen: GroupedWeightLinear(
        base, c.k, gen, rows=c.rows, sigma_init=c.sigma_init, noise_path=c.noise_path),
}
# The deterministic weight-space twin of each stochastic method (swept alongside it).
TWIN = {"stochgrasp": "grasp-w"}


def check_method(name: str) -> str:
    if not isinstance(name, str):
        raise UserError(f"method must be a method name ({', '.join(METHODS)}), got {name!r}")
    if name not in METHODS:
        close = difflib.get_close_matches(name, METHODS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"unknown method {name!r}: {hint}known: {', '.join(METHODS)}")
    return name


def inject(backbone: Backbone, config: MethodConfig) -> dict[str, AdapterLinear]:
    """Freeze the backbone but its head, wrap the selected linear layers; returns name → adapter.

    Each layer's grouping comes from the ``grouping`` stream keyed by the layer name.
    """
    if not isinstance(config, MethodConfig):
        raise TypeError(f"config must be a MethodConfig, got {type(config).__name__}")
    factory = METHODS[check_method(config.method)]
    model = backbone.model
    for p in model.parameters():
        p.requires_grad_(False)
    for p in backbone.head_parameters().values():
        p.requires_grad_(True)
    adapters = {}
    for name, linear in backbone.linear_layers(config.layers).items():
        adapter = factory(linear, config, generator(config.perm_seed, "grouping", name))
        adapter.train(model.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, adapter)
        adapters[name] = adapter
    return adapters


def remove(backbone: Backbone) -> None:
    """Put the frozen linear layers back (undo ``inject``); the backbone can take another method."""
    for name, adapter in adapters_of(backbone.model).items():
        parent_name, _, child = name.rpartition(".")
        setattr(backbone.model.get_submodule(parent_name), child, adapter.base)


def adapters_of(model: nn.Module) -> dict[str, AdapterLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, AdapterLinear)}


def trainable_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """Adapter parameters and groupings plus head parameters — what a checkpoint stores."""
    keep = {}
    head = backbone.head_parameters()
    for name, adapter in adapters_of(backbone.model).items():
        for key, tensor in adapter.state_dict().items():
            if not key.startswith("base."):
                keep[f"{name}.{key}"] = tensor
    for key, p in head.items():
        keep[key] = p.detach()
    return {k: v.detach().clone().contiguous() for k, v in keep.items()}


def count_parameters(backbone: Backbone) -> tuple[int, int]:
    """(trainable, total) parameter counts: the paper's %Param is their ratio."""
    params = list(backbone.model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


__all__ = ["METHODS", "TWIN", "MethodConfig", "AdapterLinear", "inject", "remove", "adapters_of",
           "trainable_state", "count_parameters", "check_method"]
