"""Spherical interpolation between same-class features (LN-CLIP's feature augmentation)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def slerp_same_class(features: torch.Tensor, labels: torch.Tensor,
                     t_range: Sequence[float] = (0.0, 1.0),
                     generator: torch.Generator = None) -> torch.Tensor:
    """Replace each feature by a slerp towards a random feature of the same class.

    For every class with at least two samples in the batch, partners are a random
    permutation of that class (a sample may be paired with itself, as in the
    reference code), and t ~ U(t_range) per sample. Outputs are unit-norm and
    the batch size is unchanged; classes with a single sample are only normalised.
    """
    a = F.normalize(features, dim=-1)
    out = a.clone()
    low, high = float(t_range[0]), float(t_range[1])
    for label in labels.unique():
        index = (labels == label).nonzero(as_tuple=True)[0]
        if index.numel() < 2:
            continue
        perm = index[torch.randperm(index.numel(), generator=generator, device="cpu").to(index.device)]
        start, end = a[index], a[perm]
        t = low + (high - low) * torch.rand(index.numel(), 1, generator=generator, device="cpu")
        t = t.to(a.device, a.dtype)
        cos = (start * end).sum(-1, keepdim=True).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos)
        sin = torch.sin(theta)
        mixed = (torch.sin((1 - t) * theta) * start + torch.sin(t * theta) * end) / sin
        # Identical endpoints (self-pairs): theta ≈ 0 and the formula is 0/0; the answer is the endpoint.
        nearly_same = sin.abs() < 1e-4
        mixed = torch.where(nearly_same, start, mixed)
        out[index] = F.normalize(mixed, dim=-1)
    return out
