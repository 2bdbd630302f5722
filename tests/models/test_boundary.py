"""Boundary Mining: cue maps, mask-boundary targets, weighted pooling."""
from __future__ import annotations

import pytest
import torch

from training.losses.boundary import boundary_bce
from training.models.modules.boundary import BoundaryMining, boundary_cues, mask_boundary_target, sobel_magnitude


def test_mask_boundary_target_marks_the_patches_on_the_blending_edge():
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 10:22, 10:22] = 1.0  # a fake with a 12×12 pasted square; sample 0 is real
    target = mask_boundary_target(mask, patch_size=8)
    assert target.shape == (2, 4, 4)
    assert target[0].sum() == 0  # real: all-zero mask, no boundary
    # The edge (pixels 9..11 and 20..22 after dilation − erosion) lies in patches 1 and 2 only.
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = 1.0
    assert torch.equal(target[1], expected)
    # With 4-pixel patches the square's interior (pixels 12..19 = patches 3, 4) is not boundary.
    fine = mask_boundary_target(mask, patch_size=4)[1]
    assert fine[3:5, 3:5].sum() == 0
    assert torch.equal(fine[2, 2:6], torch.ones(4)) and fine[0].sum() == 0


def test_boundary_width_is_validated():
    with pytest.raises(ValueError, match="boundary_width"):
        mask_boundary_target(torch.zeros(1, 8, 8), 4, width=2)


def test_cues_see_edges_but_not_flat_regions():
    flat = torch.full((1, 3, 32, 32), 0.3)
    assert sobel_magnitude(flat.mean(1, keepdim=True)).max() < 1e-5
    step = flat.clone()
    step[..., 16:] = 1.0  # a vertical seam between patch columns 1 and 2
    cues = boundary_cues(step, patch_size=8, sigma=1.0)
    assert cues.shape == (1, 4, 4, 4)
    assert (cues[0, :, :, 1:3].mean() > cues[0, :, :, [0, 3]].mean() + 1.0)


def test_pooling_is_a_weighted_mean_of_the_patch_tokens():
    tokens = torch.randn(2, 16, 8)
    logits = torch.full((2, 4, 4), -20.0)
    logits[:, 1, 2] = 20.0  # all the weight on patch 1*4+2
    pooled = BoundaryMining.pool(tokens, logits)
    torch.testing.assert_close(pooled, tokens[:, 6], atol=1e-6, rtol=0)
    uniform = BoundaryMining.pool(tokens, torch.zeros(2, 4, 4))
    torch.testing.assert_close(uniform, tokens.mean(1), atol=1e-6, rtol=0)


def test_boundary_loss_trains_the_scorer_towards_the_mask_boundary():
    torch.manual_seed(0)
    module = BoundaryMining(width=8, patch_size=8)
    images = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 1, 32, 32)
    mask[1, :, 8:24, 8:24] = 1.0
    target = mask_boundary_target(mask, 8)
    cues = boundary_cues(images, 8, module.blur_sigma)  # fixed filters: compute once
    torch.testing.assert_close(module.scorer(cues).squeeze(1), module.weight_logits(images))
    before = boundary_bce(module.scorer(cues).squeeze(1), target)
    optimizer = torch.optim.Adam(module.scorer.parameters(), lr=0.05)
    for _ in range(10):
        optimizer.zero_grad()
        boundary_bce(module.scorer(cues).squeeze(1), target).backward()
        optimizer.step()
    assert boundary_bce(module.weight_logits(images), target) < before
    with pytest.raises(ValueError, match="differ"):
        boundary_bce(torch.zeros(2, 4, 4), torch.zeros(2, 2, 2))
