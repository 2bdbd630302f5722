"""Boundary Mining: pool the patch tokens where blending boundaries are likely.

Face swaps and re-enactments paste a generated region into a real frame; the
seam (the mask's boundary) carries the strongest low-level evidence: a step in
noise level, texture and sharpness. Two fixed filters expose it:

* the high-pass residual ``gray − GaussianBlur(gray)`` (noise / sharpness);
* the Sobel gradient magnitude (edges).

Their mean and max over every patch (4 cues on the ViT's patch grid, log
scaled) go through a small conv scorer to a soft weight map W = sigmoid(s) on
the patch grid. W weights the pooling of the final patch tokens, and the
pooled token is fused with the CLS feature through a zero-initialised
residual (:class:`ZeroInitFusion`), so at step 0 the detector equals LN-CLIP.

When the data has forgery masks, :func:`mask_boundary_target` turns each
mask into the patch-level blending boundary (morphological gradient, then
max-pooled per patch; all zero for real frames), which supervises s directly
(training/losses/boundary.py).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from training.errors import ConfigError
from training.models.modules.fusion import ZeroInitFusion

SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
NUM_CUES = 4  # (mean, max) × (high-pass residual, Sobel magnitude)


def sobel_magnitude(gray: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of (B, 1, H, W) with replicate padding (no artificial edge at the border)."""
    kernel_x = torch.tensor(SOBEL_X, dtype=gray.dtype, device=gray.device).view(1, 1, 3, 3)
    kernels = torch.cat([kernel_x, kernel_x.transpose(-1, -2)])
    gradients = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt((gradients ** 2).sum(1, keepdim=True) + 1e-12)


def high_pass_residual(gray: torch.Tensor, sigma: float) -> torch.Tensor:
    kernel = 2 * math.ceil(3 * sigma) + 1
    return gray - gaussian_blur(gray, [kernel, kernel], [sigma, sigma])


def boundary_cues(images: torch.Tensor, patch_size: int, sigma: float) -> torch.Tensor:
    """(B, 3, H, W) → (B, 4, H/p, W/p): log of per-patch mean and max of |residual| and Sobel."""
    gray = images.float().mean(1, keepdim=True)
    maps = torch.cat([high_pass_residual(gray, sigma).abs(), sobel_magnitude(gray)], dim=1)
    pooled = torch.cat([F.avg_pool2d(maps, patch_size), F.max_pool2d(maps, patch_size)], dim=1)
    return torch.log(pooled + 1e-4)


def mask_boundary_target(mask: torch.Tensor, patch_size: int, width: int = 3) -> torch.Tensor:
    """Patch-level blending boundary of forgery masks: (B, [1,] H, W) in [0, 1] → (B, H/p, W/p).

    Morphological gradient (dilation − erosion with a ``width``×``width`` square)
    marks pixels on the mask's edge; a patch's target is the max over its pixels.
    A real frame's all-zero mask gives an all-zero target.
    """
    if width < 3 or width % 2 == 0:
        raise ConfigError(f"model.boundary.boundary_width must be an odd number >= 3, got {width}.")
    m = mask.float()
    if m.dim() == 3:
        m = m.unsqueeze(1)
    pad = width // 2
    dilated = F.max_pool2d(m, width, stride=1, padding=pad)
    eroded = -F.max_pool2d(-m, width, stride=1, padding=pad)
    return F.max_pool2d(dilated - eroded, patch_size).squeeze(1)


class BoundaryMining(nn.Module):
    def __init__(self, width: int, patch_size: int, blur_sigma: float = 1.0, hidden: int = 8,
                 fusion_rank: Optional[int] = 64):
        super().__init__()
        if blur_sigma <= 0:
            raise ConfigError(f"model.boundary.blur_sigma must be > 0, got {blur_sigma}.")
        self.patch_size, self.blur_sigma = patch_size, blur_sigma
        self.scorer = nn.Sequential(nn.Conv2d(NUM_CUES, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, 1, 1))
        self.fusion = ZeroInitFusion(width, width, fusion_rank)

    def weight_logits(self, images: torch.Tensor) -> torch.Tensor:
        """Boundary scores s on the patch grid, (B, H/p, W/p); W = sigmoid(s)."""
        cues = boundary_cues(images, self.patch_size, self.blur_sigma)
        return self.scorer(cues.to(self.scorer[0].weight.dtype)).squeeze(1)

    @staticmethod
    def pool(patch_tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Weighted mean of (B, N, D) patch tokens with weights sigmoid(logits) (B, gh, gw)."""
        weights = torch.sigmoid(logits.float()).flatten(1)
        if weights.shape[1] != patch_tokens.shape[1]:
            raise ValueError(f"Boundary Mining: {weights.shape[1]} grid cells but {patch_tokens.shape[1]} "
                             f"patch tokens; the image size must be a multiple of the patch size.")
        weights = weights / weights.sum(1, keepdim=True).clamp_min(1e-6)
        return torch.einsum("bn,bnd->bd", weights.to(patch_tokens.dtype), patch_tokens)

    def forward(self, cls: torch.Tensor, patch_tokens: torch.Tensor,
                images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(fused CLS feature, boundary logits on the patch grid)."""
        logits = self.weight_logits(images)
        return self.fusion(cls, self.pool(patch_tokens, logits)), logits
