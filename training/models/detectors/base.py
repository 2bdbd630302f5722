"""The one detector interface (DESIGN.md, Interfaces).

A detector is an ``nn.Module`` registered by name that

* declares ``DEFAULTS`` (its ``model:`` config section; every accepted key),
* declares ``input_spec`` (resolution, mean/std, frames per sample ...), so the
  data layer needs no detector-specific code,
* ``forward(batch) -> {"logits", "prob", "feat"}`` (prob = P(fake)),
* ``losses(batch, out) -> {"total", ...named parts}``.

Checkpoints store ``checkpoint_state()``; detectors that train a small part of a
big frozen backbone override it (and ``load_checkpoint_state``) to save only
what changed.
"""
from __future__ import annotations

import copy
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


class PretrainedTowerDetector(Detector):
    """A detector around a pretrained open_clip tower (``self.backbone``) that may train only a
    small part of it. Such checkpoints are *compact*: the trainable parameters plus the
    backbone's name, pretrained tag and a hash of its frozen weights; loading verifies the hash
    (the frozen rest is rebuilt from the config, so it must be the same weights)."""

    def _is_compact(self) -> bool:
        """True when everything frozen comes from the pretrained tower (subclasses decide)."""
        raise NotImplementedError

    def _trainable_names(self) -> Set[str]:
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def checkpoint_state(self) -> Dict[str, Any]:
        if not self._is_compact():
            return super().checkpoint_state()
        trainable = {name: p.detach().cpu().clone() for name, p in self.named_parameters() if p.requires_grad}
        backbone = self.cfg["backbone"]
        return {"format": "compact", "state_dict": trainable,
                "backbone": {"arch": backbone["arch"], "pretrained": str(backbone["pretrained"]),
                             "frozen_weights_sha256": self.backbone.frozen_weights_hash()}}

    def load_checkpoint_state(self, state: Dict[str, Any], source: str = "checkpoint") -> None:
        if state.get("format") != "compact":
            return super().load_checkpoint_state(state, source)
        from training.engine.checkpoint import CheckpointError, load_state_dict_checked

        expected = state["backbone"]["frozen_weights_sha256"]
        actual = self.backbone.frozen_weights_hash()
        if expected != actual:
            raise CheckpointError(
                f"{source} is a compact checkpoint for backbone {state['backbone']['arch']} "
                f"'{state['backbone']['pretrained']}' with frozen-weight hash {expected[:16]}…, but the "
                f"backbone built from this config hashes to {actual[:16]}…. Load the same pretrained "
                f"weights the checkpoint was trained from (model.backbone.pretrained).")
        missing = self._trainable_names() - set(state["state_dict"])
        if missing:
            raise CheckpointError(f"{source}: compact checkpoint lacks trainable parameter(s) "
                                  f"{sorted(missing)[:8]}; was it trained with other model.tuning or module "
                                  f"settings? Pass the matching --detector_path.")
        load_state_dict_checked(self, state["state_dict"], source, partial=True)
