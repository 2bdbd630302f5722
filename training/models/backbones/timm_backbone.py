"""timm image backbones (Xception, EfficientNet, ResNet ...) with offline pretrained weights.

``pretrained`` is ``imagenet`` (the model's default timm weights), a timm tag
(``ra2_in1k`` ...), a path to a weights file, or ``null`` (random init, only
when asked for). Weights are looked for, without touching the network, in

1. ``<weights_dir>/<model_name>/<tag>/`` (``model.safetensors``, ``pytorch_model.bin``,
   open_clip's ``open_clip_model.safetensors`` of a timm trunk, or the file name of timm's
   download URL),
2. the Hugging Face cache (timm's ``pretrained_cfg.hf_hub_id``),
3. the torch hub cache (``<torch hub dir>/checkpoints/<URL file name>``), where timm
   puts weights it downloads from a URL.

Nothing is downloaded unless ``allow_download``; a missing file is an error that
says which file to get and where to put it (like open_clip_vit.py). The weights
are read here (safetensors, or ``torch.load(weights_only=True)``) and handed to
timm as a state dict, so timm still drops the classifier and adapts the stem as
for its own downloads.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn

from training.errors import ConfigError
from training.registry import BACKBONES
from training.errors import UserError

WEIGHT_FILENAMES = ("model.safetensors", "pytorch_model.bin")
# open_clip's files of timm towers (PE-Core, SigLIP2): the timm model sits under visual.trunk.*
OPEN_CLIP_FILENAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP_TRUNK_PREFIX = "visual.trunk."
IMAGENET_TAG = "imagenet"  # "the model's default timm weights", whatever their tag


class PretrainedWeightsMissing(UserError, FileNotFoundError):
    pass


def pretrained_cfg_for(model_name: str, tag: str) -> Dict[str, Any]:
    """timm's pretrained config for ``model_name`` and a tag (``imagenet`` = its default tag)."""
    import timm
    from timm.models import get_pretrained_cfg

    full = model_name if tag == IMAGENET_TAG else f"{model_name}.{tag}"
    try:
        cfg = get_pretrained_cfg(full)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        cfg = None
    if cfg is None:
        tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"{model_name}.*")]
        raise PretrainedWeightsMissing(
            f"model.backbone.pretrained '{tag}' is neither an existing file nor a timm tag of "
            f"{model_name}. Tags: {', '.join(tags) or '(none)'}; or '{IMAGENET_TAG}' for the default, "
            f"or null for random initialisation.")
    return cfg.to_dict()


def _url_filename(cfg: Mapping[str, Any]) -> Optional[str]:
    url = cfg.get("url") or ""
    return url.rsplit("/", 1)[-1] or None if url else None


def candidate_files(model_name: str, cfg: Mapping[str, Any], weights_dir: Path) -> List[Path]:
    """Where the weights may already lie on this machine, in the order they are tried."""
    names = list(WEIGHT_FILENAMES) + list(OPEN_CLIP_FILENAMES)
    if _url_filename(cfg):
        names.append(_url_filename(cfg))
    local = weights_dir / model_name / cfg["tag"]
    found = [local / name for name in names]
    if _url_filename(cfg):
        found.append(Path(torch.hub.get_dir()) / "checkpoints" / _url_filename(cfg))
    return found


def find_local_weights(model_name: str, cfg: Mapping[str, Any], weights_dir: Path) -> Optional[Path]:
    for candidate in candidate_files(model_name, cfg, weights_dir):
        if candidate.is_file():
            return candidate
    if cfg.get("hf_hub_id"):
        from huggingface_hub import try_to_load_from_cache  # offline: reads the cache only

        for name in WEIGHT_FILENAMES:
            cached = try_to_load_from_cache(repo_id=cfg["hf_hub_id"], filename=name)
            if isinstance(cached, str):
                return Path(cached)
    return None


def missing_weights_message(model_name: str, cfg: Mapping[str, Any], weights_dir: Path) -> str:
    tag = cfg["tag"]
    if cfg.get("hf_hub_id"):
        source = (f"https://huggingface.co/{cfg['hf_hub_id']} (file {WEIGHT_FILENAMES[0]})")
        where = weights_dir / model_name / tag / WEIGHT_FILENAMES[0]
    else:
        source = cfg.get("url") or "?"
        where = weights_dir / model_name / tag / (_url_filename(cfg) or WEIGHT_FILENAMES[1])
    return (f"Pretrained weights for timm {model_name}.{tag} are not available offline. Download {source} "
            f"and put it at {where} (or set model.backbone.pretrained to the file's path, or "
            f"model.backbone.allow_download=true on a machine with internet). Use "
            f"model.backbone.pretrained=null only if you really want random initialisation.")


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """A weights file as a plain state dict (safetensors, or a tensor-only torch file)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        from training.engine.checkpoint import load_checkpoint  # the one weights_only=True loader

        state = load_checkpoint(path)
        for wrapper in ("state_dict", "model", "state_dict_ema"):
            if isinstance(state.get(wrapper), Mapping):
                state = dict(state[wrapper])
                break
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    if any(k.startswith(OPEN_CLIP_TRUNK_PREFIX) for k in state):  # an open_clip file: keep the timm trunk
        state = {k[len(OPEN_CLIP_TRUNK_PREFIX):]: v for k, v in state.items() if k.startswith(OPEN_CLIP_TRUNK_PREFIX)}
    return state


def _download(model_name: str, cfg: Mapping[str, Any], weights_dir: Path) -> Path:
    try:
        if cfg.get("hf_hub_id"):
            from huggingface_hub import hf_hub_download

            return Path(hf_hub_download(cfg["hf_hub_id"], WEIGHT_FILENAMES[0]))
        from timm.models._hub import download_cached_file

        return Path(download_cached_file(cfg["url"]))
    except Exception as error:  # network errors come in many types
        raise PretrainedWeightsMissing(missing_weights_message(model_name, cfg, weights_dir)
                                       + f" (download failed: {error})") from error


def resolve_weights_file(model_name: str, pretrained: str, weights_dir: Path, allow_download: bool) -> Path:
    """The weights file for ``pretrained`` (a file path, or a timm tag of ``model_name``), found
    offline as the module docstring says; downloaded only with ``allow_download``."""
    path = Path(pretrained)
    if path.is_file():
        return path
    if os.sep in pretrained or pretrained.endswith((".safetensors", ".bin", ".pth", ".pt")):
        raise PretrainedWeightsMissing(
            f"model.backbone.pretrained '{pretrained}' looks like a file path but no such file exists.")
    cfg = pretrained_cfg_for(model_name, pretrained)
    found = find_local_weights(model_name, cfg, weights_dir)
    if found is None and allow_download:
        found = _download(model_name, cfg, weights_dir)
    if found is None:
        raise PretrainedWeightsMissing(missing_weights_message(model_name, cfg, weights_dir))
    return found


# "timm" is the timm ViT tower (timm_vit.py); this pooled-feature CNN wrapper is "timm_cnn".
@BACKBONES.register("timm_cnn")
class TimmBackbone(nn.Module):
    """A timm model without its classifier: ``forward`` returns pooled features (B, num_features)."""

    def __init__(self, model_name: str, pretrained: Optional[str] = IMAGENET_TAG, weights_dir: str = "weights",
                 allow_download: bool = False, drop_path_rate: float = 0.0,
                 create_kwargs: Optional[Mapping[str, Any]] = None):
        super().__init__()
        import timm

        if not model_name:
            raise ConfigError("model.backbone.model_name is required (a timm model name, e.g. legacy_xception).")
        if not timm.is_model(model_name):
            raise ConfigError(f"model.backbone.model_name '{model_name}' is not a timm model; "
                             f"see timm.list_models() (e.g. legacy_xception, efficientnet_b4).")
        self.model_name = model_name
        self.weights_file: Optional[str] = None
        kwargs: Dict[str, Any] = {"num_classes": 0, **dict(create_kwargs or {})}
        if drop_path_rate:
            kwargs["drop_path_rate"] = float(drop_path_rate)
        if pretrained:
            state = self._pretrained_state(str(pretrained), Path(weights_dir), allow_download)
            # A state dict overlay: timm adapts/filters it exactly as it would its own download.
            kwargs["pretrained_cfg_overlay"] = {"state_dict": state, "file": None, "source": ""}
        self.model = timm.create_model(model_name, pretrained=bool(pretrained), **kwargs)
        self.num_features = self.model.num_features
        self.pretrained_cfg = dict(self.model.pretrained_cfg)
        self.pretrained_cfg.pop("state_dict", None)  # keep the config small and printable

    def _pretrained_state(self, pretrained: str, weights_dir: Path, allow_download: bool) -> Dict[str, torch.Tensor]:
        path = resolve_weights_file(self.model_name, pretrained, weights_dir, allow_download)
        self.weights_file = str(path)
        return read_state_dict(path)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(images), pre_logits=True)
