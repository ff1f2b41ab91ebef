"""``bitfit`` (Ben Zaken et al. 2022): every bias of the encoder (linear layers and layer norms) and the head
train; the analog layers hold the frozen W, their biases are added digitally after the analog product."""

from __future__ import annotations

from noisesim.methods.base import FrozenLinear, Method


def _bias(name: str) -> bool:
    return name.startswith("encoder.") and name.endswith(".bias")


BITFIT = Method("bitfit", FrozenLinear, trained="every bias of the encoder, and the head",
                analog="the frozen pretrained W", digital="the biases (trained), the head", trains_backbone=_bias)
