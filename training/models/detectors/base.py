"""The one detector interface (DESIGN.md, Interfaces).

A detector is an ``nn.Module`` registered by name that

* declares ``DEFAULTS`` (its ``model:`` config section; every accepted key),
* declares ``input_spec`` (resolution, mean/std, frames per sample ...), so the
  data layer needs no detector-specific code,
* ``forward(batch) -> {"logits", "prob", "feat"}`` (prob = P(fake)),
* ``losses(batch, out) -> {"total", ...named parts}``.

Checkpoints store ``checkpoint_state()``; detectors that train a small part of a
big frozen vision tower derive from ``PretrainedTowerDetector``, which saves only
what changed (compact checkpoints, docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Dict, Set

import torch
from torch import nn

from training.models.input_spec import InputSpec


class Detector(nn.Module):
    DEFAULTS: Dict[str, Any] = {}

    @classmethod
    def default_config(cls) -> Dict[str, Any]:
        return copy.deepcopy({"name": None, **cls.DEFAULTS})

    @property
    def input_spec(self) -> InputSpec:
        raise NotImplementedError

    def forward(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def losses(self, batch: Dict[str, Any], out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def set_training_progress(self, progress: float) -> None:
        """Called by the trainer every step with progress in [0, 1] (for schedules such as GRL λ)."""

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def checkpoint_state(self) -> Dict[str, Any]:
        return {"format": "full", "state_dict": self.state_dict()}

    def load_checkpoint_state(self, state: Dict[str, Any], source: str = "checkpoint") -> None:
        from training.engine.checkpoint import load_state_dict_checked

        load_state_dict_checked(self, state["state_dict"], source)


# Detector keys that override the tower's own preprocessing (null: the tower's input_spec).
PREPROCESSING_DEFAULTS: Dict[str, Any] = {"resize_mode": None, "interpolation": None, "mean": None, "std": None}


class PretrainedTowerDetector(Detector):
    """A detector around a vision tower (``self.backbone``, training/models/backbones/tower.py)
    that may train only a small part of it. Such checkpoints are *compact*: the trainable
    parameters plus the tower's identity (family, arch, pretrained tag) and a hash of its frozen
    weights; loading verifies the hash (the frozen rest is rebuilt from the config, so it must
    be the same weights)."""

    @classmethod
    def default_config(cls) -> Dict[str, Any]:
        """``backbone`` holds every tower key (tower.tower_config_defaults) under this detector's
        own defaults (arch, pretrained)."""
        from training.models.backbones.tower import tower_config_defaults

        cfg = super().default_config()
        cfg["backbone"] = {**tower_config_defaults(), **cfg.get("backbone", {})}
        return cfg

    def _build_backbone(self, backbone_cfg: Dict[str, Any]):
        from training.models.backbones.tower import build_tower

        return build_tower(backbone_cfg)

    def _tower_input_spec(self, cfg: Dict[str, Any], **fields: Any) -> InputSpec:
        """The tower's input spec with the detector's overrides (non-null ``resize_mode``,
        ``interpolation``, ``mean``, ``std``) and the detector's own ``fields``."""
        spec = self.backbone.input_spec
        overrides = {key: (tuple(cfg[key]) if key in ("mean", "std") else cfg[key])
                     for key in PREPROCESSING_DEFAULTS if cfg.get(key) is not None}
        return dataclasses.replace(spec, **overrides, **fields)

    def _is_compact(self) -> bool:
        """True when everything frozen comes from the pretrained tower (subclasses decide)."""
        raise NotImplementedError

    def _trainable_names(self) -> Set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def checkpoint_state(self) -> Dict[str, Any]:
        if not self._is_compact():
            return super().checkpoint_state()
        trainable = {name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad}
        return {"format": "compact", "state_dict": trainable,
                "backbone": {**self.backbone.identity(),
                             "frozen_weights_sha256": self.backbone.frozen_weights_hash()}}

    def load_checkpoint_state(self, state: Dict[str, Any], source: str = "checkpoint") -> None:
        if state.get("format") != "compact":
            return super().load_checkpoint_state(state, source)
        from training.engine.checkpoint import CheckpointError, load_state_dict_checked

        stored = state["backbone"]
        stored_tower = stored.get("tower", "open_clip")  # checkpoints from before towers existed
        identity = self.backbone.identity()
        if stored_tower != identity["tower"]:
            raise CheckpointError(
                f"{source} is a compact checkpoint for a '{stored_tower}' tower ({stored['arch']}), but this "
                f"config builds a '{identity['tower']}' tower ({identity['arch']}); set model.backbone.tower: "
                f"{stored_tower} and model.backbone.arch: {stored['arch']}.")
        expected = stored["frozen_weights_sha256"]
        actual = self.backbone.frozen_weights_hash()
        if expected != actual:
            raise CheckpointError(
                f"{source} is a compact checkpoint for backbone {stored_tower} {stored['arch']} "
                f"'{stored['pretrained']}' with frozen-weight hash {expected[:16]}…, but the "
                f"backbone built from this config ({identity['arch']} '{identity['pretrained']}') hashes to "
                f"{actual[:16]}…. Load the same pretrained weights the checkpoint was trained from "
                f"(model.backbone.arch / model.backbone.pretrained).")
        missing = self._trainable_names() - set(state["state_dict"])
        if missing:
            raise CheckpointError(f"{source}: compact checkpoint lacks trainable parameter(s) "
                                  f"{sorted(missing)[:8]}; was it trained with other model.tuning or module "
                                  f"settings? Pass the matching --detector_path.")
        load_state_dict_checked(self, state["state_dict"], source, partial=True)
