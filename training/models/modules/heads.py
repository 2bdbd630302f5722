"""Classification heads on (usually L2-normalised) features."""
from __future__ import annotations

from torch import nn

from training.errors import ConfigError


def build_head(kind: str, in_dim: int, num_classes: int = 2, hidden: int = 512) -> nn.Module:
    if kind == "linear":  # LN-CLIP's LinearNorm head: one linear layer, no scale
        return nn.Linear(in_dim, num_classes)
    if kind == "ln_mlp":  # CLIP-STAN thesis ablation: 768 -> 512 -> 2
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
    raise ConfigError(f"model.head '{kind}' is not one of linear, ln_mlp.")
