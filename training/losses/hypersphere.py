"""Alignment and uniformity on the unit hypersphere (Wang & Isola, ICML 2020).

As used by LN-CLIP/GenD: both act on L2-normalised features; alignment pulls
together features *of the same label* (label-aware), uniformity spreads all
features over the sphere.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Tuple

import torch
import torch.nn.functional as F

from training.registry import LOSSES


@LOSSES.register("alignment")
def alignment_loss(features: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Mean ‖z_i − z_j‖^α over all same-label pairs i < j (0 when there is no such pair)."""
    z = F.normalize(features.float(), dim=-1)
    distances = torch.cdist(z, z)
    same = labels.view(-1, 1) == labels.view(1, -1)
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    pairs = same & upper
    if not pairs.any():
        return z.sum() * 0.0
    return distances[pairs].pow(alpha).mean()


@LOSSES.register("uniformity")
def uniformity_loss(features: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """log(mean over pairs i < j of exp(−t‖z_i − z_j‖²)); the mean is clamped at 1e-6 before the log."""
    z = F.normalize(features.float(), dim=-1)
    if z.shape[0] < 2:
        return z.sum() * 0.0
    squared = torch.pdist(z, p=2).pow(2)
    return torch.log(torch.exp(-t * squared).mean().clamp_min(1e-6))


def hypersphere_terms(features: torch.Tensor, labels: torch.Tensor,
                      weights: Mapping[str, Any]) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """The terms with a non-zero weight, as the detectors use them: ``({"alignment"?, "uniformity"?},
    weighted sum)``. A term weighted 0 is neither computed nor returned, so it is not logged as if it
    counted (the total is unchanged: it would add 0)."""
    parts: Dict[str, torch.Tensor] = {}
    total = features.new_zeros(())
    if weights["alignment"]:
        parts["alignment"] = alignment_loss(features, labels, weights["alignment_alpha"])
        total = total + weights["alignment"] * parts["alignment"]
    if weights["uniformity"]:
        parts["uniformity"] = uniformity_loss(features, weights["uniformity_t"])
        total = total + weights["uniformity"] * parts["uniformity"]
    return parts, total
