"""fast_block.py: QuickGELU folding and the CLS-only last block give open_clip's numbers and gradients."""
from __future__ import annotations

import copy

import pytest
import torch
from open_clip.model import _build_vision_tower
from open_clip.transformer import ResidualAttentionBlock

from training.models.backbones.fast_block import FastResidualAttentionBlock, _foldable
from training.models.backbones.open_clip_vit import OpenClipTower

TINY = {"image_size": 32, "patch_size": 8, "width": 64, "layers": 3, "head_width": 16}


def ln_tuned_backbone(quick_gelu: bool) -> OpenClipTower:
    torch.manual_seed(0)
    backbone = OpenClipTower(arch="custom", pretrained=None, vision_cfg=TINY, quick_gelu=quick_gelu)
    for name, param in backbone.named_parameters():
        param.requires_grad = "ln" in name
        if "ln" in name:  # move LayerNorms away from (1, 0) so their gradients are not special
            param.data.add_(0.1 * torch.randn_like(param))
    return backbone


def ln_grads(module) -> dict:
    return {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("quick_gelu", [True, False])
def test_blocks_equal_open_clip_towers_forward_and_gradients(quick_gelu):
    ours = ln_tuned_backbone(quick_gelu)
    assert all(type(b) is FastResidualAttentionBlock and _foldable(b) == quick_gelu for b in ours.blocks)
    reference = _build_vision_tower(embed_dim=32, vision_cfg=dict(TINY), quick_gelu=quick_gelu)
    reference.proj = None
    reference.load_state_dict(ours.visual.state_dict())
    for name, param in reference.named_parameters():
        param.requires_grad = "ln" in name
    assert all(type(b) is ResidualAttentionBlock for b in reference.transformer.resblocks)
    images = torch.randn(3, 3, 32, 32)
    expected = reference(images)
    actual = ours.feature(images)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.pooled(ours(images)), expected, atol=1e-5, rtol=1e-5)
    weights = torch.randn_like(expected)
    (expected * weights).sum().backward()
    (actual * weights).sum().backward()
    ours_grads, reference_grads = ln_grads(ours.visual), ln_grads(reference)
    assert set(ours_grads) == set(reference_grads) and len(ours_grads) == 2 * (2 * TINY["layers"] + 2)
    for name, grad in reference_grads.items():
        torch.testing.assert_close(ours_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_first_token_path_equals_the_full_block_for_full_fine_tuning():
    """With every parameter trainable, the CLS-only last block gives the same gradients to all of
    them, including the query rows of the packed projection (zero for the skipped tokens' part)."""
    ours = ln_tuned_backbone(quick_gelu=True)
    for param in ours.parameters():
        param.requires_grad = True
    twin = copy.deepcopy(ours)
    images = torch.randn(2, 3, 32, 32)
    fast, full = ours.feature(images), twin.pooled(twin(images))
    torch.testing.assert_close(fast, full, atol=1e-5, rtol=1e-5)
    fast.square().sum().backward()
    full.square().sum().backward()
    for (name, param), twin_param in zip(ours.named_parameters(), twin.parameters()):
        torch.testing.assert_close(param.grad, twin_param.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_average_pooling_keeps_every_patch_token():
    backbone = OpenClipTower(arch="custom", pretrained=None, vision_cfg={**TINY, "pool_type": "avg"})
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(backbone.feature(images), backbone(images)[:, 1:].mean(dim=1))


def test_a_hook_on_the_last_block_sees_the_all_token_path():
    """Grad-CAM and attention rollout hook the last block: it must then run as a whole."""
    backbone = ln_tuned_backbone(quick_gelu=True)
    seen = []
    handle = backbone.blocks[-1].attn.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape))
    images = torch.randn(2, 3, 32, 32)
    hooked = backbone.feature(images)
    handle.remove()
    assert seen == [(2, 1 + (TINY["image_size"] // TINY["patch_size"]) ** 2, TINY["width"])]
    torch.testing.assert_close(hooked, backbone.feature(images), atol=1e-5, rtol=1e-5)
