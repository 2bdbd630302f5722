"""Detector construction by registered name (see training/registry.py)."""
from __future__ import annotations

from typing import Any, Dict

from torch import nn

from training.registry import DETECTORS, import_builtin_components


def detector_class(name: str):
    import_builtin_components("detector")
    return DETECTORS.get(name)


def detector_defaults(name: str) -> Dict[str, Any]:
    """The ``model:`` section schema of a detector: every key it accepts, with defaults."""
    return detector_class(name).default_config()


def build_detector(config: Dict[str, Any]) -> nn.Module:
    """Build the detector named by ``config['model']['name']`` from a loaded config."""
    return detector_class(config["model"]["name"])(config["model"])


def count_parameters(model: nn.Module) -> Dict[str, float]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable,
            "trainable_pct": 100.0 * trainable / max(total, 1)}
