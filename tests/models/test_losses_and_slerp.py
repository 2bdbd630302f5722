"""Alignment / uniformity against hand-computed values; slerp stays on the sphere and in class."""
from __future__ import annotations

import math

import torch

from training.losses.hypersphere import alignment_loss, uniformity_loss
from training.models.modules.slerp import slerp_same_class


def test_alignment_hand_computed():
    # Unit vectors e1, e2 (label 0) and e1 (label 1): one same-label pair, distance sqrt(2).
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    assert math.isclose(alignment_loss(z, labels, alpha=2.0).item(), 2.0, rel_tol=1e-6)
    assert alignment_loss(z, torch.tensor([0, 1, 2])).item() == 0.0  # no same-label pair


def test_uniformity_hand_computed():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    # squared distances of the 3 pairs: 2, 4, 2
    expected = math.log((math.exp(-4) + math.exp(-8) + math.exp(-4)) / 3)
    assert math.isclose(uniformity_loss(z, t=2.0).item(), expected, rel_tol=1e-6)
    # identical features: mean exp(0) = 1 → log 1 = 0
    assert abs(uniformity_loss(torch.ones(4, 3), t=2.0).item()) < 1e-6


def test_slerp_outputs_unit_norm_within_class():
    torch.manual_seed(0)
    labels = torch.randint(0, 2, (64,))
    # class 0 lives in dims 0-7, class 1 in dims 8-15: any mixing across classes would leak.
    features = torch.randn(64, 16)
    features[labels == 0, 8:] = 0
    features[labels == 1, :8] = 0
    generator = torch.Generator().manual_seed(1)
    mixed = slerp_same_class(features, labels, (0.0, 1.0), generator)
    torch.testing.assert_close(mixed.norm(dim=-1), torch.ones(64), atol=1e-5, rtol=0)
    assert mixed[labels == 0, 8:].abs().max() < 1e-6
    assert mixed[labels == 1, :8].abs().max() < 1e-6
    assert not torch.allclose(mixed, torch.nn.functional.normalize(features, dim=-1))  # it did move


def test_slerp_endpoints():
    features = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1)
    labels = torch.zeros(6, dtype=torch.long)
    # t = 0 returns the original features exactly
    torch.testing.assert_close(slerp_same_class(features, labels, (0.0, 0.0)), features, atol=1e-5, rtol=0)
    # single-sample classes are left as they are
    lone = slerp_same_class(features[:1], labels[:1], (0.5, 0.5))
    torch.testing.assert_close(lone, features[:1])
