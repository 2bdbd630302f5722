"""Classification losses on detector logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.registry import LOSSES


@LOSSES.register("cross_entropy")
def cross_entropy(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(logits.float(), labels.long(), label_smoothing=label_smoothing)
