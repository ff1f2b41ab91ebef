"""``ia3`` (Liu et al. 2022) through the peft library: learned scales on the outputs of the key and value layers
and on the input of the second feed-forward layer. The scales are applied digitally; W stays frozen and
programmed."""

from __future__ import annotations

import torch
from torch import nn

from noisesim.configs import MethodConfig
from noisesim.methods.base import AdapterLinear, Method
from noisesim.methods.lora import ADAPTER, peft_layer

FEEDFORWARD = ("ff2",)  # roles whose input (not output) IA3 scales


class IA3Linear(AdapterLinear):
    """peft's ``ia3.Linear`` (``self.peft``, sharing ``base``) as an analog layer."""

    adapter_parameter_names = ("ia3_l",)
    tensor_paths = {"ia3_l": f"peft.ia3_l.{ADAPTER}"}

    def __init__(self, base: nn.Linear, gen: torch.Generator, feedforward: bool = False):
        super().__init__(base)
        self.peft = peft_layer("ia3", base, gen, is_feedforward=feedforward)

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator, role: str) -> IA3Linear:
        return cls(base, gen, feedforward=role in FEEDFORWARD)

    @classmethod
    def wrap(cls, peft_layer: nn.Module) -> IA3Linear:
        """The analog layer around an existing peft ``ia3.Linear`` (one ``PeftModel.from_pretrained`` loaded): its
        base layer is programmed, its trained scales stay as they are (nothing is initialised anew)."""
        base = getattr(peft_layer, "base_layer", None)
        if not isinstance(base, nn.Linear):
            raise TypeError(f"expected a peft ia3.Linear around an nn.Linear, got {type(peft_layer).__name__}")
        layer = cls.__new__(cls)
        AdapterLinear.__init__(layer, base)
        layer.peft = peft_layer
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.peft(x)  # base holds W, a programmed realization, or W + a training perturbation


IA3 = Method("ia3", IA3Linear, trained="IA3's scales (peft) on keys, values and the feed-forward input, and the"
             " head", analog="the frozen pretrained W", digital="the scales, the head")
