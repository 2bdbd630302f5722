"""The timm tower family: timm's ViTs (DINOv2, DINOv3, Perception Encoder via Eva, EVA, SigLIP ...).

``arch`` is timm's model name, optionally with its tag (``vit_large_patch16_dinov3.lvd1689m``);
``pretrained`` is that tag (it must agree with the name's), a weights file, or null. Weights are
found offline as for the timm CNN wrapper (timm_backbone.py) and handed to timm as a state dict,
so timm's own checkpoint filter (format conversion, position-embedding resampling) applies.

Feature, as GenD uses these models (github yermandy/GenD, src/encoders/): the CLS token after the
final norm for models whose final norm is ``norm`` (DINOv2, DINOv3: GenD's
``last_hidden_state[:, 0]``; timm's own DINOv3 head would average the patch tokens), otherwise
timm's ``forward_head(pre_logits=True)`` (PE: the attention pool, GenD's ``backbone(x)`` with
``head = Identity``; models without a CLS token: timm's pooling).

``image_size`` other than the model's pretrained size keeps the model at its pretrained size and
turns on timm's ``dynamic_img_size`` (position embeddings resampled per forward), as GenD's
``src/encoders/perception_encoder.py`` runs PE-Core-L/14-336 at 224: parameters, checkpoints and
outputs stay GenD's.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from torch import nn

from training.errors import ConfigError
from training.models.backbones.timm_backbone import (IMAGENET_TAG, pretrained_cfg_for, read_state_dict,
                                                     resolve_weights_file)
from training.models.backbones.tower import VisionTower, register_tower
from training.models.input_spec import InputSpec

# timm's eval transform resizes PIL images with the pretrained config's interpolation.
TIMM_INTERPOLATIONS = {"bicubic": "pil_bicubic", "bilinear": "pil_bilinear"}


def split_arch(arch: str) -> Tuple[str, Optional[str]]:
    """``name.tag`` → (name, tag); a name without a tag → (name, None)."""
    name, _, tag = str(arch).partition(".")
    return name, (tag or None)


def is_file_reference(pretrained: Optional[str]) -> bool:
    """A path (existing or not) rather than a tag: missing files must fail, not fall back to a tag."""
    text = str(pretrained or "")
    return Path(text).is_file() or "/" in text or text.endswith((".safetensors", ".bin", ".pth", ".pt"))


def resolve_tag(arch: str, pretrained: Optional[str]) -> Optional[str]:
    """The timm tag of the model: the name's, or ``pretrained`` when that is a tag."""
    _, arch_tag = split_arch(arch)
    if not pretrained or is_file_reference(pretrained):
        return arch_tag
    if arch_tag and str(pretrained) not in (arch_tag, IMAGENET_TAG):
        raise ConfigError(f"model.backbone.arch '{arch}' names timm tag '{arch_tag}' but model.backbone.pretrained "
                         f"is '{pretrained}'; use pretrained: {arch_tag} (or a weights file, or null).")
    return arch_tag or str(pretrained)


@register_tower("timm")
class TimmTower(VisionTower):
    """A timm ViT without its classifier (``num_classes=0``)."""

    CONFIG: Dict[str, Any] = {
        "model_kwargs": None,  # extra timm.create_model kwargs (tiny random configs: depth, embed_dim ...)
    }

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "TimmTower":
        return cls(arch=cfg["arch"], pretrained=cfg["pretrained"], image_size=cfg["image_size"],
                   weights_dir=cfg["weights_dir"], allow_download=cfg["allow_download"],
                   model_kwargs=cfg["model_kwargs"])

    def __init__(self, arch: str, pretrained: Optional[str] = None, image_size: Optional[int] = None,
                 weights_dir: str = "weights", allow_download: bool = False,
                 model_kwargs: Optional[Mapping[str, Any]] = None):
        super().__init__()
        import timm
        from timm.models import get_pretrained_cfg

        name, _ = split_arch(arch)
        if not timm.is_model(name):
            raise ConfigError(f"model.backbone.arch '{arch}' is not a timm model; see timm.list_models('vit_*') "
                             f"(e.g. vit_large_patch16_dinov3, vit_pe_core_large_patch14_336).")
        self.arch, self.pretrained = arch, pretrained
        tag = resolve_tag(arch, pretrained)
        full_name = f"{name}.{tag}" if tag and tag != IMAGENET_TAG else name
        if "num_classes" in (model_kwargs or {}):
            raise ConfigError("model.backbone.model_kwargs.num_classes: the tower has no classifier (the "
                             "detector's head classifies); remove it.")
        kwargs: Dict[str, Any] = {"num_classes": 0, **dict(model_kwargs or {})}
        # An unknown tag fails here, with the model's tags listed.
        pretrained_cfg = pretrained_cfg_for(name, tag) if tag else get_pretrained_cfg(name).to_dict()
        native = kwargs.get("img_size") or pretrained_cfg["input_size"][-1]
        if image_size is not None and int(image_size) != int(native):
            kwargs["dynamic_img_size"] = True  # keep the pretrained grid; resample per forward (module docstring)
        if pretrained:
            reference = str(pretrained) if is_file_reference(pretrained) else tag
            path = resolve_weights_file(name, reference, Path(weights_dir), allow_download)
            self.weights_file = str(path)
            # A state-dict overlay: timm filters/adapts it exactly as it would its own download.
            kwargs["pretrained_cfg_overlay"] = {"state_dict": read_state_dict(path), "file": None, "source": ""}
        self.model = timm.create_model(full_name, pretrained=bool(pretrained), **kwargs)
        self.model.pretrained_cfg.pop("state_dict", None)  # keep the config small and printable
        model = self.model
        if getattr(model, "rope_mixed", False):
            raise ValueError(f"timm {arch}: depth-dependent (mixed) RoPE towers are not supported.")
        self.width = model.embed_dim
        self.num_heads = model.blocks[0].attn.num_heads
        self.patch_size = model.patch_embed.patch_size[0]
        self.image_size = int(image_size or native)
        if self.image_size % self.patch_size:
            raise ConfigError(f"model.backbone.image_size {self.image_size} is not a multiple of the patch size "
                             f"{self.patch_size} of {arch}.")
        self.grid_size = (self.image_size // self.patch_size,) * 2
        self.num_prefix_tokens = int(model.num_prefix_tokens)
        self._is_eva = hasattr(model, "rope")  # Eva (DINOv3, PE, EVA): blocks take rotary embeddings
        self._cls_feature = (getattr(model, "cls_token", None) is not None
                             and getattr(model, "attn_pool", None) is None
                             and isinstance(model.fc_norm, nn.Identity))

    @property
    def library_module(self) -> nn.Module:
        return self.model

    # -- tokens ---------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """timm's ``forward_features`` up to block 0: patch + position embedding, ``norm_pre``."""
        model = self.model
        tokens = model.patch_embed(images)
        if self._is_eva:
            tokens, _ = model._pos_embed(tokens)  # the rotary embedding comes from _rope (same grid)
        else:
            tokens = model.patch_drop(model._pos_embed(tokens))
        return model.norm_pre(tokens)

    def _rope(self, tokens: torch.Tensor) -> Optional[torch.Tensor]:
        """The rotary embedding Eva's ``_pos_embed`` computes for this token grid."""
        rope = getattr(self.model, "rope", None)
        if rope is None:
            return None
        patches = tokens.shape[1] - self.num_prefix_tokens
        if patches != self.grid_size[0] * self.grid_size[1]:
            raise ValueError(f"timm tower {self.arch}: {patches} patch tokens, but model.backbone.image_size "
                             f"{self.image_size} gives a {self.grid_size} grid; resize the images to "
                             f"{self.image_size} px (the data layer does this from input_spec).")
        if self.model.dynamic_img_size or not hasattr(rope, "feat_shape"):
            return rope.get_embed(shape=self.grid_size)
        return rope.get_embed()

    @property
    def blocks(self) -> nn.ModuleList:
        return self.model.blocks

    def run_block(self, tokens: torch.Tensor, index: int, block: Optional[nn.Module] = None) -> torch.Tensor:
        block = self.blocks[index] if block is None else block
        return block(tokens, rope=self._rope(tokens)) if self._is_eva else block(tokens)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(images)
        rope = self._rope(tokens) if self._is_eva else None  # once per forward, as timm does
        for block in self.blocks:
            tokens = block(tokens, rope=rope) if self._is_eva else block(tokens)
        return self.final_norm(tokens)

    def final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.norm(tokens)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLS token (DINO) or timm's ``forward_head(pre_logits=True)`` (PE's attention pool); module docstring."""
        if self._cls_feature:
            return tokens[:, 0]
        return self.model.forward_head(tokens, pre_logits=True)

    @property
    def input_spec(self) -> InputSpec:
        """mean/std from timm's pretrained config of the model (ImageNet for DINO, 0.5/0.5 for PE)."""
        cfg = self.model.pretrained_cfg
        interpolation = TIMM_INTERPOLATIONS.get(cfg.get("interpolation", "bicubic"))
        if interpolation is None:
            raise ValueError(f"timm {self.arch}: pretrained interpolation {cfg.get('interpolation')!r} has no "
                             f"InputSpec equivalent ({', '.join(TIMM_INTERPOLATIONS)}).")
        return InputSpec(resolution=self.image_size, mean=tuple(cfg["mean"]), std=tuple(cfg["std"]),
                         resize_mode="resize_center_crop", interpolation=interpolation,
                         crop_pct=float(cfg.get("crop_pct") or 1.0))
