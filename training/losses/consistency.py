"""Agreement between two predictions of the same sample (frequency branch vs main head)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.errors import ConfigError
from training.registry import LOSSES

CONSISTENCY_KINDS = ("sym_kl", "mse")


@LOSSES.register("prediction_consistency")
def prediction_consistency(logits_a: torch.Tensor, logits_b: torch.Tensor, kind: str = "sym_kl") -> torch.Tensor:
    """``sym_kl``: ½(KL(p‖q) + KL(q‖p)) of the softmax distributions, batch mean;
    ``mse``: mean squared difference of the class probabilities. Gradients reach both."""
    log_p = F.log_softmax(logits_a.float(), dim=-1)
    log_q = F.log_softmax(logits_b.float(), dim=-1)
    if kind == "sym_kl":
        p, q = log_p.exp(), log_q.exp()
        return 0.5 * ((p * (log_p - log_q)).sum(-1) + (q * (log_q - log_p)).sum(-1)).mean()
    if kind == "mse":
        return (log_p.exp() - log_q.exp()).pow(2).sum(-1).mean()
    raise ConfigError(f"model.loss.consistency '{kind}' is not one of {', '.join(CONSISTENCY_KINDS)}.")
