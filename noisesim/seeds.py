"""Named, independent random streams.

Every random draw in noisesim comes from a ``torch.Generator`` seeded by
``derive_seed(base_seed, stream, *keys)``; the streams are

- ``"grouping"``: the fixed random permutation of each layer's groups (Eq. 2),
- ``"train"``: head initialisation, batch order, dropout and StochGRASP's training noise,
- ``"chip"``, ``"program"``, ``"read"``: a device realization at evaluation (``noisesim.devices``),
  keyed by (chip), (chip, programming) and (chip, programming, read) respectively, then by layer
  name and the component's position in the profile. Re-programming a chip keeps its chip draws,
  and the same seeds give every checkpoint the same draws for a layer of the same shape.

No global RNG state is read or written. A generator lives on the device of the tensors it fills
(``generator(..., device=...)``): the same stream names and seeds there, so common random numbers hold on a GPU
too, but a CUDA generator draws other numbers than a CPU one with the same seed.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import torch


def derive_seed(base: int, stream: str, *keys: object) -> int:
    """A 63-bit seed that depends only on ``base``, the stream name and the keys."""
    text = "\x1f".join([str(int(base)), stream, *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(base: int, stream: str, *keys: object, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator for one named stream, on ``device`` (where the tensors it fills live)."""
    return torch.Generator(device=device).manual_seed(derive_seed(base, stream, *keys))


def randn(shape, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """N(0, 1) of ``shape`` drawn on ``gen``'s device (no copy between devices)."""
    return torch.randn(shape, generator=gen, dtype=dtype, device=gen.device)


_FILLER: tuple[int, ThreadPoolExecutor] | None = None  # (process id, pool): a forked child makes its own
_PARALLEL_MIN = 1 << 15


class SplitNormal:
    """N(0, 1) draws for one stream, filled by two generators side by side: torch's Gaussian sampler is serial,
    and on the CPU it costs more per value than a 384-input matrix product per output. The first half of
    every flat draw comes from ``gen``, the second from a generator seeded by (``gen``'s seed, "second
    half"); each half is fixed by its own generator, so the numbers do not depend on threads or machine.
    On a GPU, whose sampler is parallel, ``gen`` (a generator on that device) fills every value alone."""

    def __init__(self, gen: torch.Generator):
        self.device = gen.device
        self.gens = (gen,) if gen.device.type != "cpu" else (gen, generator(gen.initial_seed(), "second half"))

    def __call__(self, shape: torch.Size | tuple[int, ...], dtype: torch.dtype = torch.float32,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """N(0, 1) of ``shape``, in ``out`` (a contiguous tensor of that shape on the generator's device) or a new
        tensor."""
        global _FILLER
        out = torch.empty(shape, dtype=dtype, device=self.device) if out is None else out
        if len(self.gens) == 1:
            return out.normal_(generator=self.gens[0])
        flat = out.view(-1)
        half = flat.numel() // 2
        first, second = flat[:half], flat[half:]
        if flat.numel() < _PARALLEL_MIN or torch.get_num_threads() < 2:
            first.normal_(generator=self.gens[0])
            second.normal_(generator=self.gens[1])
            return out
        if _FILLER is None or _FILLER[0] != os.getpid():
            _FILLER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="noisesim-normal"))
        pending = _FILLER[1].submit(_fill, second, self.gens[1], torch.is_inference_mode_enabled())
        first.normal_(generator=self.gens[0])
        pending.result()
        return out


def _fill(values: torch.Tensor, gen: torch.Generator, inference: bool) -> None:
    with torch.inference_mode(inference):  # inference mode is per thread: the caller's, here
        values.normal_(generator=gen)
