"""``head``: a linear probe. Only the classification head trains; the analog layers hold the pretrained W."""

from __future__ import annotations

from noisesim.methods.base import FrozenLinear, Method

HEAD = Method("head", FrozenLinear, trained="the classification head only", analog="the frozen pretrained W",
              digital="the head")
