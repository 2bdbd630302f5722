"""Frozen fp32 linear layers on CPU through whichever GEMM library is faster *on this machine*.

Why: LN-tuning a ViT is almost all matrix products with *frozen* weights (the q/k/v,
output and MLP projections, forward and input-gradient backward; no weight gradients).
PyTorch offers two fp32 CPU GEMMs for them: ``F.linear`` (MKL sgemm) and oneDNN's linear
primitive, which PyTorch ships for its own compiler (``torch.ops.mkldnn._linear_pointwise``).
Which one is faster depends on the host, and by a lot: on one 2-core AMD EPYC development
machine oneDNN ran ViT-B/16's shapes at 176 GFLOP/s and MKL at 118-127; on another (Zen 3)
MKL ran them at ~180 and oneDNN at 84-150 (docs/BENCHMARKS.md). So, like cuDNN's benchmark
mode, the first product of each shape times both (median of 5 interleaved rounds) and the faster is
used from then on.

The results equal ``F.linear`` up to fp32 summation order (~1e-6 relative). Used only
where it cannot change training: CPU, fp32, no autocast, and weight and bias frozen
(their gradients are never needed, so the backward is the input gradient alone);
anything else goes through ``F.linear`` unchanged. Parameter names and state-dict keys
stay those of ``nn.Linear``.

``CLIPFORENSICS_FROZEN_LINEAR=mkl`` or ``=onednn`` pins the library (bitwise-repeatable
runs; benchmarks); the default ``auto`` measures, except under
``torch.use_deterministic_algorithms`` (``train.deterministic: true``), where it keeps MKL:
which library wins a timing can change from run to run, and their ~1e-6 rounding
differences grow over training (rounding-level changes of this kind moved the demo
ablation baseline's mean video AUC by 4 points between two commits, docs/ABLATION.md).
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

BACKEND_ENV = "CLIPFORENSICS_FROZEN_LINEAR"
BACKENDS = ("auto", "mkl", "onednn")
# (rows, in features, out features, weight is a transposed view, has bias) -> use oneDNN
_CHOICES: Dict[Tuple[int, int, int, bool, bool], bool] = {}


def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def backend_setting() -> str:
    value = os.environ.get(BACKEND_ENV, "auto").strip().lower() or "auto"
    if value not in BACKENDS:
        raise ValueError(f"Environment variable {BACKEND_ENV}={value!r} is not one of {', '.join(BACKENDS)}.")
    if value == "onednn" and not onednn_linear_available():
        raise ValueError(f"{BACKEND_ENV}=onednn, but this PyTorch build has no oneDNN linear; use mkl or auto.")
    return value


def measured_choices() -> Dict[Tuple[int, int, int, bool, bool], str]:
    """What the measurement chose so far, per product shape (for benchmarks and reports)."""
    return {key: "onednn" if onednn else "mkl" for key, onednn in _CHOICES.items()}


def _onednn(x2d: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x2d, weight, bias, "none", [], "")


def _typical_seconds(candidates: Dict[bool, Callable[[], torch.Tensor]], rounds: int = 5) -> Dict[bool, float]:
    """Median time of each candidate over ``rounds``, the candidates interleaved so that a burst of
    load from elsewhere on a shared machine hits both rather than one. The median, not the best:
    on a noisy host, best-of-3 once sent all four forward shapes of ViT-B/16 to oneDNN on a
    machine where oneDNN runs them ~1.3x slower than MKL."""
    seconds: Dict[bool, list] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}


def _use_onednn(x2d: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    setting = backend_setting()
    if setting != "auto" or not onednn_linear_available():
        return setting == "onednn"
    if torch.are_deterministic_algorithms_enabled():
        # A timed choice can differ between runs (and DDP ranks) and the libraries round
        # differently, which training amplifies; repeatable runs (train.deterministic) keep MKL.
        return False
    key = (x2d.shape[0], weight.shape[1], weight.shape[0], weight.stride(0) == 1, bias is not None)
    choice = _CHOICES.get(key)
    if choice is None:
        with torch.no_grad():
            candidates = {True: lambda: _onednn(x2d, weight, bias), False: lambda: F.linear(x2d, weight, bias)}
            for run in candidates.values():  # warm-up: oneDNN builds its primitive, both touch the data
                run()
            seconds = _typical_seconds(candidates)
        choice = _CHOICES[key] = seconds[True] < seconds[False]
    return choice


def _product(x2d: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    return _onednn(x2d, weight, bias) if _use_onednn(x2d, weight, bias) else F.linear(x2d, weight, bias)


class _FrozenLinear(torch.autograd.Function):
    """y = x Wᵀ + b with a frozen W, b: the backward returns dL/dx = dL/dy · W only."""

    @staticmethod
    def forward(ctx, x2d: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        ctx.save_for_backward(weight)
        return _product(x2d, weight, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (weight,) = ctx.saved_tensors
        # dL/dx = grad · W, i.e. a linear layer whose (out, in) weight is Wᵀ; both libraries
        # read the transposed view in place.
        return _product(grad.contiguous(), weight.t(), None), None, None


def _eligible(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    return (x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not weight.requires_grad and (bias is None or not bias.requires_grad)
            and not torch.is_autocast_enabled("cpu"))


def frozen_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through the faster CPU library when eligible (module docstring)."""
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
