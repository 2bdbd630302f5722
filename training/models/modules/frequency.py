"""Freq-Adapter: frequency-domain evidence fused with a ViT tower's visual tokens.

Forgery traces (up-sampling, blending, re-compression) live in the high
frequencies that a CLIP encoder, trained on semantics, largely ignores. Two
parallel branches read them from the input image, each on the ViT's patch
grid so their output can sit next to the patch tokens:

* **FFT branch**: log-amplitude spectrum of every patch (a short-time Fourier
  transform with the patch as window) with the DC term and all frequencies
  below ``low_freq_cutoff`` removed. Removing DC makes the branch exactly
  invariant to the image's brightness level; removing the low band discards
  the face's shape and keeps the fine texture. Per-patch rather than global,
  so frequency evidence stays aligned with the token it is fused into.
* **DWT branch**: one level of the orthonormal Haar transform, written in
  torch (runs on the GPU, back-propagates, and has an exact inverse,
  :func:`haar_idwt2d`); the LH/HL/HH detail bands are encoded and pooled to
  the patch grid.

Each branch is a light conv stack; a 1×1 conv mixes them into frequency
tokens (B, N, dim). They reach the detector in one or both ways:

* ``blocks``: bottleneck adapters after chosen ViT blocks add
  ``up(gelu(down(token) + freq(freq_token)))`` to every token (the prefix tokens,
  CLS and any registers, get the image-level mean of the frequency tokens);
* ``cls``: the mean frequency token is concatenated to the final CLS feature
  and projected back (:class:`ZeroInitFusion`).

Every output projection is zero-initialised, so at step 0 the detector
computes exactly what plain LN-CLIP computes.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from training.errors import ConfigError
from training.models.modules.fusion import ZeroInitFusion, zero_init_

BRANCHES = ("fft", "dwt")
FUSION_MODES = ("cls", "blocks", "both")


# ----------------------------------------------------------------------------- transforms

def haar_dwt2d(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One level of the orthonormal 2-D Haar transform of (..., H, W), H and W even.

    For each 2×2 block [[a, b], [c, d]]: LL = (a+b+c+d)/2, LH = (a+b−c−d)/2
    (vertical change: horizontal edges), HL = (a−b+c−d)/2 (vertical edges),
    HH = (a−b−c+d)/2. Each band is (..., H/2, W/2).
    """
    height, width = x.shape[-2:]
    if height % 2 or width % 2:
        raise ValueError(f"haar_dwt2d needs even height and width, got {height}×{width}; "
                         f"use an image size divisible by 2 (model.backbone.vision_cfg.image_size).")
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return ((a + b + c + d) / 2, (a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2)


def haar_idwt2d(ll: torch.Tensor, lh: torch.Tensor, hl: torch.Tensor, hh: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_dwt2d` (the transform is orthonormal, so it is its own transpose)."""
    a = (ll + lh + hl + hh) / 2
    b = (ll + lh - hl - hh) / 2
    c = (ll - lh + hl - hh) / 2
    d = (ll - lh - hl + hh) / 2
    top = torch.stack([a, b], dim=-1).flatten(-2)  # interleave columns: a0 b0 a1 b1 ...
    bottom = torch.stack([c, d], dim=-1).flatten(-2)
    return torch.stack([top, bottom], dim=-2).flatten(-3, -2)  # interleave rows


def high_frequency_bins(patch_size: int, low_freq_cutoff: float) -> torch.Tensor:
    """Boolean (p, p//2+1) mask of the rfft2 bins kept: radius (cycles/pixel) > cutoff.
    The DC bin has radius 0 and is never kept."""
    # Explicitly on the CPU: the mask's size decides the layer sizes, also when a model is
    # built on the meta device (parameter counting).
    fy = torch.fft.fftfreq(patch_size, device="cpu")
    fx = torch.fft.rfftfreq(patch_size, device="cpu")
    radius = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    return radius > low_freq_cutoff


def patch_log_amplitude(images: torch.Tensor, patch_size: int, keep: torch.Tensor) -> torch.Tensor:
    """log(1 + |FFT|) of each patch at the ``keep`` bins: (B, C, H, W) → (B, C·K, H/p, W/p)."""
    batch, channels, height, width = images.shape
    gh, gw = height // patch_size, width // patch_size
    patches = images.float().reshape(batch, channels, gh, patch_size, gw, patch_size)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, p, p)
    spectrum = torch.fft.rfft2(patches, norm="ortho")
    # |z| via sqrt(re² + im² + eps): abs() has no gradient at 0, and masked bins can be exactly 0.
    amplitude = torch.sqrt(spectrum.real ** 2 + spectrum.imag ** 2 + 1e-12)
    features = torch.log1p(amplitude[..., keep])  # (B, gh, gw, C, K)
    return features.flatten(3).permute(0, 3, 1, 2).contiguous()


# ----------------------------------------------------------------------------- branches

class FFTBranch(nn.Module):
    """Per-patch high-pass log-amplitude spectrum → conv stack on the patch grid."""

    def __init__(self, patch_size: int, channels: int, low_freq_cutoff: float, in_channels: int = 3):
        super().__init__()
        if not 0.0 <= low_freq_cutoff < 0.5:
            raise ConfigError(f"model.freq.low_freq_cutoff must be in [0, 0.5) cycles/pixel "
                             f"(0 removes only the DC term), got {low_freq_cutoff}.")
        self.patch_size = patch_size
        self.register_buffer("keep", high_frequency_bins(patch_size, low_freq_cutoff), persistent=False)
        bins = int(self.keep.sum())
        if bins == 0:
            raise ConfigError(f"model.freq.low_freq_cutoff={low_freq_cutoff} removes every frequency of a "
                             f"{patch_size}-pixel patch; lower it.")
        self.encode = nn.Sequential(nn.Conv2d(in_channels * bins, channels, 1), nn.GELU(),
                                    nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        spectrum = patch_log_amplitude(images, self.patch_size, self.keep)
        return self.encode(spectrum.to(self.encode[0].weight.dtype))


class DWTBranch(nn.Module):
    """Haar LH/HL/HH detail bands → conv → pooled to the patch grid."""

    def __init__(self, patch_size: int, channels: int, in_channels: int = 3):
        super().__init__()
        if patch_size % 2:
            raise ValueError(f"the DWT branch needs an even patch size, got {patch_size}.")
        self.pool = patch_size // 2  # the bands are at half resolution
        self.detail = nn.Sequential(nn.Conv2d(3 * in_channels, channels, 3, padding=1), nn.GELU())
        self.project = nn.Conv2d(channels, channels, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _, lh, hl, hh = haar_dwt2d(images)
        details = torch.cat([lh, hl, hh], dim=1).to(self.project.weight.dtype)
        return self.project(F.avg_pool2d(self.detail(details), self.pool))


# ----------------------------------------------------------------------------- fusion

class TokenAdapter(nn.Module):
    """Bottleneck adapter adding frequency evidence to the tokens after one ViT block."""

    def __init__(self, width: int, freq_dim: int, bottleneck: int):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.freq = nn.Linear(freq_dim, bottleneck)
        self.up = zero_init_(nn.Linear(bottleneck, width))

    def forward(self, tokens: torch.Tensor, freq_tokens: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
        if tokens.shape[1] != freq_tokens.shape[1] + num_prefix_tokens:
            raise ValueError(f"Freq-Adapter: the ViT has {tokens.shape[1]} tokens but the frequency grid has "
                             f"{freq_tokens.shape[1]} patches (+{num_prefix_tokens} prefix tokens expected); the "
                             f"adapter supports prefix + patch-token ViTs without patch dropout.")
        # Prefix tokens (CLS, registers) get the image-level summary, each patch token its own patch's evidence.
        summary = freq_tokens.mean(1, keepdim=True).expand(-1, num_prefix_tokens, -1)
        freq = torch.cat([summary, freq_tokens], dim=1).to(tokens.dtype)
        return tokens + self.up(F.gelu(self.down(tokens) + self.freq(freq)))


def resolve_block_indices(blocks: Sequence[int], num_layers: int) -> Tuple[int, ...]:
    resolved = []
    for index in blocks:
        position = index + num_layers if index < 0 else index
        if not 0 <= position < num_layers:
            raise ConfigError(f"model.freq.blocks: block index {index} does not exist in a ViT with "
                             f"{num_layers} blocks (valid: 0..{num_layers - 1} or -{num_layers}..-1).")
        resolved.append(position)
    if len(set(resolved)) != len(resolved):
        raise ConfigError(f"model.freq.blocks {list(blocks)} names the same block twice.")
    return tuple(sorted(resolved))


class FreqAdapter(nn.Module):
    """FFT + DWT branches, their fusion into tokens, and the hooks into the detector."""

    def __init__(self, width: int, patch_size: int, num_layers: int, branches: Sequence[str] = BRANCHES,
                 channels: int = 32, dim: int = 64, low_freq_cutoff: float = 0.1, fusion: str = "cls",
                 blocks: Sequence[int] = (-2,), adapter_dim: int = 16, fusion_rank: Optional[int] = 64,
                 aux_head: bool = False):
        super().__init__()
        unknown = [b for b in branches if b not in BRANCHES]
        if unknown or not branches:
            raise ConfigError(f"model.freq.branches {list(branches)}: choose one or both of {', '.join(BRANCHES)}.")
        if fusion not in FUSION_MODES:
            raise ConfigError(f"model.freq.fusion '{fusion}' is not one of {', '.join(FUSION_MODES)}.")
        self.fusion_mode = fusion
        self.branches = nn.ModuleDict()
        if "fft" in branches:
            self.branches["fft"] = FFTBranch(patch_size, channels, low_freq_cutoff)
        if "dwt" in branches:
            self.branches["dwt"] = DWTBranch(patch_size, channels)
        self.mix = nn.Conv2d(channels * len(self.branches), dim, 1)
        self.adapters = nn.ModuleDict()
        if fusion in ("blocks", "both"):
            for index in resolve_block_indices(blocks, num_layers):
                self.adapters[f"block_{index}"] = TokenAdapter(width, dim, adapter_dim)
        self.cls_fusion = ZeroInitFusion(width, dim, fusion_rank) if fusion in ("cls", "both") else None
        # A frequency-only prediction, for the auxiliary CE and the consistency loss.
        self.head = nn.Linear(dim, 2) if aux_head else None

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Frequency tokens on the patch grid, (B, N, dim), row-major like the ViT's patch tokens."""
        maps = [branch(images) for branch in self.branches.values()]
        return self.mix(torch.cat(maps, dim=1)).flatten(2).transpose(1, 2)

    def adapter_for(self, block_index: int) -> Optional[TokenAdapter]:
        key = f"block_{block_index}"
        return self.adapters[key] if key in self.adapters else None

    def fuse_cls(self, cls: torch.Tensor, freq_tokens: torch.Tensor) -> torch.Tensor:
        return cls if self.cls_fusion is None else self.cls_fusion(cls, freq_tokens.mean(1))

    def predict(self, freq_tokens: torch.Tensor) -> Optional[torch.Tensor]:
        return None if self.head is None else self.head(freq_tokens.mean(1))


def forward_with_adapters(tower: nn.Module, images: torch.Tensor, adapter: FreqAdapter,
                          freq_tokens: torch.Tensor) -> torch.Tensor:
    """The tower's forward (embed → blocks → final norm, backbones/tower.py) with the adapters
    applied after their blocks; with zero-initialised adapters it equals ``tower(images)``."""
    tokens = tower.embed(images)
    for index in range(len(tower.blocks)):
        tokens = tower.run_block(tokens, index)
        block_adapter = adapter.adapter_for(index)
        if block_adapter is not None:
            tokens = block_adapter(tokens, freq_tokens, tower.num_prefix_tokens)
    return tower.final_norm(tokens)
