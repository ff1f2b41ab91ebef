"""Named, independent random streams.

Every random draw in noisesim comes from a ``torch.Generator`` seeded by
``derive_seed(base_seed, stream, *keys)``; the streams are

- ``"grouping"``: the fixed random permutation of each layer's groups (Eq. 2),
- ``"train"``: head initialisation, batch order, dropout and StochGRASP's training noise,
- ``"chip"``, ``"program"``, ``"read"``: a device realization at evaluation (``noisesim.devices``),
  keyed by (chip), (chip, programming) and (chip, programming, read) respectively, then by layer
  name and the component's position in the profile. Re-programming a chip keeps its chip draws,
  and the same seeds give every checkpoint the same draws for a layer of the same shape.

No global RNG state is read or written.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(base: int, stream: str, *keys: object) -> int:
    """A 63-bit seed that depends only on ``base``, the stream name and the keys."""
    text = "\x1f".join([str(int(base)), stream, *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def generator(base: int, stream: str, *keys: object) -> torch.Generator:
    """A CPU generator for one named stream."""
    return torch.Generator().manual_seed(derive_seed(base, stream, *keys))
