"""Methods registry: name → ``Method`` (one file each); inject a method into a backbone and read its state.

Every method sees the same analog layers (``MethodConfig.layers``, all six linear roles by default): its target
layers get the method's layer class, the other analog layers a ``FrozenLinear``. Each layer class declares its
tensors by name; a method may also train backbone parameters (``Method.trains_backbone``: biases for BitFit,
everything for full fine-tuning). Training, ``trainable_state`` and the checkpoint checks read those declarations.
"""

from __future__ import annotations

import torch
from torch import nn

from noisesim.configs import METHOD_NAMES, MethodConfig, check_method
from noisesim.methods.base import AdapterLinear, FrozenLinear, Method
from noisesim.methods.bitfit import BITFIT
from noisesim.methods.full import FULL, FullLinear
from noisesim.methods.grasp import GRASP, GraspLinear
from noisesim.methods.head import HEAD
from noisesim.methods.ia3 import IA3, IA3Linear
from noisesim.methods.lora import LORA, LoraLinear
from noisesim.methods.weight import GRASP_W, STOCHGRASP, GroupedWeightLinear, StochGraspLinear
from noisesim.models import Backbone
from noisesim.seeds import generator

METHODS: dict[str, Method] = {m.name: m for m in (GRASP, GRASP_W, STOCHGRASP, FULL, HEAD, BITFIT, LORA, IA3)}
LAYERS: dict[str, type[AdapterLinear]] = {name: m.layer for name, m in METHODS.items()}
# The deterministic weight-space twin of each stochastic method (swept alongside it).
TWIN = {"stochgrasp": "grasp-w"}
if tuple(METHODS) != METHOD_NAMES:  # the torch-free names the configs validate against (not an assert: -O drops it)
    raise ImportError(f"noisesim.configs.METHOD_NAMES {METHOD_NAMES} must list the method registry's {tuple(METHODS)}")


def saved_names(config: MethodConfig) -> tuple[str, ...]:
    """Per-layer tensor names a checkpoint of ``config`` stores (declared by the method's layer class)."""
    return LAYERS[check_method(config.method)].saved_names(config)


def trains_backbone(config: MethodConfig) -> bool:
    """True if the method trains backbone parameters (stored in checkpoints by their model names)."""
    return METHODS[check_method(config.method)].trains_backbone is not Method.trains_backbone


def inject(backbone: Backbone, config: MethodConfig, init_seed: int = 0) -> dict[str, AdapterLinear]:
    """Freeze the backbone but its head, wrap every analog layer (the method's layer on its targets, a
    ``FrozenLinear`` on the rest); returns name → analog layer.

    Each layer draws its initialisation from the stream its class names (``AdapterLinear.init_stream``), keyed by
    the layer name: ``grouping`` (GRASP's permutations, from ``perm_seed``) or ``train`` (LoRA's A, from
    ``init_seed``, the training seed). Exactly the head, the adapters' declared parameters and the backbone
    parameters the method trains are trainable."""
    if not isinstance(config, MethodConfig):
        raise TypeError(f"config must be a MethodConfig, got {type(config).__name__}")
    method = METHODS[check_method(config.method)]
    model = backbone.model
    if adapters_of(model):
        raise RuntimeError("this backbone already holds a method: remove() it first")
    for p in model.parameters():
        p.requires_grad_(False)
    targets = set(config.target_roles())
    roles = backbone.linear_roles(config.layers)
    modules = backbone.linear_layers(config.layers)
    analog_weights = {id(m.weight) for m in modules.values()}
    adapters = {}
    for name, linear in modules.items():
        layer_class = method.layer if roles[name] in targets else FrozenLinear
        gen = (generator(config.perm_seed, "grouping", name) if layer_class.init_stream == "grouping"
               else generator(init_seed, "train", "init", name))
        adapter = layer_class.from_config(linear, config, gen, roles[name])
        adapter.check_declarations()
        for p in adapter.adapter_parameters().values():
            p.requires_grad_(True)
        adapter.train(model.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, adapter)
        adapters[name] = adapter
    for name, p in model.named_parameters():  # after wrapping: a layer's own constructor freezes its base
        if id(p) not in analog_weights and method.trains_backbone(name):
            p.requires_grad_(True)
    for p in backbone.head_parameters().values():
        p.requires_grad_(True)
    return adapters


def remove(backbone: Backbone) -> None:
    """Put the plain linear layers back, the backbone tensors a loaded checkpoint replaced too, and freeze
    everything (undo ``inject`` and ``load_trainable_state``); the backbone can take another method. Parameters
    trained in place (by ``training.train``) keep their values."""
    for name, adapter in adapters_of(backbone.model).items():
        adapter.unprogram()
        parent_name, _, child = name.rpartition(".")
        setattr(backbone.model.get_submodule(parent_name), child, adapter.base)
    for p in backbone.model.parameters():
        p.requires_grad_(False)
    for param, original in backbone.model.__dict__.pop(REPLACED, {}).values():
        param.data = original  # the very tensor it held before load_trainable_state


REPLACED = "_noisesim_replaced"  # model attribute: id → (parameter, the tensor a checkpoint's value replaced)


def adapters_of(model: nn.Module) -> dict[str, AdapterLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, AdapterLinear)}


def set_training_noise(model: nn.Module, gen: torch.Generator | None) -> None:
    """Every adapter of ``model`` draws its training noise from ``gen`` (one stream, in forward order)."""
    for adapter in adapters_of(model).values():
        adapter.use_noise_generator(gen)


def backbone_parameters(backbone: Backbone) -> dict[str, nn.Parameter]:
    """The trainable backbone parameters that are neither the head's nor an adapter's (BitFit's biases, full
    fine-tuning's weights), by model name."""
    adapter = {id(p) for a in adapters_of(backbone.model).values() for p in a.adapter_parameters().values()}
    head = {id(p) for p in backbone.head_parameters().values()}
    return {n: p for n, p in backbone.model.named_parameters()
            if p.requires_grad and id(p) not in adapter and id(p) not in head}


def trainable_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """What a checkpoint stores, as detached copies: each analog layer's declared state under
    ``LAYER.NAME``, the trained backbone parameters under their model names, and the head."""
    keep = {}
    for name, adapter in adapters_of(backbone.model).items():
        for key, tensor in adapter.saved_state().items():
            keep[f"{name}.{key}"] = tensor
    keep |= backbone_parameters(backbone)
    for key, p in backbone.head_parameters().items():
        keep[key] = p
    return {k: v.detach().clone().contiguous() for k, v in keep.items()}


@torch.no_grad()
def load_trainable_state(backbone: Backbone, tensors: dict[str, torch.Tensor]) -> None:
    """Copy a checkpoint's tensors (``trainable_state``'s keys; KeyError on any other) into an injected backbone.
    Backbone parameters are swapped, not overwritten: ``remove`` puts the backbone's own tensors back, so a cached
    backbone serves the next checkpoint unchanged."""
    adapters = adapters_of(backbone.model)
    params = dict(backbone.model.named_parameters())
    per_layer: dict[str, dict[str, torch.Tensor]] = {}
    replaced = backbone.model.__dict__.setdefault(REPLACED, {})
    for key, tensor in tensors.items():
        layer, _, local = key.rpartition(".")
        if layer in adapters:
            per_layer.setdefault(layer, {})[local] = tensor
        elif key in params:  # a trained backbone parameter: swapped in, the original kept for remove()
            if params[key].shape != tensor.shape:
                raise ValueError(f"{key}: shape {tuple(tensor.shape)}, the model's is {tuple(params[key].shape)}")
            replaced.setdefault(id(params[key]), (params[key], params[key].data))
            params[key].data = tensor.detach().clone().to(params[key].dtype)
        else:
            raise KeyError(key)
    for layer, state in per_layer.items():
        adapters[layer].load_saved_state(state)


def count_parameters(backbone: Backbone) -> tuple[int, int]:
    """(trainable, total) parameter counts: the paper's %Param is their ratio. Each tensor counts once (a peft
    layer shares its base layer)."""
    params = list(backbone.model.parameters())  # de-duplicated by torch
    full = [a for a in adapters_of(backbone.model).values() if isinstance(a, FullLinear)]
    offsets = sum(a.delta.numel() for a in full)  # full fine-tuning's ΔW re-trains W: not extra parameters
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params) - offsets


__all__ = ["METHODS", "LAYERS", "TWIN", "Method", "MethodConfig", "AdapterLinear", "FrozenLinear", "FullLinear",
           "GraspLinear", "GroupedWeightLinear", "IA3Linear", "LoraLinear", "StochGraspLinear", "inject", "remove",
           "adapters_of", "backbone_parameters", "set_training_noise", "saved_names", "trainable_state",
           "load_trainable_state", "trains_backbone", "count_parameters", "check_method"]
