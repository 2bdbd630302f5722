"""Convert checkpoints from other code bases to this framework's key layout.

Supported: the Hugging Face ``CLIPVisionModel`` layout used by the published
LN-CLIP (PEFT LN-tuning: ``feature_extractor.base_model.model.vision_model.…``
with ``…base_layer`` / ``…ln_tuning_layers.default`` LayerNorm copies) and GenD
(``feature_extractor.vision_model.…``) checkpoints, head ``model.linear.*``.
"""
from __future__ import annotations

import re
from typing import Dict, Mapping

import torch
from torch import nn

# Where the vision tower's own keys start, whatever wraps it (vision_model., PEFT's base_model.model. ...).
HF_VISION_START = re.compile(r"(?:^|\.)((?:embeddings|pre_layrnorm|encoder\.layers|post_layernorm)\..*)$")
PEFT_TRAINED_COPY = ".ln_tuning_layers.default."
PEFT_FROZEN_ORIGINAL = ".base_layer."

_DIRECT = {
    "embeddings.patch_embedding.weight": "conv1.weight",
    "embeddings.class_embedding": "class_embedding",
    "embeddings.position_embedding.weight": "positional_embedding",
    "pre_layrnorm.weight": "ln_pre.weight",
    "pre_layrnorm.bias": "ln_pre.bias",
    "post_layernorm.weight": "ln_post.weight",
    "post_layernorm.bias": "ln_post.bias",
}
_LAYER = re.compile(r"encoder\.layers\.(\d+)\.(.+)")
_LAYER_PARTS = {
    "layer_norm1": "ln_1", "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
}


def is_hf_clip_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    return any("pre_layrnorm" in key for key in state)  # HF's (misspelt) name is distinctive


def _vision_keys(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """HF vision-tower keys relative to ``vision_model.``, with PEFT's LN copies resolved."""
    vision: Dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = HF_VISION_START.search(key)
        if match is None or "text_model." in key:
            continue
        local = match.group(1)
        if PEFT_FROZEN_ORIGINAL in local:
            continue  # PEFT keeps the untouched original; the trained copy is what the model used
        vision[local.replace(PEFT_TRAINED_COPY, ".")] = value
    return vision


def hf_vision_to_open_clip(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map HF CLIP vision keys to open_clip ``VisionTransformer`` keys (q/k/v fused)."""
    vision = _vision_keys(state)
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[tuple, Dict[str, torch.Tensor]] = {}
    for key, value in vision.items():
        if key in _DIRECT:
            out[_DIRECT[key]] = value
            continue
        match = _LAYER.fullmatch(key)
        if not match:
            continue  # position_ids buffer etc.
        index, rest = match.groups()
        attn = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if attn:
            qkv.setdefault((index, attn.group(2)), {})[attn.group(1)] = value
            continue
        module, param = rest.rsplit(".", 1)
        if module in _LAYER_PARTS:
            out[f"transformer.resblocks.{index}.{_LAYER_PARTS[module]}.{param}"] = value
    for (index, param), parts in qkv.items():
        out[f"transformer.resblocks.{index}.attn.in_proj_{param}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def convert_external_state_dict(state: Mapping[str, torch.Tensor], detector: nn.Module = None) -> Dict[str, torch.Tensor]:
    """Return ``state`` in this detector's key layout (unchanged if already native)."""
    if not is_hf_clip_state_dict(state):
        return dict(state)
    converted = {f"backbone.visual.{k}": v for k, v in hf_vision_to_open_clip(state).items()}
    for key, value in state.items():
        # LN-CLIP/GenD head: "model.linear.weight" (LinearProbe inside the Lightning module)
        if key.endswith("linear.weight") or key.endswith("linear.bias"):
            converted[f"head.{key.rsplit('.', 1)[1]}"] = value
    # visual_projection is dropped: the detector uses the pre-projection CLS feature.
    return converted
