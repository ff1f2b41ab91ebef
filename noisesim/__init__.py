"""noisesim: accuracy of fine-tuned transformers whose weights live on noisy analog devices.

The public API (``noisesim.api``), importable from here::

    import noisesim
    noisesim.train("my-stoch", method="stochgrasp")          # fine-tune, write a checkpoint
    noisesim.train_seeds("my-lora", [0, 1, 2], method="lora") # one recipe, three training seeds
    result = noisesim.sweep(ckpt="sst2-stoch", sigma="0.01,0.02,0.05", out="results")
    result = noisesim.load_results("results")                 # a written sweep back
    noisesim.summarize(result.frame)                          # mean, std, 95 % interval, spread by level
    noisesim.plot(result, "results/fig6", formats=("png", "svg"))

``noisesim.devices`` holds the device profiles and noise components. Importing ``noisesim`` is cheap:
torch loads when one of these is first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.4.0"

_API = ("train", "train_seeds", "sweep", "sensitivity", "load_results", "summarize", "plot", "SweepConfig",
        "SweepResult", "MethodConfig", "TrainConfig")
__all__ = [*_API, "devices", "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("noisesim.api"), name)
    if name == "devices":
        return importlib.import_module("noisesim.devices")
    raise AttributeError(f"module 'noisesim' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
