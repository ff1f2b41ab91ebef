"""Random grouping (paper Eq. 2): K shared parameters repeated ⌈D/K⌉ times, cut to D, permuted."""

from __future__ import annotations

import torch

from noisesim.errors import UserError


def group_index(dim: int, k: int, gen: torch.Generator) -> torch.Tensor:
    """Group id of each of ``dim`` components: ``(arange(dim) % k)[π]`` with π a seeded permutation.

    Expanding a K-vector ``p`` to D components is then ``p[group]``; every group has
    ⌊D/K⌋ or ⌈D/K⌉ members.
    """
    if not 1 <= k <= dim:
        raise UserError(f"K={k} groups do not fit a layer of width {dim} (choose 1 <= K <= {dim})")
    perm = torch.randperm(dim, generator=gen)
    return (torch.arange(dim) % k)[perm]


def group_sizes(group: torch.Tensor, k: int) -> torch.Tensor:
    """How many components each group has."""
    return torch.bincount(group, minlength=k)
