"""The vision-tower interface: what detectors and modules may ask of a ViT.

A tower wraps one library's ViT (open_clip, timm ...) and exposes only

* ``embed(images)``: patch + position embedding and any pre-norm, the input of block 0,
  shape (B, num_prefix_tokens + N, width); prefix tokens (CLS, registers) come first;
* ``blocks`` (an ``nn.ModuleList``) and ``run_block(tokens, index, block=None)``, which runs
  block ``index`` (or a copy of it, ``block``) with whatever per-block context the library
  needs (rotary embeddings for timm's Eva towers);
* ``final_norm(tokens)`` and ``pooled(tokens)``: the final norm, and the feature from the
  final-normed tokens (CLS token, mean of patch tokens, or attention pooling);
* ``forward(images)`` (all tokens after the final norm) and ``feature(images)``
  (``pooled(forward(images))``, possibly computed with less work, never different);
* ``layernorms()``: the LayerNorms LN-tuning trains (GenD's tuned set, see docs/ARCHITECTURE.md);
* geometry: ``width``, ``num_heads``, ``patch_size``, ``grid_size``, ``image_size``,
  ``num_prefix_tokens``; ``patch_tokens(tokens)`` drops the prefix tokens;
* ``input_spec``: resolution, mean/std and interpolation from the tower's own pretrained config;
* ``identity()`` (tower family, arch, pretrained) and ``frozen_weights_hash()``, which compact
  checkpoints store; ``load_tower_state_dict(state, source)`` in the library's own key layout.

A family is one file in this package: a subclass registered in ``BACKBONES`` under the name the
config's ``model.backbone.tower`` uses, declaring its family-specific config keys in ``CONFIG``.
``build_tower`` reads the registry; nothing else names a family.
"""
from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

import torch
from torch import nn

from training.errors import ConfigError
from training.models.input_spec import InputSpec
from training.registry import BACKBONES, import_builtin_components

DEFAULT_TOWER = "open_clip"

# Keys every tower family reads (model.backbone.*). Family keys live on the classes (CONFIG).
COMMON_CONFIG: Dict[str, Any] = {
    "tower": DEFAULT_TOWER,  # registered tower family: open_clip | timm
    "arch": "ViT-B-16",  # the library's model name (open_clip name, or timm name)
    "pretrained": "openai",  # the library's pretrained tag, a local weights file, or null (random init)
    "image_size": None,  # input size in pixels; null: the tower's pretrained default
    "weights_dir": "weights",  # where <arch>/<tag>/<weights file> is looked for
    "allow_download": False,  # never touch the network unless true
}


class VisionTower(nn.Module):
    """Base class of every tower family (see the module docstring)."""

    CONFIG: ClassVar[Dict[str, Any]] = {}  # family-specific model.backbone keys and their defaults
    family: ClassVar[str] = ""  # set by register_tower

    # Geometry, set by the subclass constructor.
    width: int
    num_heads: int
    patch_size: int
    grid_size: Tuple[int, int]
    image_size: int
    num_prefix_tokens: int
    arch: str
    pretrained: Optional[str]
    weights_file: Optional[str] = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> "VisionTower":
        raise NotImplementedError

    # -- the library model ----------------------------------------------------------
    @property
    def library_module(self) -> nn.Module:
        """The wrapped library model: its state dict is the library's own key layout."""
        raise NotImplementedError

    def load_tower_state_dict(self, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Load weights in the library's key layout (open_clip: ``visual.*`` with the prefix
        removed; timm: the timm model's keys). Any missing or unexpected key is an error naming
        ``source`` and the keys."""
        result = self.library_module.load_state_dict(dict(state), strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"{source} does not fit {self.family} tower {self.arch}: missing keys "
                f"{result.missing_keys[:10]}{' …' if len(result.missing_keys) > 10 else ''}, unexpected keys "
                f"{result.unexpected_keys[:10]}{' …' if len(result.unexpected_keys) > 10 else ''}. Check "
                f"model.backbone.arch (and the family keys) against the weights, or convert the file to "
                f"{self.family}'s layout.")

    # -- tokens ---------------------------------------------------------------------
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def blocks(self) -> nn.ModuleList:
        raise NotImplementedError

    def run_block(self, tokens: torch.Tensor, index: int, block: Optional[nn.Module] = None) -> torch.Tensor:
        """Block ``index`` (or ``block``, a copy of it) applied to ``tokens``."""
        return (self.blocks[index] if block is None else block)(tokens)

    def final_norm(self, tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """The image feature from final-normed tokens, (B, width)."""
        raise NotImplementedError

    def patch_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """The patch tokens (B, N, D), row-major on ``grid_size``: the prefix tokens dropped."""
        return tokens[:, self.num_prefix_tokens:]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(images)
        for index in range(len(self.blocks)):
            tokens = self.run_block(tokens, index)
        return self.final_norm(tokens)

    def feature(self, images: torch.Tensor) -> torch.Tensor:
        return self.pooled(self(images))

    # -- what LN-tuning trains, what the data layer needs ------------------------------
    def layernorms(self) -> List[nn.Module]:
        """Every LayerNorm with parameters in the tower: GenD's tuned set for each family
        (tests/models/test_towers.py checks it against GenD's name substrings)."""
        return [m for m in self.library_module.modules()
                if isinstance(m, nn.LayerNorm) and any(True for _ in m.parameters(recurse=False))]

    @property
    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    # -- identity for compact checkpoints ------------------------------------------------
    def identity(self) -> Dict[str, Optional[str]]:
        return {"tower": self.family, "arch": self.arch,
                "pretrained": None if self.pretrained is None else str(self.pretrained)}

    def frozen_weights_hash(self) -> str:
        """sha256 over every tensor but the LayerNorms' (names in the library layout): identifies
        the frozen weights a compact checkpoint needs."""
        ln_params = {id(p) for ln in self.layernorms() for p in ln.parameters()}
        digest = hashlib.sha256()
        for name, tensor in sorted(self.library_module.state_dict(keep_vars=True).items()):
            if id(tensor) in ln_params:
                continue
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()


def register_tower(name: str):
    """Class decorator: register a VisionTower subclass in BACKBONES as ``name``."""
    def decorator(cls):
        cls.family = name
        return BACKBONES.register(name)(cls)
    return decorator


def tower_families() -> Dict[str, type]:
    import_builtin_components("backbone")
    families = {}
    for name in BACKBONES.names():
        entry = BACKBONES.get(name)
        if isinstance(entry, type) and issubclass(entry, VisionTower):
            families[name] = entry
    return families


def tower_config_defaults() -> Dict[str, Any]:
    """The ``model.backbone`` schema of a tower detector: the common keys plus every family's."""
    defaults = dict(COMMON_CONFIG)
    for cls in tower_families().values():
        for key, value in cls.CONFIG.items():
            defaults.setdefault(key, value)
    return defaults


def check_family_keys(cfg: Mapping[str, Any], family: str) -> None:
    """A family-specific key set (not at its default) under another family is an error."""
    families = tower_families()
    own = families[family].CONFIG
    for other, cls in families.items():
        for key, default in cls.CONFIG.items():
            if key in own or key in COMMON_CONFIG or key not in cfg or cfg[key] == default:
                continue
            raise ValueError(
                f"model.backbone.{key} applies to tower '{other}' only, but this config builds tower "
                f"'{family}' (model.backbone.tower). Remove it"
                + (f", or use the {family} keys: {', '.join(f'model.backbone.{k}' for k in own)}." if own else "."))


def build_tower(cfg: Mapping[str, Any]) -> VisionTower:
    """Build the tower named by ``cfg['tower']`` (default open_clip) from a ``model.backbone`` section."""
    families = tower_families()
    merged = {**tower_config_defaults(), **dict(cfg)}
    name = merged["tower"] or DEFAULT_TOWER
    if name not in families:
        entry = BACKBONES.get(name)  # unknown names: the registry's error lists the registered ones
        raise ConfigError(f"model.backbone.tower '{name}' is registered as {entry}, which is not a vision "
                         f"tower. Vision towers: {', '.join(sorted(families))}.")
    unknown = sorted(set(merged) - set(tower_config_defaults()))
    if unknown:
        raise ValueError(f"Unknown model.backbone key(s) {unknown}; valid: {', '.join(tower_config_defaults())}.")
    check_family_keys(merged, name)
    return families[name].from_config(merged)
