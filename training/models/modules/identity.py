"""Identity-invariant learning: an identity discriminator behind a gradient-reversal layer.

A detector trained on a few hundred FF++ identities can learn "who" instead
of "how it was made": the same identities appear as real and (as swap
targets) fake. An identity classifier on the CLS feature, connected through a
gradient-reversal layer (GRL, Ganin & Lempitsky, DANN, 2015), is trained to
recognise the identity while the encoder receives the *reversed* gradient,
which pushes identity information out of the feature.

The reversal strength follows DANN's schedule λ(p) = λ_max · (2 / (1 + exp(−γ p)) − 1)
with training progress p ∈ [0, 1] (γ = 10): the discriminator first learns
with little interference, then the encoder is pushed harder.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from training.errors import ConfigError


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = lambda_
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.lambda_ * grad, None


def gradient_reversal(x: torch.Tensor, lambda_: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient by −λ in the backward pass."""
    return _GradientReversal.apply(x, float(lambda_))


def dann_lambda(progress: float, gamma: float = 10.0, max_value: float = 1.0) -> float:
    """DANN's GRL schedule: 0 at progress 0, → max_value as progress → 1."""
    progress = min(max(float(progress), 0.0), 1.0)
    return max_value * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0)


class IdentityDiscriminator(nn.Module):
    """GRL → MLP → identity logits. ``set_progress`` updates λ (the detector forwards
    the trainer's per-step progress); λ is not saved, the trainer sets it every step."""

    def __init__(self, in_dim: int, num_identities: int, hidden: int = 256, gamma: float = 10.0,
                 max_lambda: float = 1.0):
        super().__init__()
        if num_identities < 2:
            raise ConfigError(f"model.identity.num_identities must be >= 2 (got {num_identities}); an identity "
                             f"discriminator needs at least two identities in the training data.")
        self.gamma, self.max_lambda = gamma, max_lambda
        self.lambda_ = 0.0
        self.classifier = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, num_identities))

    def set_progress(self, progress: float) -> None:
        self.lambda_ = dann_lambda(progress, self.gamma, self.max_lambda)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.classifier(gradient_reversal(feat, self.lambda_))


def check_identity_count(configured: Optional[int], found: int, source: str = "model.identity.num_identities") -> int:
    """The discriminator's class count given the training data's identity index.

    ``configured`` None: use the index size. A configured count smaller than the
    index would make identity ids out of range: an error that says what to set.
    """
    if found < 2:
        raise ValueError(f"The training data has {found} identities (dataset JSON 'identity' fields); the "
                         f"identity-adversarial head (model.identity.enabled) needs at least 2. Add identity "
                         f"fields to the dataset JSON or disable model.identity.")
    if configured is None:
        return found
    if int(configured) < found:
        raise ValueError(f"{source} = {configured}, but the training data has {found} identities. "
                         f"Set it to {found} (or null to take it from the data).")
    return int(configured)
