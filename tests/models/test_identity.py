"""Identity-invariant head: gradient reversal, DANN λ schedule, masked identity loss, identity count."""
from __future__ import annotations

import math

import pytest
import torch

from training.losses.identity import identity_adversarial_loss
from training.models.modules.identity import (IdentityDiscriminator, check_identity_count, dann_lambda,
                                              gradient_reversal)


def test_gradient_reversal_is_identity_forward_and_scales_the_gradient_by_minus_lambda():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(5, 3, dtype=torch.float64)
    y = gradient_reversal(x, 0.37)
    assert torch.equal(y, x)
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, -0.37 * weights)
    # Numerically: the reversed gradient is −λ times the finite-difference slope of the forward.
    x2 = torch.randn(4, dtype=torch.float64, requires_grad=True)
    f = lambda t: (gradient_reversal(t, 2.0) ** 3).sum()  # noqa: E731
    f(x2).backward()
    eps = 1e-6
    for i in range(4):
        step = torch.zeros(4, dtype=torch.float64)
        step[i] = eps
        slope = (f(x2.detach() + step) - f(x2.detach() - step)) / (2 * eps)
        assert float(x2.grad[i]) == pytest.approx(-2.0 * float(slope), rel=1e-6)


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann_lambda(1.0, max_value=0.5) == pytest.approx(0.5 * dann_lambda(1.0))
    assert dann_lambda(2.0) == dann_lambda(1.0)  # clamped


def test_discriminator_trains_itself_while_reversing_the_gradient_to_the_feature():
    torch.manual_seed(0)
    head = IdentityDiscriminator(8, num_identities=3, hidden=16)
    head.set_progress(1.0)
    feat = torch.randn(6, 8, requires_grad=True)
    identity = torch.tensor([0, 1, 2, 0, 1, 2])
    loss = identity_adversarial_loss(head(feat), identity)
    loss.backward()
    reversed_grad = feat.grad.clone()
    # Same loss without reversal: the feature gradient is the exact opposite, scaled by 1/λ.
    feat.grad = None
    identity_adversarial_loss(head.classifier(feat), identity).backward()
    torch.testing.assert_close(reversed_grad, -head.lambda_ * feat.grad)
    assert head.classifier[0].weight.grad is not None


def test_identity_loss_ignores_unlabelled_samples():
    torch.manual_seed(0)
    logits = torch.randn(4, 5, requires_grad=True)
    identity = torch.tensor([2, -1, 4, -1])
    loss = identity_adversarial_loss(logits, identity)
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], identity[[0, 2]])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad[[1, 3]].abs().sum() == 0  # unlabelled rows get no gradient
    changed = logits.detach().clone()
    changed[[1, 3]] += 100.0
    torch.testing.assert_close(identity_adversarial_loss(changed, identity), expected.detach())
    nobody = identity_adversarial_loss(logits, torch.full((4,), -1))
    assert float(nobody.detach()) == 0.0
    nobody.backward()  # still part of the graph


def test_identity_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="num_identities"):
        identity_adversarial_loss(torch.zeros(2, 3), torch.tensor([0, 3]))


def test_identity_count_from_the_data_or_checked_against_it():
    assert check_identity_count(None, 7) == 7
    assert check_identity_count(9, 7) == 9
    with pytest.raises(ValueError, match="has 7 identities. Set it to 7"):
        check_identity_count(5, 7)
    with pytest.raises(ValueError, match="at least 2"):
        check_identity_count(None, 0)
