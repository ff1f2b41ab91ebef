"""Where the model runs: ``--device auto | cpu | cuda[:N]`` and ``--dtype float32 | bf16``.

``check_device`` / ``check_dtype`` check the spelling (torch-free, for the configs); ``resolve_device`` also checks
that the device exists, as a one-line UserError, before any work starts. ``auto`` is CUDA device 0 when torch sees
a GPU, else the CPU. bf16 is opt-in mixed precision (``torch.autocast``); float32 is the default.
"""

from __future__ import annotations

import contextlib
import platform
import re

from noisesim.errors import UserError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
DTYPES = ("float32", "bf16")
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


def is_device(value: object) -> bool:
    """Whether ``value`` spells a device (present here or not)."""
    return isinstance(value, str) and _DEVICE.fullmatch(value.strip().lower()) is not None


def check_device(value: object, flag: str = "--device") -> str:
    """The device's spelling, or UserError naming the problem and the fix."""
    if not is_device(value):
        raise UserError(f"{flag} {value!r} is not a device: give {DEVICE_CHOICES}")
    return value.strip().lower()


def check_dtype(value: object, flag: str = "--dtype") -> str:
    if value not in DTYPES:
        raise UserError(f"{flag} {value!r} is not known: give float32 (the default) or bf16 (mixed precision)")
    return value


def resolve_device(value: object, flag: str = "--device"):
    """The ``torch.device`` that ``value`` names; UserError when it is misspelled or not present here."""
    import torch

    text = check_device(value, flag)
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError(f"{flag} {text}: this torch ({torch.__version__}) sees no CUDA device; give --device cpu"
                        " (or auto), or install a CUDA build of torch on a machine with a GPU")
    index = int(text.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"{flag} {text}: there is no CUDA device {index} (this machine has {count}: cuda:0"
                        f"{f' to cuda:{count - 1}' if count > 1 else ''}); give one of them or auto")
    return torch.device("cuda", index)


def device_label(device) -> str:
    """Where the numbers were computed, for the results' provenance: the CPU with its threads, or the GPU's name."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.machine()})"


def autocast(device, dtype: str):
    """bf16 autocast on ``device`` for ``dtype`` 'bf16'; nothing for float32."""
    import torch

    if check_dtype(dtype) == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
