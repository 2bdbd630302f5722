"""Frozen fp32 linear layers on CPU through oneDNN rather than MKL.

Why: LN-tuning a ViT is almost all matrix products with *frozen* weights (the q/k/v,
output and MLP projections, forward and input-gradient backward; no weight gradients).
On this project's 2-core AMD development machine, PyTorch's fp32 ``F.linear`` (MKL
sgemm) ran at 118-127 GFLOP/s on ViT-B/16's shapes, while oneDNN's linear primitive,
which PyTorch ships for its own compiler (``torch.ops.mkldnn._linear_pointwise``), ran
the same products at 176 GFLOP/s (``scripts/bench_ln_tuning.py``; docs/BENCHMARKS.md).

The results equal ``F.linear`` up to fp32 summation order (~1e-6 relative). Used only
where it cannot change training: CPU, fp32, no autocast, and weight and bias frozen
(their gradients are never needed, so the backward is the input gradient alone);
anything else goes through ``F.linear`` unchanged. Parameter names and state-dict keys
stay those of ``nn.Linear``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn(x2d: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x2d, weight, bias, "none", [], "")


class _FrozenLinear(torch.autograd.Function):
    """y = x Wᵀ + b with a frozen W, b: the backward returns dL/dx = dL/dy · W only."""

    @staticmethod
    def forward(ctx, x2d: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return _onednn(x2d, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        # dL/dx = grad · W, i.e. a linear layer whose (out, in) weight is Wᵀ; oneDNN reads the
        # transposed view in place (measured as fast as a contiguous copy, without the copy).
        return _onednn(grad.contiguous(), weight.t(), None), None, None


def _eligible(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not weight.requires_grad and (bias is None or not bias.requires_grad)
            and not torch.is_autocast_enabled("cpu") and onednn_linear_available())


def frozen_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN when eligible (see the module docstring)."""
    if not _eligible(x, weight, bias):
        return F.linear(x, weight, bias)
    out = _FrozenLinear.apply(x.reshape(-1, x.shape[-1]), weight, bias)
    return out.view(*x.shape[:-1], weight.shape[0])


class FrozenAwareLinear(nn.Linear):
    """An ``nn.Linear`` whose forward is :func:`frozen_linear` (same parameters and keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return frozen_linear(x, self.weight, self.bias)


def use_frozen_aware_linears(module: nn.Module) -> int:
    """Turn every plain ``nn.Linear`` below ``module`` into :class:`FrozenAwareLinear` in place
    (its parameters, hooks and keys are kept); returns how many were converted."""
    converted = 0
    for sub in module.modules():
        if type(sub) is nn.Linear:
            sub.__class__ = FrozenAwareLinear
            converted += 1
    return converted
