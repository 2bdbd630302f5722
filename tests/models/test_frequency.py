"""Freq-Adapter: Haar DWT round trip, FFT branch invariance to the DC level, injection at step 0."""
from __future__ import annotations

import numpy as np
import pytest
import pywt
import torch

from training.models.modules.frequency import (FFTBranch, FreqAdapter, forward_with_adapters, haar_dwt2d,
                                               haar_idwt2d, high_frequency_bins, resolve_block_indices)
from training.models.backbones.open_clip_vit import OpenClipTower

TINY = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 16}


def test_haar_analysis_then_synthesis_reconstructs_the_input():
    x = torch.randn(2, 3, 32, 48, dtype=torch.float32)
    bands = haar_dwt2d(x)
    assert all(band.shape == (2, 3, 16, 24) for band in bands)
    torch.testing.assert_close(haar_idwt2d(*bands), x, atol=1e-5, rtol=0)


def test_haar_bands_match_pywavelets_and_preserve_energy():
    image = np.random.default_rng(0).standard_normal((16, 16))
    ll, lh, hl, hh = (band[0, 0].numpy() for band in haar_dwt2d(torch.from_numpy(image)[None, None]))
    ca, (ch, cv, cd) = pywt.dwt2(image, "haar")
    np.testing.assert_allclose(ll, ca, atol=1e-12)
    # pywt's detail bands are ours up to its sign convention.
    np.testing.assert_allclose(np.abs(lh), np.abs(ch), atol=1e-12)
    np.testing.assert_allclose(np.abs(hl), np.abs(cv), atol=1e-12)
    np.testing.assert_allclose(np.abs(hh), np.abs(cd), atol=1e-12)
    energy = sum((band ** 2).sum() for band in (ll, lh, hl, hh))
    assert energy == pytest.approx((image ** 2).sum())  # orthonormal


def test_haar_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even height and width"):
        haar_dwt2d(torch.zeros(1, 1, 5, 4))


def test_fft_branch_ignores_the_dc_level_of_the_image():
    torch.manual_seed(0)
    branch = FFTBranch(patch_size=8, channels=16, low_freq_cutoff=0.1)
    images = torch.randn(2, 3, 32, 32)
    brighter = images + torch.tensor([0.7, -0.3, 1.5]).view(1, 3, 1, 1)  # per-channel DC shift
    torch.testing.assert_close(branch(brighter), branch(images), atol=1e-5, rtol=0)
    # ... but it does see texture: a high-frequency change moves the output.
    checker = (torch.arange(32).view(1, 32) + torch.arange(32).view(32, 1)) % 2
    assert (branch(images + 0.5 * checker.float()) - branch(images)).abs().max() > 1e-3


def test_low_frequency_cutoff_removes_dc_and_the_low_band():
    keep = high_frequency_bins(8, 0.0)
    assert not keep[0, 0] and keep.sum() == keep.numel() - 1  # 0: only DC removed
    assert high_frequency_bins(8, 0.2).sum() < keep.sum()
    with pytest.raises(ValueError, match="low_freq_cutoff"):
        FFTBranch(8, 4, 0.6)


def test_block_indices_resolve_and_are_checked():
    assert resolve_block_indices([-1, 0], 4) == (0, 3)
    with pytest.raises(ValueError, match="does not exist"):
        resolve_block_indices([4], 4)


def test_zero_initialised_adapters_leave_the_backbone_output_unchanged_then_learn():
    torch.manual_seed(0)
    backbone = OpenClipTower("custom", None, TINY).eval()
    adapter = FreqAdapter(width=32, patch_size=8, num_layers=2, fusion="blocks", blocks=[0, 1])
    images = torch.randn(2, 3, 32, 32)
    freq_tokens = adapter.tokens(images)
    assert freq_tokens.shape == (2, 16, 64)  # one token per 8×8 patch
    torch.testing.assert_close(forward_with_adapters(backbone, images, adapter, freq_tokens), backbone(images),
                               atol=0, rtol=0)
    # The zero-initialised projection still gets a gradient, so the adapter starts learning at step 0.
    forward_with_adapters(backbone, images, adapter, freq_tokens).pow(2).sum().backward()
    assert adapter.adapters["block_0"].up.weight.grad.abs().sum() > 0
