"""``lora`` (Hu et al. 2022) through the peft library: W + B·A·α/r with rank-r A, B on the target layers (query
and value by default). Merged (default): the programmed weight is W + B·A·α/r, as a LoRA model deployed on an
analog chip would be written. ``lora_digital``: W alone is programmed and B·A runs as a digital side path."""

from __future__ import annotations

import torch
from torch import nn

from noisesim.configs import MethodConfig
from noisesim.errors import UserError
from noisesim.methods.base import AdapterLinear, Method

ADAPTER = "default"  # peft's adapter name


def peft_layer(kind: str, base: nn.Linear, gen: torch.Generator, **options) -> nn.Module:
    """A peft tuner layer around ``base`` (its random initialisation drawn from ``gen``); ``base`` stays frozen."""
    import peft

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
        if kind == "lora":
            config = peft.LoraConfig(r=options["r"], lora_alpha=options["lora_alpha"], lora_dropout=0.0)
            layer = peft.tuners.lora.Linear(base, ADAPTER, config=config, **options)
        else:
            layer = peft.tuners.ia3.Linear(base, ADAPTER, config=peft.IA3Config(), **options)
    for p in base.parameters():
        p.requires_grad_(False)
    return layer


class LoraLinear(AdapterLinear):
    """peft's ``lora.Linear`` (``self.peft``, sharing ``base``) as an analog layer."""

    adapter_parameter_names = ("lora_A", "lora_B")
    tensor_paths = {"lora_A": f"peft.lora_A.{ADAPTER}.weight", "lora_B": f"peft.lora_B.{ADAPTER}.weight"}
    init_stream = "train"  # A's random start is part of the training run: each training seed draws its own

    def __init__(self, base: nn.Linear, gen: torch.Generator, rank: int = 8, alpha: float = 16.0,
                 digital: bool = False):
        super().__init__(base)
        if rank > min(base.in_features, base.out_features):
            raise UserError(f"--rank {rank} is larger than this layer's {base.out_features}×{base.in_features} weight"
                            " allows (a rank above min(in, out) adds parameters and nothing else): lower --rank")
        self.peft = peft_layer("lora", base, gen, r=rank, lora_alpha=alpha)
        self.digital = digital

    @classmethod
    def from_config(cls, base: nn.Linear, config: MethodConfig, gen: torch.Generator, role: str) -> LoraLinear:
        return cls(base, gen, rank=config.rank, alpha=config.lora_alpha, digital=config.lora_digital)

    def programmed_weight(self) -> torch.Tensor:
        if self.digital:
            return super().programmed_weight()
        return (self.frozen_weight + self.peft.get_delta_weight(ADAPTER)).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_programmed and not self.digital:  # base holds a realization of W + B·A·α/r
            return self.base(x)
        return self.peft(x)


LORA = Method("lora", LoraLinear, trained="LoRA's A and B (peft) on the target layers, and the head",
              analog="W + B·A·α/r merged (with --lora-digital: W)",
              digital="the head (with --lora-digital also B·A·α/r, as a side path)")
