"""Temporal attention for clip detectors, and the token layouts it needs.

A clip of T frames enters a ViT as B·T images, so its tokens arrive
**frame-major**: ``(B·T, 1+N, D)``, row ``b·T + t`` holds the CLS token and the
N patch tokens of frame t of clip b. Spatial attention (a CLIP block) wants
exactly that: every frame attends within itself. Temporal attention wants the
transpose, **patch-major** ``(B·N, T, D)``: row ``b·N + n`` is patch n of clip b
seen through the T frames, so each patch attends only to itself over time.

The public CLIP-STAN port went from one layout to the other with a plain
``reshape``, which regroups memory without moving it: its "temporal" rows then
mixed different patches of one frame (docs/TEMPORAL.md). Going between the
layouts needs a real transpose of the T and N axes; the two functions below
are the only place that does it.
"""
from __future__ import annotations

import torch
from torch import nn

from training.models.backbones.fast_attention import PackedSelfAttention


def frames_to_patch_sequences(patches: torch.Tensor, frames: int) -> torch.Tensor:
    """Frame-major ``(B·T, N, D)`` → patch-major ``(B·N, T, D)``."""
    batch_frames, n_patches, dim = patches.shape
    batch = batch_frames // frames
    # (B·T, N, D) -> (B, T, N, D): split the leading axis into clip and frame.
    per_clip = patches.reshape(batch, frames, n_patches, dim)
    # (B, T, N, D) -> (B, N, T, D): the transpose that a plain reshape cannot do.
    per_patch = per_clip.permute(0, 2, 1, 3)
    # (B, N, T, D) -> (B·N, T, D): one row per (clip, patch), its T frames in order.
    return per_patch.reshape(batch * n_patches, frames, dim)


def patch_sequences_to_frames(sequences: torch.Tensor, n_patches: int) -> torch.Tensor:
    """Patch-major ``(B·N, T, D)`` → frame-major ``(B·T, N, D)`` (inverse of the above)."""
    batch_patches, frames, dim = sequences.shape
    batch = batch_patches // n_patches
    # (B·N, T, D) -> (B, N, T, D) -> (B, T, N, D) -> (B·T, N, D)
    per_patch = sequences.reshape(batch, n_patches, frames, dim)
    return per_patch.permute(0, 2, 1, 3).reshape(batch * frames, n_patches, dim)


class TemporalAttention(nn.Module):
    """Pre-LN self-attention over the T frames of each patch, with a residual.

    ``x + drop_path(W_o · attn(LN(x) + time_embed))`` on patch-major sequences.
    The output projection ``W_o`` starts at zero, so a freshly built layer is
    the identity and the pretrained features pass through untouched (STAN's
    zero-initialised ``temporal_fc``; here it is the attention's own output
    projection, which is the same function with one matrix fewer). The time
    embedding enters the attention input only, not the residual stream, so it
    cannot disturb the features either while ``W_o`` is zero.
    """

    def __init__(self, width: int, heads: int, drop_path: float = 0.0):
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.attn = PackedSelfAttention(width, heads)
        nn.init.xavier_uniform_(self.attn.in_proj_weight)  # nn.MultiheadAttention's initialisation
        nn.init.zeros_(self.attn.in_proj_bias)
        nn.init.zeros_(self.attn.out_proj.weight)
        nn.init.zeros_(self.attn.out_proj.bias)
        if drop_path > 0:
            from timm.layers import DropPath

            self.drop_path: nn.Module = DropPath(drop_path)
        else:
            self.drop_path = nn.Identity()

    def forward(self, sequences: torch.Tensor, time_embed: torch.Tensor) -> torch.Tensor:
        """``sequences``: patch-major ``(B·N, T, D)``; ``time_embed``: ``(T, D)``."""
        attended, _ = self.attn(self.ln(sequences) + time_embed)
        return sequences + self.drop_path(attended)
