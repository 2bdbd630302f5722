"""Fusing an extra feature into the CLIP CLS feature without changing the model at step 0.

The framework's modules (frequency adapter, boundary mining) add information
to a detector that was designed and tuned without them. Their fusion layers
are *zero-initialised residuals*: at initialisation the fused feature equals
the input feature exactly, so switching a module on starts training from the
very function plain LN-CLIP computes, and the module's influence is whatever
training makes of it (the ControlNet / LoRA "zero init" argument). The output
projection still receives a gradient at step 0 (its input is non-zero), so
the residual starts learning immediately.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def zero_init_(layer: nn.Linear) -> nn.Linear:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


class ZeroInitFusion(nn.Module):
    """``x + W [x; extra]`` with ``W`` zero-initialised: concatenation at the CLS
    feature, projected back to its width, added as a residual.

    ``rank``: factor ``W`` as ``up · down`` through ``rank`` dimensions (``up``
    zero-initialised). A full-rank ``W`` for ViT-B/16 has (768 + extra) × 768
    parameters, more than ten times LN-CLIP's whole trainable budget; rank 64
    keeps the fusion in proportion. ``None``: full rank.
    """

    def __init__(self, width: int, extra_dim: int, rank: Optional[int] = None):
        super().__init__()
        if rank is None:
            self.proj = zero_init_(nn.Linear(width + extra_dim, width))
        else:
            if rank < 1:
                raise ValueError(f"fusion rank must be >= 1 (or null for full rank), got {rank}.")
            self.proj = nn.Sequential(nn.Linear(width + extra_dim, rank, bias=False),
                                      zero_init_(nn.Linear(rank, width)))

    def forward(self, x: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        return x + self.proj(torch.cat([x, extra.to(x.dtype)], dim=-1))
