"""Supervision of Boundary Mining's weight map by the forgery mask's blending boundary."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.registry import LOSSES


@LOSSES.register("boundary_bce")
def boundary_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between boundary scores (B, gh, gw) and patch-level
    boundary targets in [0, 1] (training/models/modules/boundary.py:mask_boundary_target)."""
    if logits.shape != target.shape:
        raise ValueError(f"boundary logits {tuple(logits.shape)} and mask targets {tuple(target.shape)} differ; "
                         f"the mask must have the model's input resolution.")
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())
