"""open_clip's residual attention block with the same parameters and outputs, computed with
less work: what LN-tuning on a CPU spends its time on (docs/BENCHMARKS.md).

Two exact rewrites (equal up to fp32 rounding, checked against open_clip in
tests/models/test_fast_block.py):

* **QuickGELU folded into its neighbours.** OpenAI's CLIP uses QuickGELU,
  ``h * sigmoid(1.702 h)``, which eager PyTorch runs as three passes over the widest
  activation (4x the width) forward and five backward. Since
  ``h * sigmoid(1.702 h) = silu(1.702 h) / 1.702``, the MLP is computed as
  ``c_proj(silu(c_fc'(ln_2'(x)))) / 1.702`` where ``ln_2'`` has its affine parameters times
  1.702 (so its output is 1.702 times ``ln_2``'s) and ``c_fc'`` its bias times 1.702; the
  final division is applied to ``c_proj``'s narrow output before its bias. ``silu`` is one
  fused pass each way. Gradients reach the very same parameters.
* **The last block for the CLS token alone.** Only token 0 of the last block's output
  reaches the LN-CLIP feature; the other tokens are needed there only as keys and values.
  :meth:`FastResidualAttentionBlock.forward_first_token` skips their queries, attention
  output, output projection and MLP: 5/6 of that block's matrix products.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm as OpenClipLayerNorm
from open_clip.transformer import QuickGELU, ResidualAttentionBlock
from torch import nn

from training.models.backbones.fast_attention import PackedSelfAttention
from training.models.backbones.frozen_linear import frozen_linear

QUICK_GELU_SCALE = 1.702


def _foldable(block: ResidualAttentionBlock) -> bool:
    norm, mlp = block.ln_2, block.mlp
    return (isinstance(getattr(mlp, "gelu", None), QuickGELU) and type(norm) in (nn.LayerNorm, OpenClipLayerNorm)
            and norm.weight is not None and norm.bias is not None and mlp.c_fc.bias is not None)


def mlp_branch(block: ResidualAttentionBlock, x: torch.Tensor) -> torch.Tensor:
    """``block.mlp(block.ln_2(x))``; with QuickGELU, folded as the module docstring explains."""
    if not _foldable(block):
        return block.mlp(block.ln_2(x))
    norm, fc, proj, scale = block.ln_2, block.mlp.c_fc, block.mlp.c_proj, QUICK_GELU_SCALE
    scaled = F.layer_norm(x, norm.normalized_shape, norm.weight * scale, norm.bias * scale, norm.eps).to(x.dtype)
    hidden = F.silu(frozen_linear(scaled, fc.weight, fc.bias * scale))
    out = frozen_linear(hidden, proj.weight, None)
    return torch.add(proj.bias, out, alpha=1.0 / scale) if proj.bias is not None else out / scale


class FastResidualAttentionBlock(ResidualAttentionBlock):
    """Same parameters and state-dict keys as ``ResidualAttentionBlock`` (installed by
    :func:`use_fast_blocks` as a class swap)."""

    def forward(self, q_x: torch.Tensor, k_x: Optional[torch.Tensor] = None, v_x: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if k_x is not None or v_x is not None:  # cross-attention: open_clip's own path
            return super().forward(q_x, k_x, v_x, attn_mask)
        x = q_x + self.ls_1(self.attention(q_x=self.ln_1(q_x), attn_mask=attn_mask))
        return x + self.ls_2(mlp_branch(self, x))

    def forward_first_token(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``forward(x)[:, :1]``: the block's output for token 0 only, shape (batch, 1, width)."""
        if not isinstance(self.attn, PackedSelfAttention):
            return self.forward(x, attn_mask=attn_mask)[:, :1]
        mask = attn_mask.to(x.dtype) if attn_mask is not None else None
        first = x[:, :1] + self.ls_1(self.attn.attend_first_query(self.ln_1(x), attn_mask=mask))
        return first + self.ls_2(mlp_branch(self, first))


def use_fast_blocks(visual: nn.Module) -> int:
    """Swap every plain ``ResidualAttentionBlock`` of an open_clip VisionTransformer for
    :class:`FastResidualAttentionBlock` in place; returns how many were swapped."""
    swapped = 0
    for block in visual.transformer.resblocks:
        if type(block) is ResidualAttentionBlock:
            block.__class__ = FastResidualAttentionBlock
            swapped += 1
    return swapped
