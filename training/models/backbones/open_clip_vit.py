"""open_clip vision towers (any ViT open_clip knows by name, or a custom size).

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
from typing import Dict, List, Optional

import torch
from torch import nn

from training.models.backbones.conv_stem import ConvStem
from training.models.backbones.fast_attention import use_packed_attention
from training.models.backbones.fast_block import FastResidualAttentionBlock, use_fast_blocks
from training.models.backbones.frozen_linear import use_frozen_aware_linears
from training.registry import BACKBONES

WEIGHT_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class PretrainedWeightsMissing(FileNotFoundError):
    pass


def vision_config(arch: str, overrides: Optional[dict]) -> dict:
    import open_clip

    if arch == "custom":
        base = {}
    else:
        model_cfg = open_clip.get_model_config(arch)
        if model_cfg is None:
            known = [m for m in open_clip.list_models() if m.startswith("ViT")]
            raise ValueError(f"model.backbone.arch '{arch}' is not an open_clip model. "
                             f"ViT choices: {', '.join(known)}; or 'custom' with model.backbone.vision_cfg.")
        base = copy.deepcopy(model_cfg["vision_cfg"])
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


def _has_hooks(module: nn.Module) -> bool:
    """Whether hooks watch ``module`` or its children (Grad-CAM, attention rollout): the CLS-only
    last block calls its submodules' methods directly, so it is used only when nobody watches."""
    return any(sub._forward_hooks or sub._forward_pre_hooks or sub._backward_hooks or sub._backward_pre_hooks
               for sub in module.modules())


@BACKBONES.register("open_clip")
class OpenClipVisionBackbone(nn.Module):
    """The vision tower of an open_clip CLIP model, without its projection.

    ``forward`` returns all tokens after the final LayerNorm (``ln_post``):
    token 0 is the CLS feature the LN-CLIP paper uses (equal to Hugging Face's
    ``pooler_output``), tokens 1.. are the patch tokens.
    """

    def __init__(self, arch: str = "ViT-B-16", pretrained: Optional[str] = "openai",
                 vision_cfg: Optional[dict] = None, quick_gelu: Optional[bool] = None,
                 weights_dir: str = "weights", allow_download: bool = False, conv_stem: bool = False):
        super().__init__()
        import open_clip
        from open_clip.model import _build_vision_tower

        self.arch = arch
        self.pretrained = pretrained
        cfg = vision_config(arch, vision_cfg)
        if quick_gelu is None:  # OpenAI weights were trained with QuickGELU
            quick_gelu = arch.endswith("quickgelu") or bool(
                pretrained and open_clip.get_pretrained_cfg(arch, str(pretrained)).get("quick_gelu"))
        self.quick_gelu = quick_gelu
        self.visual = _build_vision_tower(embed_dim=cfg.pop("embed_dim", 512),  # unused: proj is dropped
                                          vision_cfg=cfg, quick_gelu=quick_gelu)
        self.visual.proj = None  # the detector uses the pre-projection CLS feature
        # Same parameters and keys, but projections as single GEMMs (see fast_attention.py).
        use_packed_attention(self.visual)
        use_frozen_aware_linears(self.visual.transformer)  # MLP projections (docs/BENCHMARKS.md)
        use_fast_blocks(self.visual)  # QuickGELU folded; CLS-only last block for ``feature``
        self.width = self.visual.ln_post.normalized_shape[0]
        self.image_size = self.visual.image_size[0]
        self.grid_size = self.visual.grid_size
        # "tok": the CLS token (CLIP, LN-CLIP); "avg": mean of the patch tokens (open_clip's pool_type).
        self.pool_type = getattr(self.visual, "pool_type", "tok")
        if conv_stem:
            if pretrained:
                raise ValueError("model.backbone.conv_stem replaces CLIP's patch embedding and cannot be "
                                 "combined with pretrained weights; use it with pretrained: null.")
            self.visual.conv1 = ConvStem(self.width, self.visual.patch_size[0])
        self.weights_file: Optional[str] = None
        if pretrained:
            self._load_pretrained(str(pretrained), Path(weights_dir), allow_download)

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
        result = self.visual.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(f"Weights file {path} does not fit open_clip {self.arch}: "
                             f"missing {result.missing_keys[:10]}, unexpected {result.unexpected_keys[:10]}.")
        self.weights_file = str(path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        visual = self.visual
        tokens = visual._embeds(images)
        tokens = visual.transformer(tokens)
        return visual.ln_post(tokens)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """The image feature from ``forward``'s tokens: CLS (``tok``) or mean of patches (``avg``)."""
        return tokens[:, 1:].mean(dim=1) if self.pool_type == "avg" else tokens[:, 0]

    def feature(self, images: torch.Tensor) -> torch.Tensor:
        """``pooled(forward(images))``. For the CLS feature the last block runs for the CLS token
        alone (the patch tokens still serve as its keys and values): same result, 5/6 of that
        block's matrix products skipped (fast_block.py)."""
        last = self.blocks[-1]
        transformer = self.visual.transformer
        if (self.pool_type != "tok" or not isinstance(last, FastResidualAttentionBlock) or _has_hooks(last)
                or not getattr(transformer, "batch_first", False) or transformer.grad_checkpointing):
            return self.pooled(self(images))
        tokens = self.embed(images)
        for block in self.blocks[:-1]:
            tokens = block(tokens)
        return self.visual.ln_post(last.forward_first_token(tokens))[:, 0]

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch + position embedding and ``ln_pre`` (the input of block 0)."""
        return self.visual._embeds(images)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.visual.transformer.resblocks

    def layernorms(self) -> List[nn.LayerNorm]:
        return [m for m in self.visual.modules() if isinstance(m, nn.LayerNorm)]

    def frozen_weights_hash(self) -> str:
        """sha256 over every non-LayerNorm tensor: identifies the backbone a compact checkpoint needs."""
        ln_params = {id(p) for ln in self.layernorms() for p in ln.parameters()}
        digest = hashlib.sha256()
        for name, tensor in sorted(self.visual.state_dict(keep_vars=True).items()):
            if id(tensor) in ln_params:
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()
