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
from typing import Any, Dict

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
