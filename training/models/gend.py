"""Published LN-CLIP and GenD checkpoints: read the file, its head and its encoder; load them.

Layouts, read from github yermandy/GenD (``src/model/GenD.py``, ``src/hf/modeling_gend.py``,
``src/encoders/*.py``, ``src/heads/head.py``, ``src/config.py``) and yermandy/deepfake-detection
(LN-CLIP: ``src/model/dfdet.py``, ``inference.py``):

* Lightning ``.ckpt``: ``{"state_dict": …, "hyper_parameters": Config.model_dump(), …}``;
  ``hyper_parameters["head"]`` is ``"linear"`` or ``"LinearNorm"``, ``["backbone"]`` the encoder.
* ``save_pretrained`` directory: ``config.json`` (``model_type: "GenD"``, ``backbone``, ``head``)
  and ``model.safetensors``.

Both hold the same state dict: the encoder under ``feature_extractor.``, the head (``LinearProbe``)
under ``model.linear.{weight,bias}``.

============  ============================================================  ==========================
encoder       keys                                                          becomes
============  ============================================================  ==========================
CLIP          ``feature_extractor.vision_model.*`` (HF ``CLIPVisionModel``;  open_clip tower
              ``visual_projection`` stored, unused); LN-CLIP:
              ``feature_extractor.base_model.model.vision_model.*`` (PEFT)
DINOv3        ``feature_extractor.backbone.{embeddings,layer.{i},norm}.*``   timm tower (Eva DINOv3)
              (HF ``DINOv3ViTModel``)
PE-Core       ``feature_extractor.backbone.*`` (timm Eva, head Identity)      timm tower
============  ============================================================  ==========================

The head decides the prediction: ``linear`` gives logits on the raw feature, ``LinearNorm`` on the
L2-normalised feature (our ``model.normalize_feature`` false / true). It is read from the
checkpoint; a checkpoint that does not state it is refused rather than guessed.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
from torch import nn

from training.engine.checkpoint import CheckpointError, load_checkpoint, strip_prefixes
from training.models.convert import (ConversionError, hf_dinov3_to_timm, hf_vision_to_open_clip,
                                     is_hf_clip_state_dict, is_hf_dinov3_state_dict, timm_tower_keys)

log = logging.getLogger(__name__)

ENCODER_PREFIX = "feature_extractor."
ENCODER_BACKBONE_PREFIX = "feature_extractor.backbone."  # GenD's DINOEncoder / PerceptionEncoder
HEAD_PREFIX = "model.linear."  # the Lightning module's (and GenD HF model's) ``model`` = LinearProbe
HF_CONFIG_FILE = "config.json"
HF_WEIGHTS_FILE = "model.safetensors"
# GenD's Head enum (src/config.py) → whether the linear layer sees the L2-normalised feature.
HEAD_NORMALIZES = {"linear": False, "LinearNorm": True}
# Which of our tower families each encoder layout loads into.
ENCODER_TOWER = {"clip": "open_clip", "dinov3": "timm", "timm": "timm"}
# GenD's backbone names (src/config.py, Backbone) → our model.backbone (docs/ARCHITECTURE.md) and the
# input size GenD runs them at (None: the arch fixes it): PE at 224 (src/hf/modeling_gend.py,
# BackboneArgs.img_size), DINOv3 at its HF processor's 224 (timm's pretrained size is 256).
GEND_BACKBONES = {
    "openai/clip-vit-base-patch16": ("open_clip", "ViT-B-16", None),
    "openai/clip-vit-base-patch32": ("open_clip", "ViT-B-32", None),
    "openai/clip-vit-large-patch14": ("open_clip", "ViT-L-14", None),
    "openai/clip-vit-large-patch14-336": ("open_clip", "ViT-L-14-336", None),
    "vit_pe_core_base_patch16_224": ("timm", "vit_pe_core_base_patch16_224", 224),
    "vit_pe_core_large_patch14_336": ("timm", "vit_pe_core_large_patch14_336", 224),
    "vit_pe_core_gigantic_patch14_448": ("timm", "vit_pe_core_gigantic_patch14_448", 224),
    "facebook/dinov3-vitb16-pretrain-lvd1689m": ("timm", "vit_base_patch16_dinov3", 224),
    "facebook/dinov3-vitl16-pretrain-lvd1689m": ("timm", "vit_large_patch16_dinov3", 224),
}


def _config_enum_stand_in(name: str) -> type:
    """GenD's and LN-CLIP's ``src/config.py`` declare ``head: str = Head.Linear`` and ``backbone: str =
    Backbone.CLIP_B_32``: a field left at its default keeps the ``(str, Enum)`` member in
    ``hyper_parameters`` (pydantic does not validate defaults), so the Lightning file names the class
    ``src.config.<name>``, which ``torch.load(weights_only=True)`` refuses. Unpickling only calls the
    class with the member's value; this ``str`` subclass under the same name returns that value."""
    return type(name, (str,), {"__module__": "src.config", "__qualname__": name})


PUBLISHED_CONFIG_CLASSES = (_config_enum_stand_in("Head"), _config_enum_stand_in("Backbone"))


@dataclass(frozen=True)
class PublishedCheckpoint:
    source: str
    state: Dict[str, torch.Tensor]  # as stored (``module.`` prefixes removed)
    head: Optional[str]  # GenD's head name, None when the file does not say
    backbone: Optional[str]  # GenD's backbone name, None when the file does not say
    options: Mapping[str, Any]  # the rest of hyper_parameters / config.json


def is_published_state_dict(state: Mapping[str, Any]) -> bool:
    return any(str(key).startswith(ENCODER_PREFIX) for key in strip_prefixes(state))


def is_hf_directory(path) -> bool:
    path = Path(path)
    return path.is_dir() and (path / HF_CONFIG_FILE).is_file() and (path / HF_WEIGHTS_FILE).is_file()


def is_published_path(path) -> bool:
    """A ``save_pretrained`` directory or a ``.safetensors`` file (Lightning files are recognised
    by their contents, see :func:`load_detector_weights` in training/engine/checkpoint.py)."""
    return is_hf_directory(path) or Path(path).suffix == ".safetensors"


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"Cannot read {path}: {error}. It should be the config.json written by "
                              f"GenD's save_pretrained.") from error
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} does not hold a JSON object.")
    return config


def _read_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"Cannot read {path}: {error}. The file is truncated or not safetensors.") from error


def read_published(path, payload: Optional[Mapping[str, Any]] = None) -> PublishedCheckpoint:
    """Read a GenD / LN-CLIP checkpoint: a ``save_pretrained`` directory, its ``model.safetensors``
    (``config.json`` beside it is read when present), or a Lightning ``.ckpt`` (``payload``: the file
    already loaded by ``load_checkpoint``)."""
    path = Path(path)
    if is_published_path(path):
        weights = path / HF_WEIGHTS_FILE if path.is_dir() else path
        if not weights.is_file():
            raise CheckpointError(f"Checkpoint not found: {weights}.")
        config_file = weights.parent / HF_CONFIG_FILE
        config = _read_json(config_file) if config_file.is_file() else {}
        if config and config.get("model_type") not in (None, "GenD"):
            raise CheckpointError(f"{config_file} describes a '{config.get('model_type')}' model; only GenD's "
                                  f"save_pretrained layout (model_type GenD) is read here.")
        state = _read_safetensors(weights)
    else:
        if payload is None:
            payload = load_checkpoint(path, PUBLISHED_CONFIG_CLASSES)
        state = payload.get("state_dict", payload)
        config = payload.get("hyper_parameters") or {}
        if not isinstance(config, Mapping):
            raise CheckpointError(f"{path}: hyper_parameters is a {type(config).__name__}, not a dict.")
    state = strip_prefixes(state)
    if not is_published_state_dict(state):
        raise CheckpointError(f"{path} holds no GenD/LN-CLIP encoder (no feature_extractor.* keys). Detector "
                              f"weights of this framework are .pt files; a tower's pretrained weights go to "
                              f"model.backbone.pretrained.")
    options = {k: v for k, v in config.items() if k not in ("head", "backbone")}
    head, backbone = (_plain(config.get(key)) for key in ("head", "backbone"))
    return PublishedCheckpoint(source=str(path), state=state, head=head, backbone=backbone, options=options)


def _plain(value: Any) -> Optional[str]:
    """A config string; a (str, Enum) member (unpickled elsewhere) as its value."""
    if value is None:
        return None
    return str(value.value if isinstance(value, Enum) else value)


def head_normalizes(checkpoint: PublishedCheckpoint) -> bool:
    """True for a ``LinearNorm`` head, False for ``linear``; refuses a checkpoint that does not say."""
    if checkpoint.head is None:
        raise CheckpointError(
            f"{checkpoint.source} does not say which head it was trained with (no 'head' in its Lightning "
            f"hyper_parameters or config.json), and the head decides P(fake): 'linear' feeds the raw feature to "
            f"the linear layer (our model.normalize_feature: false), 'LinearNorm' the L2-normalised one "
            f"(model.normalize_feature: true). model.normalize_feature is set from the checkpoint, never "
            f"guessed, so state the head there: add \"head\": \"LinearNorm\" (or \"linear\") to the config.json "
            f"beside model.safetensors, or save the state dict as {{'state_dict': ..., 'hyper_parameters': "
            f"{{'head': 'LinearNorm'}}}}. The checkpoint's model card or training config names its head.")
    if checkpoint.head not in HEAD_NORMALIZES:
        raise CheckpointError(f"{checkpoint.source}: head '{checkpoint.head}' is not one of GenD's linear heads "
                              f"({', '.join(HEAD_NORMALIZES)}); only those load into this framework.")
    return HEAD_NORMALIZES[checkpoint.head]


def _refuse_unsupported(checkpoint: PublishedCheckpoint) -> None:
    """GenD options that change the feature or the keys, which our towers do not reproduce."""
    backbone_args = checkpoint.options.get("backbone_args") or {}
    merge = backbone_args.get("merge_cls_token_with_patches") if isinstance(backbone_args, Mapping) else None
    if merge:
        raise CheckpointError(f"{checkpoint.source}: trained with backbone_args.merge_cls_token_with_patches "
                              f"'{merge}' (CLS token merged with the patch mean); our towers use the CLS token "
                              f"alone, so this checkpoint cannot be reproduced.")
    if any("lora_" in key for key in checkpoint.state):
        raise CheckpointError(f"{checkpoint.source} holds LoRA weights (peft lora_* keys); only LayerNorm-tuned "
                              f"(and fully stored) encoders load.")
    if int(checkpoint.options.get("num_classes", 2) or 2) != 2:
        raise CheckpointError(f"{checkpoint.source}: num_classes {checkpoint.options['num_classes']}; only "
                              f"binary (real/fake) heads load.")


def encoder_layout(checkpoint: PublishedCheckpoint) -> str:
    """``clip`` | ``dinov3`` | ``timm``: which encoder layout the state dict holds."""
    encoder = {k[len(ENCODER_PREFIX):]: v for k, v in checkpoint.state.items() if k.startswith(ENCODER_PREFIX)}
    if is_hf_clip_state_dict(encoder):
        return "clip"
    backbone = {k[len("backbone."):]: v for k, v in encoder.items() if k.startswith("backbone.")}
    if is_hf_dinov3_state_dict(backbone):
        return "dinov3"
    if any(k.startswith("blocks.") for k in backbone) and "patch_embed.proj.weight" in backbone:
        return "timm"
    sample = sorted(checkpoint.state)[:6]
    raise CheckpointError(f"{checkpoint.source}: encoder layout not recognised (keys start {sample}). Known: "
                          f"GenD/LN-CLIP CLIP (feature_extractor.vision_model.*), DINOv3 "
                          f"(feature_extractor.backbone.embeddings.register_tokens …) and timm "
                          f"(feature_extractor.backbone.blocks.* …, e.g. Perception Encoder).")


def tower_state(checkpoint: PublishedCheckpoint, layout: str,
                target_keys: Optional[set] = None) -> Dict[str, torch.Tensor]:
    """The encoder's weights in the key layout of the library our tower wraps."""
    if layout == "clip":
        return hf_vision_to_open_clip({k: v for k, v in checkpoint.state.items() if k.startswith(ENCODER_PREFIX)})
    backbone = {k[len(ENCODER_BACKBONE_PREFIX):]: v for k, v in checkpoint.state.items()
                if k.startswith(ENCODER_BACKBONE_PREFIX)}
    try:
        return hf_dinov3_to_timm(backbone, target_keys) if layout == "dinov3" else timm_tower_keys(backbone)
    except ConversionError as error:
        raise CheckpointError(f"{checkpoint.source}: {error}") from error


def head_state(checkpoint: PublishedCheckpoint) -> Dict[str, torch.Tensor]:
    head = {k[len(HEAD_PREFIX):]: v for k, v in checkpoint.state.items() if k.startswith(HEAD_PREFIX)}
    if set(head) != {"weight", "bias"}:
        raise CheckpointError(f"{checkpoint.source}: no linear head ({HEAD_PREFIX}weight and bias) found; "
                              f"GenD and LN-CLIP checkpoints store one.")
    return head


def run_image_size(checkpoint: PublishedCheckpoint, layout: str) -> Optional[int]:
    """The input size GenD ran the encoder at, where the file tells: PE's ``backbone_args.img_size``
    (src/model/GenD.py hands it to the PE encoder only), else the size of a known backbone name."""
    backbone_args = checkpoint.options.get("backbone_args")
    if (layout == "timm" and "vit_pe" in (checkpoint.backbone or "").lower()
            and isinstance(backbone_args, Mapping) and backbone_args.get("img_size")):
        return int(backbone_args["img_size"])
    known = GEND_BACKBONES.get(checkpoint.backbone or "")
    return known[2] if known else None


def _suggestion(checkpoint: PublishedCheckpoint) -> str:
    known = GEND_BACKBONES.get(checkpoint.backbone or "")
    if known is None:
        return "docs/ARCHITECTURE.md lists the model.backbone settings of GenD's encoders."
    tower, arch, image_size = known
    size = f", image_size: {image_size}" if image_size else ""
    return (f"Its backbone {checkpoint.backbone} is model.backbone {{tower: {tower}, arch: {arch}{size}}} "
            f"(pretrained: null is enough: the checkpoint holds the whole encoder).")


def load_published_weights(detector: nn.Module, path, payload: Optional[Mapping[str, Any]] = None) -> None:
    """Load a GenD / LN-CLIP checkpoint into ``detector``: the whole encoder into its tower, the
    linear head, and ``model.normalize_feature`` from the checkpoint's head."""
    checkpoint = read_published(path, payload)
    normalize = head_normalizes(checkpoint)
    _refuse_unsupported(checkpoint)
    cfg = getattr(detector, "cfg", None)
    if not isinstance(cfg, dict) or "normalize_feature" not in cfg:
        raise CheckpointError(f"{checkpoint.source} is a GenD/LN-CLIP checkpoint; load it into the LN-tuning "
                              f"detector (model.name: clip), not {type(detector).__name__}.")
    if cfg.get("loss", {}).get("classification", "ce") != "ce":
        raise CheckpointError(f"{checkpoint.source}: GenD's head is a plain linear layer; set "
                              f"model.loss.classification: ce (cosine logits would change P(fake)).")
    layout = encoder_layout(checkpoint)
    tower = detector.backbone
    family = getattr(tower, "family", "open_clip")
    if ENCODER_TOWER[layout] != family:
        raise CheckpointError(f"{checkpoint.source} holds a {layout} encoder, which loads into a "
                              f"{ENCODER_TOWER[layout]} tower, but model.backbone.tower is {family}. "
                              f"{_suggestion(checkpoint)}")
    expected_size = run_image_size(checkpoint, layout)
    if expected_size is not None and int(tower.image_size) != expected_size:
        raise CheckpointError(f"{checkpoint.source}: GenD ran this encoder at {expected_size} px, but this tower "
                              f"takes {tower.image_size} px, which changes P(fake); set "
                              f"model.backbone.image_size={expected_size}.")
    library_keys = set(tower.library_module.state_dict())
    weights = tower_state(checkpoint, layout, library_keys)
    try:
        tower.load_tower_state_dict(weights, checkpoint.source)
    except (ValueError, RuntimeError) as error:  # missing/unexpected keys, shapes
        raise CheckpointError(f"{error} {_suggestion(checkpoint)}") from error
    _load_head(detector, head_state(checkpoint), checkpoint.source)
    _check_covered(detector, checkpoint.source)
    if bool(cfg["normalize_feature"]) != normalize:
        log.warning("%s has head '%s': model.normalize_feature set to %s (the config said %s).",
                    checkpoint.source, checkpoint.head, normalize, cfg["normalize_feature"])
    cfg["normalize_feature"] = normalize


def _load_head(detector: nn.Module, head: Dict[str, torch.Tensor], source: str) -> None:
    own = getattr(detector, "head", None)
    if not isinstance(own, nn.Linear):
        raise CheckpointError(f"{source}: GenD's head is one linear layer; set model.head: linear.")
    if tuple(own.weight.shape) != tuple(head["weight"].shape):
        raise CheckpointError(f"{source}: head weight has shape {tuple(head['weight'].shape)} but this detector's "
                              f"is {tuple(own.weight.shape)}: a different encoder width.")
    own.load_state_dict(head)


def _check_covered(detector: nn.Module, source: str) -> None:
    """The checkpoint fills the tower and the head; any other module would stay at random init."""
    others = sorted(name for name, child in detector.named_children()
                    if name not in ("backbone", "head") and any(True for _ in child.parameters()))
    if others:
        raise CheckpointError(f"{source} holds an encoder and a linear head only, but this detector also has "
                              f"{', '.join(others)} (model.{others[0]}.enabled); disable them to load it.")
