"""Vision-tower weights from other code bases, in the key layout of the library our tower wraps.

Each function takes the encoder's own keys (the wrapper prefix such as GenD's
``feature_extractor.backbone.`` already removed) and returns what
``VisionTower.load_tower_state_dict`` expects:

* :func:`hf_vision_to_open_clip`: Hugging Face ``CLIPVisionModel`` (LN-CLIP with PEFT's
  ``…base_layer`` / ``…ln_tuning_layers.default`` LayerNorm copies, GenD's plain keys) → open_clip
  ``VisionTransformer`` keys;
* :func:`hf_dinov3_to_timm`: Hugging Face ``DINOv3ViTModel`` (GenD's DINOv3 encoder) → timm Eva
  (``vit_*_dinov3``) keys;
* :func:`timm_tower_keys`: GenD's Perception Encoder, already timm's Eva layout.

Reading LN-CLIP / GenD checkpoint files (Lightning, ``save_pretrained``) and their head is
training/models/gend.py's job.
"""
from __future__ import annotations

import re
from typing import Collection, Dict, Mapping, Optional

import torch

# Where the vision tower's own keys start, whatever wraps it (vision_model., PEFT's base_model.model. ...).
HF_VISION_START = re.compile(r"(?:^|\.)((?:embeddings|pre_layrnorm|encoder\.layers|post_layernorm)\..*)$")
PEFT_TRAINED_COPY = ".ln_tuning_layers.default."
PEFT_FROZEN_ORIGINAL = ".base_layer."


class ConversionError(ValueError):
    pass


# -- Hugging Face CLIP vision tower → open_clip ------------------------------------------------
_CLIP_DIRECT = {
    "embeddings.patch_embedding.weight": "conv1.weight",
    "embeddings.class_embedding": "class_embedding",
    "embeddings.position_embedding.weight": "positional_embedding",
    "pre_layrnorm.weight": "ln_pre.weight",
    "pre_layrnorm.bias": "ln_pre.bias",
    "post_layernorm.weight": "ln_post.weight",
    "post_layernorm.bias": "ln_post.bias",
}
_CLIP_LAYER = re.compile(r"encoder\.layers\.(\d+)\.(.+)")
_CLIP_LAYER_PARTS = {
    "layer_norm1": "ln_1", "layer_norm2": "ln_2",
    "self_attn.out_proj": "attn.out_proj", "mlp.fc1": "mlp.c_fc", "mlp.fc2": "mlp.c_proj",
}


def is_hf_clip_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    return any("pre_layrnorm" in key for key in state)  # HF's (misspelt) name is distinctive


def _clip_vision_keys(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
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
    """Map HF CLIP vision keys to open_clip ``VisionTransformer`` keys (q/k/v fused).

    The projection (HF ``visual_projection``, open_clip ``proj``) is not mapped: the feature is
    the CLS token after the post-LayerNorm, as LN-CLIP and GenD use it."""
    vision = _clip_vision_keys(state)
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[tuple, Dict[str, torch.Tensor]] = {}
    for key, value in vision.items():
        if key in _CLIP_DIRECT:
            out[_CLIP_DIRECT[key]] = value
            continue
        match = _CLIP_LAYER.fullmatch(key)
        if not match:
            continue  # position_ids buffer etc.
        index, rest = match.groups()
        attn = re.fullmatch(r"self_attn\.([qkv])_proj\.(weight|bias)", rest)
        if attn:
            qkv.setdefault((index, attn.group(2)), {})[attn.group(1)] = value
            continue
        module, param = rest.rsplit(".", 1)
        if module in _CLIP_LAYER_PARTS:
            out[f"transformer.resblocks.{index}.{_CLIP_LAYER_PARTS[module]}.{param}"] = value
    for (index, param), parts in qkv.items():
        out[f"transformer.resblocks.{index}.attn.in_proj_{param}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# -- Hugging Face DINOv3 → timm Eva ----------------------------------------------------------------
# transformers 4.56 (GenD's pin, requirements.txt) keeps the blocks at ``layer.{i}``; transformers 5
# moved them to ``model.layer.{i}`` (its conversion_mapping renames old files). Both are read.
_DINOV3_LAYER = re.compile(r"(?:model\.)?layer\.(\d+)\.(.+)")
_DINOV3_EMBEDDINGS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.register_tokens": "reg_token",
    "embeddings.patch_embeddings.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.bias": "patch_embed.proj.bias",
    "norm.weight": "norm.weight",
    "norm.bias": "norm.bias",
}
_DINOV3_BLOCK_PARTS = {
    "norm1": "norm1", "norm2": "norm2",
    "attention.o_proj": "attn.proj",
    "mlp.up_proj": "mlp.fc1", "mlp.down_proj": "mlp.fc2",
}
_DINOV3_LAYER_SCALE = {"layer_scale1.lambda1": "gamma_1", "layer_scale2.lambda1": "gamma_2"}
# Pretraining-only parameters (the mask token) and the RoPE buffers, which timm recomputes
# (RoPE has no weights: the frequencies follow from rope_theta and the head width).
_DINOV3_UNUSED = ("embeddings.mask_token",)
_DINOV3_UNUSED_PREFIXES = ("rope_embeddings.",)


def is_hf_dinov3_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    return "embeddings.register_tokens" in state and any(_DINOV3_LAYER.fullmatch(k) for k in state)


def hf_dinov3_to_timm(state: Mapping[str, torch.Tensor],
                      target_keys: Optional[Collection[str]] = None) -> Dict[str, torch.Tensor]:
    """Map HF ``DINOv3ViTModel`` keys to timm's Eva DINOv3 keys (checked numerically against both
    libraries in tests/models/test_gend_checkpoints.py).

    q/k/v are fused into ``attn.qkv.weight`` (HF has no key bias, timm keeps a zero ``k_bias``
    buffer); HF's query/value biases become ``attn.q_bias`` / ``attn.v_bias``. timm's plain
    ``vit_*_dinov3`` models have no q/v bias (the released B/L/H weights have all-zero biases);
    with ``target_keys`` (the timm model's state-dict keys) zero biases are dropped for them, and
    non-zero ones are an error that names the ``_qkvb`` variant."""
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[str, Dict[str, torch.Tensor]] = {}
    unknown = []
    for key, value in state.items():
        if key in _DINOV3_EMBEDDINGS:
            out[_DINOV3_EMBEDDINGS[key]] = value
            continue
        if key in _DINOV3_UNUSED or key.startswith(_DINOV3_UNUSED_PREFIXES):
            continue
        match = _DINOV3_LAYER.fullmatch(key)
        if not match:
            unknown.append(key)
            continue
        index, rest = match.groups()
        attn = re.fullmatch(r"attention\.([qkv])_proj\.(weight|bias)", rest)
        if attn:
            qkv.setdefault(index, {})[f"{attn.group(1)}_{attn.group(2)}"] = value
            continue
        if rest in _DINOV3_LAYER_SCALE:
            out[f"blocks.{index}.{_DINOV3_LAYER_SCALE[rest]}"] = value
            continue
        module, param = rest.rsplit(".", 1)
        if module not in _DINOV3_BLOCK_PARTS:
            unknown.append(key)  # e.g. mlp.gate_proj of the gated-MLP (7B) model
            continue
        out[f"blocks.{index}.{_DINOV3_BLOCK_PARTS[module]}.{param}"] = value
    if unknown:
        raise ConversionError(f"DINOv3 (Hugging Face layout): no timm equivalent known for {sorted(unknown)[:8]} "
                              f"(only the ViT-S/B/L/H+ models with a plain MLP are converted).")
    for index, parts in qkv.items():
        out[f"blocks.{index}.attn.qkv.weight"] = torch.cat([parts["q_weight"], parts["k_weight"],
                                                            parts["v_weight"]], dim=0)
        if "k_bias" in parts and bool(parts["k_bias"].any()):
            raise ConversionError(f"DINOv3 block {index} has a non-zero key bias; timm's DINOv3 has none.")
        for name in ("q", "v"):
            if f"{name}_bias" in parts:
                out[f"blocks.{index}.attn.{name}_bias"] = parts[f"{name}_bias"]
    if target_keys is not None:
        _fit_qv_bias(out, set(target_keys))
    return out


def _fit_qv_bias(out: Dict[str, torch.Tensor], target: set) -> None:
    for key in [k for k in out if k.endswith((".attn.q_bias", ".attn.v_bias"))]:
        if key in target:
            continue
        if bool(out[key].any()):
            raise ConversionError(
                f"DINOv3 weights have a non-zero {key.rsplit('.', 1)[1]} ({key}), but the timm model "
                f"has no q/v bias: use the '_qkvb' variant in model.backbone.arch "
                f"(e.g. vit_large_patch16_dinov3_qkvb).")
        del out[key]  # all zero: the bias-free model computes the same


# -- timm layout (GenD's Perception Encoder) ------------------------------------------------------
def timm_tower_keys(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """GenD stores ``timm.create_model(...)`` with ``head = Identity``: the keys are timm's. Only
    the classifier (none in GenD's files; our timm towers have ``num_classes=0``) is dropped."""
    return {k: v for k, v in state.items() if not k.startswith("head.")}
