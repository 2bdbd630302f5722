"""The open_clip tower family: open_clip's own VisionTransformer (CLIP ViTs by name, or custom sizes).

Weights resolve like open_clip's factory: ``pretrained`` is an open_clip tag
(``openai``, ``laion2b_s34b_b88k`` ...) or a path to a local file. Nothing is
downloaded unless ``allow_download`` is true, and a missing file is an error
that says which file to fetch and where to put it: a detector never continues
with random weights unless the config says ``pretrained: null``.
"""
from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from training.errors import ConfigError
from training.models.backbones.conv_stem import ConvStem
from training.models.backbones.fast_attention import use_packed_attention
from training.models.backbones.fast_block import FastResidualAttentionBlock, use_fast_blocks
from training.models.backbones.frozen_linear import use_frozen_aware_linears
from training.models.backbones.tower import VisionTower, register_tower
from training.models.input_spec import CLIP_MEAN, CLIP_STD, InputSpec
from training.errors import UserError

WEIGHT_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class PretrainedWeightsMissing(UserError, FileNotFoundError):
    pass


def vision_config(arch: str, overrides: Optional[dict]) -> dict:
    import open_clip

    if arch == "custom":
        base = {}
    else:
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            known = [m for m in open_clip.list_models() if m.startswith("ViT")]
            raise ConfigError(f"model.backbone.arch '{arch}' is not an open_clip model. "
                             f"ViT choices: {', '.join(known)}; or 'custom' with model.backbone.vision_cfg.")
        base = copy.deepcopy(model_cfg["vision_cfg"])
        if "timm_model_name" in base:  # PE-Core, SigLIP2 ...: open_clip wraps a timm model there
            raise ValueError(
                f"open_clip's {arch} is timm's {base['timm_model_name']} inside open_clip; build it as "
                f"model.backbone.tower: timm, arch: {base['timm_model_name']} (its open_clip weights file "
                f"loads there too).")
    base.update(overrides or {})
    return base


def find_local_weights(arch: str, tag: str, weights_dir: Path) -> Optional[Path]:
    """Look for a tag's weights without touching the network."""
    for name in WEIGHT_FILENAMES:
        candidate = weights_dir / arch / tag / name
        if candidate.is_file():
            return candidate
    import open_clip

    hub = open_clip.get_pretrained_cfg(arch, tag).get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo = hub.rstrip("/")
        for name in WEIGHT_FILENAMES:
            cached = try_to_load_from_cache(repo_id=repo, filename=name)
            if isinstance(cached, str):
                return Path(cached)
    return None


def missing_weights_message(arch: str, tag: str, weights_dir: Path) -> str:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(arch)
        return (f"model.backbone.pretrained '{tag}' is neither an existing file nor an open_clip tag "
                f"for {arch}. Tags for {arch}: {', '.join(tags) or '(none)'}.")
    where = weights_dir / arch / tag / WEIGHT_FILENAMES[0]
    source = (f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')} (file {WEIGHT_FILENAMES[0]} "
              f"or {WEIGHT_FILENAMES[1]})" if cfg.get("hf_hub") else cfg.get("url", "?"))
    return (f"Pretrained weights for open_clip {arch} '{tag}' are not available offline. Download "
            f"{source} and put it at {where} (or set model.backbone.pretrained to the file's path, "
            f"or model.backbone.allow_download=true on a machine with internet). "
            f"Use model.backbone.pretrained=null only if you really want random initialisation.")


def load_vision_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Read a CLIP checkpoint and keep the vision tower (``visual.*`` keys, prefix removed)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    visual = {k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")}
    if not visual:
        raise ValueError(f"{path} has no 'visual.*' keys: it is not an open_clip CLIP checkpoint "
                         f"(first keys: {list(state)[:5]}).")
    return visual



def default_quick_gelu(arch: str, pretrained: Optional[str]) -> bool:
    """The activation an open_clip arch was trained with (docs/ARCHITECTURE.md, QuickGELU).

    An open_clip tag decides for itself. Otherwise (random init, a local file) the arch decides:
    ``*-quickgelu`` names, and archs whose ``openai`` tag uses QuickGELU (ViT-B-16, ViT-L-14 ...),
    so that a random-init tower of an OpenAI arch is the network its pretrained one is.
    """
    import open_clip

    if arch == "custom":
        return False
    if arch.endswith("quickgelu"):
        return True
    if pretrained and not Path(str(pretrained)).is_file():
        tag_cfg = open_clip.get_pretrained_cfg(arch, str(pretrained))
        if tag_cfg:
            return bool(tag_cfg.get("quick_gelu"))
    return bool(open_clip.get_pretrained_cfg(arch, "openai").get("quick_gelu"))


def _has_hooks(module: nn.Module) -> bool:
    """Whether hooks watch ``module`` or its children (Grad-CAM, attention rollout): the CLS-only
    last block calls its submodules' methods directly, so it is used only when nobody watches."""
    return any(sub._forward_hooks or sub._forward_pre_hooks or sub._backward_hooks or sub._backward_pre_hooks
               for sub in module.modules())


@register_tower("open_clip")
class OpenClipTower(VisionTower):
    """The vision tower of an open_clip CLIP model, without its projection.

    ``forward`` returns all tokens after the final LayerNorm (``ln_post``): token 0 is the CLS
    feature LN-CLIP and GenD use (equal to Hugging Face's ``pooler_output``), tokens 1.. are the
    patch tokens. This is the one place the CPU fast path is installed (module docstrings of
    fast_attention.py, frozen_linear.py, fast_block.py); every rewrite is exact.
    """

    CONFIG: Dict[str, Any] = {
        "vision_cfg": None,  # overrides of open_clip's vision config (custom sizes: arch custom)
        "quick_gelu": None,  # null: from the arch (default_quick_gelu)
        "conv_stem": False,  # conv patch embedding: random-init towers only (conv_stem.py)
    }

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "OpenClipTower":
        return cls(arch=cfg["arch"], pretrained=cfg["pretrained"], vision_cfg=cfg["vision_cfg"],
                   quick_gelu=cfg["quick_gelu"], weights_dir=cfg["weights_dir"],
                   allow_download=cfg["allow_download"], conv_stem=cfg["conv_stem"], image_size=cfg["image_size"])

    def __init__(self, arch: str = "ViT-B-16", pretrained: Optional[str] = "openai",
                 vision_cfg: Optional[dict] = None, quick_gelu: Optional[bool] = None,
                 weights_dir: str = "weights", allow_download: bool = False, conv_stem: bool = False,
                 image_size: Optional[int] = None):
        super().__init__()
        from open_clip.model import _build_vision_tower

        self.arch = arch
        self.pretrained = pretrained
        cfg = vision_config(arch, vision_cfg)
        for key in ("attentional_pool", "final_ln_after_pool"):
            if cfg.get(key):
                raise ConfigError(f"model.backbone: open_clip vision_cfg.{key} is not supported by the open_clip "
                                 f"tower (its feature is not the pooled final-normed tokens).")
        if image_size is not None:
            cfg["image_size"] = int(image_size)  # pretrained position embeddings are resampled on load
        self.quick_gelu = default_quick_gelu(arch, pretrained) if quick_gelu is None else bool(quick_gelu)
        self.visual = _build_vision_tower(embed_dim=cfg.pop("embed_dim", 512),  # unused: proj is dropped
                                          vision_cfg=cfg, quick_gelu=self.quick_gelu)
        self.visual.proj = None  # the detector uses the pre-projection CLS feature
        if not getattr(self.visual.transformer, "batch_first", False):
            raise ValueError("The open_clip tower needs a batch-first open_clip transformer (open_clip >= 2.24).")
        # Same parameters and keys, but projections as single GEMMs (see fast_attention.py).
        use_packed_attention(self.visual)
        use_frozen_aware_linears(self.visual.transformer)  # MLP projections (docs/BENCHMARKS.md)
        use_fast_blocks(self.visual)  # QuickGELU folded; CLS-only last block for ``feature``
        self.width = self.visual.ln_post.normalized_shape[0]
        self.num_heads = self.blocks[0].attn.num_heads
        self.image_size = self.visual.image_size[0]
        self.grid_size = tuple(self.visual.grid_size)
        self.patch_size = self.visual.patch_size[0]
        self.num_prefix_tokens = 1  # CLS
        # "tok": the CLS token (CLIP, LN-CLIP, GenD); "avg": mean of the patch tokens (open_clip's pool_type).
        self.pool_type = getattr(self.visual, "pool_type", "tok")
        if self.pool_type not in ("tok", "avg"):
            raise ConfigError(f"model.backbone.vision_cfg.pool_type '{self.pool_type}': the open_clip tower "
                             f"pools with tok (CLS) or avg (mean patch token).")
        if conv_stem:
            if pretrained:
                raise ConfigError("model.backbone.conv_stem replaces CLIP's patch embedding and cannot be "
                                 "combined with pretrained weights; use it with pretrained: null.")
            self.visual.conv1 = ConvStem(self.width, self.patch_size)
        if pretrained:
            self._load_pretrained(str(pretrained), Path(weights_dir), allow_download)

    @property
    def library_module(self) -> nn.Module:
        return self.visual

    def _load_pretrained(self, pretrained: str, weights_dir: Path, allow_download: bool) -> None:
        path = Path(pretrained)
        if not path.is_file():
            if self.arch == "custom":
                raise PretrainedWeightsMissing(
                    f"model.backbone.pretrained '{pretrained}' is not a file; a custom architecture "
                    f"has no open_clip tags. Give a weights file or pretrained: null.")
            path = find_local_weights(self.arch, pretrained, weights_dir)
            if path is None and allow_download:
                import open_clip

                try:
                    path = Path(open_clip.download_pretrained(
                        open_clip.get_pretrained_cfg(self.arch, pretrained)))
                except Exception as error:  # network errors come in many types
                    raise PretrainedWeightsMissing(
                        missing_weights_message(self.arch, pretrained, weights_dir)
                        + f" (download failed: {error})") from error
            if path is None or not path.is_file():
                raise PretrainedWeightsMissing(missing_weights_message(self.arch, pretrained, weights_dir))
        state = load_vision_state_dict(path)
        state.pop("proj", None)
        self.load_tower_state_dict(state, f"Weights file {path}")
        self.weights_file = str(path)

    def load_tower_state_dict(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """open_clip ``visual.*`` keys with the prefix removed (``proj`` is dropped, the tower has none).
        Position embeddings of another grid are resampled as open_clip's loader does."""
        from open_clip.model import resize_pos_embed

        state = {k: v for k, v in state.items() if k != "proj"}
        if "positional_embedding" in state:
            wrapped = {"visual.positional_embedding": state["positional_embedding"]}
            resize_pos_embed(wrapped, nn.ModuleDict({"visual": self.visual}))
            state["positional_embedding"] = wrapped["visual.positional_embedding"]
        super().load_tower_state_dict(state, source)

    # -- tokens ---------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch + position embedding and ``ln_pre`` (the input of block 0)."""
        return self.visual._embeds(images)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.visual.transformer.resblocks

    def final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.visual.ln_post(tokens)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # open_clip's transformer: same blocks, plus its gradient checkpointing when enabled.
        return self.final_norm(self.visual.transformer(self.embed(images)))

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """CLS (``tok``) or the mean of the patch tokens (``avg``)."""
        return self.patch_tokens(tokens).mean(dim=1) if self.pool_type == "avg" else tokens[:, 0]

    def feature(self, images: torch.Tensor) -> torch.Tensor:
        """``pooled(forward(images))``. For the CLS feature the last block runs for the CLS token
        alone (the patch tokens still serve as its keys and values): same result, 5/6 of that
        block's matrix products skipped (fast_block.py)."""
        last = self.blocks[-1]
        if (self.pool_type != "tok" or not isinstance(last, FastResidualAttentionBlock) or _has_hooks(last)
                or self.visual.transformer.grad_checkpointing):
            return self.pooled(self(images))
        tokens = self.embed(images)
        for block in self.blocks[:-1]:
            tokens = block(tokens)
        return self.final_norm(last.forward_first_token(tokens))[:, 0]

    @property
    def input_spec(self) -> InputSpec:
        """The tag's mean/std (open_clip's pretrained config; CLIP's when it names none), at the
        tower's input size; CLIP preprocessing resizes the shortest side (bicubic) and centre-crops."""
        import open_clip

        tag_cfg = {}
        if self.pretrained and self.arch != "custom" and not Path(str(self.pretrained)).is_file():
            tag_cfg = open_clip.get_pretrained_cfg(self.arch, str(self.pretrained))
        return InputSpec(resolution=self.image_size, mean=tuple(tag_cfg.get("mean") or CLIP_MEAN),
                         std=tuple(tag_cfg.get("std") or CLIP_STD), resize_mode="resize_center_crop",
                         interpolation="pil_bicubic", crop_pct=1.0)
