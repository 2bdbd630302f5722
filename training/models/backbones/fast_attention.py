"""A drop-in replacement for open_clip's ``nn.MultiheadAttention`` that is fast to LN-tune.

Why: ``nn.MultiheadAttention`` (batch_first) transposes its input to (L, B, E)
and applies the packed q/k/v projection to that non-contiguous 3-D tensor.
When the projection weight is *frozen* (LN-tuning), autograd computes only the
input gradient, and for that layout ``matmul`` cannot fold the batch into one
matrix product: it broadcasts the weight to (L, E, 3E) and runs L small batched
products plus copies. Profiled on a 2-core CPU (ViT-B/16, batch 4), those
``bmm`` calls took 27 % of the step and made LN-tuning *slower* than full
fine-tuning. Projecting a contiguous (B·L, E) view instead turns every
projection, forward and backward, into a single GEMM.

The module keeps the parameter names of ``nn.MultiheadAttention``
(``in_proj_weight``, ``in_proj_bias``, ``out_proj.weight/bias``), so
state dicts and checkpoints are unchanged.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from training.models.backbones.frozen_linear import frozen_linear


class PackedSelfAttention(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * embed_dim))
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    @classmethod
    def from_multihead_attention(cls, mha: nn.MultiheadAttention) -> "PackedSelfAttention":
        if not mha.batch_first or not mha._qkv_same_embed_dim or mha.in_proj_bias is None:
            raise ValueError("PackedSelfAttention replaces batch-first self-attention with packed biased q/k/v only.")
        module = cls(mha.embed_dim, mha.num_heads)
        # Share the very same Parameter objects: requires_grad flags and optimizers stay valid.
        module.in_proj_weight = mha.in_proj_weight
        module.in_proj_bias = mha.in_proj_bias
        module.out_proj = mha.out_proj
        return module

    def forward(self, query: torch.Tensor, key: Optional[torch.Tensor] = None, value: Optional[torch.Tensor] = None,
                need_weights: bool = False, attn_mask: Optional[torch.Tensor] = None
                ) -> Tuple[torch.Tensor, None]:
        """Same call signature as ``nn.MultiheadAttention`` for self-attention (key/value ignored)."""
        if need_weights:
            raise ValueError("PackedSelfAttention does not return attention weights.")
        batch, length, dim = query.shape
        qkv = frozen_linear(query.reshape(batch * length, dim), self.in_proj_weight, self.in_proj_bias)
        query, key, value = self._split_heads(qkv, batch, length)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
        attended = attended.transpose(1, 2).reshape(batch * length, dim)
        return frozen_linear(attended, self.out_proj.weight, self.out_proj.bias).view(batch, length, dim), None

    def _split_heads(self, packed: torch.Tensor, batch: int, length: int) -> Tuple[torch.Tensor, ...]:
        """(batch·length, parts·dim) projections -> ``parts`` tensors of (batch, heads, length, head_dim).
        unbind, not indexing: the backward then stacks the gradients in one copy instead of
        zero-filling and adding into a parts-sized buffer once per part."""
        head_dim = self.embed_dim // self.num_heads
        parts = packed.shape[-1] // self.embed_dim
        return packed.view(batch, length, parts, self.num_heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def attend_first_query(self, x: torch.Tensor, attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``forward(x)[0][:, :1]`` without computing the other queries: token 0 attends to all
        tokens, which still enter as keys and values. Returns (batch, 1, dim)."""
        batch, length, dim = x.shape
        heads = self.num_heads
        query = frozen_linear(x[:, 0].contiguous(), self.in_proj_weight[:dim], self.in_proj_bias[:dim])
        key_value = frozen_linear(x.reshape(batch * length, dim), self.in_proj_weight[dim:], self.in_proj_bias[dim:])
        key, value = self._split_heads(key_value, batch, length)
        mask = attn_mask[..., :1, :] if attn_mask is not None else None
        attended = F.scaled_dot_product_attention(query.view(batch, heads, 1, dim // heads), key, value,
                                                  attn_mask=mask)
        return frozen_linear(attended.reshape(batch, dim), self.out_proj.weight, self.out_proj.bias).view(batch, 1, dim)


def use_packed_attention(visual: nn.Module) -> int:
    """Swap every batch-first ``nn.MultiheadAttention`` block attention of an open_clip
    VisionTransformer for :class:`PackedSelfAttention`; returns how many were swapped."""
    swapped = 0
    for block in visual.transformer.resblocks:
        attn = getattr(block, "attn", None)
        if isinstance(attn, nn.MultiheadAttention) and attn.batch_first and attn._qkv_same_embed_dim:
            block.attn = PackedSelfAttention.from_multihead_attention(attn)
            swapped += 1
    return swapped
