"""Methods registry: name → layer class; inject adapters into a backbone and read their declared state.

Each method's layer (``AdapterLinear`` subclass) declares its tensors by name: training, ``trainable_state``
and the checkpoint checks read those declarations, so a new method is one class and one registry entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from noisesim.configs import METHOD_NAMES, MethodConfig, check_method
from noisesim.methods.base import AdapterLinear
from noisesim.methods.grasp import GraspLinear
from noisesim.methods.weight import GroupedWeightLinear, StochGraspLinear
from noisesim.models import Backbone
from noisesim.seeds import generator

LayerFactory = Callable[[nn.Linear, MethodConfig, torch.Generator], AdapterLinear]

LAYERS: dict[str, type[AdapterLinear]] = {"grasp": GraspLinear, "grasp-w": GroupedWeightLinear,
                                          "stochgrasp": StochGraspLinear}
METHODS: dict[str, LayerFactory] = {name: layer.from_config for name, layer in LAYERS.items()}
# The deterministic weight-space twin of each stochastic method (swept alongside it).
TWIN = {"stochgrasp": "grasp-w"}
if tuple(LAYERS) != METHOD_NAMES:  # the torch-free names the configs validate against (not an assert: -O drops it)
    raise ImportError(f"noisesim.configs.METHOD_NAMES {METHOD_NAMES} must list the layer registry's {tuple(LAYERS)}")


def saved_names(config: MethodConfig) -> tuple[str, ...]:
    """Per-layer tensor names a checkpoint of ``config`` stores (declared by the method's layer class)."""
    return LAYERS[check_method(config.method)].saved_names(config)


def inject(backbone: Backbone, config: MethodConfig) -> dict[str, AdapterLinear]:
    """Freeze the backbone but its head, wrap the selected linear layers; returns name → adapter.

    Each layer's grouping comes from the ``grouping`` stream keyed by the layer name; exactly the head and
    the adapters' declared parameters are trainable.
    """
    if not isinstance(config, MethodConfig):
        raise TypeError(f"config must be a MethodConfig, got {type(config).__name__}")
    layer_class = LAYERS[check_method(config.method)]
    model = backbone.model
    for p in model.parameters():
        p.requires_grad_(False)
    for p in backbone.head_parameters().values():
        p.requires_grad_(True)
    adapters = {}
    for name, linear in backbone.linear_layers(config.layers).items():
        adapter = layer_class.from_config(linear, config, generator(config.perm_seed, "grouping", name))
        adapter.check_declarations()
        for p in adapter.adapter_parameters().values():
            p.requires_grad_(True)
        adapter.train(model.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, adapter)
        adapters[name] = adapter
    return adapters


def remove(backbone: Backbone) -> None:
    """Put the frozen linear layers back (undo ``inject``); the backbone can take another method."""
    for name, adapter in adapters_of(backbone.model).items():
        adapter.unprogram()
        parent_name, _, child = name.rpartition(".")
        setattr(backbone.model.get_submodule(parent_name), child, adapter.base)


def adapters_of(model: nn.Module) -> dict[str, AdapterLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, AdapterLinear)}


def set_training_noise(model: nn.Module, gen: torch.Generator | None) -> None:
    """Every adapter of ``model`` draws its training noise from ``gen`` (one stream, in forward order)."""
    for adapter in adapters_of(model).values():
        adapter.use_noise_generator(gen)


def trainable_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """Each adapter's declared state (``AdapterLinear.saved_state``) plus the head parameters — what a
    checkpoint stores; detached copies."""
    keep = {}
    for name, adapter in adapters_of(backbone.model).items():
        for key, tensor in adapter.saved_state().items():
            keep[f"{name}.{key}"] = tensor
    for key, p in backbone.head_parameters().items():
        keep[key] = p
    return {k: v.detach().clone().contiguous() for k, v in keep.items()}


def count_parameters(backbone: Backbone) -> tuple[int, int]:
    """(trainable, total) parameter counts: the paper's %Param is their ratio."""
    params = list(backbone.model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


__all__ = ["METHODS", "LAYERS", "TWIN", "MethodConfig", "AdapterLinear", "GraspLinear", "GroupedWeightLinear",
           "StochGraspLinear", "inject", "remove", "adapters_of", "set_training_noise", "saved_names",
           "trainable_state", "count_parameters", "check_method"]
