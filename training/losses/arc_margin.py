"""Additive angular margin loss (ArcFace, Deng et al., CVPR 2019) for the real/fake head.

An alternative to plain cross-entropy on the hypersphere: logits are scaled
cosines between the unit feature and unit class weights, and the target
class's angle is enlarged by ``m`` during training, so each class must be
separated by a margin in angle, not just be on the right side of a plane.
At test time the logits are ``s·cos θ`` without margin.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from training.errors import ConfigError
from training.registry import LOSSES


def cosine_logits(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """cos θ between every unit feature (B, D) and unit class weight (C, D): (B, C)."""
    return F.linear(F.normalize(features.float(), dim=-1), F.normalize(weight.float(), dim=-1))


@LOSSES.register("arc_margin")
def arc_margin_loss(cosine: torch.Tensor, labels: torch.Tensor, s: float = 16.0, m: float = 0.3,
                    label_smoothing: float = 0.0) -> torch.Tensor:
    """CE over ``s·cos(θ + m)`` for the target class and ``s·cos θ`` for the others.

    Where θ + m would pass π (cos θ < cos(π − m)) the target logit uses ArcFace's
    monotonic continuation ``cos θ − m·sin m`` so the loss keeps decreasing in θ.
    """
    if s <= 0 or not 0 <= m < math.pi / 2:
        raise ConfigError(f"model.loss.arc_s must be > 0 and model.loss.arc_m in [0, π/2); got s={s}, m={m}.")
    cosine = cosine.float().clamp(-1 + 1e-7, 1 - 1e-7)
    sine = torch.sqrt(1.0 - cosine ** 2)
    with_margin = cosine * math.cos(m) - sine * math.sin(m)
    with_margin = torch.where(cosine > math.cos(math.pi - m), with_margin, cosine - m * math.sin(m))
    target = F.one_hot(labels.long(), cosine.shape[1]).bool()
    logits = s * torch.where(target, with_margin, cosine)
    return F.cross_entropy(logits, labels.long(), label_smoothing=label_smoothing)
